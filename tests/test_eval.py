"""`lineside eval` and training.evaluate: the shipped demo model scored through edge on rendered parts."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.errors import LinesideError
from edge.judge.detector.detector import Detector
from edge.judge.inspection import Verdict
from edge.judge.rules import ClassRule, RulesConfig, decide
from edge.judge.thresholds import evaluate as operating_point
from edge.modelstore.card import read_card, sha256_file
from tests.line import lineside
from training import plots, synth
from training.evaldata import read_split
from training.evalreport import EvalReport
from training.evaluate import evaluate, scored_parts, write_thresholds

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo" / "1.0.0"
SEED = 9090  # parts the demo model never saw (it trained on seed 17)


@pytest.fixture(scope="module")
def synth_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("synth")
    synth.write_dataset(data, 0, 30, SEED)
    return data


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def report(synth_val: Path, report_dir: Path) -> EvalReport:
    return evaluate(DEMO, synth_val, "val", 0.05, report_dir, progress=False)


def _line_rejects(detector: Detector, image_path: Path, thresholds: dict[str, float]) -> bool:
    """The line's own decision (detector + rules) with these per-class thresholds."""
    image = np.asarray(cv2.imread(str(image_path), cv2.IMREAD_COLOR), dtype=np.uint8)
    result = detector.detect(image, conf_floor=min(thresholds.values()))
    rules = RulesConfig(classes={c: ClassRule(min_confidence=t) for c, t in thresholds.items()})
    return (
        decide(result.detections, image.shape, rules, None, detector.card.classes).verdict is Verdict.REJECT
    )


def test_demo_model_has_a_plausible_map_on_unseen_rendered_parts(report: EvalReport) -> None:
    assert 0.3 < report.map50 <= 1.0 and 0.05 < report.map50_95 < report.map50
    assert report.data["images"] == 30 and report.data["part_truth_from"] == "labels"
    assert set(report.per_class) == {"scratch", "pit", "chip"}
    assert all(0.0 <= row["recall"] <= 1.0 for row in report.per_class.values())
    assert report.timing["images_per_s"] > 0


def test_escape_and_overkill_match_the_line_decision_part_by_part(
    report: EvalReport, synth_val: Path
) -> None:
    detector = Detector(DEMO)
    parts = scored_parts(report.images, report.classes)
    strict, lax = (operating_point(parts, dict.fromkeys(report.classes, t)) for t in (0.02, 0.6))
    assert strict.overkills and lax.escapes  # the check below sees both kinds of mistake
    for operating in (report.chosen, report.card, strict, lax):
        escapes, overkills = [], []
        for image in sorted((synth_val / "images" / "val").glob("*.png")):
            defective = bool((synth_val / "labels" / "val" / f"{image.stem}.txt").read_text().strip())
            rejected = _line_rejects(detector, image, operating.thresholds)
            if defective and not rejected:
                escapes.append(image.name)
            if rejected and not defective:
                overkills.append(image.name)
        assert tuple(escapes) == operating.escapes and tuple(overkills) == operating.overkills
        defective_count = report.data["defective_parts"]
        assert operating.escape_rate == pytest.approx(len(escapes) / defective_count)
        assert operating.overkill_rate == pytest.approx(len(overkills) / (30 - defective_count))


def test_chosen_thresholds_meet_the_target_escape_rate(report: EvalReport) -> None:
    assert report.target_met and report.escape_rate <= 0.05
    # No lower overkill is possible with the card's thresholds at the same escape rate or better.
    if report.card.escape_rate <= report.target_escape:
        assert report.overkill_rate <= report.card.overkill_rate


def test_report_json_markdown_and_plots_are_written_and_decodable(
    report: EvalReport, report_dir: Path
) -> None:
    folder = report_dir
    data = json.loads((folder / "report.json").read_text())
    assert data["model"]["sha256"] == read_card(DEMO).sha256
    assert data["box"]["mAP50"] == pytest.approx(report.map50, abs=1e-6)
    assert data["part_level"]["chosen"]["thresholds"].keys() == {"scratch", "pit", "chip"}
    assert len(data["confusion"]["rows_truth_cols_predicted"]) == 4
    assert "| mAP50 |" in (folder / "report.md").read_text()
    for name in ("pr_curves.png", "escape_overkill.png", "confusion.png"):
        image = cv2.imread(str(folder / name))
        assert image is not None and image.shape[0] > 100, name


