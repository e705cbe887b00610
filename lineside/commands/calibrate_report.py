"""What `lineside calibrate intrinsics | scale | robot` print: views, RMS, residuals and notes, each line a
catalog message said in the technician's language (docs/i18n.md); the numbers are formatted in the message."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.intrinsics import IntrinsicsResult, ViewResult
from calibration.robot import RobotFit
from calibration.scale import ScaleMeasurement
from edge.i18n import Message, say


def where_saved(path: Path, existed: bool) -> Message:
    """Where a calibration file went, and where the previous one is kept."""
    if existed:
        return Message("calib.where_kept", {"path": path, "name": path.name})
    return Message("calib.where_new", {"path": path})


def kept(path: Path, existed: bool) -> Message | str:
    """' (previous kept as <name>.prev)' after a file that was there before; nothing otherwise."""
    return Message("calib.kept", {"name": path.name}) if existed else ""


def intrinsics_lines(
    result: IntrinsicsResult, folder: Path, board: str, min_sharpness: float, lang: str | None
) -> list[str]:
    """The views one by one, the RMS reprojection error, the camera matrix and the distortion."""
    width, height = result.image_size
    lines = [
        say(
            "calib.intrinsics.head",
            lang,
            used=result.used(),
            total=len(result.views),
            folder=folder,
            board=board,
            width=width,
            height=height,
        )
    ]
    lines += ["  " + _view_line(view, min_sharpness, lang) for view in result.views]
    k = result.camera_matrix
    coefficients = " ".join(
        f"{name} {value:.4f}"
        for name, value in zip(("k1", "k2", "p1", "p2", "k3"), result.distortion, strict=False)
    )
    lines.append(say("calib.intrinsics.rms", lang, rms=result.rms_px, spread=result.tilt_spread_deg))
    lines.append(say("calib.intrinsics.matrix", lang, fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2]))
    lines.append(say("calib.intrinsics.distortion", lang, coefficients=coefficients))
    return lines


def _view_line(view: ViewResult, min_sharpness: float, lang: str | None) -> str:
    name = view.path.name
    if not view.rejected:
        return say("calib.intrinsics.view", lang, name=name, error=view.error_px, sharpness=view.sharpness)
    why: Message | str = view.rejected  # a reason the catalog has no form for is said as it came
    if view.rejected == "board not found":
        why = Message("calib.intrinsics.board_not_found")
    elif view.rejected.startswith("blurred"):
        why = Message("calib.intrinsics.blurred", {"sharpness": view.sharpness, "limit": min_sharpness})
    return say("calib.intrinsics.view_unused", lang, name=name, why=why)


def stale_note(stale: list[str], out: Path, lang: str | None) -> str:
    """Sections measured with other intrinsics, and the commands that measure them again."""
    sections: Message | str = (
        Message("calib.both", {"first": stale[0], "second": stale[1]}) if len(stale) == 2 else stale[0]
    )
    commands = ", ".join(f"lineside calibrate {s}" for s in stale)
    return say("calib.intrinsics.stale", lang, sections=sections, out=out, commands=commands)


def scale_lines(measured: ScaleMeasurement, lang: str | None) -> list[str]:
    """The scale, how it was measured, the plane's tilt and, for a tilted plane, the homography."""
    exact = measured.tilt_from_intrinsics
    where = Message("calib.scale.undistorted" if exact else "calib.scale.raw")
    lines = [
        say("calib.scale.line", lang, mm_per_px=measured.mm_per_px, method=measured.method, where=where),
        say(
            "calib.scale.tilt" if exact else "calib.scale.tilt_approximate",
            lang,
            tilt=measured.tilt_deg,
            variation=measured.variation_pct,
        ),
    ]
    if measured.homography is not None:
        lines.append(say("calib.scale.homography", lang))
    return lines


def robot_lines(fit: RobotFit, lang: str | None) -> list[str]:
    """Each point pair with its residual, then the RMS and the largest residual."""
    lines = [say("calib.robot.head", lang, pairs=len(fit.pairs))]
    for number, (pair, residual) in enumerate(zip(fit.pairs, fit.residuals_mm, strict=True), 1):
        px, py, rx, ry = pair
        lines.append(
            "  " + say("calib.robot.pair", lang, number=number, px=px, py=py, rx=rx, ry=ry, residual=residual)
        )
    largest = float(np.max(fit.residuals_mm))
    lines.append(say("calib.robot.rms", lang, rms=fit.rms_mm, largest=largest))
    return lines
