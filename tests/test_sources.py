"""Frame sources over real files and a real MJPEG server on 127.0.0.1: order, bad frames, loss, recovery."""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.errors import ErrorCode, LinesideError
from edge.sources.base import Frame, FrameError, FrameSource, SourceState, SourceUnavailable
from edge.sources.config import SourceConfig, parse_source_config
from edge.sources.imagecheck import peek_size
from edge.sources.live import LiveSource, redact_url
from edge.sources.opener import open_source

GREY_STEP = 8  # frame n is a flat grey of n * GREY_STEP, so its number survives JPEG


def grey(level: int, width: int = 64, height: int = 48) -> np.ndarray:
    return np.full((height, width, 3), level % 256, dtype=np.uint8)


def grey_level(frame: Frame) -> int:
    return round(float(frame.image.mean()))


def write_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def folder_cfg(folder: Path, **extra: Any) -> SourceConfig:
    return SourceConfig(kind="folder", path=folder, **extra)


@pytest.fixture
def three_images(tmp_path: Path) -> Path:
    # Written out of name order: the source must sort by name, not by creation.
    for name, level in (("b.png", 20), ("c.png", 30), ("a.png", 10)):
        write_png(tmp_path / name, grey(level))
    return tmp_path


# ---- folder ----------------------------------------------------------------------------------


def test_folder_once_reads_in_name_order_then_ends(three_images: Path) -> None:
    source = open_source(folder_cfg(three_images))
    frames = [source.read(1.0) for _ in range(3)]
    assert [grey_level(f) for f in frames] == [10, 20, 30]
    assert [f.index for f in frames] == [0, 1, 2]
    assert [Path(f.origin).name for f in frames] == ["a.png", "b.png", "c.png"]
    with pytest.raises(SourceUnavailable) as info:
        source.read(1.0)
    assert info.value.state is SourceState.ENDED
    assert info.value.code is ErrorCode.CAMERA
    assert source.state is SourceState.ENDED


def test_folder_loop_wraps_to_the_first_file(three_images: Path) -> None:
    source = open_source(folder_cfg(three_images, loop=True))
    assert [grey_level(source.read(1.0)) for _ in range(7)] == [10, 20, 30, 10, 20, 30, 10]
    assert source.state is SourceState.RUNNING


def test_folder_is_listed_once_at_open(three_images: Path) -> None:
    source = open_source(folder_cfg(three_images))
    write_png(three_images / "aa.png", grey(99))  # appears after open: not part of this replay
    source.open()  # a second open (the caller of open_source may repeat it) changes nothing
    assert [grey_level(source.read(1.0)) for _ in range(3)] == [10, 20, 30]


