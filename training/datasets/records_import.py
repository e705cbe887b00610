"""`lineside dataset import-records`: the data flywheel. Export the line's own hard cases for relabelling.

Chosen are rejected parts, accepted parts decided near a threshold, and parts an operator marked
(`lineside records mark`). Each kept image goes out with the line's detections as YOLO pre-labels
(to correct, not truth) and a row in selection.csv saying why it was chosen.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from edge.judge.inspection import Verdict
from edge.records.marks import MARK_MEANING, Mark, read_marks
from edge.records.model import InspectionRecord
from edge.records.query import iso_utc, query
from edge.records.schema import DB_FILE
from training.datasets.layout import LabelBox, format_label, write_data_yaml

SELECTION_CSV = "selection.csv"
SELECTION_COLUMNS = (
    "image",
    "label",
    "boot_id",
    "seq",
    "part_id",
    "recipe",
    "verdict",
    "why",
    "hint",
    "marks",
    "notes",
    "detections",
    "model",
    "triggered_at",
    "records_image",
)
SPLIT = "train"  # one folder: the relabelled images are later merged and split by `dataset split`


@dataclass(frozen=True)
class RecordsImportResult:
    out: Path
    selected: int
    exported: int  # with an image
    without_image: int  # chosen but their image was never kept or was evicted (listed in the CSV only)
    names: tuple[str, ...]


def _reasons(
    record: InspectionRecord, marks: list[Mark], rejected: bool, near: bool, marked: bool
) -> list[str]:
    why = []
    if rejected and record.verdict is Verdict.REJECT:
        why.append("rejected")
    if near and record.near_threshold:
        why.append("near_threshold")
    if marked:
        why += [f"marked_{kind}" for kind in dict.fromkeys(m.kind for m in marks)]
    return why


def _class_names(records: list[InspectionRecord]) -> tuple[str, ...]:
    """Class names by id from the detections; ids no detection shows are named class_<id>."""
    by_id: dict[int, str] = {}
    for record in records:
        for det in record.detections:
            by_id.setdefault(det.class_id, det.class_name)
    top = max(by_id, default=-1)
    return tuple(by_id.get(i, f"class_{i}") for i in range(top + 1)) or ("defect",)


def _prelabels(record: InspectionRecord, width: int, height: int) -> str:
    lines = []
    for det in record.detections:
        x1, y1 = min(max(det.box[0], 0.0), width), min(max(det.box[1], 0.0), height)
        x2, y2 = min(max(det.box[2], 0.0), width), min(max(det.box[3], 0.0), height)
        if x2 > x1 and y2 > y1:
            box = LabelBox(det.class_id, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
                           (y2 - y1) / height)  # fmt: skip
            lines.append(format_label(box) + "\n")
    return "".join(lines)


def import_records(
    records_dir: Path,
    out: Path,
    *,
    since: float | None = None,
    until: float | None = None,
    rejected: bool = True,
    near_threshold: bool = True,
    marked: bool = True,
) -> RecordsImportResult:
    """Write OUT/images/train, OUT/labels/train (pre-labels), data.yaml and selection.csv."""
    if not (rejected or near_threshold or marked):
        raise LinesideError("choose at least one of --rejected, --near-threshold, --marked")
    if out.exists() and any(out.iterdir()):
        raise LinesideError(f"{out}: output folder is not empty")
    db_path = records_dir / DB_FILE
    records = query(db_path, since=since, until=until)
    marks = read_marks(db_path)
    chosen = []
    for record in records:
        why = _reasons(record, marks.get(record.key, []), rejected, near_threshold, marked)
        if why:
            chosen.append((record, why))
    names = _class_names([record for record, _ in chosen])
    rows: list[dict[str, object]] = []
    exported = 0
    for record, why in chosen:
        row = _export_one(records_dir, out, record)
        exported += bool(row["image"])
        record_marks = marks.get(record.key, [])
        row.update(
            why=";".join(why),
            hint="; ".join(MARK_MEANING[m.kind] for m in record_marks) or "check the pre-labels",
            marks=";".join(m.kind for m in record_marks),
            notes=" | ".join(m.note for m in record_marks if m.note),
        )
        rows.append(row)
    (out / "images" / SPLIT).mkdir(parents=True, exist_ok=True)
    (out / "labels" / SPLIT).mkdir(parents=True, exist_ok=True)
    _write_selection(out / SELECTION_CSV, rows)
    write_data_yaml(out, names, (SPLIT,), f"Hard cases from lineside records {records_dir} for relabelling.")
    return RecordsImportResult(out, len(chosen), exported, len(chosen) - exported, names)


def _export_one(records_dir: Path, out: Path, record: InspectionRecord) -> dict[str, object]:
    """Copy the record's image and write its pre-labels; the CSV row (image '' when there is none)."""
    row: dict[str, object] = {
        "image": "",
        "label": "",
        "boot_id": record.boot_id,
        "seq": record.seq,
        "part_id": record.part_id or "",
        "recipe": record.recipe,
        "verdict": record.verdict.value,
        "detections": len(record.detections),
        "model": f"{record.model_name} {record.model_version}".strip(),
        "triggered_at": iso_utc(record.triggered_at),
        "records_image": record.image_path or ("evicted" if record.image_evicted else "not kept"),
    }
    if record.image_path is None:
        return row
    source = records_dir / record.image_path
    image = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    if image is None:
        row["records_image"] = f"{record.image_path} (unreadable)"
        return row
    stem = Path(record.image_path).stem
    image_rel = f"images/{SPLIT}/{stem}{source.suffix}"
    label_rel = f"labels/{SPLIT}/{stem}.txt"
    (out / image_rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, out / image_rel)
    atomic_write_text(out / label_rel, _prelabels(record, int(image.shape[1]), int(image.shape[0])))
    row.update(image=image_rel, label=label_rel)
    return row


def _write_selection(path: Path, rows: list[dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SELECTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
