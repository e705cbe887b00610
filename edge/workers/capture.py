"""The capture worker: takes a frame for each trigger and hands it to inference.

A part whose frame cannot be had (camera lost, corrupt or wrong-sized frame, inference not taking
frames) gets a FAULT result sent straight to the robot link: it never waits for a timeout to fail.
"""

from __future__ import annotations

import logging
import time

from edge.errors import ErrorCode
from edge.messages import FrameHeader, Result, Trigger
from edge.sources.base import FrameError, FrameSource, SourceState, SourceUnavailable
from edge.sources.config import open_source
from edge.transport import Receiver, Sender
from edge.workers.base import Worker

log = logging.getLogger(__name__)

TRIGGER_POLL_MS = 50
# How long a frame may wait for inference to take it (a socket still connecting after a restart);
# longer means inference is busy or hung, and the part is failed at once rather than queued.
FRAME_SEND_WAIT_MS = 100


class CaptureWorker(Worker):
    name = "capture"

    def setup(self) -> None:
        ep = self.endpoints
        self.triggers: Receiver[Trigger] = Receiver(self.zmq, ep.triggers, Trigger, hwm=100)
        # hwm 2 + immediate: a stalled or dead inference makes the send fail now (OVERLOAD FAULT),
        # instead of parts queueing up behind it and all timing out.
        self.frames: Sender[FrameHeader] = Sender(self.zmq, ep.frames, FrameHeader, hwm=2, immediate=True)
        self.results: Sender[Result] = Sender(self.zmq, ep.results, Result, hwm=1000)
        self.source: FrameSource = open_source(self.config.source)  # opened, or LinesideError
        self.counts = {"frames": 0, "frame_faults": 0, "camera_faults": 0, "overload": 0, "stale_triggers": 0}
        self._delivered = False
        self._update_detail()

    def _update_detail(self) -> None:
        state = self.source.state
        # A file source is ready once open; a live one once it has delivered a frame (rule 6).
        self._delivered = self._delivered or state is SourceState.RUNNING
        self.detail = {
            "source": self.source.describe(),
            "source_state": state.value.lower(),
            "camera_ready": state is SourceState.RUNNING and self._delivered,
            "source_ended": state in (SourceState.ENDED, SourceState.FAILED),
            **self.counts,
        }

    def step(self) -> None:
        got = self.triggers.recv(TRIGGER_POLL_MS)
        if got is not None:
            self._capture(got[0])
        self._update_detail()

    def _capture(self, trigger: Trigger) -> None:
        remaining_s = (trigger.budget_ms - trigger.age_ms(time.monotonic())) / 1000.0
        if remaining_s <= 0:
            # The robot link has already failed this part on its budget; a frame now would be for
            # the wrong part. Counted, not silent.
            self.counts["stale_triggers"] += 1
            return
        started = time.monotonic()
        try:
            frame = self.source.read(timeout_s=remaining_s)
        except FrameError as exc:
            self.counts["frame_faults"] += 1
            self._fault(trigger, ErrorCode.FRAME, str(exc))
            return
        except SourceUnavailable as exc:
            self.counts["camera_faults"] += 1
            self._fault(trigger, ErrorCode.CAMERA, f"no frame: {exc}")
            return
        capture_ms = (time.monotonic() - started) * 1000.0
        shape = frame.image.shape
        header = FrameHeader(
            trigger=trigger,
            t_capture=frame.timestamp,
            origin=frame.origin,
            shape=(int(shape[0]), int(shape[1]), int(shape[2])),
            capture_ms=round(capture_ms, 3),
        )
        remaining_ms = trigger.budget_ms - trigger.age_ms(time.monotonic())
        if not self.frames.send(header, frame.image, wait_ms=int(min(FRAME_SEND_WAIT_MS, remaining_ms))):
            self.counts["overload"] += 1
            self._fault(trigger, ErrorCode.OVERLOAD, "inference is not taking frames (busy, hung or down)")
            return
        self.counts["frames"] += 1

    def _fault(self, trigger: Trigger, error: ErrorCode, reason: str) -> None:
        log.warning("part %d: FAULT %s: %s", trigger.seq, error.kind, reason)
        self.results.send(Result.fault(trigger, error, reason))

    def teardown(self) -> None:
        for closer in ("source", "triggers", "frames", "results"):
            obj = getattr(self, closer, None)
            if obj is not None:
                obj.close()
