"""A recipe ready to judge frames: its chain of judges (detect, classify, anomaly), calibration
(undistortion, mm scale, robot plane) and ROI.

The line's inference worker and `lineside inspect` judge through this same code. Every known failure
becomes a FAULT decision naming its cause; nothing here turns an error into "no defect". All stages judge
the one undistorted frame in this process: no copy of it is made for a stage.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ErrorCode, LinesideError
from edge.geometry import Scale
from edge.judge.chain import combine, deciding_stage
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.detector import Detector
from edge.judge.detector.errors import InferenceError, InvalidFrame
from edge.judge.detectstage import DetectStage
from edge.judge.evidence import build_evidence, fault_evidence
from edge.judge.inspection import Decision, Detection, Verdict
from edge.judge.mapstage import MapSettings, MapStage
from edge.judge.rules import RoiConfig, check_rules, rules_from_card
from edge.judge.scoremap import ScoreMapModel
from edge.judge.stage import StageResult
from edge.modelstore.card import read_card
from edge.station.calibfile import CalibrationFile, load_calibration
from edge.station.config import JudgeSettings, RecipeConfig
from edge.station.undistort import Undistorter

Model = Detector | ScoreMapModel
Stage = DetectStage | MapStage
DEFAULT_STAGE_NAMES = {"detect": "detector", "classify": "classifier", "anomaly": "anomaly"}


@dataclass(frozen=True)
class Inspection:
    """What one frame gave: the decision, the detections behind it, each stage and the time it took."""

    decision: Decision
    detections: tuple[Detection, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    near_threshold: bool = False
    stages: tuple[StageResult, ...] = ()


def load_model(model_dir: Path, cfg: DetectorConfig | None = None) -> Model:
    """The runner its card's task calls for: a Detector, or a ScoreMapModel for classify and anomaly."""
    if read_card(model_dir).task == "detect":
        return Detector(model_dir, cfg)
    return ScoreMapModel(model_dir, cfg)


