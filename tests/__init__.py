"""lineside test suite."""
