"""One bench run: the in-process figures, then the real appliance driven as a robot, then free-running.

Every figure of a report comes from this one run, so that the ratios to the floor compare like with like.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import onnxruntime as ort

from edge.bench.appliance import Appliance, ProcessMemory, Station, write_station
from edge.bench.model import (
    Frame,
    load_frames,
    measure_floor,
    measure_model,
    measure_peer,
    open_detector,
)
from edge.bench.report import BenchReport, EndToEnd, Startup, Throughput
from edge.bench.robot import BenchRobot, PartTiming
from edge.bench.stages import ChainBench, measure_chain
from edge.bench.stats import Spread, spread
from edge.bench.stream import Finalised, InspectionStream
from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.detector import Detector, auto_threads
from edge.judge.inspection import Verdict
from edge.judge.inspector import Inspector, load_model
from edge.judge.mapstage import MapStage
from edge.robotlink.registers import VerdictCode
from edge.runtime.placement import line_threads, usable_cpus
from edge.station.config import RecipeConfig, StageConfig

STREAM_QUIET_MS = 300  # the stream is drained once nothing came for this long
DRIFT = 1.15  # the floor moving more than this between phases is worth a note


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how much of it. `run_command` starts the appliance, given a config path."""

    model_dir: Path
    parts_dir: Path
    work_dir: Path
    run_command: tuple[str, ...]
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    frame_size: tuple[int, int] | None = None  # (width, height); None: the parts as they are
    imgsz: int | None = None  # what the user asked for; the model decides
    parts: int = 100
    warmup_parts: int = 5
    iterations: int = 200
    warmup_iterations: int = 20
    throughput_s: float = 10.0
    poll_ms: float = 0.0
    start_timeout_s: float = 90.0
    appliance: bool = True  # False: in-process figures only
    peer: Callable[[Frame], object] | None = None
    peer_label: str = ""
    stages: tuple[Path, ...] = ()  # more judges after the model: the chain is measured too
    alarms: bool = True  # the line alarms (spc) as a station has them by default; False: what they cost


