"""Records through the charts: the offline use of line alarms (`lineside records alarms`).

Judged parts (ACCEPT, REJECT) feed the p-charts; a FAULT is no judgement of the part (camera, timeout...)
and is left out. ACCEPTed parts feed score drift from their stages' scores and thresholds. Image drift
needs the frames: only kept images can be measured (rejects, near-threshold parts and the configured
sample of accepts), so on records it charts those, and says how many parts had one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.judge.inspection import Verdict
from edge.records.model import InspectionRecord
from edge.records.shift import reject_cause
from edge.spc.ack import Acknowledgement, AckSchedule, named
from edge.spc.alarm import Alarm, PartKey
from edge.spc.config import SpcConfig
from edge.spc.drift import ImageDrift, ScoreDrift, closeness
from edge.spc.ewma import EwmaChart
from edge.spc.pchart import PChart, RejectCharts

FrameLoader = Callable[[InspectionRecord], "npt.NDArray[np.uint8] | None"]


@dataclass
class LineCharts:
    """Every chart of one line, fed part by part in order (the live line will feed these same objects)."""

    config: SpcConfig
    reference: Mapping[str, float] | None = None
    rejects: RejectCharts = field(init=False)
    image: ImageDrift = field(init=False)
    score: ScoreDrift = field(init=False)
    alarms: list[Alarm] = field(default_factory=list)
    last_part: PartKey | None = None  # the last part fed (FAULTs too): where an acknowledgement applies

    def __post_init__(self) -> None:
        p = self.config.pchart
        self.rejects = RejectCharts(
            p.subgroup,
            p.baseline_subgroups,
            baseline_rate=p.baseline_rate,
            rules=p.rules if p.enabled else (),
            class_rules=p.class_rules if p.enabled else (),
            run_length=p.run_length,
            trend_length=p.trend_length,
            upper_only=p.sides == "upper",
            class_upper_only=p.class_sides == "upper",
            prior_hits=p.new_class_counts,
            history=self.config.history,
            release=p.release,
            class_bonferroni=p.class_bonferroni,
        )
        self.image = ImageDrift(self.config, self.reference)
        self.score = ScoreDrift(self.config)

    def add_record(self, record: InspectionRecord, frame: npt.NDArray[np.uint8] | None = None) -> list[Alarm]:
        """One part's alarms; `frame` (its image) feeds image drift when there is one."""
        self.last_part = record.key
        if record.verdict is Verdict.FAULT:
            return []
        found: list[Alarm] = []
        rejected = record.verdict is Verdict.REJECT
        if self.config.pchart.enabled:
            found += self.rejects.add(record.key, rejected, deciding_class(record) if rejected else None)
        if not rejected and self.config.score.enabled:
            ratio = closeness(record.stages)
            alarm = None if ratio is None else self.score.add(ratio, record.key)
            found += [] if alarm is None else [alarm]
        if frame is not None:
            found += self.image.add_frame(frame, record.key)
        self.alarms += found
        return found

    def add_measures(self, measures: Mapping[str, float], part: PartKey) -> list[Alarm]:
        """One frame's image measures (the live line measures them in inference, edge/spc/drift.py)."""
        found = self.image.add_measures(measures, part)
        self.alarms += found
        return found

    def chart(self, name: str) -> PChart | EwmaChart | None:
        """The chart an alarm came from, by its name."""
        if name == "reject_rate":
            return self.rejects.reject
        if name.startswith("class_rate:"):
            return self.rejects.classes.get(name.partition(":")[2])
        if name == "score":
            return self.score.chart
        return self.image.charts.get(name)

    def _all(self) -> list[PChart | EwmaChart]:
        return [*self.rejects.charts(), *self.image.charts.values(), self.score.chart]

    def active(self) -> list[str]:
        """The charts latched in alarm now: raised, neither acknowledged nor returned."""
        return [c.name for c in self._all() if c.latched]

    def acknowledge(self, wanted: Sequence[str] = ()) -> list[str]:
        """Someone has seen the alarms: the latched charts `wanted` names (a chart, a kind such as
        `class_rate`; empty: all) are released and alarm again on their next firing (a shift that lasts
        raises again by the rules). The charts released, in the order `active()` lists them."""
        released = []
        for chart in self._all():
            if chart.latched and named(chart.name, wanted):
                chart.acknowledge()
                released.append(chart.name)
        return released

    def finish(self) -> list[Alarm]:
        """Close the last, short subgroup (end of a replay)."""
        found = self.rejects.close() if self.config.pchart.enabled else []
        self.alarms += found
        return found


def deciding_class(record: InspectionRecord) -> str | None:
    """The class (or the classify/anomaly stage) that decided a reject: the evidence's rule when the record
    has one (schema 3), else what the reasons and detections say."""
    rule = record.evidence.get("rule") if record.evidence else None
    if isinstance(rule, dict) and rule.get("code", "").endswith(".reject"):
        return str(rule.get("class") or rule.get("stage") or "") or None
    return reject_cause(record)


def kept_image_loader(records_dir: Path) -> FrameLoader:
    """Reads a record's kept image (None when it was not kept, was evicted or cannot be read)."""

    def load(record: InspectionRecord) -> npt.NDArray[np.uint8] | None:
        if record.image_path is None or record.image_evicted:
            return None
        image = cv2.imread(str(records_dir / record.image_path), cv2.IMREAD_GRAYSCALE)
        return None if image is None else np.asarray(image, dtype=np.uint8)

    return load


@dataclass(frozen=True)
class ReplayCounts:
    parts: int
    judged: int
    images: int


def replay(
    records: Iterable[InspectionRecord],
    config: SpcConfig,
    frames: FrameLoader | None = None,
    reference: Mapping[str, float] | None = None,
    acks: Iterable[Acknowledgement] = (),
) -> tuple[LineCharts, ReplayCounts]:
    """Feed `records` (oldest first) through a fresh set of charts, releasing them where the recorded
    `acks` did on the live line; the charts (alarms in `.alarms`)."""
    charts = LineCharts(config, reference)
    schedule = AckSchedule(acks)
    schedule.start(charts.acknowledge)
    parts = judged = images = 0
    for record in records:
        parts += 1
        judged += record.verdict is not Verdict.FAULT
        frame = None if frames is None or record.verdict is Verdict.FAULT else frames(record)
        images += frame is not None
        charts.add_record(record, frame)
        schedule.after(record.key, charts.acknowledge)
    schedule.finish(charts.acknowledge)
    charts.finish()
    return charts, ReplayCounts(parts, judged, images)
