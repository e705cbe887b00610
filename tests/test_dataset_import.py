"""Importers: Pascal VOC to YOLO, and the line's own records (rejected, near-threshold, marked) to relabel."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Detection, Verdict
from edge.records.config import RecordsConfig
from edge.records.marks import add_mark
from edge.records.model import InspectionRecord
from edge.records.schema import DB_FILE
from edge.records.store import RecordStore
from training.datasets.check import check_dataset
from training.datasets.records_import import SELECTION_CSV, import_records
from training.datasets.voc import VocImportError, import_voc

# (file stem, width, height, [(class, xmin, ymin, xmax, ymax)]) in VOC's 1-based inclusive pixels
VOC_PARTS = [
    ("plate_a", 120, 80, [("scratch", 11, 21, 40, 30), ("pit", 61, 41, 70, 50)]),
    ("plate_b", 100, 100, [("pit", 1, 1, 100, 100)]),
    ("plate_c", 90, 60, []),
]


def write_voc(root: Path, parts=VOC_PARTS, splits: dict[str, list[str]] | None = None) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem, width, height, objects in parts:
        cv2.imwrite(str(root / "JPEGImages" / f"{stem}.jpg"), np.full((height, width, 3), 128, np.uint8))
        objs = "".join(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for name, x0, y0, x1, y1 in objects
        )
        xml = (
            f"<annotation><filename>{stem}.jpg</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objs}</annotation>"
        )
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
    for split, stems in (splits or {}).items():
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


def test_voc_round_trip_gives_the_same_boxes_in_yolo_form(tmp_path: Path) -> None:
    voc = write_voc(tmp_path / "voc", splits={"train": ["plate_a", "plate_c"], "val": ["plate_b"]})
    result = import_voc(voc, tmp_path / "out", classes=("scratch", "pit"))
    assert result.images == {"train": 2, "val": 1} and result.boxes == 3
    for stem, width, height, objects in VOC_PARTS:
        split = "val" if stem == "plate_b" else "train"
        lines = (tmp_path / "out" / "labels" / split / f"{stem}.txt").read_text().split()
        got = np.array(lines, float).reshape(-1, 5)
        assert len(got) == len(objects)
        for row, (name, x0, y0, x1, y1) in zip(got, objects, strict=True):
            assert int(row[0]) == ("scratch", "pit").index(name)
            # back to VOC pixels: left edge = xmin - 1, right edge = xmax
            left, right = (row[1] - row[3] / 2) * width, (row[1] + row[3] / 2) * width
            top, bottom = (row[2] - row[4] / 2) * height, (row[2] + row[4] / 2) * height
            assert np.allclose([left + 1, top + 1, right, bottom], [x0, y0, x1, y1], atol=1e-3)
    assert check_dataset(tmp_path / "out").errors == []
    assert yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["names"] == {0: "scratch", 1: "pit"}


def test_voc_classes_not_listed_are_skipped_and_counted(tmp_path: Path) -> None:
    result = import_voc(write_voc(tmp_path / "voc"), tmp_path / "out", classes=("pit",))
    assert result.skipped_objects == {"scratch": 1} and result.boxes == 2


def test_malformed_voc_xml_is_one_error_line_naming_the_file_and_nothing_is_written(tmp_path: Path) -> None:
    voc = write_voc(tmp_path / "voc")
    (voc / "Annotations" / "plate_b.xml").write_text("<annotation><filename>plate_b.jpg</filename>")
    (voc / "Annotations" / "plate_c.xml").write_text(
        "<annotation><filename>plate_c.jpg</filename><object><name>pit</name></object></annotation>"
    )
    with pytest.raises(VocImportError) as caught:
        import_voc(voc, tmp_path / "out")
    problems = caught.value.problems
    assert len(problems) == 2
    assert "plate_b.xml: malformed XML" in problems[0]
    assert "plate_c.xml: object 1 (pit) has no <bndbox>" in problems[1]
    assert not (tmp_path / "out").exists()
    command = [
        sys.executable,
        "-m",
        "lineside.cli",
        "dataset",
        "import-voc",
        str(voc),
        "--out",
        str(tmp_path / "o"),
    ]
    cli = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 1 and "plate_b.xml: malformed XML" in cli.stderr


def _record(seq: int, verdict: Verdict, near: bool, detections: tuple[Detection, ...]) -> InspectionRecord:
    return InspectionRecord(
        boot_id=5, seq=seq, part_id=f"P{seq}", recipe="flange", verdict=verdict, reasons=("test",),
        error_code=int(ErrorCode.NONE), detections=detections, model_name="demo", model_version="1.0.0",
        model_sha256="ab" * 32, triggered_at=1_700_000_000.0 + seq, decided_at=1_700_000_000.1 + seq,
        latency_ms={"total": 12.0}, near_threshold=near, late=False,
    )  # fmt: skip


def recorded_run(records_dir: Path) -> Path:
    """A short run written through the record store: accept, near-threshold accept, two rejects."""
    scratch = Detection(0, "scratch", 0.91, (40.0, 30.0, 80.0, 50.0))
    pit = Detection(1, "pit", 0.31, (10.0, 10.0, 20.0, 20.0))
    frame = np.full((120, 160, 3), 90, np.uint8)
    cfg = RecordsConfig(dir=records_dir, accept_sample_rate=1.0)
    with RecordStore(cfg) as store:
        store.add(_record(1, Verdict.ACCEPT, False, ()), frame)
        store.add(_record(2, Verdict.ACCEPT, True, (pit,)), frame)
        store.add(_record(3, Verdict.REJECT, False, (scratch, pit)), frame)
        store.add(_record(4, Verdict.REJECT, False, (scratch,)), frame)
    return records_dir


def selection(out: Path) -> dict[str, dict[str, str]]:
    with (out / SELECTION_CSV).open(newline="") as handle:
        return {row["seq"]: row for row in csv.DictReader(handle)}


def test_records_import_exports_rejected_near_threshold_and_marked_parts_with_prelabels(
    tmp_path: Path,
) -> None:
    records = recorded_run(tmp_path / "records")
    add_mark(records / DB_FILE, 5, 1, "escape", "crack under the clamp")
    add_mark(records / DB_FILE, 5, 4, "overkill")
    result = import_records(records, tmp_path / "out")
    rows = selection(tmp_path / "out")
    assert set(rows) == {"1", "2", "3", "4"} and result.exported == 4
    assert rows["1"]["why"] == "marked_escape" and "add the missed defect" in rows["1"]["hint"]
    assert rows["1"]["notes"] == "crack under the clamp"
    assert rows["2"]["why"] == "near_threshold"
    assert rows["4"]["why"] == "rejected;marked_overkill"
    label = (tmp_path / "out" / rows["3"]["label"]).read_text().split("\n")
    assert label[0] == "0 0.375000 0.333333 0.250000 0.166667"  # (40,30)-(80,50) on 160x120
    assert label[1].startswith("1 ")
    assert (tmp_path / "out" / rows["1"]["label"]).read_text() == ""  # an escape: boxes to be drawn
    assert check_dataset(tmp_path / "out").errors == []
    names = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["names"]
    assert names == {0: "scratch", 1: "pit"}


def test_records_import_can_take_only_the_marked_parts(tmp_path: Path) -> None:
    records = recorded_run(tmp_path / "records")
    add_mark(records / DB_FILE, 5, 2, "relabel")
    result = import_records(records, tmp_path / "out", rejected=False, near_threshold=False, marked=True)
    assert result.selected == 1 and set(selection(tmp_path / "out")) == {"2"}


def test_records_import_cli_reads_the_records_folder(tmp_path: Path) -> None:
    records = recorded_run(tmp_path / "records")
    cli = subprocess.run(
        [sys.executable, "-m", "lineside.cli", "dataset", "import-records", "--records", str(records),
         "--out", str(tmp_path / "out"), "--rejected"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "2 record(s) chosen, 2 with images" in cli.stdout
    assert set(selection(tmp_path / "out")) == {"3", "4"}


def test_records_import_of_a_missing_database_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(LinesideError, match="no records database"):
        import_records(tmp_path / "nowhere", tmp_path / "out")
