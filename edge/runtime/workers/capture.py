"""The capture worker: takes a frame for each trigger and hands it to inference.

A part whose frame cannot be had (camera lost, corrupt or wrong-sized frame, inference not taking
frames) gets a FAULT result sent straight to the robot link: it never waits for a timeout to fail.
In hardware-trigger mode the camera decides when a part is there: every frame it delivers is
announced to the robot link, which registers the part and sends its trigger back for that frame.
A replayed source (folder, video) is read and decoded one frame ahead, while inference works, so that
the decode is off the critical path as it is for a camera that delivers decoded frames.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path

from edge.errors import ErrorCode, LinesideError
from edge.runtime.framering import FrameRing
from edge.runtime.messages import FrameHeader, PartArrival, Result, Trigger
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import Worker
from edge.sources.base import Frame, FrameError, FrameSource, SourceState, SourceUnavailable
from edge.sources.opener import open_source
from edge.station.calibfile import load_calibration
from edge.station.check import StationReference

log = logging.getLogger(__name__)

TRIGGER_POLL_MS = 50
# How long a frame may wait for inference to take it (a socket still connecting after a restart);
# longer means inference is busy or hung, and the part is failed at once rather than queued.
FRAME_SEND_WAIT_MS = 100
HARDWARE_READ_S = 0.02  # hardware mode: how long one step waits for the camera's next frame
MAX_HELD_FRAMES = 8  # hardware mode: frames waiting for their part's trigger
READ_AHEAD_S = 1.0  # replayed sources: the longest one read-ahead may take (a file on a slow disk)


class CaptureWorker(Worker):
    name = "capture"

    def setup(self) -> None:
        ep = self.endpoints
        self.triggers: Receiver[Trigger] = Receiver(self.zmq, ep.triggers, Trigger, hwm=100)
        # hwm 2 + immediate: a stalled or dead inference makes the send fail now (OVERLOAD FAULT),
        # instead of parts queueing up behind it and all timing out.
        self.frames: Sender[FrameHeader] = Sender(self.zmq, ep.frames, FrameHeader, hwm=2, immediate=True)
        self.ring = FrameRing(Path(ep.frame_dir))  # pixels through shared memory (framering.py)
        self.results: Sender[Result] = Sender(self.zmq, ep.results, Result, hwm=1000)
        self.hardware = self.config.trigger.mode == "hardware"
        self.arrivals: Sender[PartArrival] = Sender(self.zmq, ep.arrivals, PartArrival, hwm=100)
        # Hardware mode: announced frames (or the error a bad frame gave) waiting for their part's trigger.
        self.held: OrderedDict[int, Frame | FrameError] = OrderedDict()
        self.frame_refs = 0
        self.source: FrameSource = open_source(self.config.source)  # opened, or LinesideError
        # Replayed sources: the next frame (or the error reading it gave), read while inference works.
        self.ahead: Frame | FrameError | None = None
        self.replayed = 0
        self.counts = {"frames": 0, "frame_faults": 0, "camera_faults": 0, "overload": 0, "stale_triggers": 0}
        self._delivered = False
        self.station_check = self._check_station()
        self._update_detail()

    def _check_station(self) -> str:
        """Focus, exposure and pose of a first raw frame against the reference; '' = passed or not checked."""
        mode = self.config.station_check.mode
        recipe = self.config.recipe(self.config.default_recipe)
        if mode == "off" or recipe is None or recipe.calibration is None:
            return ""
        if load_calibration(recipe.calibration).reference is None:
            return ""
        try:
            reference = StationReference.load(recipe.calibration)
            self.replayed += 1  # a replay played once counts this frame too (see _can_read_ahead)
            frame = self.source.read(timeout_s=self.config.source.open_timeout_s)
            report = reference.check(frame.image, origin=frame.origin)
        except LinesideError as exc:  # no reference image, no frame: the station is unchecked
            report_lines, failed = [f"station check could not run: {exc}"], True
        else:
            report_lines, failed = report.lines(), report.failed
        for line in report_lines:
            (log.error if failed else log.info)("station check: %s", line)
        if failed and mode == "block":
            return "station check FAIL: " + "; ".join(report_lines)
        return ""

    def _update_detail(self) -> None:
        state = self.source.state
        # A file source is ready once open; a live one once it has delivered a frame (rule 6).
        self._delivered = self._delivered or state is SourceState.RUNNING
        self.detail = {
            "source": self.source.describe(),
            "source_state": state.value.lower(),
            "camera_ready": state is SourceState.RUNNING and self._delivered and not self.station_check,
            "station_check": self.station_check or "pass",
            "source_ended": state in (SourceState.ENDED, SourceState.FAILED),
            **self.counts,
        }

    def step(self) -> None:
        if self.hardware:
            self._watch_camera()
        got = self.triggers.recv(0 if self.hardware else TRIGGER_POLL_MS)
        if got is not None:
            self._capture(got[0])
        self._read_ahead()
        self._update_detail()

    def _can_read_ahead(self) -> bool:
        """Only replays read ahead: a live camera's frame must be taken after its trigger, and a replay
        played once must not reach its end (and report the camera lost) while parts are still in flight."""
        src = self.config.source
        if self.hardware or self.ahead is not None or src.kind not in ("folder", "video"):
            return False
        files = getattr(self.source, "files", None)
        return src.loop or (src.kind == "folder" and files is not None and self.replayed < len(files))

    def _read_ahead(self) -> None:
        if not self._can_read_ahead():
            return
        try:
            self.ahead = self.source.read(timeout_s=READ_AHEAD_S)
        except FrameError as exc:
            self.ahead = exc  # the next part gets this FRAME fault, as if it had read the file itself
        except SourceUnavailable:
            return  # the part's own read reports it
        self.replayed += 1

    def _watch_camera(self) -> None:
        """Hardware trigger: a frame from the camera means a part; announce it to the robot link."""
        item: Frame | FrameError
        try:
            frame = self.source.read(timeout_s=HARDWARE_READ_S)
            item, origin, t_capture = frame, frame.origin, frame.timestamp
        except FrameError as exc:
            item, origin, t_capture = exc, "bad frame", time.monotonic()
        except SourceUnavailable:
            return  # no trigger fired (or the camera is lost): no part
        if len(self.held) >= MAX_HELD_FRAMES:
            # Its part's trigger finds no frame and faults; pairing is by reference, so no part gets
            # another part's frame.
            self.counts["overload"] += 1
            log.error("hardware trigger: %d frames wait for triggers; dropping the oldest", len(self.held))
            self.held.popitem(last=False)
        self.frame_refs += 1
        self.held[self.frame_refs] = item
        self.arrivals.send(PartArrival(frame_ref=self.frame_refs, t_capture=t_capture, origin=origin))

    def _read_for(self, trigger: Trigger, remaining_s: float) -> Frame:
        """The frame for this trigger: the camera's oldest unclaimed frame (hardware) or a fresh read."""
        if not self.hardware:
            item, self.ahead = self.ahead, None
            if isinstance(item, FrameError):
                raise item
            if item is None:
                self.replayed += 1
                return self.source.read(timeout_s=remaining_s)
            return item
        item = self.held.pop(trigger.frame_ref, None) if trigger.frame_ref is not None else None
        if item is None:
            raise SourceUnavailable("hardware trigger: frame for this part was dropped", self.source.state)
        if isinstance(item, FrameError):
            raise item
        return item

    def _capture(self, trigger: Trigger) -> None:
        remaining_s = (trigger.budget_ms - trigger.age_ms(time.monotonic())) / 1000.0
        if remaining_s <= 0:
            # The robot link has already failed this part on its budget; a frame now would be for
            # the wrong part. Counted, not silent.
            self.counts["stale_triggers"] += 1
            return
        started = time.monotonic()
        try:
            frame = self._read_for(trigger, remaining_s)
        except FrameError as exc:
            self.counts["frame_faults"] += 1
            self._fault(trigger, ErrorCode.FRAME, str(exc))
            return
        except SourceUnavailable as exc:
            self.counts["camera_faults"] += 1
            self._fault(trigger, ErrorCode.CAMERA, f"no frame: {exc}")
            return
        try:
            slot = self.ring.put(frame.image)
        except FrameError as exc:
            self.counts["frame_faults"] += 1
            self._fault(trigger, ErrorCode.FRAME, str(exc))
            return
        capture_ms = (time.monotonic() - started) * 1000.0
        header = FrameHeader(
            trigger=trigger,
            t_capture=frame.timestamp,
            origin=frame.origin,
            shape=slot.shape,
            capture_ms=round(capture_ms, 3),
            slot=slot,
        )
        remaining_ms = trigger.budget_ms - trigger.age_ms(time.monotonic())
        if not self.frames.send(header, wait_ms=int(min(FRAME_SEND_WAIT_MS, remaining_ms))):
            self.counts["overload"] += 1
            self._fault(trigger, ErrorCode.OVERLOAD, "inference is not taking frames (busy, hung or down)")
            return
        self.counts["frames"] += 1

    def _fault(self, trigger: Trigger, error: ErrorCode, reason: str) -> None:
        log.warning("part %d: FAULT %s: %s", trigger.seq, error.kind, reason)
        self.results.send(Result.fault(trigger, error, reason))

    def teardown(self) -> None:
        for closer in ("source", "triggers", "frames", "results", "arrivals", "ring"):
            obj = getattr(self, closer, None)
            if obj is not None:
                obj.close()
