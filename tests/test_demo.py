"""The embedded demo line: `lineside run` with no config, the shipped model, the generated parts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

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
