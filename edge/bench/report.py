"""What one bench run found, as one table (every figure also as a ratio to the floor) or as JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from edge.bench.appliance import ProcessMemory
from edge.bench.stages import ChainBench
from edge.bench.stats import Spread

# Issue 7's targets, as ratios to the floor p50 (throughput: to 1 / floor p50).
TARGET_DETECTOR_P50 = 1.05
TARGET_E2E_P50 = 1.10
TARGET_E2E_P99 = 1.30
TARGET_THROUGHPUT = 0.95
TARGET_RSS_MB = 400.0
TARGET_READY_S = 3.0  # plus the model's warm-up
# Issue 14's targets for chains of judges.
TARGET_STAGE_P50 = 1.10  # each stage alone over its own session.run floor
TARGET_SEARCH_SHARE = 0.30  # an anomaly model's bank search over the rest of its run (the backbone)
TARGET_CHAIN_E2E_P50 = 1.15  # end to end over Modbus over the sum of the stages' floors


@dataclass(frozen=True)
class EndToEnd:
    """Trigger written over Modbus to RESULT_WORD updated (and read back), through the real processes."""

    updated: Spread  # TRIGGER_SEQ written -> RESULT_WORD set by the robot link (ACCEPT/REJECT parts)
    total: Spread  # TRIGGER_SEQ written -> RESULT_WORD seen by the bench's polling robot
    steps_ms: dict[str, Spread]  # where the time went, per part, from the appliance's own stream
    read_rtt: Spread  # one read of 11 registers: the polling granularity
    write_rtt: Spread
    poll_ms: float  # pause between reads (0: back to back)
    verdicts: dict[str, int]
    faults: int


@dataclass(frozen=True)
class Throughput:
    """Free-running at takt 0: parts finalised per second over a fixed window."""

    parts_per_s: float
    parts: int
    faults: int
    window_s: float
    steps_ms: dict[str, Spread]  # per part inside the appliance, from its own stream


@dataclass(frozen=True)
class Startup:
    """`lineside run` from process start: Modbus server answering, then STATUS READY."""

    link_s: float
    ready_s: float


@dataclass
class BenchReport:
    """Every figure of one run; `notes` say what bounds or qualifies them."""

    model: dict[str, Any]
    frames: dict[str, Any]
    machine: dict[str, Any]
    floor: Spread
    detector: Spread
    detector_steps: dict[str, Spread]
    model_load_s: float
    model_warmup_s: float
    peer: Spread | None = None
    peer_label: str = ""
    # session.run alone again right before, between and after the appliance phases: the appliance's
    # figures are divided by the floor measured next to them in time, as a shared machine drifts.
    floor_bursts: list[Spread] = field(default_factory=list)
    end_to_end: EndToEnd | None = None
    throughput: Throughput | None = None
    memory: list[ProcessMemory] = field(default_factory=list)
    startups: list[Startup] = field(default_factory=list)
    chain: ChainBench | None = None  # with --stage: each judge and the chain in process
    notes: list[str] = field(default_factory=list)

    def floor_near(self, phase: str) -> float:
        """The floor p50 next to a phase: the mean of the bursts before and after it (else the floor)."""
        index = {"end_to_end": 0, "throughput": 1}[phase]
        bursts = self.floor_bursts[index : index + 2]
        if len(bursts) < 2:
            return self.floor.p50_ms
        return (bursts[0].p50_ms + bursts[1].p50_ms) / 2.0

    def drift(self) -> float:
        """Slowest over fastest floor p50 of this run (1.0: the machine held still)."""
        p50s = [self.floor.p50_ms, *(b.p50_ms for b in self.floor_bursts)]
        return max(p50s) / min(p50s)

    def total_rss_mb(self) -> float:
        return sum(m.rss_mb for m in self.memory)

    def total_pss_mb(self) -> float | None:
        pss = [m.pss_mb for m in self.memory]
        return None if not pss or any(p is None for p in pss) else sum(p for p in pss if p is not None)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ratios"] = self.ratios()
        data["floor_near_ms"] = {p: self.floor_near(p) for p in ("end_to_end", "throughput")}
        data["totals"] = {"rss_mb": self.total_rss_mb(), "pss_mb": self.total_pss_mb()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def ratios(self) -> dict[str, float]:
        """Each figure over the floor p50 next to it (throughput over 1 / that floor)."""
        floor = self.floor.p50_ms
        out = {"floor_p99": self.floor.p99_ms / floor, "drift": self.drift()}
        out["detector_p50"], out["detector_p99"] = self.detector.ratio(floor)
        if self.peer is not None:
            out["peer_p50"], out["peer_p99"] = self.peer.ratio(floor)
        if self.end_to_end is not None:
            near = self.floor_near("end_to_end")
            out["end_to_end_p50"], out["end_to_end_p99"] = self.end_to_end.updated.ratio(near)
            out["end_to_end_seen_p50"], out["end_to_end_seen_p99"] = self.end_to_end.total.ratio(near)
        if self.throughput is not None:
            out["throughput"] = self.throughput.parts_per_s * self.floor_near("throughput") / 1000.0
        return out
