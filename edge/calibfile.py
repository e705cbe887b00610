"""The station calibration file the runtime reads: which frame size it was made for, and the mm scale.

`lineside calibrate` writes these files (atomically, keeping the previous one); the runtime only reads
them, through the same pydantic model, and refuses one made for another camera resolution.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from edge.geometry import Scale
from edge.jsonmodel import read_json_model

CALIBRATION_SCHEMA = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraFrame(_Strict):
    """The frame size the calibration was measured on; any other size makes it meaningless."""

    width: int = Field(gt=0, le=20000, description="Frame width in pixels.")
    height: int = Field(gt=0, le=20000, description="Frame height in pixels.")


class ScaleSection(_Strict):
    """Millimetres per pixel on the working plane."""

    mm_per_px: float = Field(gt=0, le=1000, description="Length on the part's plane of one pixel, in mm.")
    method: str = Field("", description="How it was measured, e.g. 'chessboard 9x6 10mm'.")


class CalibrationFile(_Strict):
    """One station calibration; sections other tools add (intrinsics, ROI, checks) extend this model."""

    schema_version: int = Field(CALIBRATION_SCHEMA, alias="schema", description="File format version.")
    camera: CameraFrame
    scale: ScaleSection | None = Field(None, description="mm scale; absent = rules work in pixels.")
    created: str = Field("", description="ISO time the calibration was made.")
    tool_version: str = Field("", description="lineside version that wrote it.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def scale_for(self, frame_shape: tuple[int, ...], origin: str = "calibration") -> Scale | None:
        """The scale for a frame of this shape; LinesideError if the frame size is not the calibrated one."""
        height, width = int(frame_shape[0]), int(frame_shape[1])
        if (width, height) != (self.camera.width, self.camera.height):
            raise LinesideError(
                f"{origin}: made for {self.camera.width}x{self.camera.height} frames, "
                f"this frame is {width}x{height}: recalibrate"
            )
        return Scale(self.scale.mm_per_px) if self.scale is not None else None


def save_calibration(path: Path, calibration: CalibrationFile) -> Path:
    """Write atomically (temp file, fsync, rename), keeping the file it replaces as `<name>.prev`."""
    text = json.dumps(calibration.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2) + "\n"
    return atomic_write_text(path, text, keep_previous=True)


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
