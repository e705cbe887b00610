"""A calibration step refused with advice (too few views, views tilted alike): one line the technician reads,
kept as a catalog message so that `lineside calibrate --lang` says it in Korean or English."""

from __future__ import annotations

from calibration.errors import SaidError


class RefusalError(SaidError):
    """The views cannot give a trustworthy result; the message says what to retake."""
