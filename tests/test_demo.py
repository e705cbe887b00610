"""The embedded demo line: `lineside run` with no config, the shipped model, the generated parts."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.records.images import heat_files
from edge.records.query import query
from lineside.demo import demo_parts_dir
from tests.line import lineside

pytestmark = pytest.mark.slow


def test_demo_run_with_max_parts_stores_one_record_per_part(tmp_path: Path) -> None:
    proc = lineside("run", "--max-parts", "12", "--state-dir", str(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    part_lines = [line for line in proc.stdout.splitlines() if line.startswith("part ")]
    assert len(part_lines) == 12
    assert "summary: parts 12," in proc.stdout and "faults 0" in proc.stdout
    records = query(tmp_path / "records" / "records.db")
    assert len(records) == 12 and {r.model_name for r in records} == {"demo"}
    assert all(r.verdict.value in ("ACCEPT", "REJECT") for r in records)


def test_demo_recipe_2_chains_the_shipped_anomaly_model_and_keeps_its_heat_maps(tmp_path: Path) -> None:
    proc = lineside("run", "--recipe", "2", "--max-parts", "8", "--state-dir", str(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = query(tmp_path / "records" / "records.db")
    assert len(records) == 8 and {r.recipe for r in records} == {"demo-machined-part-chain"}
    for record in records:
        assert [s["stage"] for s in record.stages] == ["detector", "anomaly"]
        anomaly = record.stages[1]
        assert anomaly["model"]["name"] == "demo-anomaly" and anomaly["threshold"] > 0
        assert record.reasons[0].split(":")[0] in ("detector", "anomaly")
    kept = [r for r in records if r.image_path is not None]
    assert kept, "the demo keeps rejects' images"
    assert all("anomaly" in heat_files(tmp_path / "records", r.image_path) for r in kept if r.image_path)
    bad = lineside("run", "--recipe", "7", "--check", timeout=60)
    assert bad.returncode == 1 and "--recipe 7: not a recipe of this config (it has 1, 2)" in bad.stderr


def test_demo_model_passes_no_defective_demo_part(tmp_path: Path) -> None:
    """The shipped model on the shipped demo parts: a bad part passed is the worst outcome."""
    truth = {row["file"]: row["decision"] for row in csv.DictReader((demo_parts_dir() / "truth.csv").open())}
    proc = lineside("inspect", "--json", str(demo_parts_dir()), timeout=180)
    outcomes = {Path(o["image"]).name: o["verdict"] for o in map(json.loads, proc.stdout.splitlines())}
    assert set(outcomes) == set(truth)
    escapes = sorted(
        name for name, verdict in outcomes.items() if verdict == "ACCEPT" and truth[name] == "reject"
    )
    assert escapes == []


def test_robot_sim_drives_the_demo_with_no_wrong_accepts(tmp_path: Path) -> None:
    line = subprocess.Popen(
        [sys.executable, "-m", "lineside.cli", "run", "--trigger", "robot", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sim = lineside("robot-sim", "--demo", "--parts", "30", "--json", timeout=180)
    finally:
        line.send_signal(signal.SIGTERM)
        line.communicate(timeout=30)
    assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:]
    rows = [json.loads(text) for text in sim.stdout.splitlines()]
    summary = rows[-1]
    assert summary["parts"] == 30 and summary["truth_known"] and summary["wrong_accepts"] == [], summary
    assert len(query(tmp_path / "records" / "records.db")) == 30
