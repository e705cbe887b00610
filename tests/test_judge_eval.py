"""`lineside eval` for classify and anomaly models and for a recipe's chain, run as a process on a labelled
split judged through the appliance's own code: AUROC, escape/overkill, chosen thresholds, plots, tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.modelstore.card import read_card
from tests.line import lineside, make_station
from tests.mapmodels import dark_part, make_map_model, with_spot
from tests.models import ModelBox, make_yolo_model
from training.judges.judge_metrics import auroc, choose_threshold


def _split(root: Path, spots: list[int | None], split: str = "val") -> Path:
    """A YOLO-layout split: dark parts, a bright spot of the given radius on the defective ones."""
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    (root / "data.yaml").write_text(f"path: .\n{split}: images/{split}\nnames: [spot]\n", encoding="utf-8")
    for i, radius in enumerate(spots):
        frame = (
            dark_part(160, 120) if radius is None else with_spot(dark_part(160, 120), 40 + 6 * i, 60, radius)
        )
        cv2.imwrite(str(root / "images" / split / f"p{i:02d}.png"), frame)
        label = (
            ""
            if radius is None
            else f"0 {(40 + 6 * i) / 160:.4f} 0.5 {2 * radius / 160:.4f} {2 * radius / 120:.4f}\n"
        )
        (root / "labels" / split / f"p{i:02d}.txt").write_text(label, encoding="utf-8")
    return root


def test_auroc_and_the_threshold_for_a_target_escape_rate() -> None:
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.5, 0.5], [False, True]) == 0.5  # a tie counts half
    assert auroc([0.1, 0.2], [False, False]) is None
    point = choose_threshold([0.1, 0.3, 0.5, 0.6, 0.7, 0.9], [False, False, True, False, True, True], 0.34)
    assert point.threshold == pytest.approx(0.65) and point.escapes == 1 and point.overkills == 0
    strict = choose_threshold([0.1, 0.3, 0.5, 0.6, 0.7, 0.9], [False, False, True, False, True, True], 0.0)
    assert strict.threshold == pytest.approx(0.4) and strict.escapes == 0 and strict.overkills == 1
    # one of three may pass, but no good part needs it to: none passes (the highest threshold let 0.6 pass)
    spare = choose_threshold([0.1, 0.5, 0.6, 0.7, 0.9], [False, False, True, True, True], 0.34)
    assert spare.threshold == pytest.approx(0.6) and spare.escapes == 0 and spare.overkills == 0


def test_eval_of_an_anomaly_model_reports_auroc_thresholds_and_plots(tmp_path: Path) -> None:
    data = _split(tmp_path / "data", [None, 3, None, 5, None, 1, None, 4])
    model = make_map_model(tmp_path / "anomaly", "anomaly", threshold=0.9, pixel=0.5)
    out = tmp_path / "report"
    args = ["--model", str(model), "--data", str(data), "--out", str(out), "--target-escape", "0"]
    done = lineside("eval", *args, "--write-thresholds")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (stage,) = report["stages"]
    assert stage["kind"] == "anomaly" and stage["auroc"] == 1.0
    assert stage["at_threshold_in_use"]["escape_rate"] == 1.0  # 0.9 is above every spot's 0.8
    assert (
        stage["chosen_for_target"]["escape_rate"] == 0.0
        and stage["chosen_for_target"]["overkill_rate"] == 0.0
    )
    assert report["chain"]["escapes"] == ["p01.png", "p03.png", "p05.png", "p07.png"]
    assert set(report["plots"]) == {
        "roc.png",
        "escape_overkill.png",
        "score_histograms.png",
        "worst_misses.png",
    }
    for name in report["plots"]:
        assert cv2.imread(str(out / name)) is not None
    assert "eval val: 8/8 images" in done.stderr
    card = read_card(model)
    assert card.thresholds.score == pytest.approx(stage["chosen_for_target"]["threshold"], abs=1e-6)
    rerun = lineside("inspect", "--json", "--model", str(model), str(data / "images" / "val" / "p05.png"))
    assert json.loads(rerun.stdout)["verdict"] == "REJECT"  # the written threshold is the line's now


def test_eval_of_a_chain_across_two_sites_writes_a_side_by_side_table(tmp_path: Path) -> None:
    site_a = _split(tmp_path / "site-a", [None, 3, None, 4])
    site_b = _split(tmp_path / "site-b", [None, None, 2, 6, None])
    classifier = make_map_model(tmp_path / "classifier", "classify", threshold=0.41)
    thresholds = {"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.5}}
    box = ModelBox(32, 32, 10, 10, 0, 1.0)
    detector = make_yolo_model(
        tmp_path / "detector", ["scratch"], [box], gain="input_mean", thresholds=thresholds
    )
    chain = [{"number": 1, "name": "chain", "model": str(detector), "stages": [{"model": str(classifier)}]}]
    config, _ = make_station(tmp_path / "station", extra={"recipes": chain})
    out = tmp_path / "report"
    done = lineside(
        "eval", "--config", str(config), "--data", str(site_a), "--data", str(site_b), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    table = (out / "cross_site.md").read_text(encoding="utf-8")
    assert "| site-a/val (2 bad, 2 good) | detector (detect) |" in table
    assert "| site-b/val (2 bad, 3 good) | classifier (classify) | 1.000 |" in table
    assert table.count("**chain**") == 2
    assert "| site-b/val (2 bad, 3 good) | **chain, thresholds tuned together** |" in table
    report_b = json.loads((out / "site-b" / "report.json").read_text(encoding="utf-8"))
    assert report_b["chain"]["escape_rate"] == 0.0 and report_b["chain"]["overkill_rate"] == 0.0
    assert [s["stage"] for s in report_b["stages"]] == ["detector", "classifier"]
    tuned = report_b["chain_tuned_for_target"]
    assert set(tuned["thresholds"]) == {"classifier"} and tuned["overkill_rate"] == 0.0
    assert np.isclose(
        report_b["stages"][0]["at_threshold_in_use"]["escape_rate"], 1.0
    )  # the detector alone misses


def test_two_stages_tuned_together_beat_each_stage_tuned_alone(tmp_path: Path) -> None:
    from edge.judge.inspection import Verdict
    from training.evaldata import Split, SplitItem
    from training.judges.judge_report import build_report
    from training.judges.judge_scores import JudgedPart, JudgedSplit

    # Stage a sees defect kind A (scores 0.9) and not B; stage b the other way round; good parts 0.1-0.3.
    truth = [True] * 4 + [False] * 4
    a_scores = [0.9, 0.9, 0.2, 0.2, 0.1, 0.3, 0.25, 0.15]
    b_scores = [0.2, 0.2, 0.9, 0.9, 0.3, 0.1, 0.15, 0.25]
    items = tuple(SplitItem(tmp_path / f"p{i}.png", tmp_path / f"p{i}.txt", t) for i, t in enumerate(truth))
    parts = tuple(
        JudgedPart(
            item.image, t, (), Verdict.ACCEPT, {"a": a, "b": b}, {"a": Verdict.ACCEPT, "b": Verdict.ACCEPT}
        )
        for item, t, a, b in zip(items, truth, a_scores, b_scores, strict=True)
    )
    judged = JudgedSplit(
        Split(tmp_path, "val", items, None, "labels"),
        ("a", "b"),
        {"a": "anomaly", "b": "classify"},
        {"a": 0.5, "b": 0.5},
        {"a": {}, "b": {}},
        parts,
        0.0,
    )
    report = build_report(judged, target_escape=0.0)
    assert [s.chosen.overkill_rate for s in report.stages] == [
        0.5,
        0.5,
    ]  # alone, each must catch B (or A) too
    assert report.tuned is not None
    assert report.tuned.escape_rate == 0.0 and report.tuned.overkill_rate == 0.0
    assert report.tuned.thresholds == {"a": 0.9, "b": 0.9}
