"""End-to-end: a recipe chaining the detector with a classifier in a real `lineside run` driven over Modbus.

The robot sees the deciding stage's class and score; the records keep every stage and the heat maps beside
the image; a stage hung or killed mid-part gives FAULT, never ACCEPT, and the chain judges again after the
inference worker's restart.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2

from edge.errors import ErrorCode
from edge.records.images import heat_files
from edge.records.query import query
from edge.robotlink import registers as reg
from edge.robotlink.registers import VerdictCode, split_result_word
from tests.line import FRAME_H, FRAME_W, make_station, running_line
from tests.mapmodels import dark_part, make_map_model, with_spot
from tests.test_line import _connect, _trigger_and_wait, _wait_ready


def _chain_station(root: Path, budget_ms: float = 450.0) -> tuple[Path, int]:
    classifier = make_map_model(root / "classifier", "classify", threshold=0.41)
    config, port = make_station(root, "gdd", mode="robot", budget_ms=budget_ms)
    # Part 1: dark (good); part 2: dark with a small bright spot the detector cannot see but the
    # classifier can; part 3: bright all over (the detector's defect).
    cv2.imwrite(str(root / "parts" / "part_001.png"), with_spot(dark_part(FRAME_W, FRAME_H), 120, 30, 3))
    text = config.read_text(encoding="utf-8").replace(
        "name: test-part", f"name: test-part\n  stages:\n  - model: {classifier}"
    )
    config.write_text(text, encoding="utf-8")
    return config, port


def test_a_chain_in_a_real_run_reports_the_deciding_stage_to_the_robot_and_keeps_each_stage(
    tmp_path: Path,
) -> None:
    config, port = _chain_station(tmp_path)
    with running_line(config) as line:
        client = _connect(port)
        _wait_ready(client)
        blocks = [_trigger_and_wait(client, seq) for seq in (1, 2, 3)]
        client.close()
        line.process.send_signal(signal.SIGTERM)
        assert line.process.wait(30) == 0
    codes = [split_result_word(b[reg.RESULT_WORD])[0] for b in blocks]
    assert codes == [VerdictCode.ACCEPT, VerdictCode.REJECT, VerdictCode.REJECT]
    # DEFECT_CODE = 1 + the class's index in the chain (scratch, pit, then the classifier's defect).
    assert [b[reg.DEFECT_CODE] for b in blocks] == [0, 3, 1]
    assert blocks[1][reg.SCORE] > 900  # the classifier's defect probability, x1000
    records = query(tmp_path / "records" / "records.db")
    assert [r.verdict.value for r in records] == ["ACCEPT", "REJECT", "REJECT"]
    spotted = records[1]
    assert spotted.reasons[0].startswith("classifier: REJECT: defect score")
    assert [s["stage"] for s in spotted.stages] == ["detector", "classifier"]
    assert [s["verdict"] for s in spotted.stages] == ["ACCEPT", "REJECT"]
    assert spotted.stages[1]["threshold"] == 0.41 and spotted.stages[1]["margin"] > 0.5
    assert spotted.image_path is not None
    heat = heat_files(tmp_path / "records", spotted.image_path)
    assert set(heat) == {"classifier"}
    assert cv2.imread(str(heat["classifier"]), cv2.IMREAD_GRAYSCALE) is not None


def test_a_chain_stage_hung_or_killed_mid_part_is_a_fault_never_an_accept(tmp_path: Path) -> None:
    config, port = _chain_station(tmp_path, budget_ms=300)
    with running_line(config) as line:
        client = _connect(port)
        _wait_ready(client)
        assert split_result_word(_trigger_and_wait(client, 1)[reg.RESULT_WORD])[0] == VerdictCode.ACCEPT
        victim = line.worker_pid("inference")
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)  # the chain hangs with part 2 (a classifier reject) in front of it
        hung = _trigger_and_wait(client, 2)
        os.kill(victim, signal.SIGKILL)
        code, _ = split_result_word(hung[reg.RESULT_WORD])
        assert code in (VerdictCode.LATE, VerdictCode.ERROR)
        assert hung[reg.ERROR_CODE] in (ErrorCode.TIMEOUT, ErrorCode.OVERLOAD)
        line.wait_for(
            lambda: line.worker_pid("inference") not in (None, victim), 20, "a new inference worker"
        )
        _wait_ready(client)
        again = _trigger_and_wait(client, 3)  # the frame source moved on: part 3 (bright)
        assert split_result_word(again[reg.RESULT_WORD])[0] == VerdictCode.REJECT
        client.close()
    verdicts = [r.verdict.value for r in query(tmp_path / "records" / "records.db")]
    assert verdicts == ["ACCEPT", "FAULT", "REJECT"]
