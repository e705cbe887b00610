"""Typed errors the detector raises, each tied to the fault code the robot link reports for it.

A detector error is never turned into "no detections": the caller maps it to a FAULT (reject).
"""

from __future__ import annotations

from typing import ClassVar

from edge.errors import ErrorCode, LinesideError


class InferenceError(LinesideError):
    """onnxruntime failed, or the model's output is not what its card promises."""

    error_code: ClassVar[ErrorCode] = ErrorCode.MODEL


class InvalidFrame(LinesideError):  # noqa: N818 (the name the frame sources and workers use)
    """The frame handed to the detector is not an HxWx3 uint8 BGR image."""

    error_code: ClassVar[ErrorCode] = ErrorCode.FRAME
