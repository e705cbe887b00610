"""Line alarms on a real `lineside run` (the alarms worker): planted shifts raise their alarm within a stated
number of parts, and it shows in the robot's ALARM register and STATUS bit (read with pyModbusTCP, a Modbus
client independent of the appliance's pymodbus), in `/metrics`, in the records (with its chart picture)
and in `lineside records alarms`; a stable line stays silent; verdicts are the same with alarms off.

The test station's model scores a frame by its mean grey (tests/line.py): grey 40 scores 0.16 (ACCEPT),
220 scores 0.86 (REJECT, threshold 0.5), so brightening good parts is a model whose scores creep up.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyModbusTCP.client import ModbusClient  # type: ignore[import-untyped]

from edge.records.alarms import recorded_alarms
from edge.records.query import query
from edge.robotlink import registers as reg
from edge.spc.config import SpcConfig
from tests.line import FRAME_H, FRAME_W, free_port, lineside, make_station, running_line

pytestmark = pytest.mark.slow

SUBGROUP, BASELINE = 10, 5
STEADY = "ggggdggggg" * BASELINE  # 1 defective in 10: the centre 0.1
RISING = STEADY + "ddgddddgdd" * 15  # then 8 in 10, long enough to read the registers while it lasts
SMALL = {"pchart": {"subgroup": SUBGROUP, "baseline_subgroups": BASELINE}}
# Image and score drift learn from 20 frames here (200 by default) so that a test line is short.
SHORT_EWMA = {"brightness": {"baseline": 20}, "score": {"baseline": 20}}


def _registers(port: int) -> list[int] | None:
    client = ModbusClient(host="127.0.0.1", port=port, auto_open=True, timeout=1.0)
    try:
        block: list[int] | None = client.read_holding_registers(0, reg.BLOCK_COUNT)
        return block
    finally:
        client.close()


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _watch_alarm(line: Any, modbus: int, word: int, timeout: float = 60.0) -> list[int]:
    """Poll the robot's registers until ALARM reads `word` (the line still running); the block then."""
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline and line.process.poll() is None:
        block = _registers(modbus)
        if block:
            seen.add(block[reg.ALARM])
            if block[reg.ALARM] == word:
                return block
        time.sleep(0.05)
    raise AssertionError(f"ALARM never read {word} (read {seen}); stderr:\n" + "".join(line.stderr[-30:]))


def test_a_rising_defect_rate_alarms_in_the_register_status_bit_metrics_and_records(tmp_path: Path) -> None:
    http = free_port()
    config, modbus = make_station(
        tmp_path,
        RISING,
        takt_ms=40,
        loop=False,
        extra={"spc": SMALL, "status": {"enabled": True, "port": http}},
    )
    with running_line(config) as line:
        block = _watch_alarm(line, modbus, reg.AlarmBit.REJECT_RATE | reg.AlarmBit.CLASS_RATE)
        assert block[reg.STATUS] & reg.StatusBit.ALARM_WARNING
        assert not block[reg.STATUS] & reg.StatusBit.ERROR  # a warning, not an error
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = _metrics(http)
            if metrics.get(("lineside_alarm_word", ())) == block[reg.ALARM]:
                break
            time.sleep(0.1)
        raised = ("lineside_alarms_raised_total", (("chart", "reject_rate"), ("rule", "beyond_3sigma")))
        assert metrics[raised] == 1.0, sorted(k for k in metrics if "alarm" in k[0])
        assert metrics[("lineside_alarm_active", (("chart", "reject_rate"),))] == 1.0
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/status", timeout=5) as reply:
            panel = json.loads(reply.read())["alarms"]  # the status page's alarms panel
        assert panel["known"] and panel["word"] == block[reg.ALARM]
        assert panel["active"] == ["reject_rate", "class_rate:scratch"]
        assert [a["chart"] for a in panel["latest"]] == ["class_rate:scratch", "reject_rate"]  # newest first
        line.wait_for(lambda: line.process.poll() is not None, 60, "the line to finish its parts")
    assert line.process.returncode == 0, "".join(line.stderr[-30:])

    records_dir = tmp_path / "records"
    records = query(records_dir / "records.db")
    judged = [r for r in records if r.verdict.value != "FAULT"]
    assert [r.verdict.value for r in judged[: len(RISING)]] == [
        "REJECT" if k == "d" else "ACCEPT" for k in RISING
    ]
    stored = recorded_alarms(records_dir)
    assert [(a.alarm["chart"], a.alarm["rule"]) for a in stored] == [
        ("reject_rate", "beyond_3sigma"),
        ("class_rate:scratch", "beyond_3sigma"),
    ]
    # Within the first subgroup after the rise: its parts are the 10 parts after the 50 of the baseline.
    seqs = [seq for _, seq in stored[0].alarm["parts"]]
    first_after = judged[SUBGROUP * BASELINE].seq
    assert seqs == [r.seq for r in judged[SUBGROUP * BASELINE : SUBGROUP * (BASELINE + 1)]]
    print(f"\nrising defect rate, real line: alarm on parts {seqs[0]}..{seqs[-1]} (rise at {first_after})")
    assert stored[0].chart_png is not None
    picture = cv2.imread(str(records_dir / stored[0].chart_png))
    assert picture is not None and picture.shape[0] > 200

    listed = lineside("records", "alarms", "--dir", str(records_dir))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("2 line alarm(s) in "), listed.stdout
    assert lines[1].startswith("  reject rate: a point beyond 3 sigma (above) at subgroup 5 (value 0.8,")
    assert lines[2] == f"    {records_dir / stored[0].chart_png}"