def run_bench(options: BenchOptions) -> BenchReport:
    """Measure what `options` asks for; LinesideError on anything that keeps a figure from being true."""
    # The models are measured with the threads the line runs them with: auto resolved as the supervisor
    # does for the bench's stations, which keep cpu_placement auto.
    threads = line_threads(options.detector.threads, usable_cpus(), "auto")
    o = replace(options, detector=options.detector.model_copy(update={"threads": threads}))
    if o.parts < 1 or o.iterations < 1 or o.throughput_s <= 0 or o.warmup_parts < 0 or o.poll_ms < 0:
        raise LinesideError("bench: parts, iterations and seconds must be positive")
    frames = load_frames(o.parts_dir, o.frame_size)
    detector, load_s, warmup_s = open_detector(o.model_dir, o.detector)
    figures = measure_model(detector, frames, iterations=o.iterations, warmup=o.warmup_iterations)
    peer = (
        measure_peer(o.peer, frames, iterations=o.iterations, warmup=o.warmup_iterations)
        if o.peer is not None
        else None
    )
    report = BenchReport(
        model=_describe_model(detector, o.detector, auto=options.detector.threads == 0),
        frames={
            "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
            "count": len(frames),
            "folder": str(o.parts_dir),
        },
        machine=_describe_machine(),
        floor=figures.floor,
        detector=figures.detector,
        detector_steps=figures.steps,
        model_load_s=load_s,
        model_warmup_s=warmup_s,
        peer=peer,
        peer_label=o.peer_label,
    )
    report.notes += _input_notes(o, detector, frames)
    if o.stages:
        report.chain = _measure_chain(o, detector, frames)
    if o.appliance:
        parts_dir = o.parts_dir if o.frame_size is None else _write_frames(o.work_dir / "parts", frames)

        def burst() -> Spread:  # the floor again, next in time to an appliance phase
            n = max(20, o.iterations // 4)
            return measure_floor(detector, frames[0], iterations=n, warmup=o.warmup_iterations // 4)

        report.floor_bursts.append(burst())
        report.end_to_end, first = _robot_phase(o, parts_dir, report.notes)
        report.floor_bursts.append(burst())
        report.throughput, report.memory, second = _free_run_phase(o, parts_dir, report.notes)
        report.floor_bursts.append(burst())
        report.startups = [first, second]
        report.notes += _line_notes(report, o)
    return report


def _measure_chain(o: BenchOptions, detector: Detector, frames: list[Frame]) -> ChainBench:
    recipe = RecipeConfig(
        number=1, name="bench-chain", model=o.model_dir, stages=[StageConfig(model=p) for p in o.stages]
    )
    inspector = Inspector.load(recipe, detector, {p: load_model(p, o.detector) for p in o.stages})
    for stage in inspector.stages[1:]:
        if isinstance(stage, MapStage):
            stage.model.warmup()
    return measure_chain(inspector, frames, iterations=o.iterations, warmup=o.warmup_iterations)


def _describe_model(detector: Detector, cfg: DetectorConfig, *, auto: bool) -> dict[str, object]:
    card = detector.card
    return {
        "name": card.name,
        "version": card.version,
        "sha256": card.sha256[:12],
        "dir": str(detector.model_dir),
        "input": f"{card.input.width}x{card.input.height}",
        "dtype": card.input.dtype,
        "providers": ", ".join(detector.providers),
        "threads": f"auto: {cfg.threads or auto_threads()}" if auto else cfg.threads,
        "graph_optimization": cfg.graph_optimization,
    }


def _describe_machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "load_at_start": round(os.getloadavg()[0], 2),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }


def _input_notes(o: BenchOptions, detector: Detector, frames: list[Frame]) -> list[str]:
    spec = detector.card.input
    notes = []
    if o.imgsz is not None and (o.imgsz, o.imgsz) != (spec.width, spec.height):
        notes.append(
            f"--imgsz {o.imgsz}: the model decides its input size; {detector.card.name} "
            f"{detector.card.version} takes {spec.width}x{spec.height}, so every figure is at that size "
            f"(export the model at {o.imgsz} to measure {o.imgsz})"
        )
    if o.frame_size is not None:
        notes.append(f"frames resized to {o.frame_size[0]}x{o.frame_size[1]} (--frame) before any timing")
    return notes


def _write_frames(folder: Path, frames: list[Frame]) -> Path:
    """The resized frames as PNG files, for the appliance's folder source."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        if not cv2.imwrite(str(folder / f"part_{i:04d}.png"), frame):
            raise LinesideError(f"{folder}: cannot write bench frames")
    return folder


def _start_up(appliance: Appliance, timeout_s: float) -> tuple[Startup, BenchRobot]:
    """Start the appliance, wait for its Modbus server, then for READY; both timed from the process start."""
    robot = BenchRobot(appliance.station.modbus_port)
    appliance.start()
    try:
        robot.connect(timeout_s, alive=appliance.check_alive)
        link_s = time.monotonic() - appliance.started_at
        try:
            ready_at = robot.wait_ready(timeout_s, alive=appliance.check_alive)
        except LinesideError as exc:  # it runs but is not READY: its own log says why
            raise LinesideError(f"{exc}; its log ends: {appliance.log_tail(2)}") from None
    except LinesideError:
        robot.close()
        raise
    return Startup(link_s, ready_at - appliance.started_at), robot


def _station(o: BenchOptions, parts_dir: Path, mode: str) -> Station:
    return write_station(
        o.work_dir / mode,
        model_dir=o.model_dir,
        stages=o.stages,
        alarms=o.alarms,
        parts_dir=parts_dir,
        detector=o.detector,
        mode="robot" if mode == "robot" else "free_run",
    )


def _robot_phase(o: BenchOptions, parts_dir: Path, notes: list[str]) -> tuple[EndToEnd, Startup]:
    station = _station(o, parts_dir, "robot")
    appliance = Appliance(list(o.run_command), station)
    stream = InspectionStream(station.publish)  # connected before the start: it misses no part
    try:
        startup, robot = _start_up(appliance, o.start_timeout_s)
        try:
            poll_s = o.poll_ms / 1000.0
            if o.warmup_parts:
                robot.trigger_parts(o.warmup_parts, first_seq=1, poll_s=poll_s)
            run = robot.trigger_parts(o.parts, first_seq=o.warmup_parts + 1, poll_s=poll_s)
        finally:
            robot.close()
        events = stream.drain(STREAM_QUIET_MS)
    finally:
        stream.close()
        _stopped(appliance, notes)
    return _end_to_end(run.parts, events, run.read_rtt, run.write_rtt, o.poll_ms), startup


def _end_to_end(
    parts: list[PartTiming], events: list[Finalised], read_rtt: Spread, write_rtt: Spread, poll_ms: float
) -> EndToEnd:
    good = [p for p in parts if p.verdict in (VerdictCode.ACCEPT, VerdictCode.REJECT)]
    verdicts = {code.name: sum(p.verdict is code for p in parts) for code in VerdictCode if code.value}
    if not good:
        raise LinesideError(f"bench: all {len(parts)} robot-triggered parts failed ({verdicts})")
    by_seq = {f.event.trigger.trigger_seq: f.event for f in events if f.event.trigger.part_id is not None}
    steps: dict[str, list[float]] = {}
    updated: list[float] = []
    for part in good:
        event = by_seq.get(part.seq)
        if event is None or event.result is None:
            continue
        # The robot link sets the result registers at trigger + latency_ms (its clock, the same
        # system-wide monotonic clock as the robot's write time).
        updated.append(max(0.0, (event.trigger.t_trigger - part.t_write) * 1000.0 + event.latency_ms))
        for label, ms in _split(part, event.trigger.t_trigger, event.latency_ms, event.result.timings_ms):
            steps.setdefault(label, []).append(ms)
    if not steps:
        raise LinesideError("bench: the result stream carried none of the timed parts")
    return EndToEnd(
        updated=spread(updated, "end-to-end (updated)"),
        total=spread([p.ms for p in good], "end-to-end"),
        steps_ms={label: spread(values, label) for label, values in steps.items()},
        read_rtt=read_rtt,
        write_rtt=write_rtt,
        poll_ms=poll_ms,
        verdicts=verdicts,
        faults=len(parts) - len(good),
    )


def _split(
    part: PartTiming, t_trigger: float, latency_ms: float, timings: dict[str, float]
) -> list[tuple[str, float]]:
    """Where one part's time went, robot write to robot read, on the system-wide monotonic clock."""
    steps = ("capture", "preprocess", "infer", "decode", "frame_in", "result_out")
    inside = {k: _timing(timings, k, part.seq) for k in steps}
    # A chain's later stages report "<stage>.preprocess" and "<stage>.infer" (edge/judge/inspector.py).
    later = sorted((k, v) for k, v in timings.items() if "." in k)
    names = {"preprocess": "pre-process", "infer": "session.run"}
    stage_steps = [
        (f"inference: {k.split('.')[0]} {names.get(k.split('.')[1], k.split('.')[1])}", v) for k, v in later
    ]
    worked = inside["preprocess"] + inside["infer"] + inside["decode"] + sum(v for _, v in later)
    # latency_ms is rounded to 1 us when published: clamp the rounding, not a real negative.
    return [
        ("Modbus write -> part registered", max(0.0, (t_trigger - part.t_write) * 1000.0)),
        ("trigger -> capture, capture -> inference (hops)", max(0.0, inside["frame_in"] - inside["capture"])),
        ("capture: read + decode the frame", inside["capture"]),
        ("inference: pre-process", inside["preprocess"]),
        ("inference: session.run", inside["infer"]),
        ("inference: decode + NMS", inside["decode"]),
        *stage_steps,
        (
            "inference: hand-offs, rules, result message",
            max(0.0, inside["result_out"] - inside["frame_in"] - worked),
        ),
        ("inference -> robot link, registers set (hop)", max(0.0, latency_ms - inside["result_out"])),
        ("result published -> seen by the robot", max(0.0, (part.t_seen - t_trigger) * 1000.0 - latency_ms)),
    ]


def _timing(timings: dict[str, float], step: str, seq: int) -> float:
    """One step's milliseconds from a published result; a missing step is an error, never a zero."""
    if step not in timings:
        raise LinesideError(f"bench: the result of part {seq} has no '{step}' timing ({sorted(timings)})")
    return timings[step]


def _free_run_phase(
    o: BenchOptions, parts_dir: Path, notes: list[str]
) -> tuple[Throughput, list[ProcessMemory], Startup]:
    station = _station(o, parts_dir, "free_run")
    appliance = Appliance(list(o.run_command), station)
    stream = InspectionStream(station.publish)
    try:
        startup, robot = _start_up(appliance, o.start_timeout_s)
        robot.close()  # free-running: nothing to say over Modbus
        settle_until = time.monotonic() + o.start_timeout_s
        settled = 0
        while settled < o.warmup_parts and time.monotonic() < settle_until:
            settled += stream.receive(100) is not None
            appliance.check_alive()
        start = time.monotonic()
        window = stream.collect(until=start + o.throughput_s)
        memory = appliance.memory()
    finally:
        stream.close()
        _stopped(appliance, notes)
    good = [f.event for f in window if f.event.verdict in (Verdict.ACCEPT, Verdict.REJECT)]
    if not good:
        raise LinesideError(f"bench: no part passed inspection in {o.throughput_s:g} s of free-running")
    steps = {
        "trigger -> result, inside the appliance": spread([e.latency_ms for e in good], "latency"),
        "of which session.run": spread(
            [_timing(e.result.timings_ms, "infer", e.trigger.seq) for e in good if e.result is not None],
            "session.run",
        ),
    }
    throughput = Throughput(
        len(good) / o.throughput_s, len(good), len(window) - len(good), o.throughput_s, steps
    )
    return throughput, memory, startup


def _stopped(appliance: Appliance, notes: list[str]) -> None:
    code = appliance.stop()
    if code != 0:
        notes.append(
            f"`lineside run` ({appliance.station.config.parent.name}) exited {code}: {appliance.log_tail(2)}"
        )


def _line_notes(report: BenchReport, o: BenchOptions) -> list[str]:
    notes = []
    if report.drift() > DRIFT:
        p50s = ", ".join(f"{s.p50_ms:.1f}" for s in [report.floor, *report.floor_bursts])
        notes.append(
            f"the machine's speed drifted during the run (floor p50 {p50s} ms, in order): the appliance's "
            "ratios use the floor measured next to them, but stay uncertain by about that much"
        )
    e2e = report.end_to_end
    if e2e is not None and o.poll_ms == 0 and (os.cpu_count() or 1) <= 4:
        notes.append(
            f"the bench's robot polls back to back on the same {os.cpu_count()} CPUs as the appliance "
            f"(one read {e2e.read_rtt.p50_ms:.2f} ms p50): a result is seen at most one read after it is "
            "published, and the polling competes with inference for the CPU (--poll-ms spaces it)"
        )
    if e2e is not None and "capture: read + decode the frame" in e2e.steps_ms:
        capture = e2e.steps_ms["capture: read + decode the frame"].p50_ms
        notes.append(
            f"the station's source is a folder of image files, read and decoded one frame ahead while "
            f"inference works (capture's own step {capture:.2f} ms p50), as a camera delivers decoded frames"
        )
    if e2e is not None and e2e.faults:
        notes.append(f"{e2e.faults} robot-triggered parts ended in ERROR/LATE: {e2e.verdicts}")
    return notes
