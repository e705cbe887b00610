"""The `source:` section of the appliance config (`edge/sources/opener.py` turns it into a running source).

Every field is documented; unknown keys and fields that do not belong to the chosen kind are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import LinesideError

_FILE_KINDS = ("folder", "video")
_URL_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp", "srt")


class SourceConfig(BaseModel):
    """Where frames come from and how a bad, huge, lost or stale frame is handled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["folder", "video", "camera", "stream", "genicam"] = Field(
        ...,
        description="folder: replay image files in name order; video: replay a video file; "
        "camera: an OpenCV camera index (USB/V4L2); stream: an RTSP/HTTP(S) URL read through FFMPEG; "
        "genicam: an industrial GigE Vision/USB3 Vision camera through the Basler pylon SDK "
        "(pip install 'lineside[genicam]'; see docs/cameras.md).",
    )
    path: Path | None = Field(
        None, description="folder or video kind: the image folder or the video file. Not used otherwise."
    )
    index: int | None = Field(
        None, ge=0, description="camera kind: the OpenCV camera index (0 = /dev/video0). Not used otherwise."
    )
    url: str | None = Field(
        None,
        description="stream kind: the stream URL, e.g. rtsp://user:pass@10.0.0.5/stream1 or "
        "http://10.0.0.5/video.mjpg. Passwords are redacted in logs and records.",
    )
    serial: str | None = Field(
        None, min_length=1, description="genicam kind: the camera's serial number (set serial or user_id)."
    )
    user_id: str | None = Field(
        None,
        min_length=1,
        description="genicam kind: the camera's DeviceUserID, a name written into the camera (set serial or "
        "user_id); lets a replaced camera take over without a config change.",
    )
    pixel_format: str | None = Field(
        None,
        min_length=1,
        description="genicam kind: the camera's PixelFormat, e.g. Mono8, BayerRG8, BGR8; frames are "
        "converted to BGR. Default: leave the camera's setting.",
    )
    exposure_us: float | None = Field(
        None,
        gt=0,
        description="genicam kind: ExposureTime in microseconds (auto exposure is switched off). "
        "Default: leave the camera's setting.",
    )
    gain_db: float | None = Field(
        None,
        ge=0,
        description="genicam kind: Gain in dB (auto gain is switched off). "
        "Default: leave the camera's setting.",
    )
    trigger: Literal["free_run", "software", "hardware"] | None = Field(
        None,
        description="genicam kind (default free_run): free_run: the camera streams at its own rate; "
        "software: each read fires a software trigger and waits for that frame; hardware: the camera "
        "exposes on an edge on trigger_line (use with trigger.mode hardware and buffer fifo).",
    )
    trigger_line: str | None = Field(
        None,
        min_length=1,
        description="genicam kind with trigger hardware: the TriggerSource input, e.g. Line1 (the default).",
    )
    loop: bool = Field(
        False,
        description="folder or video kind: start again at the first frame after the last one. "
        "When false the source ENDs and every later read fails (a FAULT), as a camera that stopped would.",
    )
    expected_width: int | None = Field(
        None, gt=0, description="If set (with expected_height), a frame of another width is a FrameError."
    )
    expected_height: int | None = Field(
        None, gt=0, description="If set (with expected_width), a frame of another height is a FrameError."
    )
    max_pixels: int = Field(
        40_000_000,
        gt=0,
        description="Refuse frames with more pixels than this (FrameError). Image files are checked from "
        "their header before decoding, so a decompression bomb cannot exhaust memory.",
    )
    reconnect_initial_s: float = Field(
        0.5, gt=0, le=60, description="Live sources: first wait before reopening a lost camera/stream."
    )
    reconnect_max_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Live sources: the wait doubles after each failed reopen, up to this cap.",
    )
    open_timeout_s: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Live sources: the longest one open attempt may take (streams: OpenCV's "
        "CAP_PROP_OPEN_TIMEOUT_MSEC), and how long open() waits for the first attempt.",
    )
    read_timeout_s: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Streams: the longest OpenCV waits for the next frame (CAP_PROP_READ_TIMEOUT_MSEC) "
        "before the stream counts as lost and is reopened. genicam: the longest wait for a frame after a "
        "software trigger, or between free-running frames, before the camera counts as lost and is reopened.",
    )
    buffer: Literal["latest", "fifo"] = Field(
        "latest",
        description="Live sources. latest: every read returns a frame captured after the read started "
        "(the triggered-part rule: a part is judged on a frame taken after its trigger); older frames are "
        "skipped without decoding. fifo: every frame is queued in order (free-running), up to fifo_depth; "
        "on overflow the oldest is dropped and counted.",
    )
    capture_latency_s: float = Field(
        0.0,
        ge=0,
        le=5,
        description="Live sources: the camera/encoder delay from exposure until OpenCV hands over the "
        "frame (RTSP cameras: often 0.1-0.5 s). Subtracted from frame timestamps, so with buffer=latest a "
        "triggered part waits for a frame exposed after its trigger. Measure it; 0 trusts arrival time.",
    )
    fifo_depth: int = Field(
        8, ge=1, le=1000, description="Live sources with buffer=fifo: frames queued before the oldest drop."
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> SourceConfig:
        needs = {"folder": "path", "video": "path", "camera": "index", "stream": "url"}.get(self.kind)
        for name in ("path", "index", "url"):
            given = getattr(self, name) is not None
            if name == needs and not given:
                raise ValueError(f"field '{name}' is required when kind is '{self.kind}'")
            if name != needs and given:
                raise ValueError(f"field '{name}' is not used when kind is '{self.kind}'; remove it")
        if self.loop and self.kind not in _FILE_KINDS:
            raise ValueError(f"field 'loop' applies to folder and video only, not kind '{self.kind}'")
        if (self.expected_width is None) != (self.expected_height is None):
            raise ValueError("fields 'expected_width' and 'expected_height' must be set together")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("field 'reconnect_max_s' must be >= reconnect_initial_s")
        _check_genicam_fields(self)
        if self.url is not None:
            scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
            if scheme not in _URL_SCHEMES:
                raise ValueError(f"field 'url' must start with one of {', '.join(_URL_SCHEMES)}://")
        return self

    @property
    def expected_size(self) -> tuple[int, int] | None:
        """(width, height) every frame must have, or None to accept any size."""
        if self.expected_width is None or self.expected_height is None:
            return None
        return (self.expected_width, self.expected_height)


def _check_genicam_fields(cfg: SourceConfig) -> None:
    """The genicam fields: only with kind genicam, which needs exactly one way to find its camera."""
    fields = ("serial", "user_id", "pixel_format", "exposure_us", "gain_db", "trigger", "trigger_line")
    if cfg.kind != "genicam":
        for name in fields:
            if getattr(cfg, name) is not None:
                raise ValueError(f"field '{name}' applies to kind 'genicam' only, not '{cfg.kind}'")
        return
    if (cfg.serial is None) == (cfg.user_id is None):
        raise ValueError("kind 'genicam' needs exactly one of the fields 'serial' or 'user_id'")
    if cfg.trigger_line is not None and cfg.trigger != "hardware":
        raise ValueError("field 'trigger_line' applies to trigger 'hardware' only")


def parse_source_config(data: Mapping[str, Any], where: str = "source") -> SourceConfig:
    """Validate a `source:` mapping; a mistake is one LinesideError line naming the field."""
    try:
        return SourceConfig.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        at = f"{where}.{field}" if field else where
        raise LinesideError(f"{at}: {first['msg']}") from None
