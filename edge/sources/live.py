"""Live sources (an OpenCV camera index or a stream URL): a grabber thread owns the capture.

OpenCV calls can block (a camera unplugged mid-read, a stalled stream), so only the grabber thread
touches the cv2.VideoCapture; `read()` waits on a condition with the caller's timeout. On failure the
grabber releases the capture and reopens it with exponential backoff while the state is RECONNECTING.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.sources.base import Frame, FrameError, SourceState, SourceUnavailable
from edge.sources.imagecheck import conform

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

log = logging.getLogger(__name__)

_CLOSE_JOIN_S = 2.0  # a grabber stuck inside OpenCV exits by itself when that call returns
_OPEN_WAIT_GRACE_S = 1.0


def _live_wait_s(capture: cv2.VideoCapture) -> float:
    """A grab slower than this waited for a new frame; a faster one popped a frame already buffered."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    period = 1.0 / fps if 1.0 <= fps <= 1000.0 else 1.0 / 30.0  # many streams report no or a fake rate
    return min(max(0.25 * period, 0.001), 0.05)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, fit for logs and inspection records."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    userinfo, host = authority.rsplit("@", 1)
    if ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


@dataclass(frozen=True)
class _Grabbed:
    """One frame as the grabber left it: image None means OpenCV grabbed but could not decode it."""

    image: np.ndarray | None
    timestamp: float


