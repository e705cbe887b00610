"""lineside: the command line and the composition of edge, calibration and training."""

__version__ = "0.1.0"
