"""The grabber-thread machinery shared by the live sources (OpenCV in live.py, GenICam in genicam.py).

One thread owns the device handle (its calls may block); `read()` waits on a condition with the
caller's timeout; a lost device is released and reopened with exponential backoff while RECONNECTING.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import numpy as np

from edge.sources.base import Frame, FrameError, SourceState, SourceUnavailable
from edge.sources.imagecheck import conform

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

HandleT = TypeVar("HandleT")  # the device handle only the grabber thread touches


@dataclass(frozen=True)
class Grabbed:
    """One frame as the grabber left it: image None means a failed frame, `problem` says why."""

    image: np.ndarray | None
    timestamp: float
    problem: str = ""


class Grabber(ABC, Generic[HandleT]):
    """A frame source whose device is read by one grabber thread; subclasses say how to reach the device.

    Subclasses implement `_connect` (a handle, or None with self._problem set), `_stream` (grab and
    `_publish` until the device is lost or stop is set) and `_release`, and may tune the class
    attributes and hooks below. buffer="latest" serves a read only a frame stamped at or after its
    start; buffer="fifo" queues frames oldest first, up to fifo_depth. A loss empties both, so a frame
    from before a loss is never served after it.
    """

    _close_join_s: ClassVar[float] = 2.0  # a grabber stuck inside the device library exits on its return
    _open_wait_grace_s: ClassVar[float] = 1.0  # on top of open_timeout_s, for the first attempt
    _library: ClassVar[str] = "the device library"  # for the close() warning
    _running_message: ClassVar[str] = "frames flowing"
    # Exceptions from the grabber that mean "this configuration cannot work": FAILED with their text.
    _fatal_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, cfg: SourceConfig, origin: str) -> None:
        self._cfg = cfg
        self._origin = origin
        # Log under the concrete source's module (edge.sources.live, ...), where operators look for it.
        self._log = logging.getLogger(type(self).__module__)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SourceState.STARTING
        self._problem = ""  # why the last open or grab failed, for describe() and errors
        self._waiting: list[float] = []  # start times of reads waiting for a fresh frame
        self._latest: Grabbed | None = None
        self._fifo: collections.deque[Grabbed] = collections.deque()
        self._delivered = 0
        self._dropped = 0
        self._reconnects = 0

    # ---- the caller's side -------------------------------------------------------------------

    def open(self) -> None:
        """Start the grabber and wait (bounded) for its first open attempt; never raises for a lost device.

        A second call does nothing (open_source() has already opened the source it returns).
        """
        if self._start_grabber() is not None:
            self._log.info("opened %s", self.describe())

    def _start_grabber(self) -> tuple[SourceState, str] | None:
        """Start the thread, wait for its first attempt; its (state, problem), or None if already open."""
        if self._thread is not None:
            return None
        self._thread = threading.Thread(target=self._run, name=f"grabber {self._origin}", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._state is not SourceState.STARTING,
                timeout=self._cfg.open_timeout_s + self._open_wait_grace_s,
            )
            return self._state, self._problem

    def read(self, timeout_s: float) -> Frame:
        start = time.monotonic()
        deadline = start + max(0.0, timeout_s)
        with self._cond:
            self._waiting.append(start)
            self._on_read_waiting()
            try:
                grabbed = self._await_frame(start, deadline, timeout_s)
            finally:
                self._waiting.remove(start)
        if grabbed.image is None:
            raise FrameError(f"{self._origin}: {grabbed.problem}")
        image = conform(grabbed.image, self._origin, self._cfg)  # outside the lock: may convert colour
        with self._cond:
            index = self._delivered
            self._delivered += 1
        return Frame(image=image, index=index, timestamp=grabbed.timestamp, origin=self._origin)

    def _on_read_waiting(self) -> None:
        """Called holding the condition when a read starts waiting (a software trigger fires on it)."""

    def _await_frame(self, start: float, deadline: float, timeout_s: float) -> Grabbed:
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
                    f"{self._origin}: no frame within {timeout_s:.3f} s "
                    f"(source is {state.value}{self._timeout_detail()})",
                    state,
                    timed_out=True,
                )
            self._cond.wait(remaining)

    def _timeout_detail(self) -> str:
        """Extra words for a read timeout's message (e.g. the trigger mode), each led by ', '."""
        return ""

    def _take(self, start: float) -> Grabbed | None:
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
        """Stop the grabber (bounded join; it releases the device); later reads raise SourceUnavailable."""
        self._stop.set()
        with self._cond:
            self._state = SourceState.ENDED
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._close_join_s)
            if thread.is_alive():
                self._log.warning(
                    "%s: grabber still inside %s after %.1f s; it exits when that call returns",
                    self._origin,
                    self._library,
                    self._close_join_s,
                )

    @abstractmethod
    def describe(self) -> str:
        """One line for logs and the status page: kind, origin, state and counts."""

    # ---- the grabber thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._grab_until_stopped()
        except self._fatal_errors as exc:
            self._set_state(SourceState.FAILED, str(exc))
        except Exception:  # a bug must not leave the state RUNNING with no frames behind it
            self._log.exception("%s: grabber crashed", self._origin)
            self._set_state(SourceState.FAILED, "grabber crashed, see the log")

    def _grab_until_stopped(self) -> None:
        delay = self._cfg.reconnect_initial_s
        while not self._stop.is_set():
            handle = self._connect()
            if handle is not None:
                try:
                    if self._stream(handle):
                        delay = self._cfg.reconnect_initial_s  # it worked: the next loss starts over
                finally:
                    self._release(handle)
            if self._stop.is_set():
                return
            self._set_state(SourceState.RECONNECTING, self._problem)
            self._log.debug("%s: reopening in %.2f s", self._origin, delay)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2.0, self._cfg.reconnect_max_s)

    @abstractmethod
    def _connect(self) -> HandleT | None:
        """An opened device handle; None (with self._problem set) when it cannot be had now."""

    @abstractmethod
    def _stream(self, handle: HandleT) -> bool:
        """Grab until the device is lost or stop is set; True if the connection was worth keeping."""

    @abstractmethod
    def _release(self, handle: HandleT) -> None:
        """Close the device handle, also after a loss (the handle may be dead by then)."""

    def _wanted(self, timestamp: float) -> bool:
        """Whether a frame stamped so would serve anyone: else the grabber skips decoding it."""
        with self._cond:
            return self._cfg.buffer == "fifo" or any(start <= timestamp for start in self._waiting)

    def _publish(self, grabbed: Grabbed) -> None:
        with self._cond:
            if self._cfg.buffer == "fifo":
                if len(self._fifo) >= self._cfg.fifo_depth:
                    self._fifo.popleft()
                    self._dropped += 1
                self._fifo.append(grabbed)
            else:
                self._latest = grabbed
            self._cond.notify_all()

    def _forget_on_loss(self) -> None:
        """Called holding the condition when the device is lost: drop any per-connection state."""

    def _set_state(self, state: SourceState, problem: str) -> None:
        with self._cond:
            if self._stop.is_set() or self._state is state:
                return  # closed (stays ENDED), or nothing changed
            if state is SourceState.RECONNECTING:
                self._reconnects += 1
                self._dropped += len(self._fifo)  # frames from before the loss are never served after it
                self._fifo.clear()
                self._latest = None
                self._forget_on_loss()
                self._log.warning("%s: lost, reconnecting: %s", self._origin, problem)
            elif state is SourceState.RUNNING:
                self._log.info("%s: %s", self._origin, self._running_message)
            self._state = state
            self._problem = problem
            self._cond.notify_all()
