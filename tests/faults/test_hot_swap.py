"""Model hot swap on a running line (`lineside run` as a process, free-running over good/defective parts):
a promotion is picked up between parts, a rollback too; a garbage file, another class list or a wrong
sha256 behind the pointer, or the running version's file overwritten, is refused while the old model keeps
judging, and no part is ever wrongly passed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.atomic import atomic_write_text
from edge.errors import ErrorCode
from edge.modelstore.registry import read_pointer
from edge.records.model import InspectionRecord
from edge.records.query import query
from tests.faults.conftest import FaultReport, FaultRow
from tests.line import RunningLine, make_station, running_line
from tests.test_registry import make_version
from training.registry import promote, rollback

pytestmark = pytest.mark.slow

PATTERN = "gd"  # part_000 good (dark), part_001 defective (bright); the folder loops


def _registry_station(tmp_path: Path) -> tuple[Path, Path]:
    """A free-running station whose recipe follows the registry's promoted `part` model."""
    registry = tmp_path / "models"
    make_version(registry, "1.0.0")
    make_version(registry, "1.1.0", anchors=2)
    promote(registry, "part", "1.0.0")
    config, _ = make_station(tmp_path / "line", PATTERN, takt_ms=20, budget_ms=1000)
    raw = yaml.safe_load(config.read_text())
    raw["recipes"] = [
        {
            "number": 1,
            "name": "test-part",
            "model_registry": {"dir": str(registry), "name": "part", "poll_s": 0.2},
        }
    ]
    config.write_text(yaml.safe_dump(raw))
    return config, registry


def _parts(line: RunningLine) -> dict[int, tuple[str, bool]]:
    """seq -> (verdict, defective) from the `part` lines (the origin file says which part it was)."""
    parts = {}
    for text in line.part_lines():
        fields = text.split()
        origin = next((f for f in fields if f.startswith("part_")), "")
        defective = origin.endswith(".png") and PATTERN[int(origin[5:8]) % len(PATTERN)] == "d"
        parts[int(fields[1])] = (fields[2], defective)
    return parts


def _records(config: Path) -> dict[int, InspectionRecord]:
    return {r.seq: r for r in query(config.parent / "records" / "records.db")}


def _wait_parts(line: RunningLine, more: int, what: str) -> None:
    target = len(line.part_lines()) + more
    line.wait_for(lambda: len(line.part_lines()) >= target, 30, what)


def _tally(line: RunningLine, records: dict[int, InspectionRecord]) -> tuple[int, int, int]:
    """(parts, wrong accepts, lost records) over the whole run."""
    parts = _parts(line)
    wrong = sum(1 for verdict, defective in parts.values() if verdict == "ACCEPT" and defective)
    wrong += sum(1 for r in records.values() if r.verdict.value == "ACCEPT" and r.seq not in parts)
    last = max([*parts, *records], default=0)
    lost = sum(1 for seq in range(1, last + 1) if seq not in records)
    return last, wrong, lost


def test_promotion_and_rollback_are_picked_up_between_parts(
    tmp_path: Path, fault_report: FaultReport
) -> None:
    config, registry = _registry_station(tmp_path)
    with running_line(config) as line:
        _wait_parts(line, 10, "parts on 1.0.0")
        promote(registry, "part", "1.1.0")
        line.wait_for(lambda: any("swapped 1.0.0 -> 1.1.0" in t for t in line.stderr), 30, "the swap")
        _wait_parts(line, 10, "parts on 1.1.0")
        rollback(registry, "part")
        line.wait_for(lambda: any("swapped 1.1.0 -> 1.0.0" in t for t in line.stderr), 30, "the rollback")
        _wait_parts(line, 10, "parts after the rollback")
    records = _records(config)
    parts, wrong, lost = _tally(line, records)
    versions = [records[seq].model_version for seq in sorted(records)]
    fault_report.add(
        FaultRow(
            case="hot-swap-promote-rollback",
            injected="promote 1.1.0, then rollback, mid-run",
            parts=parts,
            wrong_accepts=wrong,
            lost_records=lost,
            recovery_s=None,
            visible=("records", "logs"),
            note="each part judged by one model (record's model_version)",
        )
    )
    assert wrong == 0 and lost == 0
    # A valid swap costs no part (the parts in flight when the line is stopped end FAULT shutdown).
    assert all(r.error_code in (ErrorCode.NONE, ErrorCode.SHUTDOWN) for r in records.values())
    # One model per part, and the versions change only at the swap and the rollback.
    versions = [v for v in versions if v]
    changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert changes == ["1.0.0", "1.1.0", "1.0.0"], changes
    shas = {r.model_version: r.model_sha256 for r in records.values()}
    assert shas["1.0.0"] != shas["1.1.0"]


