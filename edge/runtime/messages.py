"""Messages that cross process boundaries, validated on construction and serialised as JSON.

A part is identified everywhere by (boot_id, seq): boot_id is the robot link's BOOT_ID (new on every
start of that process) and seq the inspection sequence it allocated, so a result can only ever be
applied to the inspection it belongs to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.errors import ErrorCode
from edge.judge.inspection import Decision, Detection, Verdict


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(Message):
    """The robot link asks for one part to be inspected."""

    boot_id: int = Field(ge=1, le=32767)
    seq: int = Field(ge=1, description="Inspection sequence, monotonic per boot_id.")
    trigger_seq: int = Field(ge=1, le=32767, description="The 15-bit sequence on the Modbus wire.")
    part_id: str | None = None
    recipe: int = Field(ge=0, le=32767)
    t_trigger: float = Field(description="time.monotonic() at the trigger (system-wide clock).")
    wall_trigger: float = Field(description="time.time() at the trigger, for records.")
    budget_ms: float = Field(gt=0, description="Publish budget: a result later than this is not applied.")
    frame_ref: int | None = Field(None, description="Hardware trigger: the announced frame this part is.")

    def age_ms(self, now_monotonic: float) -> float:
        return (now_monotonic - self.t_trigger) * 1000.0


class SlotRef(Message):
    """Where one frame lies: ring file, slot index, the generation capture wrote, the frame's shape."""

    ring: str = Field(min_length=1, description="Ring file name in the runtime directory.")
    slot: int = Field(ge=0, description="Slot index in the ring.")
    generation: int = Field(ge=2, description="Even generation of the slot when the frame was complete.")
    shape: tuple[int, int, int] = Field(description="Height, width, channels of the uint8 frame.")


class FrameHeader(Message):
    """A captured frame for a triggered part; its pixels are in the shared frame ring (`slot`) or, when
    there is none, travel beside it as raw bytes."""

    trigger: Trigger
    t_capture: float
    origin: str
    shape: tuple[int, int, int]
    capture_ms: float
    slot: SlotRef | None = None


class PartArrival(Message):
    """Hardware-trigger mode: the camera delivered a frame on its own trigger, so a part is here."""

    frame_ref: int = Field(ge=1, description="Capture's number for the frame; comes back on the trigger.")
    t_capture: float
    origin: str


class ModelRef(Message):
    name: str = ""
    version: str = ""
    sha256: str = ""


class Result(Message):
    """What inference (or capture, for a fault before inference) concluded about one part."""

    trigger: Trigger
    verdict: Verdict
    reasons: tuple[str, ...] = Field(min_length=1)
    error_code: ErrorCode = ErrorCode.NONE
    top_class_id: int | None = None
    top_confidence: float = 0.0
    robot_position: tuple[float, float] | None = Field(
        None, description="The deciding defect's position on the robot plane (mm), when calibrated."
    )
    detections: tuple[dict[str, object], ...] = ()
    model: ModelRef = ModelRef()
    timings_ms: dict[str, float] = Field(default_factory=dict)
    near_threshold: bool = False
    origin: str = ""
    recipe_name: str = ""
    stages: tuple[dict[str, object], ...] = Field(
        (),
        description="Each judge's own verdict, score, threshold, margin and reasons (edge/judge/stage.py).",
    )
    evidence: dict[str, object] | None = Field(
        None, description="Set by the recorder only: inference's evidence, sent after the result (ImageNote)."
    )

    def decision(self) -> Decision:
        return Decision(
            self.verdict,
            self.reasons,
            top_class_id=self.top_class_id,
            top_confidence=self.top_confidence,
            error=self.error_code,
            robot_position=self.robot_position,
        )

    def parsed_detections(self) -> tuple[Detection, ...]:
        return tuple(Detection.from_json(d) for d in self.detections)

    @classmethod
    def fault(cls, trigger: Trigger, error: ErrorCode, reason: str, **extra: object) -> Result:
        decision = Decision.fault(error, reason)
        return cls(
            trigger=trigger,
            verdict=decision.verdict,
            reasons=decision.reasons,
            error_code=decision.error,
            **extra,
        )


