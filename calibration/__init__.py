"""Technician calibration: camera intrinsics, mm scale, region of interest, station checks."""
