"""The embedded demo line: `lineside run` with no config, the shipped model, the generated parts."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.judge.inspection import Verdict
from edge.records.images import heat_files
from edge.records.query import query
from edge.runtime.messages import LedgerEvent, Result, Trigger
from lineside.commands.robotsim import load_truth
from lineside.commands.summary import RunSummary
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
    # The summary scores the line against the demo's truth file, and names each part it got wrong.
    truth = {row["file"]: row["decision"] for row in csv.DictReader((demo_parts_dir() / "truth.csv").open())}
    misses = []
    for line in part_lines:
        seq, verdict, image = line.split()[1], line.split()[2], line.split()[5]
        if (verdict == "ACCEPT") != (truth[image] == "accept"):
            misses.append((seq, image, "escape" if verdict == "ACCEPT" else "overkill"))
    escapes = sum(kind == "escape" for _, _, kind in misses)
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("summary:"))
    assert f"against the truth of 12 part(s): escapes {escapes}, overkill {len(misses) - escapes}" in summary
    for seq, image, kind in misses:
        assert f"part {seq} {kind}" in summary and f"part {seq} ({image}) was an {kind}" in proc.stdout


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


def _final(seq: int, image: str, verdict: Verdict) -> LedgerEvent:
    trigger = Trigger(
        boot_id=1, seq=seq, trigger_seq=seq, recipe=1, t_trigger=0.0, wall_trigger=0.0, budget_ms=500.0
    )
    reasons = (f"{verdict.value}: test",)
    result = Result(trigger=trigger, verdict=verdict, reasons=reasons, origin=f"/parts/{image}")
    return LedgerEvent(kind="finalised", trigger=trigger, verdict=verdict, reasons=reasons, result=result)


def test_the_summary_names_each_escape_and_overkill_against_the_truth() -> None:
    truth = load_truth(demo_parts_dir() / "truth.csv")  # part_0003 is good, part_0004 defective
    summary = RunSummary(truth)
    for seq, image, verdict in (
        (1, "part_0001.png", Verdict.ACCEPT),
        (3, "part_0003.png", Verdict.REJECT),
        (4, "part_0004.png", Verdict.ACCEPT),
        (6, "part_0006.png", Verdict.REJECT),
        (7, "elsewhere.png", Verdict.REJECT),
    ):
        summary.add(_final(seq, image, verdict))
    line = summary.render()
    assert "against the truth of 4 part(s): escapes 1, overkill 1 (1 part(s) not in the truth)" in line
    assert line.endswith("(part 3 overkill, part 4 escape)")
    assert summary.miss_lines() == [
        "  part 3 (part_0003.png) was an overkill: a good part rejected: REJECT: test",
        "  part 4 (part_0004.png) was an escape: a defective part accepted: ACCEPT: test",
    ]
    assert "truth" not in RunSummary().render()
