"""Bad input, table-driven: each is refused with ONE line naming the file/field, and leaves nothing
half-written behind (the folders it touched are byte-for-byte as before)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.errors import LinesideError
from edge.judge.detector.detector import Detector
from edge.sources.base import FrameError
from edge.sources.config import parse_source_config
from edge.sources.imagecheck import read_image_file
from edge.station.calibfile import CameraFrame, check_frame_size
from edge.station.config import load_config
from edge.station.preflight import preflight
from tests.line import make_station
from tests.models import ModelBox, make_yolo_model


def tree(root: Path) -> dict[str, str]:
    """Every file under root with its sha256: 'nothing half-written' means this does not change."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def edit_config(config: Path, section: str, key: str, value: object) -> None:
    data = yaml.safe_load(config.read_text())
    data[section][key] = value
    config.write_text(yaml.safe_dump(data))


def check_station(config: Path) -> None:
    preflight(load_config(config))


def open_model(model_dir: Path) -> None:
    Detector(model_dir)


def lying_model(tmp: Path, **kwargs: object) -> Path:
    return make_yolo_model(tmp / "lying", ["scratch", "pit"], [ModelBox(32, 32, 10, 10, 0, 0.9)], **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path, Path], Callable[[], None]]  # (tmp, station config) -> the call that must refuse
    says: str  # the one line names this


def _card_sha(tmp: Path, config: Path) -> Callable[[], None]:
    card = tmp / "model" / "card.json"
    data = json.loads(card.read_text())
    data["sha256"] = "0" * 64
    card.write_text(json.dumps(data))
    return lambda: check_station(config)


def _config(section: str, key: str, value: object) -> Callable[[Path, Path], Callable[[], None]]:
    def make(tmp: Path, config: Path) -> Callable[[], None]:
        edit_config(config, section, key, value)
        return lambda: check_station(config)

    return make


def _image(data: bytes, **source: object) -> Callable[[Path, Path], Callable[[], None]]:
    def make(tmp: Path, config: Path) -> Callable[[], None]:
        path = tmp / "bad-image.png"
        path.write_bytes(data)
        cfg = parse_source_config({"kind": "folder", "path": str(tmp), **source})

        def read() -> None:
            read_image_file(path, cfg)

        return read

    return make


def _model(**lie: object) -> Callable[[Path, Path], Callable[[], None]]:
    def make(tmp: Path, config: Path) -> Callable[[], None]:
        model = lying_model(tmp, **lie)
        return lambda: open_model(model)

    return make


def _png(width: int, height: int) -> bytes:
    return bytes(cv2.imencode(".png", np.full((height, width, 3), 40, np.uint8))[1].tobytes())


def _huge_png_header() -> bytes:
    # A valid PNG signature and IHDR claiming 100000 x 100000 pixels: refused from the header alone.
    ihdr = (100000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0" * 4


CASES = [
    Case("config-unknown-key", _config("records", "quota_mbb", 5), "quota_mbb"),
    Case("config-wrong-type", _config("robot_link", "port", "five-oh-two"), "port"),
    Case("config-out-of-range", _config("records", "jpeg_quality", 500), "jpeg_quality"),
    Case("card-wrong-sha256", _card_sha, "sha256"),
    Case("card-wrong-input-size", _model(onnx_imgsz=(96, 96)), "input"),
    Case("card-wrong-class-count", _model(card_classes=["scratch", "pit", "dent"]), "class"),
    Case("onnx-external-data", _model(external_data=True), "external"),
    Case("image-empty", _image(b""), "empty"),
    Case("image-truncated", _image(_png(160, 120)[:60]), "bad-image.png"),
    Case("image-not-an-image", _image(b"GIF? no: plain text, not pixels\n" * 10), "bad-image.png"),
    Case("image-huge", _image(_huge_png_header()), "max_pixels"),
    Case("image-wrong-size", _image(_png(80, 60), expected_width=160, expected_height=120), "expected"),
    Case(
        "calibration-other-resolution",
        lambda t, c: (
            lambda: check_frame_size(CameraFrame(width=640, height=480), (120, 160, 3), "calib.json")
        ),
        "640x480",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(case: Case, tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "g")
    call = case.make(tmp_path, config)
    before = tree(tmp_path)
    with pytest.raises((LinesideError, FrameError)) as refused:
        call()
    message = str(refused.value)
    assert "\n" not in message.strip(), f"more than one line: {message!r}"
    assert case.says in message, message
    assert tree(tmp_path) == before, "something was written or changed while refusing"