def _write_grey_parts(root: Path, greys: list[float]) -> None:
    """Replace the station's parts with uniform frames of these greys, in order."""
    parts = root / "parts"
    for old in parts.glob("*.png"):
        old.unlink()
    for i, grey in enumerate(greys):
        cv2.imwrite(str(parts / f"part_{i:03d}.png"), np.full((FRAME_H, FRAME_W, 3), round(grey), np.uint8))


def _ewma_bound(config: Any, step: float) -> int:
    """Frames for an EWMA to leave its limit under a drift of `step` per frame: the limit (width sigmas of
    the EWMA, sigma at its floor: uniform frames have no noise) plus the EWMA's lag of (1 - lambda)/lambda
    frames' worth of steps; + 2 for a frame in flight."""
    lam = config.smoothing
    sigma = config.min_sigma
    frames: int = math.ceil(
        (config.width * sigma * math.sqrt(lam / (2 - lam)) + (1 - lam) / lam * step) / step
    )
    return frames + 2


@pytest.mark.parametrize(
    ("direction", "word"),
    [
        # Frames darkening by 1 grey per part: brightness low; the scores fall (score drift is upper only).
        (-1.0, reg.AlarmBit.BRIGHTNESS),
        # Brightening: brightness high, and the model's scores creep toward the threshold (score drift).
        (+1.0, reg.AlarmBit.BRIGHTNESS | reg.AlarmBit.SCORE),
    ],
    ids=["darkening", "brightening"],
)
def test_frames_drifting_step_by_step_alarm_image_and_score_drift(
    tmp_path: Path, direction: float, word: int
) -> None:
    # The held end keeps the alarm latched while the registers are read. The steady start is long: the
    # alarms worker (niced, an observer) may subscribe a few seconds late on a loaded machine, and the 20
    # frames its image baseline learns from must all be steady ones.
    steady, ramp, hold = 120, 30, 80
    greys = [40.0] * steady + [40.0 + direction * (k + 1) for k in range(ramp)]
    greys += [greys[-1]] * hold  # grey 10 or 70: every part still ACCEPTed (threshold at grey 127)
    config, modbus = make_station(
        tmp_path, "g" * len(greys), takt_ms=40, loop=False, extra={"spc": SHORT_EWMA}
    )
    _write_grey_parts(tmp_path, greys)
    with running_line(config) as line:
        block = _watch_alarm(line, modbus, word)
        line.wait_for(lambda: line.process.poll() is not None, 60, "the line to finish its parts")
    assert block[reg.STATUS] & reg.StatusBit.ALARM_WARNING
    records_dir = tmp_path / "records"
    records = query(records_dir / "records.db")
    assert {r.verdict.value for r in records[: len(greys)]} == {"ACCEPT"}  # warned, never rejected
    first_ramp = records[steady].seq
    stored = {a.alarm["chart"]: a.alarm for a in recorded_alarms(records_dir)}
    spc = SpcConfig.model_validate(SHORT_EWMA)
    expected = {"brightness"} | ({"score"} if direction > 0 else set())
    assert set(stored) == expected, stored
    bounds = {
        "brightness": _ewma_bound(spc.brightness, 1.0),
        "score": _ewma_bound(spc.score, 1.0 / 255 / 0.5),
    }
    for chart, alarm in stored.items():
        after = alarm["parts"][-1][1] - first_ramp + 1
        assert alarm["rule"] == ("ewma_high" if direction > 0 else "ewma_low")
        assert after <= bounds[chart], (chart, after, bounds[chart])
        print(
            f"\n{chart} alarm {after} parts into the drift (bound {bounds[chart]}), {direction * after:+.0f}"
        )


def test_a_stable_line_stays_silent_and_verdicts_are_the_same_with_alarms_off(tmp_path: Path) -> None:
    parts = 200  # 20 subgroups tested after the baseline, image and score drift on 180 frames
    results = {}
    for spc in ({**SMALL, **SHORT_EWMA}, {"enabled": False}):
        root = tmp_path / ("on" if spc.get("enabled", True) else "off")
        config, _ = make_station(root, STEADY, takt_ms=20, extra={"spc": spc})
        run = lineside("--log-level", "INFO", "run", str(config), "--max-parts", str(parts), timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        records = query(root / "records" / "records.db")
        results[root.name] = [(r.seq, r.verdict.value, r.reasons) for r in records if r.seq <= parts]
        if root.name == "on":
            assert "started alarms" in run.stderr
            assert recorded_alarms(root / "records") == []
            listed = lineside("records", "alarms", "--dir", str(root / "records"))
            assert listed.stdout.startswith(f"No line alarm in {len(records)} parts"), listed.stdout
        else:
            assert "started alarms" not in run.stderr
    assert results["on"] == results["off"]
