"""Judges in a chain: classify and anomaly stages on real onnxruntime sessions, combined with the detector.

Every stage judges; any FAULT or REJECT wins; a failing or late stage is a FAULT, never a skip; a card that
lies about the model file is refused; the reasons name each stage and the robot's class and score come
from the deciding stage.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ErrorCode, LinesideError
from edge.judge.detector.detector import Detector
from edge.judge.detector.errors import InferenceError
from edge.judge.heatmaps import decode_heatmap, encode_heatmaps
from edge.judge.inspection import Verdict
from edge.judge.inspector import Inspector, load_model
from edge.judge.rules import RoiConfig
from edge.judge.scoremap import ScoreMapModel
from edge.modelstore.card import read_card, write_card
from edge.station.config import JudgeSettings, RecipeConfig, StageConfig
from tests.line import lineside, make_station
from tests.mapmodels import dark_part, make_map_model, with_spot
from tests.models import ModelBox, make_yolo_model

HOTTEST = re.compile(r"hottest at \((\d+),(\d+)\) px")


def _detector(root: Path) -> Path:
    """A detector that finds a scratch only on bright frames (its scores scale with the frame's mean)."""
    return make_yolo_model(
        root / "detector",
        ["scratch", "pit"],
        [ModelBox(32, 32, 10, 10, 0, 1.0)],
        gain="input_mean",
        thresholds={"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.5, "pit": 0.5}},
    )


def _inspector(recipe: RecipeConfig) -> Inspector:
    primary = load_model(recipe.model)
    return Inspector.load(recipe, primary, {s.model: load_model(s.model) for s in recipe.stages})


def _chain(tmp_path: Path, **recipe: object) -> Inspector:
    classifier = make_map_model(tmp_path / "classifier", "classify", threshold=0.41)
    return _inspector(
        RecipeConfig(
            number=1,
            name="chain",
            model=_detector(tmp_path),
            stages=[StageConfig(model=classifier)],
            **recipe,
        )
    )


def test_classifier_rejects_a_spotted_part_with_score_threshold_and_where_in_frame_pixels(
    tmp_path: Path,
) -> None:
    model = make_map_model(tmp_path / "c", "classify", threshold=0.41)
    inspector = _inspector(RecipeConfig(number=1, name="c", model=model))
    inspection = inspector.inspect(with_spot(dark_part(160, 120), 120, 30, 4))
    assert inspection.decision.verdict is Verdict.REJECT
    (reason,) = inspection.decision.reasons
    assert re.fullmatch(
        r"REJECT: defect score 1\.00 >= 0\.41 \(classifier\), hottest at \(\d+,\d+\) px", reason
    )
    x, y = map(int, HOTTEST.search(reason).groups())  # type: ignore[union-attr]
    assert abs(x - 120) <= 4 and abs(y - 30) <= 4  # the letterbox undone: frame pixels
    (stage,) = inspection.stages
    assert stage.kind == "classify" and stage.margin == pytest.approx(stage.score - 0.41)  # type: ignore[operator]
    assert inspector.inspect(dark_part(160, 120)).decision.verdict is Verdict.ACCEPT


def test_anomaly_needs_its_minimum_area_and_counts_only_inside_the_roi(tmp_path: Path) -> None:
    model = make_map_model(tmp_path / "a", "anomaly", threshold=0.5, pixel=0.5, min_area_px=60.0)
    recipe = RecipeConfig(number=1, name="a", model=model)
    inspector = _inspector(recipe)
    small = inspector.inspect(with_spot(dark_part(), 40, 40, 1))  # 3x3 px
    assert small.decision.verdict is Verdict.ACCEPT
    assert re.search(
        r"ACCEPT: anomaly score 0\.80 >= 0\.50 but area \d+ px < 60 px \(anomaly\)", small.decision.reasons[0]
    )
    big = inspector.inspect(with_spot(dark_part(), 40, 40, 6))  # 13x13 px
    assert big.decision.verdict is Verdict.REJECT
    assert re.search(
        r"REJECT: anomaly score 0\.80 >= 0\.50 \(anomaly\), area \d+ px >= 60 px, hottest",
        big.decision.reasons[0],
    )
    assert big.stages[0].area_px is not None and 100 <= big.stages[0].area_px <= 250
    outside = _inspector(recipe.model_copy(update={"roi": RoiConfig(rect=(80, 0, 80, 120))}))
    assert outside.inspect(with_spot(dark_part(), 40, 40, 6)).decision.verdict is Verdict.ACCEPT
    assert outside.inspect(with_spot(dark_part(), 120, 40, 6)).decision.verdict is Verdict.REJECT


def test_any_reject_in_the_chain_wins_and_the_reasons_name_each_stage(tmp_path: Path) -> None:
    inspector = _chain(tmp_path)
    assert inspector.classes == ("scratch", "pit", "defect")
    clean = inspector.inspect(dark_part(64, 64))
    assert clean.decision.verdict is Verdict.ACCEPT
    assert [r.split(":")[0] for r in clean.decision.reasons] == ["detector", "classifier"]
    spotted = inspector.inspect(with_spot(dark_part(64, 64), 20, 20, 2))  # too small to brighten the mean
    assert spotted.decision.verdict is Verdict.REJECT
    assert spotted.decision.reasons[0].startswith("classifier: REJECT: defect score")
    assert spotted.decision.reasons[1].startswith("detector: ACCEPT")
    assert spotted.decision.top_class_id == 2  # DEFECT_CODE 3: the classifier's class, after the detector's
    bright = inspector.inspect(np.full((64, 64, 3), 220, np.uint8))
    assert [s.verdict for s in bright.stages] == [Verdict.REJECT, Verdict.REJECT]
    assert bright.decision.top_class_id == 0  # the first rejecting stage (the detector) decides
    assert [s.stage for s in bright.stages] == ["detector", "classifier"]


def test_a_failing_stage_is_a_fault_never_a_skipped_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inspector = _chain(tmp_path)
    classifier = inspector.stages[1].model  # type: ignore[union-attr]

    def broken(image: np.ndarray) -> None:
        raise InferenceError("model tiny-classify 1: inference failed: device lost")

    monkeypatch.setattr(classifier, "run", broken)
    inspection = inspector.inspect(dark_part(64, 64))  # the detector alone would accept it
    assert inspection.decision.verdict is Verdict.FAULT
    assert inspection.decision.error is ErrorCode.MODEL
    assert inspection.decision.reasons[0].startswith("classifier: FAULT (model): model tiny-classify 1")
    assert [s.verdict for s in inspection.stages] == [Verdict.ACCEPT, Verdict.FAULT]


def test_a_stage_past_its_timeout_is_a_fault(tmp_path: Path) -> None:
    inspection = _chain(tmp_path, stage_timeout_ms=0.001).inspect(dark_part(64, 64))
    assert inspection.decision.verdict is Verdict.FAULT
    assert inspection.decision.error is ErrorCode.TIMEOUT
    assert "stage_timeout_ms" in inspection.decision.reasons[0]


@pytest.mark.parametrize(
    ("meta", "card_update", "message"),
    [
        ({"lineside.backbone_sha256": "cd" * 32}, {}, "backbone_sha256"),
        ({}, {"card_bank_size": 999}, "bank_size"),
        ({"lineside.task": "classify"}, {}, "task"),
    ],
)
def test_a_card_that_lies_about_its_model_file_is_refused(
    tmp_path: Path, meta: dict[str, str], card_update: dict[str, int], message: str
) -> None:
    model = make_map_model(tmp_path / "a", "anomaly", meta=meta, **card_update)  # type: ignore[arg-type]
    with pytest.raises(LinesideError, match=message):
        ScoreMapModel(model)


def test_each_runner_refuses_the_other_kind(tmp_path: Path) -> None:
    with pytest.raises(LinesideError, match="not a detector"):
        Detector(make_map_model(tmp_path / "c", "classify"))
    with pytest.raises(LinesideError, match="a detector, not"):
        ScoreMapModel(_detector(tmp_path))


def test_a_card_whose_anomaly_section_does_not_fit_its_task_is_invalid(tmp_path: Path) -> None:
    model = make_map_model(tmp_path / "c", "classify")
    card = read_card(model)
    with pytest.raises(ValueError, match="classes"):
        card.model_validate({**card.model_dump(by_alias=True), "classes": ("defect", "good")})
    (model / "card.json").write_text(
        json.dumps({**card.model_dump(mode="json", by_alias=True), "task": "detect"}), encoding="utf-8"
    )
    with pytest.raises(LinesideError, match=r"output\.layout"):
        read_card(model)
    write_card(model, card)


def test_heat_maps_travel_as_small_pngs(tmp_path: Path) -> None:
    inspector = _inspector(RecipeConfig(number=1, name="a", model=make_map_model(tmp_path / "a", "anomaly")))
    inspection = inspector.inspect(with_spot(dark_part(640, 480), 500, 100, 20))
    encoded = encode_heatmaps(inspection.stages)
    heat = decode_heatmap(encoded["anomaly"])
    assert max(heat.shape) <= 160 and heat.dtype == np.uint8
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert abs(col / heat.shape[1] * 640 - 500) < 40 and abs(row / heat.shape[0] * 480 - 100) < 40


def test_inspect_json_prints_a_stages_list_for_any_model_kind_and_for_a_recipe_chain(tmp_path: Path) -> None:
    spotted = tmp_path / "images" / "spotted.png"
    spotted.parent.mkdir()
    import cv2

    cv2.imwrite(str(spotted), with_spot(dark_part(), 100, 60, 6))
    anomaly = make_map_model(tmp_path / "anomaly", "anomaly", threshold=0.5, pixel=0.5)
    done = lineside("inspect", "--json", "--model", str(anomaly), str(spotted))
    assert done.returncode == 0, done.stderr
    (stage,) = json.loads(done.stdout)["stages"]
    assert stage["kind"] == "anomaly" and stage["verdict"] == "REJECT" and stage["threshold"] == 0.5
    chain = [
        {"number": 1, "name": "chain", "model": str(_detector(tmp_path)), "stages": [{"model": str(anomaly)}]}
    ]
    config, _ = make_station(tmp_path / "station", extra={"recipes": chain})
    done = lineside("inspect", "--json", "--config", str(config), str(spotted))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [s["stage"] for s in out["stages"]] == ["detector", "anomaly"]
    assert out["verdict"] == "REJECT" and out["reasons"][0].startswith("anomaly: REJECT")


def test_a_stage_named_twice_or_two_detectors_are_refused_at_load(tmp_path: Path) -> None:
    model = make_map_model(tmp_path / "c", "classify")
    twice = RecipeConfig(number=3, name="x", model=model, stages=[StageConfig(model=model)])
    with pytest.raises(LinesideError, match="repeat"):
        _inspector(twice)
    named = twice.model_copy(update={"model_settings": JudgeSettings(name="first")})
    assert [s.name for s in _inspector(named).stages] == ["first", "classifier"]
    detector = _detector(tmp_path)
    with pytest.raises(LinesideError, match="at most one detect stage"):
        _inspector(
            RecipeConfig(number=3, name="x", model=detector, stages=[StageConfig(model=detector, name="d2")])
        )


def test_the_status_page_frame_draws_the_kept_heat_map_and_each_stage(tmp_path: Path) -> None:
    import cv2

    from edge.records.images import heat_relpath
    from edge.status.frame import LastFrame, kept_image_path
    from tests.test_status_state import _event

    event = _event(7, Verdict.REJECT)
    assert event.result is not None
    stages = (
        {"stage": "detector", "kind": "detect", "verdict": "ACCEPT", "score": None, "threshold": None},
        {"stage": "anomaly", "kind": "anomaly", "verdict": "REJECT", "score": 0.8, "threshold": 0.5},
    )
    event = event.model_copy(update={"result": event.result.model_copy(update={"stages": stages})})
    relpath = kept_image_path(event, "png").as_posix()
    (tmp_path / relpath).parent.mkdir(parents=True)
    cv2.imwrite(str(tmp_path / relpath), dark_part(640, 480))
    heat = np.zeros((120, 160), np.uint8)
    heat[10:30, 120:150] = 255  # top right
    cv2.imwrite(str(tmp_path / heat_relpath(relpath, "anomaly")), heat)
    rendered = LastFrame(tmp_path, "png").render([event])
    assert rendered is not None
    picture = cv2.imdecode(np.frombuffer(rendered[1], np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    hot, cold = picture[60:100, 500:580], picture[380:460, 60:140]

    def redness(patch: np.ndarray) -> float:
        return float(patch[..., 2].mean() - patch[..., 0].mean())

    assert redness(hot) > 30 > abs(redness(cold))  # red where the map is hot, the grey part elsewhere
    plain = LastFrame(tmp_path, "png")
    (tmp_path / heat_relpath(relpath, "anomaly")).unlink()
    rendered_plain = plain.render([event])
    assert rendered_plain is not None
    unheated = cv2.imdecode(np.frombuffer(rendered_plain[1], np.uint8), cv2.IMREAD_COLOR)
    assert unheated is not None
    assert abs(redness(unheated[60:100, 500:580])) < 5
