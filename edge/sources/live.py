"""Live sources (an OpenCV camera index or a stream URL): a grabber thread (grabber.py) owns the capture.

OpenCV calls can block (a camera unplugged mid-read, a stalled stream), so only the grabber thread
touches the cv2.VideoCapture; `read()` waits on a condition with the caller's timeout. On failure the
grabber releases the capture and reopens it with exponential backoff while the state is RECONNECTING.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2

from edge.sources.base import SourceState
from edge.sources.grabber import Grabbed, Grabber

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

_UNDECODABLE = "OpenCV grabbed a frame but could not decode it"


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


class LiveSource(Grabber[cv2.VideoCapture]):
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

    _close_join_s = 2.0  # a grabber stuck inside OpenCV exits by itself when that call returns
    _open_wait_grace_s = 1.0
    _library = "OpenCV"
    _running_message = "frames flowing"

    def __init__(self, cfg: SourceConfig) -> None:
        self._target: int | str
        if cfg.kind == "camera" and cfg.index is not None:
            self._target, origin = cfg.index, f"camera:{cfg.index}"
        elif cfg.kind == "stream" and cfg.url is not None:
            self._target, origin = cfg.url, redact_url(cfg.url)
        else:
            raise ValueError(f"LiveSource needs a camera index or a stream url, got kind {cfg.kind}")
        super().__init__(cfg, origin)

    def describe(self) -> str:
        with self._cond:
            problem = f"; last problem: {self._problem}" if self._problem else ""
            counts = f"{self._delivered} frames read, {self._dropped} dropped, {self._reconnects} reconnects"
            head = f"{self._cfg.kind} {self._origin} (buffer {self._cfg.buffer}), {self._state.value}"
            return f"{head}, {counts}{problem}"

    # ---- the grabber thread ------------------------------------------------------------------

    def _connect(self) -> cv2.VideoCapture | None:
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
            decoded = bool(ok and image is not None and image.size)
            self._publish(Grabbed(image if decoded else None, timestamp, "" if decoded else _UNDECODABLE))
        return streamed

    def _release(self, capture: cv2.VideoCapture) -> None:
        capture.release()
