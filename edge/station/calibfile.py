"""The station calibration file the runtime reads: frame size, lens model, mm scale, robot plane, ...

`lineside calibrate` writes these files (atomically, keeping the previous one); the runtime only reads
them, through the same pydantic model, and refuses one made for another camera resolution.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.atomic import atomic_write_bytes, atomic_write_text
from edge.errors import LinesideError
from edge.geometry import Scale, map_point
from edge.jsonmodel import read_json_model
from edge.station.calibsections import ReferenceSection, StationRoi, ThresholdsSection

CALIBRATION_SCHEMA = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraFrame(_Strict):
    """The frame size the calibration was measured on; any other size makes it meaningless."""

    width: int = Field(gt=0, le=20000, description="Frame width in pixels.")
    height: int = Field(gt=0, le=20000, description="Frame height in pixels.")


class ScaleSection(_Strict):
    """Millimetres per pixel on the working plane."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mm_per_px: float = Field(gt=0, le=1000, description="Length on the part's plane of one pixel, in mm.")
    method: str = Field("", description="How it was measured, e.g. 'chessboard 9x6 10mm'.")
    homography: tuple[float, ...] | None = Field(
        None,
        min_length=9,
        max_length=9,
        description=(
            "Tilted plane only: 3x3 row-major frame pixels -> plane mm (origin at the frame's top-left, axes"
            " along the image's at its centre); mm_per_px is then the scale at the frame centre."
        ),
    )
    tilt_deg: float | None = Field(None, ge=0, le=90, description="Plane tilt to the camera axis, degrees.")
    intrinsics_id: str = Field(
        "", description="Fingerprint of the intrinsics that undistorted its frames; '' = raw frames."
    )


Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


class IntrinsicsSection(_Strict):
    """The lens model: present = the runtime undistorts every frame (undistort.py) before anything else.

    Only the matrices are stored; the undistortion map is computed from them when the file is loaded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    camera_matrix: Matrix3 = Field(description="Raw frames' matrix [[fx,0,cx],[0,fy,cy],[0,0,1]], px.")
    distortion: tuple[float, ...] = Field(
        min_length=4, max_length=14, description="OpenCV distortion coefficients: k1, k2, p1, p2[, k3, ...]."
    )
    undistorted_matrix: Matrix3 = Field(
        description="Pinhole matrix of the undistorted frames (scaled so that every pixel is valid)."
    )
    rms_px: float = Field(ge=0, description="RMS reprojection error of the calibration, pixels.")
    views: int = Field(ge=1, description="Board views it was computed from.")
    board: str = Field("", description="The board spec used, e.g. 'chessboard:9x6:10mm'.")
    forced: bool = Field(False, description="Saved with --force although its RMS was over the limit.")

    @field_validator("camera_matrix", "undistorted_matrix")
    @classmethod
    def _is_pinhole(cls, matrix: Matrix3) -> Matrix3:
        if matrix[0][0] <= 0 or matrix[1][1] <= 0 or matrix[2] != (0.0, 0.0, 1.0):
            raise ValueError("needs fx, fy > 0 and a last row 0, 0, 1")
        return matrix

    def fingerprint(self) -> str:
        """Identifies the pixel space of frames undistorted with these intrinsics."""
        numbers = [self.camera_matrix, self.distortion, self.undistorted_matrix]
        return hashlib.sha256(json.dumps(numbers).encode()).hexdigest()[:12]


class RobotSection(_Strict):
    """Frame pixels -> robot-plane millimetres, fitted from point pairs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    homography: tuple[float, ...] = Field(
        min_length=9, max_length=9, description="3x3 row-major homography, frame pixels -> robot plane mm."
    )
    pairs: int = Field(ge=4, description="Point pairs it was fitted to.")
    rms_mm: float = Field(ge=0, description="RMS residual over the pairs, mm.")
    max_residual_mm: float = Field(ge=0, description="Largest residual over the pairs, mm.")
    intrinsics_id: str = Field(
        "", description="Fingerprint of the intrinsics of the undistorted frames its pixels are in; '' = raw."
    )


@dataclass(frozen=True)
class RobotPlane:
    """Where a frame point is on the robot's working plane, in the robot's mm."""

    homography: tuple[float, ...]

    def to_robot(self, x: float, y: float) -> tuple[float, float]:
        """Frame pixel (x, y) as robot-plane (x, y) in mm."""
        return map_point(self.homography, x, y)


