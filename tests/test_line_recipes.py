"""Recipes chosen by the robot: switched atomically between parts, echoed; an unknown number is ERROR."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.errors import ErrorCode
from edge.records.query import query
from edge.robotlink import registers as reg
from edge.robotlink.registers import VerdictCode, split_result_word
from tests.line import make_station, running_line
from tests.test_line import _connect, _trigger_and_wait, _wait_ready

pytestmark = pytest.mark.slow


def _add_blind_recipe(config: Path) -> None:
    """Recipe 2 looks only at the frame's left edge, where the model never sees a defect."""
    data = yaml.safe_load(config.read_text())
    blind = dict(data["recipes"][0], number=2, name="left-edge-only", roi={"rect": [0, 0, 10, 120]})
    data["recipes"].append(blind)
    config.write_text(yaml.safe_dump(data))


def test_robot_selects_recipes_per_part_and_an_unknown_one_is_an_error(tmp_path: Path) -> None:
    config, port = make_station(tmp_path, "d", mode="robot")  # every part is defective
    _add_blind_recipe(config)
    with running_line(config):
        client = _connect(port)
        _wait_ready(client)
        first = _trigger_and_wait(client, 1)
        # Recipe and trigger in one request: the new recipe applies to this very part.
        assert not client.write_registers(reg.TRIGGER_SEQ, [2, 0, 0, 0, 0, 2], device_id=1).isError()
        second = _trigger_and_wait(client, 2, write=False)
        assert not client.write_register(reg.RECIPE, 9, device_id=1).isError()
        third = _trigger_and_wait(client, 3)
        assert not client.write_register(reg.RECIPE, 0, device_id=1).isError()  # 0: back to the default
        fourth = _trigger_and_wait(client, 4)
        client.close()
    assert (split_result_word(first[reg.RESULT_WORD])[0], first[reg.ACTIVE_RECIPE]) == (VerdictCode.REJECT, 1)
    assert (split_result_word(second[reg.RESULT_WORD])[0], second[reg.ACTIVE_RECIPE]) == (
        VerdictCode.ACCEPT,
        2,
    )
    assert split_result_word(third[reg.RESULT_WORD])[0] == VerdictCode.ERROR
    assert (third[reg.ERROR_CODE], third[reg.ACTIVE_RECIPE]) == (ErrorCode.RECIPE, 9)
    assert (split_result_word(fourth[reg.RESULT_WORD])[0], fourth[reg.ACTIVE_RECIPE]) == (
        VerdictCode.REJECT,
        1,
    )
    records = query(tmp_path / "records" / "records.db")
    assert [r.recipe for r in records] == ["test-part", "left-edge-only", "9", "test-part"]
