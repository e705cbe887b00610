"""`lineside bench`: its figures are sane and consistent (no timing targets: benchmarks are not tests)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from edge.bench import BenchOptions, render, run_bench
from edge.bench.model import (
    compare_floors,
    load_frames,
    measure_model,
    measure_peer,
    open_detector,
    parse_frame_size,
)
from edge.bench.report import BenchReport
from edge.bench.stats import spread
from edge.bench.table import render_summary
from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from tests.line import lineside, write_part
from tests.models import ModelBox, make_yolo_model

RUN_COMMAND = (sys.executable, "-m", "lineside.cli", "run", "--quiet")
WORKERS = {"supervisor", "recorder", "robotlink", "inference", "capture"}


def _model(root: Path) -> Path:
    # Scores follow the frame's brightness: bright parts REJECT, dark ones ACCEPT (as in tests/line.py).
    return make_yolo_model(
        root / "model",
        ["scratch", "pit"],
        [ModelBox(32, 32, 10, 10, 0, 1.0)],
        imgsz=(64, 64),
        gain="input_mean",
        thresholds={"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.5, "pit": 0.5}},
    )


def _parts(root: Path, pattern: str = "gd") -> Path:
    folder = root / "parts"
    folder.mkdir(parents=True)
    for i, kind in enumerate(pattern):
        write_part(folder / f"part_{i:03d}.png", kind == "d")
    return folder


def test_spread_orders_its_percentiles_and_refuses_no_samples() -> None:
    s = spread([5.0, 1.0, 3.0, 2.0, 100.0], "step")
    assert (s.count, s.min_ms, s.max_ms) == (5, 1.0, 100.0)
    assert s.min_ms <= s.p50_ms <= s.p99_ms <= s.max_ms
    with pytest.raises(LinesideError, match="no samples for step"):
        spread([], "step")
    with pytest.raises(LinesideError, match="--frame"):
        parse_frame_size("640by480")
    assert parse_frame_size("320X240") == (320, 240)


def test_floor_is_below_the_detector_and_counts_are_as_requested(tmp_path: Path) -> None:
    detector, load_s, warmup_s = open_detector(_model(tmp_path), DetectorConfig(threads=1))
    frames = load_frames(_parts(tmp_path), size=(200, 100))
    assert {f.shape for f in frames} == {(100, 200, 3)}
    figures = measure_model(detector, frames, iterations=40, warmup=3)
    peer = measure_peer(lambda frame: frame.mean(), frames, iterations=25, warmup=2)
    assert load_s > 0 and warmup_s >= 0
    assert figures.floor.count == figures.detector.count == 40 and peer.count == 25
    for step in (figures.floor, figures.detector, *figures.steps.values(), peer):
        assert 0 < step.p50_ms <= step.p99_ms
    # The detector runs the same session plus pre-processing, decoding and rules.
    assert figures.floor.p50_ms <= figures.detector.p50_ms
    assert set(figures.steps) == {"preprocess", "infer", "decode", "rules"}


@pytest.mark.slow
def test_bench_drives_the_real_appliance_and_every_figure_is_consistent(tmp_path: Path) -> None:
    options = BenchOptions(
        model_dir=_model(tmp_path),
        parts_dir=_parts(tmp_path, "gdd"),
        work_dir=tmp_path / "work",
        run_command=RUN_COMMAND,
        detector=DetectorConfig(threads=1),
        parts=12,
        warmup_parts=3,
        iterations=20,
        throughput_s=1.0,
        poll_ms=0.5,
    )
    report = run_bench(options)
    e2e = report.end_to_end
    assert e2e is not None and e2e.faults == 0 and e2e.total.count == 12 and e2e.updated.count == 12
    # Parts 4..15 of the looped folder g,d,d: 4 good and 8 defective, each judged on its own frame.
    assert e2e.verdicts == {"REJECT": 8, "ERROR": 0, "ACCEPT": 4, "LATE": 0}
    assert report.floor.p50_ms <= report.detector.p50_ms <= e2e.updated.p50_ms <= e2e.updated.p99_ms
    # The register is set before a polling robot can see it.
    assert e2e.updated.p50_ms <= e2e.total.p50_ms and e2e.updated.p99_ms <= e2e.total.p99_ms
    assert "inference: session.run" in e2e.steps_ms and e2e.read_rtt.count >= 12
    assert report.throughput is not None and report.throughput.parts > 0 and report.throughput.faults == 0
    assert {m.name for m in report.memory} >= WORKERS
    assert all(m.rss_mb > 0 for m in report.memory)
    assert len(report.startups) == 2 and all(0 < s.link_s <= s.ready_s for s in report.startups)
    table = render(report)
    for row in ("floor: session.run", "detector alone", "end-to-end", "sustained free-run", "RSS", "READY"):
        assert row in table
    assert json.loads(report.to_json())["ratios"]["end_to_end_p50"] >= 1.0


@pytest.mark.slow
def test_cli_prints_one_table_with_every_figure(tmp_path: Path) -> None:
    model = _model(tmp_path)
    args = (
        "--model",
        str(model),
        "--parts",
        "10",
        "--iterations",
        "20",
        "--seconds",
        "1",
        "--frame",
        "160x120",
    )
    proc = lineside("bench", *args, "--threads", "1", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.startswith("lineside bench: model tiny 1") and "frames 160x120" in out
    e2e = "end-to-end: TRIGGER_SEQ -> RESULT_WORD set (n=10;"
    for row in ("floor: session.run", "detector alone", e2e, "seen by the robot"):
        assert row in out
    assert "parts/s" in out and "RSS, all" in out and "start -> READY, start 2" in out


def test_cli_json_parses_and_names_the_models_own_input_size(tmp_path: Path) -> None:
    model = _model(tmp_path)
    proc = lineside(
        "bench", "--model", str(model), "--model-only", "--iterations", "10", "--imgsz", "64", "--json"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["model"]["input"] == "64x64" and data["floor"]["count"] == 10
    assert data["floor"]["p50_ms"] <= data["floor"]["p99_ms"]
    assert data["end_to_end"] is None and data["ratios"]["detector_p50"] > 0


def test_int8_sibling_is_benched_beside_its_fp32_model_with_a_side_by_side_speedup(tmp_path: Path) -> None:
    model = _model(tmp_path)
    # A stand-in "INT8" sibling (the same tiny graph, its card says int8): the pairing is under test.
    sibling = make_yolo_model(
        tmp_path / "model-int8",
        ["scratch", "pit"],
        [ModelBox(32, 32, 10, 10, 0, 1.0)],
        imgsz=(64, 64),
        gain="input_mean",
        precision="int8",
    )
    proc = lineside("bench", "--model", str(model), "--model-only", "--iterations", "10", "--int8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("lineside bench: model tiny 1") == 2 and str(sibling) not in proc.stderr
    summary = out.split("run ", 1)[1]
    assert "tiny 1 fp32 64" in summary and "tiny 1 int8 64" in summary
    assert "INT8 speed-up at the floor, tiny 1 int8 64 vs fp32 (side by side):" in summary


def test_summary_table_has_one_line_per_run(tmp_path: Path) -> None:
    detector, _, _ = open_detector(_model(tmp_path), DetectorConfig(threads=1))
    frames = load_frames(_parts(tmp_path))
    first, second = compare_floors([detector, detector], frames[0], rounds=2, block=3, warmup=1)
    assert first.count == second.count == 6
    figures = measure_model(detector, frames, iterations=5, warmup=1)
    report = BenchReport(
        model={},
        frames={},
        machine={},
        floor=figures.floor,
        detector=figures.detector,
        detector_steps=figures.steps,
        model_load_s=0.1,
        model_warmup_s=0.1,
    )
    text = render_summary([("a fp32", report), ("a int8", report)], [("a int8 vs fp32", 2.0)])
    lines = text.splitlines()
    assert lines[0].startswith("run") and lines[1].startswith("a fp32") and lines[2].startswith("a int8")
    assert lines[3].endswith("2.00x (target >= 1.70x: met)")


def test_cli_peer_without_ultralytics_is_one_clear_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("ultralytics") is not None:
        pytest.skip("ultralytics is installed: the peer runs instead")
    proc = lineside("bench", "--model", str(_model(tmp_path)), "--model-only", "--peer", "ultralytics")
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "train extra" in proc.stderr