class CalibrationFile(_Strict):
    """One station calibration; sections other tools add (intrinsics, ROI, checks) extend this model."""

    schema_version: int = Field(CALIBRATION_SCHEMA, alias="schema", description="File format version.")
    camera: CameraFrame
    intrinsics: IntrinsicsSection | None = Field(None, description="Lens model; absent = raw frames.")
    scale: ScaleSection | None = Field(None, description="mm scale; absent = rules work in pixels.")
    robot: RobotSection | None = Field(None, description="Robot plane; absent = no robot coordinates.")
    roi: StationRoi | None = Field(None, description="Region of interest; recipes without one use it.")
    reference: ReferenceSection | None = Field(None, description="Baseline of the station check.")
    thresholds: ThresholdsSection | None = Field(
        None, description="Per-class thresholds from this station's golden samples."
    )
    created: str = Field("", description="ISO time the calibration was made.")
    tool_version: str = Field("", description="lineside version that wrote it.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _scale_homography_covers_the_frame(self) -> CalibrationFile:
        # A homography whose horizon crosses the frame maps some pixels nowhere: refuse it at load.
        homography = self.scale.homography if self.scale is not None else None
        if homography is not None:
            w, h = self.camera.width, self.camera.height
            signs = {
                homography[6] * x + homography[7] * y + homography[8] > 0
                for x, y in ((0, 0), (w, 0), (0, h), (w, h))
            }
            if len(signs) != 1:
                raise ValueError("scale.homography: the plane's horizon crosses the frame")
        return self

    def scale_for(self, frame_shape: tuple[int, ...], origin: str = "calibration") -> Scale | None:
        """The scale for a frame of this shape; LinesideError if the frame size is not the calibrated one."""
        check_frame_size(self.camera, frame_shape, origin)
        if self.scale is None:
            return None
        self._check_pixel_space("scale", self.scale.intrinsics_id, origin)
        return Scale(self.scale.mm_per_px, self.scale.homography)

    def robot_plane_for(self, frame_shape: tuple[int, ...], origin: str = "calibration") -> RobotPlane | None:
        """The robot plane for a frame of this shape, None if not calibrated; LinesideError as scale_for."""
        check_frame_size(self.camera, frame_shape, origin)
        if self.robot is None:
            return None
        self._check_pixel_space("robot", self.robot.intrinsics_id, origin)
        return RobotPlane(self.robot.homography)

    def intrinsics_id(self) -> str:
        """Fingerprint of the pixel space the runtime's frames are in: '' raw, else undistorted."""
        return self.intrinsics.fingerprint() if self.intrinsics is not None else ""

    def _check_pixel_space(self, section: str, measured_on: str, origin: str) -> None:
        # Measured before the lens was (re)calibrated = other pixels than the runtime's: refuse, never guess.
        current = self.intrinsics_id()
        if measured_on != current:
            if not measured_on:
                why = "on raw frames, but the runtime now undistorts them"
            else:
                why = "on frames undistorted with other intrinsics" if current else "on undistorted frames"
            raise LinesideError(
                f"{origin}: {section} was measured {why}: re-run `lineside calibrate {section}`"
            )


def check_frame_size(camera: CameraFrame, frame_shape: tuple[int, ...], origin: str) -> None:
    """LinesideError if a frame of this (height, width[, channels]) shape is not the calibrated size."""
    height, width = int(frame_shape[0]), int(frame_shape[1])
    if (width, height) != (camera.width, camera.height):
        raise LinesideError(
            f"{origin}: made for {camera.width}x{camera.height} frames, "
            f"this frame is {width}x{height}: recalibrate"
        )


def save_calibration(path: Path, calibration: CalibrationFile) -> Path:
    """Write atomically (temp file, fsync, rename), keeping the file it replaces as `<name>.prev`."""
    text = json.dumps(calibration.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2) + "\n"
    if path.exists():
        # Copy the old file to .prev (not rename it): whichever step fails, `path` is old or new, never gone.
        atomic_write_bytes(path.with_name(path.name + ".prev"), path.read_bytes())
    return atomic_write_text(path, text)


def update_calibration(path: Path, camera: CameraFrame, **sections: object) -> CalibrationFile:
    """Replace some sections of the file at `path` (created if absent), keep the others, save atomically.

    A file made for another frame size cannot be updated piecemeal: its other sections would not fit.
    """
    current = load_calibration(path) if path.exists() else CalibrationFile(camera=camera)
    if current.camera != camera:
        raise LinesideError(
            f"{path}: made for {current.camera.width}x{current.camera.height} frames, these are "
            f"{camera.width}x{camera.height}: start a new calibration file"
        )
    updated = current.model_copy(update={**sections, "created": datetime.now(timezone.utc).isoformat()})
    # Re-validate: model_copy does not, and the sections came from a command's own computation.
    updated = CalibrationFile.model_validate(updated.model_dump(by_alias=True))
    save_calibration(path, updated)
    return updated


def load_calibration(path: Path) -> CalibrationFile:
    """Read and validate a calibration file; one-line LinesideError naming the file and field."""
    calibration = read_json_model(path, CalibrationFile, "calibration file")
    if calibration.schema_version != CALIBRATION_SCHEMA:
        raise LinesideError(f"{path}: schema {calibration.schema_version} is not {CALIBRATION_SCHEMA}")
    return calibration
