"""`calibrate check`: store the station's reference frame, and grade frames against it.

The reference PNG is written next to the calibration file under a name carrying its hash, so the
previous calibration (`.prev`) still finds its own reference; older ones are removed.
The comparison itself is edge.station.check, which the runtime runs at start.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
from pydantic import ValidationError

from calibration.errors import InputError
from calibration.frames import Image, camera_of
from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from edge.i18n import Message
from edge.station.calibfile import load_calibration, update_calibration
from edge.station.calibsections import CheckLimits, ReferenceSection
from edge.station.check import (
    CheckItem,
    CheckReport,
    StationReference,
    check_frame,
    exposure_stats,
    focus_score,
    orb_features,
    to_grey,
)

__all__ = ["CheckReport", "StationReference", "check_frame", "check_frames", "parse_limits", "set_reference"]


def parse_limits(pairs: Sequence[str], base: CheckLimits) -> CheckLimits:
    """`base` with NAME=VALUE overrides (names of CheckLimits fields); LinesideError naming a bad one."""
    updates: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in CheckLimits.model_fields:
            known = ", ".join(CheckLimits.model_fields)
            raise InputError(Message("calib.input.limit_name", {"pair": repr(pair), "known": known}))
        updates[name] = value
    try:
        return CheckLimits.model_validate({**base.model_dump(), **updates})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "limits"
        said = {"where": where, "error": first["msg"]}  # pydantic's words, as it said them
        raise InputError(Message("calib.input.limit_value", said)) from None


def set_reference(
    calibration_path: Path, image: Image, limits: CheckLimits | None = None
) -> ReferenceSection:
    """Store `image` as the station's reference frame with what was measured on it.

    Refuses a frame with too few features to ever tell that the camera moved.
    """
    limits = limits or CheckLimits()
    camera = camera_of(image)
    if calibration_path.exists():
        made_for = load_calibration(calibration_path).camera
        if made_for != camera:  # refuse before writing the PNG, not after
            sizes = {
                "width": made_for.width,
                "height": made_for.height,
                "cw": camera.width,
                "ch": camera.height,
            }
            raise InputError(Message("calib.input.reference_size", {"path": calibration_path, **sizes}))
    grey = to_grey(image, "reference")
    keypoints, _ = orb_features(grey)
    if len(keypoints) < 2 * limits.min_matches:
        found = {"found": len(keypoints), "need": 2 * limits.min_matches}
        raise InputError(Message("calib.input.reference_features", found))
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise InputError(Message("calib.input.reference_encoding"))
    data = encoded.tobytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"{calibration_path.stem}.reference-{digest[:12]}.png"
    atomic_write_bytes(calibration_path.parent / name, data)
    section = ReferenceSection(
        image=name,
        image_sha256=digest,
        focus=focus_score(grey),
        exposure=exposure_stats(grey),
        features=len(keypoints),
        limits=limits,
        taken=datetime.now(timezone.utc).isoformat(),
    )
    update_calibration(calibration_path, camera, reference=section)
    _remove_unused_references(calibration_path)
    return section


def _remove_unused_references(calibration_path: Path) -> None:
    """Delete reference PNGs neither the calibration file nor its `.prev` names."""
    keep = set()
    for path in (calibration_path, calibration_path.with_name(calibration_path.name + ".prev")):
        if not path.exists():
            continue
        try:
            reference = load_calibration(path).reference
        except LinesideError:
            return  # an unreadable .prev might still need its image: delete nothing
        if reference is not None:
            keep.add(reference.image)
    for candidate in calibration_path.parent.glob(f"{glob.escape(calibration_path.stem)}.reference-*.png"):
        if candidate.name not in keep:
            candidate.unlink(missing_ok=True)


def check_frames(
    reference: StationReference, frames: Sequence[tuple[str, Image]], limits: CheckLimits | None = None
) -> CheckReport:
    """Every frame graded; per item, the worst frame's result (a bump in any frame shows)."""
    if not frames:
        raise InputError(Message("calib.input.no_frames"))
    worst: dict[str, CheckItem] = {}
    for origin, image in frames:
        for item in reference.check(image, limits, origin).items:
            held = worst.get(item.name)
            if held is None or item.status.rank > held.status.rank:
                worst[item.name] = item
    return CheckReport(tuple(worst.values()))
