"""`lineside dataset check`: every planted defect is caught and names its file; a clean set passes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.errors import LinesideError
from training.datasets.check import check_dataset
from training.datasets.plots import write_plots

NAMES = ("scratch", "pit")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def make_dataset(root: Path, per_split: int = 6, size: int = 64) -> Path:
    """A clean YOLO dataset: every image distinct, even index defective (one box), odd index good."""
    for s, split in enumerate(("train", "val")):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(per_split):
            image = np.full((size, size, 3), 20 + 10 * i + 100 * s, np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{split}_{i:02d}.png"), image)
            label = f"{i % 2} 0.5 0.5 0.25 0.25\n" if i % 2 == 0 else ""
            (root / "labels" / split / f"{split}_{i:02d}.txt").write_text(label)
    data = {"path": ".", "train": "images/train", "val": "images/val", "names": dict(enumerate(NAMES))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def findings(root: Path) -> list[str]:
    return [f.text() for f in check_dataset(root).findings]


def test_clean_dataset_passes_and_counts_good_and_defective_parts(tmp_path: Path) -> None:
    report = check_dataset(make_dataset(tmp_path / "d"))
    assert report.errors == [] and report.warnings == []
    train = report.splits["train"]
    assert (train.images, train.good, train.defective, train.boxes) == (6, 3, 3, 3)
    assert train.boxes_per_class == {"scratch": 3, "pit": 0}
    assert train.box_px_hist["16px-32px"] == 3  # 0.25 * 64 = 16 px
    assert train.box_rel_hist["25%-50%"] == 3


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (
            lambda d: (d / "labels/train/train_00.txt").unlink(),
            "ERROR labels/train/train_00.txt: missing label",
        ),
        (
            lambda d: (d / "labels/train/train_02.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n"),
            "ERROR labels/train/train_02.txt:2: class id 7 out of range (nc=2)",
        ),
        (
            lambda d: (d / "labels/val/val_00.txt").write_text("0 0.5 1.2 0.1 0.1\n"),
            "ERROR labels/val/val_00.txt:1: coordinates outside [0, 1]",
        ),
        (
            lambda d: (d / "labels/val/val_02.txt").write_text("0 0.5 0.5 0.1\n"),
            "ERROR labels/val/val_02.txt:1: expected 5 fields",
        ),
        (
            lambda d: (d / "labels/val/val_04.txt").write_text("1 0.5 0.5 0 0.1\n"),
            "ERROR labels/val/val_04.txt:1: zero-size box",
        ),
        (
            lambda d: (d / "labels/val/val_01.txt").write_text("x 0.5 0.5 0.1 0.1\n"),
            "ERROR labels/val/val_01.txt:1: class id 'x' is not an integer",
        ),
        (
            lambda d: (d / "images/train/train_03.png").write_bytes(b"\x89PNG\r\n\x1a\n not really"),
            "ERROR images/train/train_03.png: image does not decode",
        ),
        (
            lambda d: shutil.copyfile(d / "images/train/train_01.png", d / "images/val/val_05.png"),
            "ERROR images/val/val_05.png: same image bytes as images/train/train_01.png (split leak",
        ),
    ],
    ids=[
        "missing-label",
        "class-out-of-range",
        "coords-over-1",
        "malformed",
        "zero-size",
        "bad-class",
        "undecodable",
        "cross-split-duplicate",
    ],
)
def test_each_planted_defect_is_an_error_naming_the_file(tmp_path: Path, plant, expected: str) -> None:
    root = make_dataset(tmp_path / "d")
    plant(root)
    found = findings(root)
    assert any(line.startswith(expected) for line in found), found
    assert len([line for line in found if line.startswith("ERROR")]) == 1, found


def test_duplicate_within_a_split_and_orphan_label_are_warnings_not_errors(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    shutil.copyfile(root / "images/train/train_01.png", root / "images/train/train_09.png")
    (root / "labels/train/train_09.txt").write_text("")
    (root / "labels/train/ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = check_dataset(root)
    assert report.errors == []
    texts = [w.text() for w in report.warnings]
    assert any(
        "train_09.png: same image bytes as images/train/train_01.png (duplicate within" in t for t in texts
    )
    assert any(t.startswith("WARNING labels/train/ghost.txt: label file has no image") for t in texts)


@pytest.mark.parametrize(
    ("data_yaml", "message"),
    [
        (None, "data.yaml: no data.yaml"),
        ("names: [a, b]\ntrain: images/nowhere\n", "split 'train' folder"),
        ("train: images/train\n", "'names' must be a list"),
        ("nc: 3\nnames: [a, b]\ntrain: images/train\n", "nc is 3 but names has 2"),
        ("names: [a\n", "data.yaml: unreadable"),
    ],
)
def test_unusable_data_yaml_is_one_line_naming_the_file(
    tmp_path: Path, data_yaml: str | None, message: str
) -> None:
    root = make_dataset(tmp_path / "d")
    if data_yaml is None:
        (root / "data.yaml").unlink()
    else:
        (root / "data.yaml").write_text(data_yaml)
    with pytest.raises(LinesideError, match=message) as caught:
        check_dataset(root)
    assert "\n" not in str(caught.value) and "data.yaml" in str(caught.value)


def test_plots_are_written_as_decodable_pngs(tmp_path: Path) -> None:
    report = check_dataset(make_dataset(tmp_path / "d"))
    paths = write_plots(report, tmp_path / "plots")
    assert [p.name for p in paths] == ["class_balance.png", "box_sizes.png"]
    for path in paths:
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] > 100


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lineside.cli", "dataset", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_cli_exits_1_with_errors_named_and_0_with_json_on_a_clean_set(tmp_path: Path) -> None:
    bad = make_dataset(tmp_path / "bad")
    (bad / "labels/val/val_00.txt").write_text("0 0.5 0.5 0.1\n")
    result = _cli("check", str(bad))
    assert result.returncode == 1, result.stderr
    assert "ERROR labels/val/val_00.txt:1: expected 5 fields" in result.stdout
    assert "checked 12/12 images" in result.stderr  # progress goes to stderr
    clean = make_dataset(tmp_path / "clean")
    result = _cli("check", str(clean), "--json", "--plots", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["splits"]["val"]["good"] == 3
    assert (tmp_path / "plots" / "box_sizes.png").is_file()


def test_cli_on_a_folder_without_data_yaml_is_exit_2_and_one_line(tmp_path: Path) -> None:
    result = _cli("check", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "data.yaml" in result.stderr


@pytest.mark.realdata
def test_real_magnetic_tile_set_checks_clean_in_reasonable_time() -> None:
    root = SHARED / "magnetic_tile"
    if not (root / "data.yaml").is_file():
        pytest.skip(f"real data not present at {root} (needs ../shared/datasets)")
    started = time.monotonic()
    report = check_dataset(root)
    assert report.errors == [], [f.text() for f in report.errors[:5]]
    assert report.splits["train"].images == 935 and report.splits["val"].images == 204
    assert time.monotonic() - started < 120
