"""`lineside doctor`: checks an installation and reports one PASS/WARN/FAIL line per check.

Import from the submodules (report, station, system, checks); this package imports nothing.
"""