def test_worst_misses_grid_shows_escapes_when_thresholds_let_defects_through(
    report: EvalReport, tmp_path: Path
) -> None:
    parts = scored_parts(report.images, report.classes)
    lax = operating_point(parts, dict.fromkeys(report.classes, 0.99))  # nearly every defect escapes
    assert lax.escapes
    written = plots.worst_misses(replace(report, chosen=lax), tmp_path / "worst.png")
    image = cv2.imread(str(tmp_path / "worst.png"))
    assert written == "worst.png" and image is not None and image.shape[1] >= 300


def test_write_thresholds_updates_the_card_atomically_and_keeps_the_model(
    report: EvalReport, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(DEMO, model)
    before = sha256_file(model / "model.onnx")
    card = write_thresholds(model, report)
    assert card.sha256 == before == sha256_file(model / "model.onnx")
    assert card.thresholds.per_class == {k: round(v, 4) for k, v in report.chosen.thresholds.items()}
    assert card.thresholds.confidence == min(card.thresholds.per_class.values())
    assert card.metrics["part_level"]["escape_rate"] == round(report.escape_rate, 4)  # type: ignore[index]
    Detector(model)  # still loads: the card matches the file
    missed = replace(report, target_escape=-1.0)
    with pytest.raises(LinesideError, match="misses the target"):
        write_thresholds(model, missed)


@pytest.mark.slow
def test_cli_evaluates_two_sites_side_by_side_and_writes_thresholds(synth_val: Path, tmp_path: Path) -> None:
    other = tmp_path / "site-b"
    synth.write_dataset(other, 0, 8, SEED + 1)
    out = tmp_path / "out"
    done = lineside(
        "eval", "--model", str(DEMO), "--data", str(synth_val), "--data", str(other), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("| metric"))
    assert f"{synth_val.name}/val" in header and "site-b/val" in header
    assert "eval val: 30/30 images" in done.stderr
    combined = json.loads((out / "cross_site.json").read_text())
    assert [r["data"]["images"] for r in combined["reports"]] == [30, 8]
    assert "| recall chip |" in (out / "cross_site.md").read_text()

    model = tmp_path / "model"
    shutil.copytree(DEMO, model)
    done = lineside("eval", "--model", str(model), "--data", str(other), "--no-plots", "--write-thresholds",
                    "--target-escape", "1.0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_card(model).metrics["part_level"]["target_escape_rate"] == 1.0  # type: ignore[index]


def test_parts_csv_decides_what_a_defective_part_is(synth_val: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_val, data)
    images = sorted((data / "images" / "val").glob("*.png"))
    with (data / "parts.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "image", "decision"])
        writer.writerows(["val", f"images/val/{p.name}", "reject"] for p in images)  # all called defective
    report = evaluate(DEMO, data, "val", 1.0, None, progress=False)
    assert report.data["part_truth_from"] == "parts.csv" and report.data["good_parts"] == 0


def test_data_set_with_other_class_names_is_refused(synth_val: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_val, data)
    (data / "data.yaml").write_text(yaml.safe_dump({"names": ["open", "short", "spur"]}))
    with pytest.raises(LinesideError, match="differ from the model"):
        evaluate(DEMO, data, "val", 0.05, None, progress=False)
    done = lineside("eval", "--model", str(DEMO), "--data", str(data))
    assert done.returncode == 2 and "differ from the model" in done.stderr


def test_bad_label_line_names_the_file_and_line(synth_val: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_val, data)
    label = next(p for p in sorted((data / "labels" / "val").glob("*.txt")) if p.read_text().strip())
    label.write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(LinesideError, match=rf"{label.name}: line 1"):
        evaluate(DEMO, data, "val", 0.05, None, progress=False)


@pytest.mark.realdata
def test_deeppcb_val_part_truth_comes_from_parts_csv_and_agrees_with_the_labels() -> None:
    data = ROOT.parent / "shared" / "datasets" / "deeppcb"
    if not data.is_dir():
        pytest.skip(f"{data} is absent: the real-data tests need ../shared/datasets")
    split = read_split(data, "val")
    assert split.truth_source == "parts.csv" and len(split.items) == 440
    assert sum(item.defective for item in split.items) == 220
    assert all(item.defective == bool(item.label.read_text().strip()) for item in split.items)
    assert split.classes is not None and len(split.classes) == 6
