"""Doctor checks of the station's own files: the config, every recipe's model and calibration.

They reuse what `lineside run --check` (edge.station.preflight) and the runtime use, but report every
problem on its own line instead of stopping at the first.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from edge.errors import LinesideError
from edge.i18n import Message
from edge.judge.rules import check_rules, rules_from_card
from edge.modelstore.card import load_verified, read_card
from edge.station.calibfile import CalibrationFile, check_frame_size, load_calibration
from edge.station.config import LinesideConfig, RecipeConfig, load_config
from lineside.doctor.report import Check, Status

DAY_S = 86400.0


def check_config(path: Path | None) -> tuple[Check, LinesideConfig | None]:
    """The config loads and validates (the embedded demo's when `path` is None)."""
    origin: Message | str
    try:
        if path is None:
            from lineside.demo import demo_config

            config, origin = demo_config(), Message("doctor.demo_config")
        else:
            config, origin = load_config(path), str(path)
    except LinesideError as exc:
        return Check("config", Status.FAIL, str(exc)), None
    recipes = ", ".join(f"{r.number} '{r.name}'" for r in config.recipes)
    detail = {"station": config.station.name, "source": config.source.kind, "recipes": recipes}
    return Check.of("config", Status.PASS, "doctor.config_valid", origin=origin, **detail), config


def check_models(config: LinesideConfig) -> list[Check]:
    """Every recipe's models (its `model` and each stage's): card readable, ONNX sha256 equal to the card's,
    a detector's rules naming its classes."""
    checks = []
    for recipe in config.recipes:
        folders = [
            ("model", recipe.model),
            *((f"stage {i + 1}", s.model) for i, s in enumerate(recipe.stages)),
        ]
        for role, folder in folders:
            name = (
                f"model[recipe {recipe.number}]"
                if role == "model"
                else f"model[recipe {recipe.number} {role}]"
            )
            try:
                card, onnx_path = load_verified(folder)
                if card.task == "detect" and role == "model":
                    rules = recipe.rules if recipe.rules is not None else rules_from_card(card)
                    check_rules(rules, card.classes)
            except LinesideError as exc:
                checks.append(Check(name, Status.FAIL, str(exc)))
                continue
            what = {"task": card.task, "model": card.name, "version": card.version, "sha": card.sha256[:12]}
            checks.append(Check.of(name, Status.PASS, "doctor.model_ok", path=str(onnx_path), **what))
    return checks


def check_calibrations(
    config: LinesideConfig, frame_size: tuple[int, int] | None, max_age_days: float, now: float
) -> list[Check]:
    """Each recipe's calibration file: readable, for these frames and this model, and not too old.

    `frame_size` is (width, height) of the camera's frame if the camera check got one, else the
    source's expected size, else None (the size is then not checked).
    """
    return [
        _check_calibration(recipe, recipe.calibration, frame_size, max_age_days, now)
        for recipe in config.recipes
        if recipe.calibration is not None
    ]


def _check_calibration(
    recipe: RecipeConfig, path: Path, frame_size: tuple[int, int] | None, max_age_days: float, now: float
) -> Check:
    name = f"calibration[recipe {recipe.number}]"
    try:
        calibration = load_calibration(path)
        _check_usable(calibration, recipe, path, frame_size)
    except LinesideError as exc:
        return Check(name, Status.FAIL, str(exc))
    camera = calibration.camera
    parts = [Message("doctor.calib_for", {"path": str(path), "width": camera.width, "height": camera.height})]
    if calibration.scale is not None:
        parts.append(Message("doctor.calib_scale", {"mm_per_px": calibration.scale.mm_per_px}))
    if calibration.thresholds is not None:
        parts.append(Message("doctor.calib_thresholds", {"model": calibration.thresholds.model}))
    age_days = _age_days(calibration.created, now)
    if age_days is None:
        return Check.of(name, Status.WARN, "doctor.calib_no_age", parts=tuple(parts))
    parts.append(Message("doctor.calib_age", {"days": age_days}))
    if age_days > max_age_days:
        return Check.of(name, Status.WARN, "doctor.calib_old", parts=tuple(parts), days=max_age_days)
    return Check.of(name, Status.PASS, "doctor.calib", parts=tuple(parts))


def _check_usable(
    calibration: CalibrationFile, recipe: RecipeConfig, path: Path, frame_size: tuple[int, int] | None
) -> None:
    """What the runtime refuses: another frame size, another lens's pixels, another model's thresholds."""
    own_shape = (calibration.camera.height, calibration.camera.width)
    calibration.scale_for(own_shape, str(path))  # scale measured in another pixel space
    calibration.robot_plane_for(own_shape, str(path))
    if frame_size is not None:
        check_frame_size(calibration.camera, (frame_size[1], frame_size[0]), f"{path} (camera's frame)")
    if calibration.thresholds is not None and recipe.rules is None:
        # The runtime judges with these thresholds; chosen for another model they mean nothing.
        calibration.thresholds.rules_for(read_card(recipe.model), str(path))


def _age_days(created: str, now: float) -> float | None:
    if not created:
        return None
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (now - when.timestamp()) / DAY_S)
