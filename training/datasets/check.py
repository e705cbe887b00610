"""`lineside dataset check`: validate a YOLO detection dataset and summarise it.

Errors (exit 1) are what would silently corrupt training or evaluation: missing or malformed labels,
images that do not decode, the same image in two splits. Each names the file (and label line).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from training.datasets.layout import (
    DatasetLayout,
    LabelBox,
    label_path_for,
    list_images,
    read_label_file,
    read_layout,
)

Severity = Literal["error", "warning"]
Progress = Callable[[int, int], None]  # (images done, images in all)

PX_BINS = (8, 16, 32, 64, 128, 256)  # box size sqrt(w*h) in pixels
REL_BINS = (0.01, 0.02, 0.05, 0.10, 0.25, 0.50)  # box size sqrt(w*h) as a fraction of the image side


@dataclass(frozen=True)
class Finding:
    """One problem, naming the file (relative to the dataset root) and the label line where there is one."""

    severity: Severity
    file: str
    message: str
    line: int | None = None

    def text(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{self.severity.upper()} {where}: {self.message}"


@dataclass
class SplitStats:
    """What one split holds: parts (images) good and defective, boxes per class, box sizes."""

    images: int = 0
    good: int = 0  # empty label file: a defect-free part
    defective: int = 0
    unreadable: int = 0  # images that did not decode or labels that did not parse
    boxes: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    images_per_class: dict[str, int] = field(default_factory=dict)
    box_px_hist: dict[str, int] = field(default_factory=dict)
    box_rel_hist: dict[str, int] = field(default_factory=dict)


@dataclass
class CheckReport:
    """The result of a check; `errors` decides the exit code."""

    root: str
    names: tuple[str, ...]
    splits: dict[str, SplitStats]
    findings: list[Finding]
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "names": list(self.names),
            "ok": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "seconds": round(self.seconds, 2),
            "splits": {name: asdict(stats) for name, stats in self.splits.items()},
            "findings": [asdict(f) for f in self.findings],
        }


def bin_labels(edges: tuple[float, ...], fmt: Callable[[float], str]) -> list[str]:
    labels = [f"<{fmt(edges[0])}"]
    labels += [f"{fmt(a)}-{fmt(b)}" for a, b in itertools.pairwise(edges)]
    return [*labels, f">={fmt(edges[-1])}"]


PX_LABELS = bin_labels(PX_BINS, lambda v: f"{v:g}px")
REL_LABELS = bin_labels(REL_BINS, lambda v: f"{v:.0%}")


def _bin(value: float, edges: tuple[float, ...], labels: list[str]) -> str:
    for edge, label in zip(edges, labels[:-1], strict=True):
        if value < edge:
            return label
    return labels[-1]


class _SplitChecker:
    """Walks one split: reads each image once (hash + decode) and its label file."""

    def __init__(self, layout: DatasetLayout, split: str, report: CheckReport) -> None:
        self.layout, self.split, self.report = layout, split, report
        self.images_dir = layout.splits[split]
        self.labels_dir = layout.labels_dir(split)
        self.stats = SplitStats(
            boxes_per_class=dict.fromkeys(layout.names, 0),
            images_per_class=dict.fromkeys(layout.names, 0),
            box_px_hist=dict.fromkeys(PX_LABELS, 0),
            box_rel_hist=dict.fromkeys(REL_LABELS, 0),
        )

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.layout.root))
        except ValueError:
            return str(path)

    def add(self, severity: Severity, path: Path, message: str, line: int | None = None) -> None:
        self.report.findings.append(Finding(severity, self.rel(path), message, line))

    def image(self, path: Path) -> tuple[str | None, tuple[int, int] | None]:
        """(sha256, (width, height)); None parts when the file cannot be read or decoded."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.add("error", path, f"cannot read image ({exc.strerror or exc})")
            return None, None
        digest = hashlib.sha256(data).hexdigest()
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if decoded is None or decoded.size == 0:
            self.add("error", path, "image does not decode (corrupt or not an image)")
            return digest, None
        if path.suffix.lower() in {".jpg", ".jpeg"} and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            self.add("warning", path, "JPEG has no end marker (truncated file?)")
        return digest, (int(decoded.shape[1]), int(decoded.shape[0]))

    def labels(self, image: Path) -> list[LabelBox] | None:
        """The image's boxes (duplicates dropped); None when the file is missing or has a bad line."""
        label = label_path_for(image, self.images_dir, self.labels_dir)
        if not label.is_file():
            self.add("error", label, f"missing label file for {self.rel(image)} (an empty file = good part)")
            return None
        try:
            lines = list(read_label_file(label, len(self.layout.names)))
        except (OSError, UnicodeDecodeError) as exc:
            self.add("error", label, f"cannot read label file ({exc})")
            return None
        boxes: list[LabelBox] = []
        seen: set[LabelBox] = set()
        for number, item in lines:
            if isinstance(item, ValueError):
                self.add("error", label, str(item), number)
            elif item in seen:
                self.add("warning", label, "duplicate label line (ultralytics drops it)", number)
            else:
                seen.add(item)
                boxes.append(item)
        return None if any(isinstance(item, ValueError) for _, item in lines) else boxes

    def count(self, boxes: list[LabelBox], size: tuple[int, int] | None) -> None:
        stats, names = self.stats, self.layout.names
        if not boxes:
            stats.good += 1
            return
        stats.defective += 1
        stats.boxes += len(boxes)
        for cls in {b.cls for b in boxes}:
            stats.images_per_class[names[cls]] += 1
        for box in boxes:
            stats.boxes_per_class[names[box.cls]] += 1
            stats.box_rel_hist[_bin(math.sqrt(box.w * box.h), REL_BINS, REL_LABELS)] += 1
            if size is not None:
                side = math.sqrt(box.w * size[0] * box.h * size[1])
                stats.box_px_hist[_bin(side, PX_BINS, PX_LABELS)] += 1