@dataclass(frozen=True)
class Inspector:
    recipe: RecipeConfig
    stages: tuple[Stage, ...]
    calibration: CalibrationFile | None
    undistorter: Undistorter | None
    classes: tuple[str, ...]  # the chain's classes: DEFECT_CODE = index + 1

    @property
    def primary(self) -> Model:
        """The recipe's `model` (the one a registry recipe follows)."""
        stage = self.stages[0]
        return stage.detector if isinstance(stage, DetectStage) else stage.model

    def stage_models(self) -> dict[Path, Model]:
        """The models of the recipe's `stages` (all but `model`), by the folder the recipe names."""
        return {
            config.model: stage.detector if isinstance(stage, DetectStage) else stage.model
            for config, stage in zip(self.recipe.stages, self.stages[1:], strict=True)
        }

    @classmethod
    def load(
        cls, recipe: RecipeConfig, primary: Model, stage_models: Mapping[Path, Model] | None = None
    ) -> Inspector:
        """Resolve what the recipe leaves to its calibration file; LinesideError if the recipe cannot work.

        ROI: the recipe's own, else the calibration's. Detector rules: the recipe's own, else the thresholds
        chosen on this station's golden samples (for this very model), else the model card's defaults.
        `stage_models` holds the loaded models of `recipe.stages`, by folder.
        """
        origin = str(recipe.calibration)
        calibration = load_calibration(recipe.calibration) if recipe.calibration is not None else None
        roi = recipe.roi
        if "roi" not in recipe.model_fields_set and calibration is not None and calibration.roi is not None:
            roi = calibration.roi.in_pixel_space(calibration.intrinsics_id(), origin)
        models: list[tuple[Model, JudgeSettings]] = [(primary, recipe.model_settings)]
        for number, stage in enumerate(recipe.stages):
            model = (stage_models or {}).get(stage.model)
            if model is None:
                raise LinesideError(
                    f"recipes[{recipe.number}].stages[{number}]: model {stage.model} not loaded"
                )
            models.append((model, stage))
        stages: list[Stage] = []
        classes: list[str] = []
        for model, settings in models:
            stages.append(_stage(recipe, model, settings, roi, calibration, classes))
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise LinesideError(f"recipes[{recipe.number}]: stage names {names} repeat; name the stages")
        if sum(isinstance(s, DetectStage) for s in stages) > 1:
            raise LinesideError(f"recipes[{recipe.number}]: at most one detect stage (the rules are its)")
        undistorter = Undistorter.from_calibration(calibration, origin) if calibration is not None else None
        return cls(recipe, tuple(stages), calibration, undistorter, tuple(classes))

    def inspect(self, image: np.ndarray, conf_floor: float | None = None) -> Inspection:
        """Judge one frame with every stage; a FAULT decision (never an exception) for a bad frame, model or
        calibration, and for a stage that fails or is late."""
        try:
            frame = self.undistorter.apply(image) if self.undistorter is not None else image
            scale = self._scale(frame.shape)
        except (InferenceError, InvalidFrame) as exc:
            return Inspection(Decision.fault(exc.error_code, str(exc)))
        except LinesideError as exc:  # the frame is not the size the lens was calibrated for
            return Inspection(Decision.fault(ErrorCode.CALIBRATION, str(exc)))
        results = tuple(self._judge(stage, frame, scale, conf_floor) for stage in self.stages)
        decision = combine(results)
        try:
            decision = self._with_robot_position(decision, deciding_stage(results), frame.shape)
        except LinesideError as exc:  # the robot plane for another frame size
            decision = Decision.fault(ErrorCode.CALIBRATION, str(exc))
        detections = next((r.detections for r in results if r.kind == "detect"), ())
        return Inspection(
            decision,
            detections,
            _timings(results),
            any(r.near_threshold for r in results),
            results,
        )

    def evidence(self, inspection: Inspection, frame_shape: tuple[int, ...]) -> dict[str, Any]:
        """Why `inspection` got its verdict, as codes and numbers (edge/judge/evidence.py); call it after
        the verdict has left. A frame that never reached the stages gives the FAULT's evidence alone."""
        decision = inspection.decision
        if len(inspection.stages) != len(self.stages):
            return fault_evidence(int(decision.error), decision.reasons[0])
        try:
            scale = self._scale(frame_shape)
        except LinesideError:
            scale = None
        return build_evidence(self.stages, inspection.stages, decision, scale, frame_shape)

    def _scale(self, shape: tuple[int, ...]) -> Scale | None:
        if self.calibration is None:
            return None
        return self.calibration.scale_for(shape, str(self.recipe.calibration))

    def _judge(
        self, stage: Stage, frame: np.ndarray, scale: Scale | None, floor: float | None
    ) -> StageResult:
        """One stage's result; its failure or lateness is that stage's FAULT, never a skipped stage."""
        start = time.perf_counter()
        try:
            if isinstance(stage, DetectStage):
                result = stage.judge(frame, scale, floor)
            else:
                result = stage.judge(frame, scale)
        except (InferenceError, InvalidFrame) as exc:
            return _fault(stage, Decision.fault(exc.error_code, str(exc)))
        except LinesideError as exc:  # scale for another frame size, ROI off the frame
            return _fault(stage, Decision.fault(ErrorCode.CALIBRATION, str(exc)))
        took_ms = (time.perf_counter() - start) * 1000.0
        limit = self.recipe.stage_timeout_ms
        if limit is not None and took_ms > limit:
            why = f"stage {stage.name} took {took_ms:.0f} ms > stage_timeout_ms {limit:.0f}"
            return _fault(stage, Decision.fault(ErrorCode.TIMEOUT, why))
        return result

    def _with_robot_position(
        self, decision: Decision, decider: StageResult, shape: tuple[int, ...]
    ) -> Decision:
        """The deciding defect in the robot's coordinates, for a robot that picks or marks it."""
        cal = self.calibration
        plane = cal.robot_plane_for(shape, str(self.recipe.calibration)) if cal is not None else None
        if plane is None or decision.verdict is not Verdict.REJECT or decider.hottest is None:
            return decision
        x, y = plane.to_robot(*decider.hottest)
        name = self.classes[decision.top_class_id] if decision.top_class_id is not None else decider.stage
        where = f"robot position of the {name}: ({x:.1f}, {y:.1f}) mm"
        return Decision(
            decision.verdict,
            (*decision.reasons, where),
            top_class_id=decision.top_class_id,
            top_confidence=decision.top_confidence,
            robot_position=(round(x, 1), round(y, 1)),
        )


def _stage(  # noqa: PLR0917 (one call site, in Inspector.load)
    recipe: RecipeConfig,
    model: Model,
    settings: JudgeSettings,
    roi: RoiConfig,
    calibration: CalibrationFile | None,
    classes: list[str],
) -> Stage:
    """Build one stage; its classes join the chain's list, so each class has one DEFECT_CODE per recipe."""
    card = model.card
    name = settings.name or DEFAULT_STAGE_NAMES[card.task]
    first = len(classes)
    if isinstance(model, Detector):
        if recipe.rules is not None:
            rules = recipe.rules
        elif calibration is not None and calibration.thresholds is not None:
            rules = calibration.thresholds.rules_for(card, str(recipe.calibration))
        else:
            rules = rules_from_card(card)
        check_rules(rules, card.classes)
        classes.extend(card.classes)
        return DetectStage(name, model, rules, roi, first)
    classes.extend(card.classes[1:] if card.task == "classify" else card.classes)
    overrides = MapSettings(
        settings.threshold, settings.pixel_threshold, settings.min_area_px, settings.min_area_mm2
    )
    return MapStage(name, model, overrides, roi, first)


def _fault(stage: Stage, decision: Decision) -> StageResult:
    card = stage.card
    return StageResult(
        stage=stage.name,
        kind=card.task,
        model={"name": card.name, "version": card.version, "sha256": card.sha256},
        decision=decision,
    )


def _timings(results: tuple[StageResult, ...]) -> dict[str, float]:
    """The first stage's steps as before (preprocess, infer, decode); later stages' prefixed by name."""
    timings: dict[str, float] = dict(results[0].timings_ms)
    for result in results[1:]:
        timings.update({f"{result.stage}.{k}": v for k, v in result.timings_ms.items()})
    return timings
