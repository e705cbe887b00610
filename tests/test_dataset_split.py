"""`lineside dataset split`: no source unit straddles splits; the seed decides; good and defective in each."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.errors import LinesideError
from training.datasets.check import check_dataset
from training.datasets.split import MANIFEST, split_dataset, verify_no_leak


def make_boards(root: Path, boards: int = 20, per_board: int = 4) -> Path:
    """Images board<B>_<k>.png all in one pool split; every board has good and defective tiles except
    every fifth board, which is all good. parts.csv gives the board column."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    rows = []
    for b in range(boards):
        for k in range(per_board):
            name = f"board{b:02d}_{k}"
            pixels = np.full((32, 32, 3), (b * 7 + k * 3) % 250, np.uint8)
            pixels[0, 0] = (b, k, 1)  # every image distinct
            cv2.imwrite(str(root / "images" / "train" / f"{name}.png"), pixels)
            defective = k % 2 == 0 and b % 5 != 0
            (root / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n" if defective else "")
            rows.append({"image": f"images/train/{name}.png", "board_group": f"B{b:02d}"})
    with (root / "parts.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "board_group"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": {0: "open"}}))
    return root


def manifest(out: Path) -> list[dict[str, str]]:
    with (out / MANIFEST).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_no_board_straddles_splits_and_each_split_has_good_and_defective_parts(tmp_path: Path) -> None:
    src = make_boards(tmp_path / "src")
    result = split_dataset(src, tmp_path / "out", column="board_group", val=0.2, test=0.2, seed=3)
    splits_of: dict[str, set[str]] = defaultdict(set)
    for row in manifest(tmp_path / "out"):
        splits_of[row["unit"]].add(row["split"])
        assert row["image"].startswith(f"images/{row['split']}/")
    assert all(len(s) == 1 for s in splits_of.values())
    assert len(splits_of) == 20
    for split, counts in result.counts.items():
        assert counts["good"] > 0 and counts["defective"] > 0, (split, counts)
    assert 40 <= result.counts["train"]["images"] <= 56  # 60% of 80, whole boards of 4
    assert result.warnings == ()
    report = check_dataset(tmp_path / "out")  # a valid dataset, no cross-split duplicates
    assert report.errors == [] and set(report.splits) == {"train", "val", "test"}


def test_same_seed_same_split_and_another_seed_differs(tmp_path: Path) -> None:
    src = make_boards(tmp_path / "src")

    def assignment(out: str, seed: int) -> dict[str, str]:
        split_dataset(src, tmp_path / out, column="board_group", val=0.25, seed=seed)
        return {row["unit"]: row["split"] for row in manifest(tmp_path / out)}

    first, again = assignment("a", 7), assignment("b", 7)
    assert first == again
    assert any(assignment(f"c{seed}", seed) != first for seed in (8, 9, 10))


def test_regex_pattern_groups_by_the_named_unit(tmp_path: Path) -> None:
    src = make_boards(tmp_path / "src")
    split_dataset(src, tmp_path / "out", pattern=r"^(?P<unit>board\d+)_", val=0.3, seed=1, copy=True)
    rows = manifest(tmp_path / "out")
    assert {row["unit"] for row in rows} == {f"board{b:02d}" for b in range(20)}
    assert not (tmp_path / "out" / rows[0]["image"]).samefile(src / rows[0]["source"])  # --copy copies


def test_a_unit_found_in_two_splits_afterwards_is_refused(tmp_path: Path) -> None:
    src = make_boards(tmp_path / "src")
    out = tmp_path / "out"
    split_dataset(src, out, column="board_group", val=0.3, seed=1)
    rows = manifest(out)
    moved = next(r for r in rows if r["split"] == "val")
    moved["unit"] = next(r["unit"] for r in rows if r["split"] == "train")
    with (out / MANIFEST).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(LinesideError, match="is in both"):
        verify_no_leak(out)


def test_image_missing_from_parts_csv_or_pattern_is_one_line_naming_it(tmp_path: Path) -> None:
    src = make_boards(tmp_path / "src", boards=3)
    lines = (src / "parts.csv").read_text().splitlines()
    (src / "parts.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(LinesideError, match=r"board02_3.png: not listed in the parts CSV"):
        split_dataset(src, tmp_path / "out", column="board_group")
    with pytest.raises(LinesideError, match=r"board00_0.png: does not match --pattern"):
        split_dataset(src, tmp_path / "out2", pattern=r"^tile(\d+)")


def test_split_cli_writes_a_dataset_and_reports_counts(tmp_path: Path) -> None:
    src = make_boards(tmp_path / "src")
    result = subprocess.run(
        [sys.executable, "-m", "lineside.cli", "dataset", "split", str(src), "--out", str(tmp_path / "o"),
         "--by", "board_group", "--val", "0.2", "--seed", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no unit is in two splits" in result.stdout
    data = yaml.safe_load((tmp_path / "o" / "data.yaml").read_text())
    assert data["train"] == "images/train" and data["names"] == {0: "open"}
