"""Checks a station config against the files it names, without starting anything (`lineside run --check`)."""

from __future__ import annotations

from edge.errors import LinesideError
from edge.judge.rules import check_rules, rules_from_card
from edge.modelstore.card import load_verified
from edge.station.calibfile import load_calibration
from edge.station.config import LinesideConfig


def preflight(config: LinesideConfig) -> list[str]:
    """One line per verified item; raises LinesideError naming the first problem."""
    checked: list[str] = []
    for recipe in config.recipes:
        card, onnx_path = load_verified(recipe.model)
        if card.task == "detect":
            rules = recipe.rules if recipe.rules is not None else rules_from_card(card)
            try:
                check_rules(rules, card.classes)
            except LinesideError as exc:
                raise LinesideError(f"recipes[{recipe.number}].rules: {exc}") from None
        stage_lines = []
        for number, stage in enumerate(recipe.stages):
            try:
                stage_card, stage_path = load_verified(stage.model)
            except LinesideError as exc:
                raise LinesideError(f"recipes[{recipe.number}].stages[{number}]: {exc}") from None
            stage_lines.append(
                f"recipe {recipe.number} stage {number + 1}: {stage_card.task} model {stage_card.name} "
                f"{stage_card.version} ({stage_path.name} sha256 ok)"
            )
        if recipe.calibration is not None:
            calibration = load_calibration(recipe.calibration)
            scale = f"{calibration.scale.mm_per_px:.4f} mm/px" if calibration.scale else "no scale"
            size = f"{calibration.camera.width}x{calibration.camera.height}"
            expected = (config.source.expected_width, config.source.expected_height)
            if expected[0] is not None and expected != (calibration.camera.width, calibration.camera.height):
                # Refuse now rather than fault every frame once the line is running.
                raise LinesideError(
                    f"recipes[{recipe.number}].calibration: {recipe.calibration} was made for {size} frames, "
                    f"source.expected_width/height say {expected[0]}x{expected[1]}: recalibrate"
                )
            checked.append(f"recipe {recipe.number}: calibration for {size} frames, {scale}")
        checked.append(
            f"recipe {recipe.number} '{recipe.name}': model {card.name} {card.version} "
            f"({onnx_path.name} sha256 ok, classes {', '.join(card.classes)})"
        )
        checked += stage_lines
    source = config.source
    if source.kind in ("folder", "video") and source.path is not None and not source.path.exists():
        raise LinesideError(f"source.path: {source.path} does not exist")
    if config.aas.enabled and config.aas.token_file is not None:
        from edge.aas.server import read_token  # the AAS API's token, refused now rather than at start

        read_token(config.aas.token_file)
        checked.append(f"aas: bearer token read from {config.aas.token_file}")
    if config.status.enabled and config.status.protected:
        checked.append(_status_line(config))
    if config.opcua.enabled:
        checked += _opcua_lines(config)
    return checked


def _status_line(config: LinesideConfig) -> str:
    """The status page's users file and token, refused now rather than by a worker that fails at start."""
    from edge.status.auth import StatusGuard

    guard = StatusGuard.from_config(config.status)
    users = f"{guard.user_count} user(s) from {config.status.users_file}" if guard and guard.has_users else ""
    token = f"bearer token from {config.status.token_file}" if config.status.token_file else ""
    return "status: page asks for a login: " + ", ".join(part for part in (users, token) if part)


def _opcua_lines(config: LinesideConfig) -> list[str]:
    """The OPC UA server's users file and certificate files, refused now rather than by a worker that
    fails at start, restarts and is given up."""
    from edge.opcua.users import load_users

    opcua, lines = config.opcua, []
    if opcua.users_file is not None:
        users = load_users(opcua.users_file)
        lines.append(f"opcua: {len(users)} user(s) in {opcua.users_file}")
    for field in ("certificate_file", "private_key_file"):
        path = getattr(opcua, field)
        if path is not None and not path.is_file():
            raise LinesideError(f"opcua.{field}: {path} does not exist")
    if opcua.trusted_dir is not None and opcua.trusted_dir.exists() and not opcua.trusted_dir.is_dir():
        raise LinesideError(f"opcua.trusted_dir: {opcua.trusted_dir} is not a folder")
    lines.append(f"opcua: server at {opcua.endpoint_url()}")
    return lines
