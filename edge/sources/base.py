"""What every frame source gives the capture worker: a validated frame, an explicit state, typed errors.

A source either returns a `Frame` or raises: `FrameError` (this frame is bad, the source goes on) or
`SourceUnavailable` (no frame now). Neither may ever be turned into a normal-looking frame.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.errors import ErrorCode, LinesideError


class SourceState(str, enum.Enum):
    """Where a source is in its life; only RUNNING can deliver frames."""

    STARTING = "STARTING"  # created, or open() still connecting for the first time
    RUNNING = "RUNNING"  # frames are flowing
    RECONNECTING = "RECONNECTING"  # a live source lost its camera/stream and is retrying with backoff
    ENDED = "ENDED"  # a file source played once to its end, or the source was closed
    FAILED = "FAILED"  # cannot deliver frames any more (e.g. a video with no decodable frame)


class FrameError(LinesideError):
    """This one frame is corrupt, empty, of the wrong size or unreadable; the source keeps going.

    The part it was taken for gets a FAULT (ErrorCode.FRAME); the next read may well succeed.
    """

    code = ErrorCode.FRAME


class SourceUnavailable(LinesideError):  # noqa: N818 (the name the capture worker's contract uses)
    """No frame: the source is lost, reconnecting, ended, failed, closed, or the read timed out."""

    code = ErrorCode.CAMERA

    def __init__(self, message: str, state: SourceState, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.state = state
        # True when the source was RUNNING but no frame arrived within the caller's timeout.
        self.timed_out = timed_out


@dataclass(frozen=True)
class Frame:
    """One captured image: HxWx3 uint8 BGR, validated on construction (FrameError if not).

    `index` counts the frames this source delivered since open() (0, 1, 2, ... across loops);
    `timestamp` is time.monotonic() when the frame was captured (for a live source: when OpenCV
    finished grabbing it, minus the configured capture_latency_s); `origin` names where it came
    from, for records (URLs without passwords).
    The array is shared, not copied: consumers must not write into it.
    """

    image: np.ndarray
    index: int
    timestamp: float
    origin: str

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray):
            raise FrameError(f"{self.origin}: frame is a {type(image).__name__}, expected a numpy array")
        if image.dtype != np.uint8:
            raise FrameError(f"{self.origin}: frame dtype is {image.dtype}, expected uint8")
        if image.ndim != 3 or image.shape[2] != 3:
            raise FrameError(f"{self.origin}: frame shape is {image.shape}, expected (height, width, 3) BGR")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise FrameError(f"{self.origin}: frame is empty, shape {image.shape}")
        if self.index < 0:
            raise ValueError(f"frame index must be >= 0, got {self.index}")
        if not math.isfinite(self.timestamp):
            raise ValueError(f"frame timestamp must be finite, got {self.timestamp}")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class FrameSource(Protocol):
    """The one interface the capture worker sees, whatever the frames come from.

    A source is used by one consumer thread (the capture worker); `close()` may come from another.
    """

    def open(self) -> None:
        """Connect/list/open; raises LinesideError for a configuration the user must fix.

        A second call does nothing: `open_source()` returns sources already opened."""

    def read(self, timeout_s: float) -> Frame:
        """The next frame; never blocks longer than `timeout_s` (live sources; a file source reads
        a local file in the caller's thread). Raises FrameError or SourceUnavailable."""

    @property
    def state(self) -> SourceState:
        """The source's current state (thread-safe)."""

    def close(self) -> None:
        """Release the camera/file; bounded; safe to call twice. Later reads raise SourceUnavailable."""

    def describe(self) -> str:
        """One line for logs and the status page: kind, origin and state."""