def test_corrupt_files_are_frame_errors_naming_the_file_and_the_next_read_works(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", grey(10))
    (tmp_path / "b.png").write_bytes(b"this is not a png at all")
    jpeg = cv2.imencode(".jpg", (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))[1]
    (tmp_path / "c.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) * 2 // 3])  # truncated
    (tmp_path / "d.png").write_bytes(b"")
    write_png(tmp_path / "e.png", grey(50))
    source = open_source(folder_cfg(tmp_path))
    assert grey_level(source.read(1.0)) == 10
    for name in ("b.png", "c.jpg", "d.png"):
        with pytest.raises(FrameError, match=name) as info:
            source.read(1.0)
        assert info.value.code is ErrorCode.FRAME
        assert source.state is SourceState.RUNNING
    assert grey_level(source.read(1.0)) == 50


def test_frame_of_the_wrong_size_is_a_frame_error(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", grey(10, width=64, height=48))
    write_png(tmp_path / "b.png", grey(20, width=48, height=64))
    source = open_source(folder_cfg(tmp_path, expected_width=64, expected_height=48))
    assert source.read(1.0).image.shape == (48, 64, 3)
    with pytest.raises(FrameError, match=r"b\.png.*48x64, expected 64x48"):
        source.read(1.0)


def test_image_over_max_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    write_png(tmp_path / "huge.png", np.zeros((3000, 4000, 3), dtype=np.uint8))  # a small file
    source = open_source(folder_cfg(tmp_path, max_pixels=1_000_000))
    with pytest.raises(FrameError, match=r"huge\.png.*4000x3000.*max_pixels"):
        source.read(1.0)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff"])
def test_image_size_is_read_from_the_header_of_each_format(ext: str) -> None:
    data = cv2.imencode(ext, grey(0, width=123, height=45))[1].tobytes()
    assert peek_size(data) == (123, 45)


def test_empty_folder_is_a_lineside_error_at_open(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(LinesideError, match="no image files"):
        open_source(folder_cfg(tmp_path))
    with pytest.raises(LinesideError, match="does not exist"):
        open_source(folder_cfg(tmp_path / "missing"))


# ---- video file ------------------------------------------------------------------------------


def write_video(path: Path, count: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for n in range(count):
        writer.write(grey(40 * n))
    writer.release()
    return path


def test_video_once_ends_after_its_frames(tmp_path: Path) -> None:
    source = open_source(SourceConfig(kind="video", path=write_video(tmp_path / "demo.avi", 4)))
    frames = [source.read(1.0) for _ in range(4)]
    assert [round(grey_level(f) / 40) for f in frames] == [0, 1, 2, 3]
    assert frames[3].origin.endswith("demo.avi#frame=3")
    with pytest.raises(SourceUnavailable) as info:
        source.read(1.0)
    assert info.value.state is SourceState.ENDED
    assert source.state is SourceState.ENDED


def test_video_loop_wraps_to_the_first_frame(tmp_path: Path) -> None:
    source = open_source(SourceConfig(kind="video", path=write_video(tmp_path / "demo.avi", 3), loop=True))
    frames = [source.read(1.0) for _ in range(7)]
    assert [round(grey_level(f) / 40) for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert [f.index for f in frames] == list(range(7))
    source.close()
    assert source.state is SourceState.ENDED


def test_unreadable_video_is_a_lineside_error_at_open(tmp_path: Path) -> None:
    (tmp_path / "bad.avi").write_bytes(b"RIFF garbage, not a video")
    with pytest.raises(LinesideError, match=r"bad\.avi"):
        open_source(SourceConfig(kind="video", path=tmp_path / "bad.avi"))


# ---- live stream (HTTP MJPEG on loopback) ----------------------------------------------------


class _MjpegHandler(BaseHTTPRequestHandler):
    server: MjpegServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away
            self.server.stream_to(self)


class MjpegServer(ThreadingHTTPServer):
    """A real MJPEG server; frame n is grey n * GREY_STEP. It goes silent (connection left open) after
    `stall_after` frames of a connection, or once `stalled` is set."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, fps: float = 50.0, stall_after: int | None = None) -> None:
        super().__init__(("127.0.0.1", port), _MjpegHandler)
        self.stop_event = threading.Event()
        self.stalled = threading.Event()
        self.period = 1.0 / fps
        self.stall_after = stall_after
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def stream_to(self, handler: BaseHTTPRequestHandler) -> None:
        n = 0
        while not self.stop_event.is_set():
            if self.stalled.is_set() or (self.stall_after is not None and n >= self.stall_after):
                self.stop_event.wait(10.0)
                return
            jpeg = cv2.imencode(".jpg", grey(n * GREY_STEP))[1].tobytes()
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            handler.wfile.write(head + jpeg + b"\r\n")
            handler.wfile.flush()
            n += 1
            self.stop_event.wait(self.period)

    def stop(self) -> None:
        self.stop_event.set()  # handlers return and their connections close
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=2.0)


@pytest.fixture
def mjpeg_server() -> Any:
    server = MjpegServer()
    yield server
    if not server.stop_event.is_set():
        server.stop()


def stream_cfg(url: str, **extra: Any) -> SourceConfig:
    timing = {
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "open_timeout_s": 1.0,
        "read_timeout_s": 1.0,
    }
    return SourceConfig(kind="stream", url=url, **{**timing, **extra})


def wait_for_state(source: FrameSource, state: SourceState, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while source.state is not state and time.monotonic() < deadline:
        time.sleep(0.02)
    assert source.state is state


def test_stream_latest_read_returns_a_frame_captured_after_the_read_started(
    mjpeg_server: MjpegServer,
) -> None:
    source = open_source(stream_cfg(mjpeg_server.url))
    try:
        source.open()  # a second open is harmless: open_source already opened it
        assert source.state is SourceState.RUNNING
        for n in range(5):
            called = time.monotonic()
            frame = source.read(1.0)
            assert frame.timestamp >= called
            assert time.monotonic() - called < 0.5  # the next frame of a 50 fps stream, not a backlog
            assert frame.index == n
            assert frame.image.shape == (48, 64, 3)
            assert frame.origin == mjpeg_server.url
    finally:
        source.close()


def test_stream_fifo_serves_every_frame_in_capture_order(mjpeg_server: MjpegServer) -> None:
    source = open_source(stream_cfg(mjpeg_server.url, buffer="fifo", fifo_depth=64))
    try:
        numbers = [round(grey_level(source.read(1.0)) / GREY_STEP) for _ in range(6)]
        assert numbers == list(range(numbers[0], numbers[0] + 6))
    finally:
        source.close()


def test_stream_lost_is_reconnecting_and_recovers_when_the_server_returns(mjpeg_server: MjpegServer) -> None:
    source = open_source(stream_cfg(mjpeg_server.url))
    try:
        source.read(1.0)
        port = mjpeg_server.port
        mjpeg_server.stop()
        wait_for_state(source, SourceState.RECONNECTING, within_s=3.0)
        called = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            source.read(1.0)
        assert time.monotonic() - called < 0.2  # lost means fail now, not wait out the timeout
        assert info.value.state is SourceState.RECONNECTING
        assert not info.value.timed_out
        restarted = MjpegServer(port=port)
        try:
            wait_for_state(source, SourceState.RUNNING, within_s=3.0)
            called = time.monotonic()
            assert source.read(1.0).timestamp >= called
            assert isinstance(source, LiveSource) and source.reconnects >= 1
        finally:
            restarted.stop()
    finally:
        source.close()


def test_stalled_stream_read_respects_its_timeout_then_counts_as_lost(mjpeg_server: MjpegServer) -> None:
    source = open_source(stream_cfg(mjpeg_server.url, read_timeout_s=0.5))
    try:
        source.read(1.0)
        mjpeg_server.stalled.set()
        time.sleep(0.1)  # let the frames already on the wire arrive
        called = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            source.read(0.2)
        assert 0.2 <= time.monotonic() - called < 0.4
        assert info.value.timed_out and info.value.state is SourceState.RUNNING
        wait_for_state(source, SourceState.RECONNECTING, within_s=3.0)  # OpenCV's read timeout fired
    finally:
        closing = time.monotonic()
        source.close()
        assert time.monotonic() - closing < 2.5
    assert source.state is SourceState.ENDED
    with pytest.raises(SourceUnavailable) as info:
        source.read(0.1)
    assert info.value.state is SourceState.ENDED


def test_frames_buffered_while_connecting_are_never_served_as_fresh() -> None:
    server = MjpegServer(stall_after=3)  # three frames arrive during open, then nothing
    try:
        source = open_source(stream_cfg(server.url, read_timeout_s=0.5))
        try:
            with pytest.raises(SourceUnavailable):
                source.read(0.3)
            assert source.state is not SourceState.RUNNING
        finally:
            source.close()
    finally:
        server.stop()


def test_capture_latency_is_taken_off_the_timestamp_before_the_freshness_check(
    mjpeg_server: MjpegServer,
) -> None:
    source = open_source(stream_cfg(mjpeg_server.url, capture_latency_s=0.1))
    try:
        called = time.monotonic()
        frame = source.read(1.0)
        assert frame.timestamp >= called
        assert time.monotonic() - called >= 0.1  # a frame that arrived sooner was exposed before the call
    finally:
        source.close()


def test_camera_index_without_a_device_is_reconnecting_and_read_raises() -> None:
    if Path("/dev/video63").exists():
        pytest.skip("a real /dev/video63 exists here")
    source = open_source(SourceConfig(kind="camera", index=63, reconnect_initial_s=0.05, open_timeout_s=1.0))
    try:
        assert source.state is SourceState.RECONNECTING
        with pytest.raises(SourceUnavailable) as info:
            source.read(0.5)
        assert info.value.state is SourceState.RECONNECTING
        assert "camera:63" in source.describe()
    finally:
        source.close()


# ---- records and config ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((48, 64), np.uint8),
        np.zeros((48, 64, 3), np.float32),
        np.zeros((0, 64, 3), np.uint8),
        np.zeros((48, 64, 4), np.uint8),
    ],
    ids=["grey", "float", "empty", "four-channel"],
)
def test_frame_refuses_anything_but_hxwx3_uint8(image: np.ndarray) -> None:
    with pytest.raises(FrameError, match="cam"):
        Frame(image=image, index=0, timestamp=time.monotonic(), origin="cam")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kind": "folder"}, "path"),
        ({"kind": "camera"}, "index"),
        ({"kind": "stream", "url": "ftp://x/y"}, "url"),
        ({"kind": "camera", "index": 0, "url": "rtsp://x/y"}, "url"),
        ({"kind": "camera", "index": 0, "loop": True}, "loop"),
        ({"kind": "folder", "path": "p", "expected_width": 64}, "expected_height"),
        ({"kind": "camera", "index": 0, "reconnect_initial_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
        ({"kind": "camera", "index": 0, "buffer": "newest"}, "buffer"),
        ({"kind": "camera", "index": 0, "fps": 30}, "fps"),
    ],
)
def test_config_errors_name_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        SourceConfig.model_validate(fields)
    with pytest.raises(LinesideError, match=named) as info:
        parse_source_config(fields)
    assert "\n" not in str(info.value)


def test_stream_url_password_is_redacted() -> None:
    assert redact_url("rtsp://op:s3cret@10.0.0.5:554/live") == "rtsp://op:***@10.0.0.5:554/live"
    assert redact_url("http://10.0.0.5/video.mjpg") == "http://10.0.0.5/video.mjpg"
    source = LiveSource(SourceConfig(kind="stream", url="rtsp://op:s3cret@127.0.0.1:9/x"))
    assert "s3cret" not in source.describe()
