"""What turns a frame into a verdict: the detector, the decision rules, thresholds and the inspection records.

Import from the submodules; this package imports nothing, so a process that only reads the config does not
load onnxruntime or OpenCV.
"""
