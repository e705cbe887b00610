"""Replay sources for the demo and for tests: an image folder and a video file, looped or played once.

Both read in the caller's thread (local files do not hang the way a camera can) and are used by one
consumer. A bad file or frame is a FrameError for that read; the next read moves on.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.errors import LinesideError
from edge.sources.base import Frame, FrameError, SourceState, SourceUnavailable
from edge.sources.imagecheck import conform, read_image_file

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


class _ReplayState:
    """State shared by the two replay sources: thread-safe state, frame counter, end-of-file rule."""

    def __init__(self, cfg: SourceConfig) -> None:
        if cfg.path is None:
            raise LinesideError(f"source.path: required for kind '{cfg.kind}'")
        self._cfg = cfg
        self._path: Path = cfg.path
        self._lock = threading.Lock()
        self._state = SourceState.STARTING
        self._delivered = 0

    @property
    def state(self) -> SourceState:
        with self._lock:
            return self._state

    def _set_state(self, state: SourceState) -> None:
        with self._lock:
            self._state = state

    def _require_running(self) -> None:
        state = self.state
        if state is not SourceState.RUNNING:
            raise SourceUnavailable(f"{self._path}: no frame, source is {state.value}", state)

    def _frame(self, image: np.ndarray, timestamp: float, origin: str) -> Frame:
        frame = Frame(image=image, index=self._delivered, timestamp=timestamp, origin=origin)
        self._delivered += 1
        return frame

    def describe(self) -> str:
        mode = "loop" if self._cfg.loop else "once"
        return f"{self._cfg.kind} {self._path} ({mode}), {self.state.value}, {self._delivered} frames read"


class FolderSource(_ReplayState):
    """Image files of one folder in name order; the folder is listed once, at open()."""

    def __init__(self, cfg: SourceConfig) -> None:
        super().__init__(cfg)
        self._files: tuple[Path, ...] = ()
        self._next = 0

    def open(self) -> None:
        if self.state is not SourceState.STARTING:
            return  # already opened (open_source() opens what it returns) or closed
        if not self._path.is_dir():
            raise LinesideError(f"{self._path}: image folder does not exist or is not a folder")
        files = sorted(p for p in self._path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise LinesideError(f"{self._path}: no image files ({suffixes}) in the folder")
        self._files = tuple(files)
        self._next = 0
        self._set_state(SourceState.RUNNING)
        log.info("opened %s", self.describe())

    @property
    def files(self) -> tuple[Path, ...]:
        """The files this source replays, in order (listed once at open)."""
        return self._files

    def read(self, timeout_s: float) -> Frame:
        self._require_running()
        if self._next >= len(self._files):
            if not self._cfg.loop:
                self._set_state(SourceState.ENDED)
                self._require_running()
            self._next = 0
        path = self._files[self._next]
        self._next += 1  # move on first: a corrupt file must not stall the replay
        timestamp = time.monotonic()
        image = read_image_file(path, self._cfg)
        return self._frame(image, timestamp, str(path))

    def close(self) -> None:
        self._set_state(SourceState.ENDED)


class VideoFileSource(_ReplayState):
    """Frames of one video file through cv2.VideoCapture; at the end, rewinds (loop) or ENDs."""

    def __init__(self, cfg: SourceConfig) -> None:
        super().__init__(cfg)
        self._capture: cv2.VideoCapture | None = None
        self._position = 0  # frame number within the file, for the record's origin

    def open(self) -> None:
        if self.state is not SourceState.STARTING:
            return  # already opened (open_source() opens what it returns) or closed
        if not self._path.is_file():
            raise LinesideError(f"{self._path}: video file does not exist")
        self._reopen()
        if self._grab()[0] is False:  # probe: refuse a file with no decodable frame at startup
            self._release()
            raise LinesideError(f"{self._path}: OpenCV cannot open or decode this video file")
        self._reopen()
        self._set_state(SourceState.RUNNING)
        log.info("opened %s", self.describe())

    def _reopen(self) -> None:
        self._release()
        capture = cv2.VideoCapture(str(self._path))
        if capture.isOpened():
            self._capture = capture
        else:
            capture.release()
        self._position = 0

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _grab(self) -> tuple[bool, np.ndarray | None]:
        if self._capture is None:
            return False, None
        ok, image = self._capture.read()
        return bool(ok), image if ok else None

    def read(self, timeout_s: float) -> Frame:
        self._require_running()
        ok, image = self._grab()
        if not ok:  # OpenCV does not tell the end of the file from an unreadable rest: both end a pass
            if not self._cfg.loop:
                self._end(SourceState.ENDED)
            self._reopen()  # reopening rewinds reliably for every codec, unlike seeking to frame 0
            ok, image = self._grab()
            if not ok:
                self._end(SourceState.FAILED)
        timestamp = time.monotonic()
        origin = f"{self._path}#frame={self._position}"
        self._position += 1
        if image is None:
            raise FrameError(f"{origin}: OpenCV returned no image")
        return self._frame(conform(image, origin, self._cfg), timestamp, origin)

    def _end(self, state: SourceState) -> None:
        self._release()
        self._set_state(state)
        why = "no decodable frame" if state is SourceState.FAILED else "played to its end"
        raise SourceUnavailable(f"{self._path}: {why}, source is {state.value}", state)

    def close(self) -> None:
        self._release()
        self._set_state(SourceState.ENDED)
