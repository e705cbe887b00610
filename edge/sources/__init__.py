"""Frame sources: image folder and video file replay, OpenCV camera index and stream URL, one interface.

Use `open_source(SourceConfig(...))`; every source returns a validated `Frame` or raises `FrameError`
(this frame is bad) or `SourceUnavailable` (no frame now), and shows its `SourceState`.
"""

from __future__ import annotations

from edge.sources.base import Frame, FrameError, FrameSource, SourceState, SourceUnavailable
from edge.sources.config import SourceConfig, open_source, parse_source_config
from edge.sources.files import FolderSource, VideoFileSource
from edge.sources.live import LiveSource, redact_url

__all__ = [
    "FolderSource",
    "Frame",
    "FrameError",
    "FrameSource",
    "LiveSource",
    "SourceConfig",
    "SourceState",
    "SourceUnavailable",
    "VideoFileSource",
    "open_source",
    "parse_source_config",
    "redact_url",
]
