"""Frames for the calibration commands: image files, image folders, a station's own source, PNG output.

Everything that cannot be read is a one-line error naming the file; nothing is skipped quietly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import InputError
from edge.atomic import atomic_write_bytes
from edge.i18n import Message
from edge.sources.config import SourceConfig
from edge.sources.imagecheck import read_image_file
from edge.sources.opener import open_source
from edge.station.calibfile import CalibrationFile, CameraFrame, load_calibration
from edge.station.config import load_config
from edge.station.undistort import Undistorter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

Image = npt.NDArray[np.uint8]


def read_image(path: Path) -> Image:
    """One image file as HxWx3 BGR, size-checked from its header before decoding."""
    if not path.is_file():
        raise InputError(Message("calib.input.no_image", {"path": path}))
    return read_image_file(path, SourceConfig(kind="folder", path=path.parent))


def load_if_present(calibration_path: Path) -> CalibrationFile | None:
    """The calibration file, or None when there is none yet (a command may start a new one)."""
    return load_calibration(calibration_path) if calibration_path.exists() else None


def runtime_frame(calibration: CalibrationFile | None, image: Image, origin: str) -> Image:
    """The frame as the runtime's detector sees it: undistorted when the station has intrinsics.

    ROI, detections and thresholds live in that pixel space; the station check uses raw frames.
    """
    undistorter = Undistorter.from_calibration(calibration, origin) if calibration is not None else None
    return image if undistorter is None else np.asarray(undistorter.apply(image), dtype=np.uint8)


def camera_of(image: Image) -> CameraFrame:
    return CameraFrame(width=int(image.shape[1]), height=int(image.shape[0]))


def list_images(folder: Path) -> list[Path]:
    """The image files in `folder` (and below), in name order; InputError if missing or empty."""
    if not folder.is_dir():
        raise InputError(Message("calib.input.no_folder", {"path": folder}))
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise InputError(Message("calib.input.no_images", {"path": folder, "suffixes": suffixes}))
    return images


def grab_frames(config_path: Path, count: int) -> list[tuple[str, Image]]:
    """`count` frames from the source of a station config, each labelled with where it came from.

    Each read waits at most the source's open + read timeouts; a source that delivers nothing in that
    time is an error, not fewer frames.
    """
    if count < 1:
        raise InputError(Message("calib.input.frames_count", {"count": count}))
    source_cfg = load_config(config_path).source
    timeout_s = source_cfg.open_timeout_s + source_cfg.read_timeout_s
    source = open_source(source_cfg)
    try:
        frames = []
        for _ in range(count):
            frame = source.read(timeout_s)
            frames.append((f"{frame.origin} #{frame.index}", frame.image))
        return frames
    finally:
        source.close()


def write_png(path: Path, image: Image) -> Path:
    """Write a PNG atomically (a reader never sees half of it)."""
    if path.suffix.lower() != ".png":
        raise InputError(Message("calib.input.not_png", {"path": path}))
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise InputError(Message("calib.input.png_encoding", {"path": path}))
    return atomic_write_bytes(path, encoded.tobytes())
