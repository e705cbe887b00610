"""Opens the frame source a `source:` section describes.

Kept apart from `edge/sources/config.py` so that every process can read the config without loading OpenCV,
and so that the source modules, which read their config, and the code that picks one never import each other.
"""

from __future__ import annotations

from edge.sources.base import FrameSource
from edge.sources.config import SourceConfig
from edge.sources.files import FolderSource, VideoFileSource
from edge.sources.live import LiveSource


def open_source(cfg: SourceConfig) -> FrameSource:
    """Build the source `cfg` describes and open it (LinesideError for what the user must fix).

    A live source that cannot connect yet is returned in state RECONNECTING, not raised: the
    appliance keeps retrying and every trigger meanwhile gets a FAULT.
    """
    source: FrameSource
    if cfg.kind == "folder":
        source = FolderSource(cfg)
    elif cfg.kind == "video":
        source = VideoFileSource(cfg)
    elif cfg.kind == "genicam":
        from edge.sources.genicam import GenicamSource  # the SDK is an optional extra, loaded only here

        source = GenicamSource(cfg)
    else:
        source = LiveSource(cfg)
    source.open()
    return source
