"""`lineside records summary`: the shift in sentences, checked to the word on a real `lineside run` whose
parts' truth is known, on an empty records folder, and the trend rule and the words on their own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ErrorCode
from edge.i18n import ENGLISH, Message, render, say
from edge.judge.inspection import Detection, Verdict
from edge.records.model import InspectionRecord
from edge.records.query import query
from edge.records.shift import reject_cause, trend
from tests.line import FRAME_H, FRAME_W, lineside, make_station
from tests.models import ModelBox, make_yolo_model

# Two classes that fire on different brightness (the model's scores are its boxes' scores times the mean of
# the letterboxed frame): a white part scores scratch 0.86 >= 0.70 (and pit 0.52); a grey one scores pit 0.35
# >= 0.30 while its scratch 0.58 stays below 0.70, so the detection with the top confidence (scratch) is not
# what rejected it. Dark parts are good; `c` is a file that is not an image (a FAULT frame).
GREY = {"g": 40, "s": 255, "p": 160}
FIRST_HALF = "gsggpgggcggggsgggggg"  # 16 good, 2 scratch, 1 pit, 1 corrupt
LAST_HALF = "gpspgpgpcpgpsgpgpggg"  # 9 good, 2 scratch, 8 pit, 1 corrupt
EXPECTED_VERDICTS = {"g": "ACCEPT", "s": "REJECT", "p": "REJECT", "c": "FAULT"}


def _station(root: Path, pattern: str) -> Path:
    model = make_yolo_model(
        root / "two-class-model",
        ["scratch", "pit"],
        [ModelBox(20, 20, 10, 10, 0, 1.0), ModelBox(44, 44, 10, 10, 1, 0.6)],
        imgsz=(64, 64),
        gain="input_mean",
        thresholds={"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.7, "pit": 0.3}},
    )
    recipe = {"number": 1, "name": "two-defects", "model": str(model)}
    config, _ = make_station(root, "g" * len(pattern), extra={"recipes": [recipe]})
    for i, kind in enumerate(pattern):
        path = root / "parts" / f"part_{i:03d}.png"
        if kind == "c":
            path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        else:
            cv2.imwrite(str(path), np.full((FRAME_H, FRAME_W, 3), GREY[kind], np.uint8))
    return config


@pytest.mark.slow
def test_summary_of_a_real_run_says_yield_causes_trends_and_faults_in_exact_words(tmp_path: Path) -> None:
    pattern = FIRST_HALF + LAST_HALF
    config = _station(tmp_path, pattern)
    run = lineside("run", str(config), "--max-parts", str(len(pattern)))
    assert run.returncode == 0, run.stderr[-3000:]
    records = query(tmp_path / "records" / "records.db")
    # The line judged each part as its truth says, so the summary's numbers below are the truth's.
    assert [r.verdict.value for r in records] == [EXPECTED_VERDICTS[k] for k in pattern]

    proc = lineside("records", "summary", "--dir", str(tmp_path / "records"))
    assert proc.returncode == 0, proc.stderr
    first, last = records[0].triggered_at, records[-1].triggered_at
    clock = "%Y-%m-%d %H:%M:%S"
    start, end = datetime.fromtimestamp(first).strftime(clock), datetime.fromtimestamp(last).strftime(clock)
    assert last - first < 59.5  # the duration reads in seconds
    assert proc.stdout.splitlines() == [
        f"From {start} to {end} ({round(last - first)} s), 40 parts were inspected.",
        "Yield was 62.5%: 25 accepted, 13 rejected, 2 faults.",
        "Yield is falling: 80.0% of the first 20 parts were accepted, 45.0% of the last 20.",
        "Top reject causes (2 of 2):",
        "  pit: 9 of 13 rejects (69.2%), rising: 1 of the first 20 parts (5.0%), 8 of the last 20 (40.0%).",
        "  scratch: 4 of 13 rejects (30.8%), steady: 2 of the first 20 parts (10.0%), 2 of the last 20 "
        "(10.0%).",
        "Faults: 2 of 40 parts (5.0%), each rejected to the robot:",
        "  Corrupt or unreadable frame: 2 (error 2 frame).",
        "No line alarm was raised.",
    ]

    # A window after the last part holds none: one line saying so.
    later = lineside("records", "summary", "--dir", str(tmp_path / "records"), "--since", "now")
    assert later.returncode == 0, later.stderr
    assert later.stdout.startswith("No parts were inspected between ")
    assert later.stdout.count("\n") == 1


def test_summary_of_an_empty_records_folder_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "records"
    empty.mkdir()
    proc = lineside("records", "summary", "--dir", str(empty))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"No inspection records in {empty}.\n"
    assert proc.stderr == ""


def test_a_bad_time_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = lineside("records", "summary", "--dir", str(tmp_path), "--since", "yesterday-ish")
    assert proc.returncode == 2
    assert proc.stderr.startswith("lineside records summary: --since: 'yesterday-ish' is not a time")


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ((1, 20), (8, 20), "trend.rising"),
        ((8, 20), (1, 20), "trend.falling"),
        ((2, 20), (2, 20), "trend.steady"),
        ((1, 20), (3, 20), "trend.steady"),  # 5% -> 15% on 20 parts is within the noise
        ((10, 100), (25, 100), "trend.rising"),  # the same step on 100 parts is not
        ((0, 20), (0, 20), "trend.steady"),  # nothing at all: no standard error, no trend
        ((0, 0), (5, 10), "trend.steady"),  # one half empty: nothing to compare
    ],
)
def test_a_trend_is_called_only_beyond_twice_its_standard_error(
    first: tuple[int, int], second: tuple[int, int], expected: str
) -> None:
    assert trend(first[0], first[1], second[0], second[1]) == expected


def _reject(
    reasons: tuple[str, ...], detections: tuple[Detection, ...], stages: tuple[dict[str, str], ...] = ()
) -> InspectionRecord:
    return InspectionRecord(
        boot_id=1, seq=1, part_id=None, recipe="r", verdict=Verdict.REJECT, reasons=reasons, error_code=0,
        detections=detections, model_name="m", model_version="1", model_sha256="x", triggered_at=1.0,
        decided_at=1.1, latency_ms={}, near_threshold=False, late=False, stages=stages,
    )  # fmt: skip


def test_the_reject_cause_is_the_deciding_class_or_stage_never_free_text() -> None:
    scratch = Detection(0, "scratch", 0.58, (0.0, 0.0, 9.0, 9.0))
    pit = Detection(1, "pit", 0.35, (20.0, 20.0, 29.0, 29.0))
    decided_by_pit = _reject(("REJECT: pit 0.35 at (25,25) px, 9x9 px, >= 0.30",), (scratch, pit))
    assert reject_cause(decided_by_pit) == "pit"
    chained = ("detector: REJECT: pit 0.35 at (25,25) px", "anomaly: ACCEPT: score 0.1 < 0.5")
    assert reject_cause(_reject(chained, (scratch, pit))) == "pit"
    anomaly = ({"stage": "detector", "kind": "detect", "verdict": "ACCEPT"},
               {"stage": "anomaly", "kind": "anomaly", "verdict": "REJECT"})  # fmt: skip
    assert reject_cause(_reject(("anomaly: REJECT: score 0.9 >= 0.5",), (scratch,), anomaly)) == "anomaly"
    # A reason whose word is no detected class is not taken for one: the top detection is.
    assert reject_cause(_reject(("REJECT: operator said so",), (scratch, pit))) == "scratch"
    assert reject_cause(_reject(("REJECT: operator said so",), ())) is None


def test_every_fault_kind_and_every_summary_message_has_words() -> None:
    for code in ErrorCode:
        if code is not ErrorCode.NONE:
            assert f"fault.{code.kind}" in ENGLISH, code
    root = Path(__file__).resolve().parents[1]
    speakers: tuple[str, ...] = ("edge/records/shift.py", "edge/records/shift_alarms.py")
    speakers += ("lineside/commands/records_summary.py",)
    source = "".join((root / path).read_text() for path in speakers)
    for message_id in {m for m in ENGLISH if m.startswith(("summary.", "trend.", "cause.", "time."))}:
        assert f'"{message_id}"' in source, f"{message_id} is in the catalog but never said"
    # A message as a parameter is said in the same language; an unknown id is an error, never blank.
    assert render(Message("summary.fault", {"cause": Message("fault.camera"), "count": 3, "code": 1,
                                            "kind": "camera"}, indent=1)) == (
        "  No frame from the camera: 3 (error 1 camera)."
    )  # fmt: skip
    with pytest.raises(KeyError, match=r"no message 'summary\.nothing'"):
        say("summary.nothing")