def _bad_garbage(registry: Path) -> None:
    (make_version(registry, "2.0.0") / "model.onnx").write_bytes(b"\x08\x07 not an onnx model")


def _bad_classes(registry: Path) -> None:
    make_version(registry, "3.0.0", classes=("scratch", "dent"))


def _bad_sha(registry: Path) -> None:
    folder = make_version(registry, "4.0.0")
    card = json.loads((folder / "card.json").read_text())
    card["sha256"] = "0" * 64
    (folder / "card.json").write_text(json.dumps(card))


BAD: list[tuple[str, str, Any, str]] = [
    ("hot-swap-garbage", "2.0.0", _bad_garbage, "sha256"),
    ("hot-swap-other-classes", "3.0.0", _bad_classes, "class list"),
    ("hot-swap-wrong-sha", "4.0.0", _bad_sha, "sha256"),
]


def _point_at(registry: Path, version: str) -> None:
    """Move the pointer by hand, bypassing the gate (as a careless copy or a broken tool would)."""
    pointer = read_pointer(registry, "part").model_copy(update={"current": version, "previous": "1.0.0"})
    atomic_write_text(registry / "part" / "promoted.json", pointer.model_dump_json(by_alias=True))


def test_a_bad_model_behind_the_pointer_is_refused_and_the_old_model_keeps_judging(
    tmp_path: Path, fault_report: FaultReport
) -> None:
    config, registry = _registry_station(tmp_path)
    injected: list[tuple[str, str, str, float]] = []
    with running_line(config) as line:
        _wait_parts(line, 6, "parts on 1.0.0")
        for case, version, spoil, _ in BAD:
            spoil(registry)
            start = time.monotonic()
            _point_at(registry, version)
            line.wait_for(lambda v=version: any(f"{v} refused" in t for t in line.part_lines()), 30, case)
            injected.append((case, version, f"model {version} behind the pointer", time.monotonic() - start))
            _wait_parts(line, 6, f"parts after {case}")
        rollback(registry, "part")  # the pointer back to 1.0.0, which is what still runs
        _wait_parts(line, 6, "parts after the rollback")
        # The running version's own file overwritten on disk: the session in memory keeps judging. The bad
        # copy lands in one step (written beside, then renamed over, as rsync or install do): an in-place
        # write can be seen half-done (truncated, then written), and each of those two states is refused,
        # which would make the count of refusals below a matter of timing.
        bad_copy = tmp_path / "bad-copy.onnx"
        bad_copy.write_bytes(b"overwritten by a bad copy")
        bad_copy.replace(registry / "part" / "1.0.0" / "model.onnx")
        line.wait_for(lambda: any("1.0.0 refused" in t for t in line.part_lines()), 30, "overwritten")
        _wait_parts(line, 6, "parts after the overwrite")
    records = _records(config)
    parts, wrong, lost = _tally(line, records)
    faults = [r for r in records.values() if r.error_code == ErrorCode.MODEL]
    injected.append(
        ("hot-swap-running-file-overwritten", "1.0.0", "running version's model.onnx overwritten", 0)
    )
    reasons = [reason for *_, reason in BAD] + ["sha256"]
    for (case, _version, what, _seconds), reason in zip(injected, reasons, strict=True):
        fault_report.add(
            FaultRow(
                case=case,
                injected=what,
                parts=parts,
                wrong_accepts=wrong,
                lost_records=lost,
                recovery_s=None,
                visible=("records", "error_code", "logs"),
                note=f"one FAULT model part ({reason}); 1.0.0 kept judging",
            )
        )
    assert wrong == 0 and lost == 0
    # Each refusal shows once, as one part's FAULT model naming the version; every other part was judged
    # by the old model, and judged right.
    refused = {re.search(r"model part (\S+) refused", r.reasons[0]).group(1): r.reasons[0] for r in faults}  # type: ignore[union-attr]
    assert sorted(refused) == ["1.0.0", "2.0.0", "3.0.0", "4.0.0"]
    assert all(reason in refused[version] for _, version, _, reason in BAD)
    assert all(r.error_code == ErrorCode.MODEL and "still judging with 1.0.0" in r.reasons[0] for r in faults)
    assert {r.model_version for r in records.values() if r.error_code != ErrorCode.SHUTDOWN} == {"1.0.0"}
    others = [r for r in records.values() if r.verdict.value == "FAULT" and r.error_code != ErrorCode.MODEL]
    assert all(r.error_code == ErrorCode.SHUTDOWN for r in others)
    assert sum(1 for t in line.stderr if "refused, still judging with 1.0.0" in t) == 4
