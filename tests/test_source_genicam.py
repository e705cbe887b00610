"""The GenICam source against pylon's camera emulation (pypylon wheel, PYLON_CAMEMU): free run, software and
hardware trigger, exposure and gain read back, a lost camera reconnects, a missing SDK is one clear line.

The emulated camera lives inside this process; it cannot be unplugged, so "the camera disappears" is the
SDK's device handle closed behind the source's back (every later call on it raises, as after an unplug),
and "the camera is absent" is a serial number no camera has.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.errors import LinesideError
from edge.sources.base import SourceState, SourceUnavailable
from edge.sources.config import SourceConfig, parse_source_config
from edge.sources.opener import open_source
from tests.line import lineside, make_station, running_line

EMULATED_SERIAL = "0815-0000"  # pylon's first emulated camera
EMU_WIDTH, EMU_HEIGHT = 1024, 1040


@pytest.fixture(scope="module")
def pylon() -> Any:
    """pypylon with one emulated camera; the emulation count is read when the SDK starts, so set it first."""
    os.environ.setdefault("PYLON_CAMEMU", "1")
    try:
        from pypylon import pylon as sdk
    except ImportError as exc:
        pytest.skip(f"pypylon (pip install 'lineside[genicam]') is not installed: {exc}")
    serials = [d.GetSerialNumber() for d in sdk.TlFactory.GetInstance().EnumerateDevices()]
    if EMULATED_SERIAL not in serials:
        pytest.skip(f"pylon camera emulation is not available (PYLON_CAMEMU); cameras found: {serials}")
    return sdk


def genicam_cfg(**fields: Any) -> SourceConfig:
    base: dict[str, Any] = {"kind": "genicam", "serial": EMULATED_SERIAL, "open_timeout_s": 5}
    return parse_source_config({**base, **fields})


@contextmanager
def opened(cfg: SourceConfig) -> Iterator[Any]:
    source = open_source(cfg)
    try:
        yield source
    finally:
        started = time.monotonic()
        source.close()
        assert time.monotonic() - started < 5, "close() must be bounded"


def wait_state(source: Any, state: SourceState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while source.state is not state:
        assert time.monotonic() < deadline, f"source stayed {source.state.value}, expected {state.value}"
        time.sleep(0.02)


def test_free_run_frames_arrive_with_exposure_and_gain_read_back_from_the_camera(pylon: Any) -> None:
    cfg = genicam_cfg(pixel_format="Mono8", exposure_us=2500, gain_db=6.0, trigger="free_run")
    with opened(cfg) as source:
        assert source.state is SourceState.RUNNING
        frames = [source.read(timeout_s=2.0) for _ in range(3)]
        applied = source.applied
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.image.shape == (EMU_HEIGHT, EMU_WIDTH, 3) for f in frames)
    assert frames[0].timestamp < frames[1].timestamp < frames[2].timestamp
    assert frames[0].origin == f"genicam:{EMULATED_SERIAL}"
    # Read back from the camera's nodes, not echoed from the config: the gain is quantised by the camera.
    assert applied["exposure_us"] == pytest.approx(2500, abs=1)
    assert applied["gain_db"] == pytest.approx(6.0, abs=0.05)
    assert applied["pixel_format"] == "Mono8"
    assert applied["trigger_mode"] == "Off"


def test_software_trigger_gives_each_read_a_frame_exposed_after_it_started(pylon: Any) -> None:
    cfg = genicam_cfg(pixel_format="BayerRG8", trigger="software", exposure_us=1000)
    with opened(cfg) as source:
        assert source.applied["trigger_mode"] == "On"
        assert source.applied["trigger_source"] == "Software"
        for _ in range(3):
            started = time.monotonic()
            frame = source.read(timeout_s=2.0)
            assert frame.timestamp >= started  # the trigger was fired for this read
            assert frame.image.shape == (EMU_HEIGHT, EMU_WIDTH, 3)  # Bayer converted to BGR
        assert "3 frames read" in source.describe()


def test_a_frame_timeout_is_a_clear_error_not_a_hang(pylon: Any) -> None:
    # Hardware trigger on Line1, which nothing drives: no frame ever comes.
    with opened(genicam_cfg(trigger="hardware", trigger_line="Line1")) as source:
        assert source.applied["trigger_source"] == "Line1"
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=r"no frame within 0\.300 s") as caught:
            source.read(timeout_s=0.3)
        assert time.monotonic() - started < 1.5
        assert caught.value.timed_out
        assert source.state is SourceState.RUNNING  # a quiet hardware trigger is not a lost camera


def test_camera_lost_mid_run_is_unavailable_never_a_stale_frame_then_reconnects(pylon: Any) -> None:
    cfg = genicam_cfg(trigger="software", reconnect_initial_s=0.5, reconnect_max_s=1.0)
    with opened(cfg) as source:
        before = source.read(timeout_s=2.0)
        lost_at = time.monotonic()
        source._camera.Close()  # the unplug: the SDK's handle dies under the grabber
        wait_state(source, SourceState.RECONNECTING, timeout=3.0)
        with pytest.raises(SourceUnavailable, match="RECONNECTING") as caught:
            source.read(timeout_s=0.2)
        assert caught.value.state is SourceState.RECONNECTING
        assert "camera lost" in source.describe()
        wait_state(source, SourceState.RUNNING, timeout=5.0)
        after = source.read(timeout_s=2.0)
        assert source.reconnects == 1
    assert after.index == before.index + 1
    assert after.timestamp > lost_at


def test_an_absent_camera_is_reconnecting_with_backoff_not_an_error(pylon: Any) -> None:
    cfg = genicam_cfg(serial="no-such-camera", reconnect_initial_s=0.05, reconnect_max_s=0.2)
    with opened(cfg) as source:
        assert source.state is SourceState.RECONNECTING
        with pytest.raises(SourceUnavailable, match="no camera with serial 'no-such-camera'"):
            source.read(timeout_s=0.1)
        deadline = time.monotonic() + 5
        while source.open_attempts < 4:  # the grabber keeps retrying: 0.05, 0.1, 0.2 s apart
            assert time.monotonic() < deadline, "no retries after the first failed open"
            time.sleep(0.05)
        assert source.state is SourceState.RECONNECTING
        assert source.reconnects == 1  # one loss, however many retries


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"gain_db": 1000.0}, r"source\.gain_db: 1000 is outside the camera's range"),
        ({"pixel_format": "Mono99"}, r"source\.pixel_format: the camera's PixelFormat has no 'Mono99'"),
        ({"trigger": "hardware", "trigger_line": "Line42"}, r"source\.trigger_line: .*no 'Line42'"),
    ],
)
def test_a_setting_the_camera_refuses_is_one_line_naming_the_field(
    pylon: Any, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(LinesideError, match=named):
        open_source(genicam_cfg(**fields))


def test_without_the_sdk_a_genicam_source_is_one_line_naming_the_config_field() -> None:
    # A fresh interpreter in which importing pypylon fails, as on an appliance without the extra.
    code = (
        "import sys; sys.modules['pypylon'] = None\n"
        "from edge.errors import LinesideError\n"
        "from edge.sources.config import parse_source_config\nfrom edge.sources.opener import open_source\n"
        "cfg = parse_source_config({'kind': 'genicam', 'serial': 'x'})\n"
        "try:\n    open_source(cfg)\nexcept LinesideError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("source.kind: 'genicam' needs the Basler pylon SDK")
    assert "pip install 'lineside[genicam]'" in lines[0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "genicam"}, "exactly one of the fields 'serial' or 'user_id'"),
        ({"kind": "genicam", "serial": "a", "user_id": "b"}, "exactly one of the fields"),
        ({"kind": "folder", "path": "p", "exposure_us": 100}, "'exposure_us' applies to kind 'genicam' only"),
        ({"kind": "genicam", "serial": "a", "url": "rtsp://x"}, "'url' is not used when kind is 'genicam'"),
        ({"kind": "genicam", "serial": "a", "trigger_line": "Line1"}, "applies to trigger 'hardware' only"),
        ({"kind": "genicam", "serial": "a", "gain_db": -1}, "source.gain_db"),
    ],
)
def test_genicam_config_mistakes_are_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(LinesideError, match=message.replace(".", r"\.")):
        parse_source_config(fields)


def test_a_line_on_the_emulated_camera_judges_parts_and_doctor_reads_its_frame(
    pylon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYLON_CAMEMU", "1")  # the line's processes get their own emulated camera
    config, _ = make_station(tmp_path)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["source"] = {"kind": "genicam", "serial": EMULATED_SERIAL, "trigger": "software", "exposure_us": 1000}
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = lineside("doctor", str(config), "--disk-warn-gb", "0.01", "--disk-fail-gb", "0.001")
    camera = next(line for line in done.stdout.splitlines() if " camera: " in line)
    assert camera.startswith("PASS"), done.stdout
    assert f"a {EMU_WIDTH}x{EMU_HEIGHT} frame" in camera
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 3, timeout=60, what="3 parts")
    judged = line.part_lines()[:3]
    assert not any("FAULT" in part for part in judged), judged
