"""What describes the station: its config file, the calibration file and its sections, lens undistortion,
the station check (focus, exposure, pose) and the preflight that checks a config against its files.
"""
