"""Writes a `kind: genicam` source's settings into the camera's GenICam nodes and reads them back.

Node names follow SFNC (ExposureTime, Gain), with the older Basler names (ExposureTimeAbs, GainAbs) as a
fallback. A value the camera refuses is a CameraSettingRefused naming the config field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.errors import LinesideError

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

EXPOSURE_NODES = ("ExposureTime", "ExposureTimeAbs")
GAIN_NODES = ("Gain", "GainAbs")


class CameraSettingRefused(LinesideError):  # noqa: N818 (a refusal the user fixes in the config)
    """The camera refused a configured setting; reopening cannot help, so the source FAILs."""


def apply_settings(nodes: Any, cfg: SourceConfig, genicam: Any) -> dict[str, str | float]:
    """Apply pixel format, exposure, gain and trigger to the node map; the values read back after."""
    if cfg.pixel_format is not None:
        _set_enum(nodes, "PixelFormat", cfg.pixel_format, "pixel_format", genicam)
    if cfg.exposure_us is not None:
        _set_enum_if_present(nodes, "ExposureAuto", "Off", genicam)
        _set_float(nodes, EXPOSURE_NODES, cfg.exposure_us, "exposure_us", genicam)
    if cfg.gain_db is not None:
        _set_enum_if_present(nodes, "GainAuto", "Off", genicam)
        _set_float(nodes, GAIN_NODES, cfg.gain_db, "gain_db", genicam)
    _set_enum_if_present(nodes, "TriggerSelector", "FrameStart", genicam)
    trigger = cfg.trigger or "free_run"
    if trigger == "free_run":
        _set_enum(nodes, "TriggerMode", "Off", "trigger", genicam)
    else:
        source = "Software" if trigger == "software" else cfg.trigger_line or "Line1"
        _set_enum(nodes, "TriggerMode", "On", "trigger", genicam)
        field = "trigger" if trigger == "software" else "trigger_line"
        _set_enum(nodes, "TriggerSource", source, field, genicam)
    applied: dict[str, str | float] = {}
    for name, names in (
        ("pixel_format", ("PixelFormat",)),
        ("exposure_us", EXPOSURE_NODES),
        ("gain_db", GAIN_NODES),
        ("trigger_mode", ("TriggerMode",)),
        ("trigger_source", ("TriggerSource",)),
    ):
        node = _readable(nodes, names, genicam)
        if node is not None:
            applied[name] = node.Value
    return applied


def _readable(nodes: Any, names: tuple[str, ...], genicam: Any) -> Any:
    for name in names:
        node = nodes.GetNode(name)
        if node is not None and genicam.IsReadable(node):
            return node
    return None


def _set_enum_if_present(nodes: Any, name: str, value: str, genicam: Any) -> None:
    node = nodes.GetNode(name)
    if node is not None and genicam.IsWritable(node) and value in node.Symbolics:
        node.Value = value


def _set_enum(nodes: Any, name: str, value: str, field: str, genicam: Any) -> None:
    node = nodes.GetNode(name)
    if node is None or not genicam.IsWritable(node):
        raise CameraSettingRefused(f"source.{field}: the camera has no writable {name}")
    if value not in node.Symbolics:
        choices = ", ".join(node.Symbolics)
        raise CameraSettingRefused(f"source.{field}: the camera's {name} has no '{value}' (it has {choices})")
    node.Value = value


def _set_float(nodes: Any, names: tuple[str, ...], value: float, field: str, genicam: Any) -> None:
    node = next((n for n in map(nodes.GetNode, names) if n is not None and genicam.IsWritable(n)), None)
    if node is None:
        raise CameraSettingRefused(f"source.{field}: the camera has no writable {' or '.join(names)}")
    low, high = float(node.Min), float(node.Max)
    if not low <= value <= high:
        span = f"{low:g} to {high:g}"
        raise CameraSettingRefused(f"source.{field}: {value:g} is outside the camera's range {span}")
    node.Value = value
