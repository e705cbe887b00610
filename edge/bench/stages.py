"""In-process figures of a chain of judges: each stage's floor (session.run on a ready tensor) and the stage
alone (pre-process, run, its verdict), the whole chain against the sum of the floors, and, for an anomaly
model, how much of its run the nearest-neighbour search over the memory bank takes.

All measured interleaved, one call of each per iteration, so that a noisy machine slows them alike.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.bench.stats import Spread, spread
from edge.judge.detector.preprocess import Preprocessor
from edge.judge.detectstage import DetectStage
from edge.judge.inspector import Inspector
from edge.judge.mapstage import MapStage

Frame = np.ndarray
# Node names the anomaly exporter gives the bank search (training/judges/anomaly_export.py): the distance
# blocks and their minimum. Everything else in the graph is the backbone and the map's smoothing.
SEARCH_MARKERS = ("bank", "search", "nearest", "knn")


@dataclass(frozen=True)
class StageBench:
    name: str
    kind: str
    floor: Spread
    alone: Spread
    search_share: float | None = None  # anomaly: search time over the rest of the model's run


@dataclass(frozen=True)
class ChainBench:
    stages: tuple[StageBench, ...]
    chain: Spread  # Inspector.inspect: every stage on one frame

    @property
    def sum_of_floors_ms(self) -> float:
        return sum(s.floor.p50_ms for s in self.stages)


def _floor_call(stage: DetectStage | MapStage, frame: Frame) -> Callable[[], object]:
    """session.run alone on a tensor prepared once, for this stage's model."""
    model = stage.detector if isinstance(stage, DetectStage) else stage.model
    tensor = Preprocessor(model.card.input)(frame)[0].copy()
    return lambda: model.run_raw(tensor)


def _alone_call(stage: DetectStage | MapStage, frame: Frame) -> Callable[[], object]:
    return lambda: stage.judge(frame, None)


def measure_chain(inspector: Inspector, frames: list[Frame], *, iterations: int, warmup: int) -> ChainBench:
    """Every stage's floor and alone, and the chain, interleaved over `iterations` (after `warmup`)."""
    calls: dict[str, Callable[[], object]] = {}
    for stage in inspector.stages:
        calls[f"{stage.name}/floor"] = _floor_call(stage, frames[0])
    samples: dict[str, list[float]] = {key: [] for key in calls}
    for stage in inspector.stages:
        samples[f"{stage.name}/alone"] = []
    samples["chain"] = []
    for i in range(warmup + iterations):
        frame = frames[i % len(frames)]
        timed = dict(calls)
        for stage in inspector.stages:
            timed[f"{stage.name}/alone"] = _alone_call(stage, frame)
        timed["chain"] = lambda frame=frame: inspector.inspect(frame)  # type: ignore[misc]
        for key, call in timed.items():
            start = time.perf_counter()
            call()
            if i >= warmup:
                samples[key].append((time.perf_counter() - start) * 1000.0)
    stages = tuple(
        StageBench(
            stage.name,
            stage.card.task,
            spread(samples[f"{stage.name}/floor"], "floor"),
            spread(samples[f"{stage.name}/alone"], "alone"),
            search_share(stage.model.model_dir / stage.card.file, frames[0], stage)
            if isinstance(stage, MapStage) and stage.card.task == "anomaly"
            else None,
        )
        for stage in inspector.stages
    )
    return ChainBench(stages, spread(samples["chain"], "chain"))


def search_share(onnx_path: Path, frame: Frame, stage: MapStage, runs: int = 20) -> float | None:
    """Time in the bank search's nodes over the time in all other nodes, from onnxruntime's own profile
    (None when the graph names no search node)."""
    tensor = Preprocessor(stage.card.input)(frame)[0].copy()
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        providers = ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        name = session.get_inputs()[0].name
        for _ in range(runs):
            session.run(None, {name: tensor})
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    return share_of_profile(events)


def share_of_profile(events: list[dict[str, object]]) -> float | None:
    """Kernel time in nodes named as the bank search over kernel time in all other nodes, from the events
    of an onnxruntime profile (None when either side is empty)."""
    search = rest = 0.0
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        node = str(event["name"]).lower()
        duration = float(str(event["dur"]))
        if any(marker in node for marker in SEARCH_MARKERS):
            search += duration
        else:
            rest += duration
    return None if search == 0.0 or rest == 0.0 else search / rest