class LedgerEvent(Message):
    """The robot link's ledger: a part was triggered, or got its final verdict (exactly once)."""

    kind: Literal["triggered", "finalised"]
    trigger: Trigger
    verdict: Verdict | None = None
    reasons: tuple[str, ...] = ()
    error_code: ErrorCode = ErrorCode.NONE
    late: bool = Field(False, description="The result was past its budget and published as LATE.")
    latency_ms: float = 0.0
    wall_decided: float = 0.0
    result: Result | None = Field(None, description="The inspection result the verdict came from, if any.")


class ImageNote(Message):
    """Sent beside a frame to the recorder, so it can keep the image of the part's record."""

    boot_id: int
    seq: int
    shape: tuple[int, int, int]
    heatmaps: dict[str, str] = Field(
        default_factory=dict, description="Per stage, its heat map over the frame as a base64 grey PNG."
    )
    evidence: dict[str, object] | None = Field(
        None, description="Why the part got its verdict, codes and numbers (edge/judge/evidence.py)."
    )


class FrameMeasures(Message):
    """Inference -> alarms worker: a frame's image measures (edge/spc/drift.py), sent after its result."""

    boot_id: int
    seq: int
    brightness: float
    contrast: float
    sharpness: float


class AlarmState(Message):
    """The alarms worker's state (edge/runtime/workers/alarms.py), published on every change and every
    second: which charts are in alarm now, the ALARM register's word, and the counts raised so far."""

    word: int = Field(0, ge=0, le=32767, description="The robot's ALARM register: a bit per chart kind.")
    active: tuple[str, ...] = Field((), description="Charts in alarm now (latched, not yet returned).")
    raised: dict[str, int] = Field(
        default_factory=dict, description="Alarms raised since the worker started, per 'chart rule'."
    )
    latest: tuple[dict[str, object], ...] = Field(
        (),
        description="The newest alarms, newest last: Alarm.to_json with `parts` as a count and `span` the "
        "first and last part (the records keep them all), plus raised_at and chart_png.",
    )
    baseline_left: int = Field(0, ge=0, description="Judged parts still to come before the p-charts test.")
    acks: tuple[dict[str, object], ...] = Field(
        (),
        description="The newest acknowledgements handled, newest last: id, acked_at, source, user and the "
        "charts they released (empty: nothing was in alarm), so that whoever asked can see it done.",
    )


class AlarmAck(Message):
    """Robot link or status worker -> alarms worker: someone acknowledges the line alarms (docs/spc.md).
    The latched charts are released and the acknowledgement is recorded; no verdict is touched."""

    id: str = Field(min_length=1, max_length=64, description="The asker's own id, echoed in AlarmState.acks.")
    source: Literal["robot", "page", "cli"]
    user: str | None = Field(None, max_length=64, description="Who: a login, 'token', or the CLI's user.")
    charts: tuple[str, ...] = Field(
        (), max_length=64, description="Charts or chart kinds to release (class_rate: every class); () all."
    )
    t: float = Field(description="time.time() when asked.")


class Heartbeat(Message):
    """A worker's sign of life, sent from its loop so that a hung loop falls silent."""

    worker: str
    pid: int
    state: Literal["starting", "ready", "degraded", "stopping", "done", "failed"]
    detail: dict[str, object] = Field(default_factory=dict)
    t: float


class Health(Message):
    """The supervisor's view of all workers, published to those that need it (the robot link)."""

    model_ready: bool
    camera_ready: bool
    source_ended: bool = Field(False, description="A replayed source played to its end (or failed).")
    workers: dict[str, str]
    shutting_down: bool = False
    t: float
