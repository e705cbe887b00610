"""Line alarms (statistical process control) on the inspection stream: p-charts with Western Electric /
Nelson run rules, image drift and score drift as EWMA charts. Alarms warn; they never change a verdict.

Import from the submodules (config, alarm, rules, pchart, ewma, drift, replay); this package imports nothing.
"""
