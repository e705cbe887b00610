"""Frame sources: image folder and video file replay, OpenCV camera index and stream URL, one interface.

Use `open_source(SourceConfig(...))`; every source returns a validated `Frame` or raises `FrameError`
(this frame is bad) or `SourceUnavailable` (no frame now), and shows its `SourceState`.

Import from the submodules (base, config, files, live); this package imports nothing.
"""
