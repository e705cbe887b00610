"""`lineside dataset split`: leak-free splits grouped by source unit, stratified by good/defective parts.

All parts of one unit (a board, a tile's exposures, a capture session) go to one split, so no split can
be judged on near-copies of what another trained on. Units come from a parts CSV column or a filename regex.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from training.datasets.layout import label_path_for, list_images, read_layout, write_data_yaml

MANIFEST = "split_manifest.csv"
MANIFEST_COLUMNS = ("split", "image", "label", "unit", "defective", "source", "sha256")


@dataclass(frozen=True)
class Part:
    """One image of the source dataset with its unit and truth."""

    image: Path
    label: Path
    unit: str
    defective: bool


@dataclass(frozen=True)
class SplitResult:
    out: Path
    counts: dict[str, dict[str, int]]  # split -> {"units", "images", "good", "defective"}
    warnings: tuple[str, ...]


def _parts_csv_units(root: Path, parts_csv: Path, column: str) -> dict[Path, str]:
    try:
        text = parts_csv.read_text(encoding="utf-8")
    except OSError as exc:
        raise LinesideError(f"{parts_csv}: cannot read parts CSV ({exc.strerror or exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    for needed in ("image", column):
        if needed not in fields:
            raise LinesideError(f"{parts_csv}: no '{needed}' column (columns: {', '.join(fields)})")
    units: dict[Path, str] = {}
    for number, row in enumerate(reader, 2):
        unit = (row[column] or "").strip()
        if not unit:
            raise LinesideError(f"{parts_csv}:{number}: empty '{column}' for {row['image']}")
        units[(root / row["image"]).resolve()] = unit
    return units


def collect_parts(
    root: Path, *, column: str | None = None, pattern: str | None = None, parts_csv: Path | None = None
) -> list[Part]:
    """Every image of every split of the dataset at `root`, with its unit (by CSV column or regex)."""
    if (column is None) == (pattern is None):
        raise LinesideError("give exactly one of --by COLUMN or --pattern REGEX")
    layout = read_layout(root)
    units = _parts_csv_units(root, parts_csv or root / "parts.csv", column) if column else {}
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise LinesideError(f"--pattern {pattern!r}: not a regular expression ({exc})") from None
    parts: list[Part] = []
    for split, images_dir in layout.splits.items():
        labels_dir = layout.labels_dir(split)
        for image in list_images(images_dir):
            label = label_path_for(image, images_dir, labels_dir)
            if not label.is_file():
                raise LinesideError(f"{label}: missing label file (run `lineside dataset check` first)")
            parts.append(Part(image, label, _unit_of(image, units, regex), bool(label.read_text().strip())))
    if not parts:
        raise LinesideError(f"{root}: no images")
    return parts


def _unit_of(image: Path, units: dict[Path, str], regex: re.Pattern[str] | None) -> str:
    if regex is None:
        try:
            return units[image.resolve()]
        except KeyError:
            raise LinesideError(f"{image}: not listed in the parts CSV") from None
    match = regex.search(image.name)
    if match is None:
        raise LinesideError(f"{image.name}: does not match --pattern {regex.pattern!r}")
    if "unit" in regex.groupindex:
        return match.group("unit")
    return match.group(1) if regex.groups else match.group(0)


def assign_units(parts: list[Part], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """unit -> split. Greedy over units (largest first, seeded tie order): each goes to the split
    furthest below its share of images and of defective images, so both end near the fractions."""
    by_unit: dict[str, list[Part]] = defaultdict(list)
    for part in parts:
        by_unit[part.unit].append(part)
    units = sorted(by_unit)
    random.Random(seed).shuffle(units)
    units.sort(key=lambda u: len(by_unit[u]), reverse=True)  # stable: equal sizes keep the seeded order
    total = len(parts)
    total_bad = sum(p.defective for p in parts)
    got = dict.fromkeys(fractions, 0)
    got_bad = dict.fromkeys(fractions, 0)
    chosen: dict[str, str] = {}
    for unit in units:
        members = by_unit[unit]

        def need(split: str) -> float:
            share = fractions[split]
            lack = (share * total - got[split]) / max(total, 1)
            lack_bad = (share * total_bad - got_bad[split]) / max(total_bad, 1)
            return lack + lack_bad

        split = max(fractions, key=need)
        chosen[unit] = split
        got[split] += len(members)
        got_bad[split] += sum(p.defective for p in members)
    return chosen


def _place(source: Path, target: Path, copy: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy instead
    shutil.copy2(source, target)


def split_dataset(
    root: Path,
    out: Path,
    *,
    column: str | None = None,
    pattern: str | None = None,
    parts_csv: Path | None = None,
    val: float = 0.2,
    test: float = 0.0,
    seed: int = 0,
    copy: bool = False,
) -> SplitResult:
    """Write a new YOLO layout under `out` (hard links unless `copy`), data.yaml and the manifest."""
    if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):
        raise LinesideError(f"--val {val} / --test {test}: need 0 < val, 0 <= test, val + test < 1")
    if out.exists() and any(out.iterdir()):
        raise LinesideError(f"{out}: output folder is not empty")
    layout = read_layout(root)
    parts = collect_parts(root, column=column, pattern=pattern, parts_csv=parts_csv)
    fractions = {"train": 1 - val - test, "val": val, **({"test": test} if test > 0 else {})}
    chosen = assign_units(parts, fractions, seed)
    empty = [split for split in fractions if split not in chosen.values()]
    if empty:
        units = len(set(chosen))
        raise LinesideError(f"{root}: {units} unit(s) are too few to fill the {', '.join(empty)} split(s)")
    names: dict[tuple[str, str], Path] = {}
    rows: list[dict[str, str]] = []
    for part in sorted(parts, key=lambda p: (chosen[p.unit], p.image.name)):
        split = chosen[part.unit]
        if (split, part.image.name) in names:
            other = names[(split, part.image.name)]
            raise LinesideError(f"{part.image}: same file name as {other}; rename one before splitting")
        names[(split, part.image.name)] = part.image
        image_rel = f"images/{split}/{part.image.name}"
        label_rel = f"labels/{split}/{part.image.stem}.txt"
        _place(part.image, out / image_rel, copy)
        _place(part.label, out / label_rel, copy)
        rows.append(
            {
                "split": split,
                "image": image_rel,
                "label": label_rel,
                "unit": part.unit,
                "defective": str(int(part.defective)),
                "source": str(part.image.relative_to(root)),
                "sha256": hashlib.sha256((out / image_rel).read_bytes()).hexdigest(),
            }
        )
    _write_manifest(out / MANIFEST, rows)
    by = f"--by {column}" if column else f"--pattern {pattern}"
    write_data_yaml(out, layout.names, tuple(fractions), f"Split of {root} {by} with seed {seed}.")
    warnings = verify_no_leak(out)
    return SplitResult(out, _counts(rows, fractions), tuple(warnings))


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _counts(rows: list[dict[str, str]], fractions: dict[str, float]) -> dict[str, dict[str, int]]:
    counts = {s: {"units": 0, "images": 0, "good": 0, "defective": 0} for s in fractions}
    units: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        c = counts[row["split"]]
        c["images"] += 1
        c["defective" if row["defective"] == "1" else "good"] += 1
        units[row["split"]].add(row["unit"])
    for split, members in units.items():
        counts[split]["units"] = len(members)
    return counts


def verify_no_leak(out: Path) -> list[str]:
    """Re-read the written split: a unit in two splits raises; byte-identical images in two splits
    (different units: the unit column missed a copy) and splits without good or defective parts warn."""
    with (out / MANIFEST).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    unit_split: dict[str, str] = {}
    hash_split: dict[str, tuple[str, str]] = {}
    warnings: list[str] = []
    for row in rows:
        if not (out / row["image"]).is_file():
            raise LinesideError(f"{out / row['image']}: listed in the manifest but not written")
        seen = unit_split.setdefault(row["unit"], row["split"])
        if seen != row["split"]:
            raise LinesideError(
                f"{out / MANIFEST}: unit {row['unit']!r} is in both {seen} and {row['split']}"
            )
        first = hash_split.setdefault(row["sha256"], (row["split"], row["image"]))
        if first[0] != row["split"]:
            warnings.append(f"{row['image']}: same bytes as {first[1]} in another split (leak)")
    for split, c in _counts(rows, dict.fromkeys({r["split"] for r in rows}, 0.0)).items():
        if c["good"] == 0 or c["defective"] == 0:
            warnings.append(f"split {split}: {c['good']} good and {c['defective']} defective parts")
    return warnings