class LiveSource:
    """A camera (cfg.kind == "camera") or a stream URL (cfg.kind == "stream") read by a grabber thread.

    A frame's timestamp is when its grab finished minus cfg.capture_latency_s (the camera's own
    exposure-to-delivery delay, measured at calibration): the best estimate of its exposure time.

    buffer="latest" (the triggered-part rule): `read()` returns the first frame whose timestamp is at
    or after the moment the read started, so a part is never judged on a frame taken before its
    trigger. The grabber grabs continuously (keeping OpenCV's and the driver's queues drained, so a
    grab returns a frame as it arrives) but decodes only a frame a reader waits for; a read therefore
    waits for the next frame to arrive (half a frame period on average, plus capture_latency_s), not
    for a whole extra frame. Frames buffered while (re)connecting are skipped until a grab has to
    wait, so they are never taken for fresh ones.
    buffer="fifo" (free-running): every frame is decoded and queued, oldest first, up to fifo_depth.
    """

    def __init__(self, cfg: SourceConfig) -> None:
        self._target: int | str
        if cfg.kind == "camera" and cfg.index is not None:
            self._target, self._origin = cfg.index, f"camera:{cfg.index}"
        elif cfg.kind == "stream" and cfg.url is not None:
            self._target, self._origin = cfg.url, redact_url(cfg.url)
        else:
            raise ValueError(f"LiveSource needs a camera index or a stream url, got kind {cfg.kind}")
        self._cfg = cfg
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SourceState.STARTING
        self._problem = ""  # why the last open or grab failed, for describe() and errors
        self._waiting: list[float] = []  # start times of reads waiting for a fresh frame
        self._latest: _Grabbed | None = None
        self._fifo: collections.deque[_Grabbed] = collections.deque()
        self._delivered = 0
        self._dropped = 0
        self._reconnects = 0

    # ---- the caller's side -------------------------------------------------------------------

    def open(self) -> None:
        """Start the grabber and wait (bounded) for its first open attempt; never raises for a lost device.

        A second call does nothing (open_source() has already opened the source it returns).
        """
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"grabber {self._origin}", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._state is not SourceState.STARTING,
                timeout=self._cfg.open_timeout_s + _OPEN_WAIT_GRACE_S,
            )
        log.info("opened %s", self.describe())

    def read(self, timeout_s: float) -> Frame:
        start = time.monotonic()
        deadline = start + max(0.0, timeout_s)
        with self._cond:
            self._waiting.append(start)
            try:
                grabbed = self._await_frame(start, deadline, timeout_s)
            finally:
                self._waiting.remove(start)
        if grabbed.image is None:
            raise FrameError(f"{self._origin}: OpenCV grabbed a frame but could not decode it")
        image = conform(grabbed.image, self._origin, self._cfg)  # outside the lock: may convert colour
        with self._cond:
            index = self._delivered
            self._delivered += 1
        return Frame(image=image, index=index, timestamp=grabbed.timestamp, origin=self._origin)

    def _await_frame(self, start: float, deadline: float, timeout_s: float) -> _Grabbed:
        """Wait (holding the condition) for a frame this read may use; raise when there is none."""
        while True:
            state = self._state
            if state not in (SourceState.RUNNING, SourceState.STARTING):
                detail = f" ({self._problem})" if self._problem else ""
                raise SourceUnavailable(f"{self._origin}: no frame, source is {state.value}{detail}", state)
            grabbed = self._take(start)
            if grabbed is not None:
                return grabbed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SourceUnavailable(
                    f"{self._origin}: no frame within {timeout_s:.3f} s (source is {state.value})",
                    state,
                    timed_out=True,
                )
            self._cond.wait(remaining)

    def _take(self, start: float) -> _Grabbed | None:
        if self._cfg.buffer == "fifo":
            return self._fifo.popleft() if self._fifo else None
        latest = self._latest
        return latest if latest is not None and latest.timestamp >= start else None

    @property
    def state(self) -> SourceState:
        with self._cond:
            return self._state

    @property
    def dropped_frames(self) -> int:
        """Decoded frames never read: fifo overflow, and frames queued when the source was lost."""
        with self._cond:
            return self._dropped

    @property
    def reconnects(self) -> int:
        """How many times the source went into RECONNECTING (lost, or its first open failed)."""
        with self._cond:
            return self._reconnects

    def close(self) -> None:
        """Stop the grabber (bounded join); later reads raise SourceUnavailable(ENDED)."""
        self._stop.set()
        with self._cond:
            self._state = SourceState.ENDED
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=_CLOSE_JOIN_S)
            if thread.is_alive():
                log.warning(
                    "%s: grabber still inside OpenCV after %.1f s; it exits when that call returns",
                    self._origin,
                    _CLOSE_JOIN_S,
                )

    def describe(self) -> str:
        with self._cond:
            problem = f"; last problem: {self._problem}" if self._problem else ""
            counts = f"{self._delivered} frames read, {self._dropped} dropped, {self._reconnects} reconnects"
            head = f"{self._cfg.kind} {self._origin} (buffer {self._cfg.buffer}), {self._state.value}"
            return f"{head}, {counts}{problem}"

    # ---- the grabber thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._grab_until_stopped()
        except Exception:  # a bug must not leave the state RUNNING with no frames behind it
            log.exception("%s: grabber crashed", self._origin)
            self._set_state(SourceState.FAILED, "grabber crashed, see the log")

    def _grab_until_stopped(self) -> None:
        delay = self._cfg.reconnect_initial_s
        while not self._stop.is_set():
            capture = self._open_capture()
            if capture is not None:
                try:
                    if self._stream(capture):
                        delay = self._cfg.reconnect_initial_s  # it worked: the next loss starts over
                finally:
                    capture.release()
            if self._stop.is_set():
                return
            self._set_state(SourceState.RECONNECTING, self._problem)
            log.debug("%s: reopening in %.2f s", self._origin, delay)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2.0, self._cfg.reconnect_max_s)

    def _open_capture(self) -> cv2.VideoCapture | None:
        cfg = self._cfg
        try:
            if isinstance(self._target, int):
                capture = cv2.VideoCapture(self._target)
                capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: fewer stale frames queued
            else:
                timeouts = [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(cfg.open_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(cfg.read_timeout_s * 1000),
                ]  # fmt: skip
                capture = cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, timeouts)
        except cv2.error as exc:
            self._problem = f"OpenCV refused to open: {str(exc).strip().splitlines()[-1]}"
            return None
        if not capture.isOpened():
            capture.release()
            self._problem = "cannot open (device absent, busy, unreachable or refused)"
            return None
        return capture

    def _stream(self, capture: cv2.VideoCapture) -> bool:
        """Grab until a grab fails or stop is set; True if at least one frame came."""
        live_wait_s = _live_wait_s(capture)
        flush_until = time.monotonic() + self._cfg.open_timeout_s
        streamed, flushing = False, True
        while not self._stop.is_set():
            began = time.monotonic()
            ok = capture.grab()
            grabbed_at = time.monotonic()
            if not ok:
                self._problem = "grab failed (stream ended or stalled, or camera unplugged)"
                return streamed
            streamed = True
            if flushing:
                # Frames buffered while connecting come out at once and predate any read: skip them
                # until a grab had to wait for its frame (bounded, for a source faster than we are).
                if grabbed_at - began < live_wait_s and grabbed_at < flush_until:
                    continue
                flushing = False
                self._set_state(SourceState.RUNNING, "")
            timestamp = grabbed_at - self._cfg.capture_latency_s
            if not self._wanted(timestamp):
                continue  # nobody waits for this frame: skip the decode, keep the queue drained
            ok, image = capture.retrieve()
            self._publish(_Grabbed(image if ok and image is not None and image.size else None, timestamp))
        return streamed

    def _wanted(self, timestamp: float) -> bool:
        with self._cond:
            if self._cfg.buffer == "fifo":
                return True
            return any(start <= timestamp for start in self._waiting)

    def _publish(self, grabbed: _Grabbed) -> None:
        with self._cond:
            if self._cfg.buffer == "fifo":
                if len(self._fifo) >= self._cfg.fifo_depth:
                    self._fifo.popleft()
                    self._dropped += 1
                self._fifo.append(grabbed)
            else:
                self._latest = grabbed
            self._cond.notify_all()

    def _set_state(self, state: SourceState, problem: str) -> None:
        with self._cond:
            if self._stop.is_set() or self._state is state:
                return  # closed (stays ENDED), or nothing changed
            if state is SourceState.RECONNECTING:
                self._reconnects += 1
                self._dropped += len(self._fifo)  # frames from before the loss are not served after it
                self._fifo.clear()
                self._latest = None
                log.warning("%s: lost, reconnecting: %s", self._origin, problem)
            elif state is SourceState.RUNNING:
                log.info("%s: frames flowing", self._origin)
            self._state = state
            self._problem = problem
            self._cond.notify_all()