def _orphan_labels(checker: _SplitChecker, images: list[Path]) -> None:
    if not checker.labels_dir.is_dir():
        return
    expected = {label_path_for(i, checker.images_dir, checker.labels_dir) for i in images}
    for label in sorted(checker.labels_dir.rglob("*.txt")):
        if label not in expected:
            checker.add("warning", label, "label file has no image")


def check_dataset(root: Path, progress: Progress | None = None) -> CheckReport:
    """Check every split of the dataset at `root`; raises LinesideError only if data.yaml is unusable."""
    started = time.monotonic()
    layout = read_layout(root)
    report = CheckReport(root=str(root), names=layout.names, splits={}, findings=[])
    per_split = {split: list_images(folder) for split, folder in layout.splits.items()}
    total = sum(len(v) for v in per_split.values())
    done = 0
    by_hash: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for split, images in per_split.items():
        checker = _SplitChecker(layout, split, report)
        report.splits[split] = checker.stats
        if not images:
            checker.add("warning", layout.splits[split], "split has no images")
        for image in images:
            digest, size = checker.image(image)
            boxes = checker.labels(image)
            checker.stats.images += 1
            if size is None or boxes is None:
                checker.stats.unreadable += 1
            else:
                checker.count(boxes, size)
            if digest is not None:
                by_hash[digest].append((split, image))
            done += 1
            if progress is not None:
                progress(done, total)
        _orphan_labels(checker, images)
    _duplicates(report, layout, by_hash)
    report.seconds = time.monotonic() - started
    return report


def _duplicates(
    report: CheckReport, layout: DatasetLayout, by_hash: dict[str, list[tuple[str, Path]]]
) -> None:
    """Byte-identical images: across splits a leak (error), within one split a warning."""
    for copies in by_hash.values():
        if len(copies) < 2:
            continue
        splits = Counter(split for split, _ in copies)
        first = copies[0][1]
        for split, path in copies[1:]:
            rel_first = str(first.relative_to(layout.root))
            if len(splits) > 1:
                message = f"same image bytes as {rel_first} (split leak between {', '.join(sorted(splits))})"
                report.findings.append(Finding("error", str(path.relative_to(layout.root)), message))
            else:
                message = f"same image bytes as {rel_first} (duplicate within '{split}')"
                report.findings.append(Finding("warning", str(path.relative_to(layout.root)), message))


def render_text(report: CheckReport, max_findings: int = 200) -> str:
    """The human-readable report: findings first, then per-split tables."""
    lines = [f"dataset {report.root}: {len(report.names)} classes ({', '.join(report.names)})"]
    shown = report.errors[:max_findings] + report.warnings[: max(0, max_findings - len(report.errors))]
    lines += [f.text() for f in shown]
    if len(report.findings) > len(shown):
        lines.append(f"... {len(report.findings) - len(shown)} more finding(s) (use --json for all)")
    for split, s in report.splits.items():
        lines.append(
            f"[{split}] {s.images} images: {s.good} good, {s.defective} defective, {s.unreadable} unusable; "
            f"{s.boxes} boxes"
        )
        width = max(len(n) for n in report.names)
        for name in report.names:
            boxes, images = s.boxes_per_class[name], s.images_per_class[name]
            lines.append(f"  {name.ljust(width)}  boxes {boxes:6d}  images {images:6d}")
        lines.append("  box size px:  " + "  ".join(f"{k} {v}" for k, v in s.box_px_hist.items()))
        lines.append("  box size rel: " + "  ".join(f"{k} {v}" for k, v in s.box_rel_hist.items()))
    verdict = "FAILED" if report.errors else "OK"
    lines.append(
        f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s) "
        f"in {report.seconds:.1f} s"
    )
    return "\n".join(lines) + "\n"
