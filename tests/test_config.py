"""The station config: unknown keys, wrong types, out-of-range values and cross-field rules name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.errors import LinesideError
from edge.station.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def _valid() -> dict[str, Any]:
    return {
        "source": {"kind": "folder", "path": "parts"},
        "recipes": [{"number": 1, "name": "a", "model": "models/a"}],
        "default_recipe": 1,
        "records": {"dir": "records", "quota_mb": 10},
    }


def test_relative_paths_are_taken_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(_valid()))
    config = load_config(path)
    assert config.spc.enabled  # line alarms: on unless the file says otherwise (docs/spc.md)
    assert config.recipes[0].model == tmp_path / "models" / "a"
    assert config.records.dir == tmp_path / "records"
    assert config.source.path == tmp_path / "parts"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(colour="red"), "field 'colour': unknown key"),
        (lambda c: c["records"].update(quota="big"), "field 'records.quota': unknown key"),
        (lambda c: c["records"].update(quota_mb="big"), "field 'records.quota_mb'"),
        (lambda c: c.update(trigger={"mode": "sometimes"}), "field 'trigger.mode'"),
        (lambda c: c.update(trigger={"takt_ms": -5}), "field 'trigger.takt_ms'"),
        (lambda c: c.update(robot_link={"port": 70000}), "field 'robot_link.port'"),
        (lambda c: c.update(default_recipe=7), "default_recipe 7 is not one of the recipes [1]"),
        (lambda c: c["recipes"].append(dict(c["recipes"][0])), "recipe numbers must be unique"),
        (lambda c: c.update(supervisor={"stuck_after_s": 0.1}), "stuck_after_s must be at least"),
        (lambda c: c.pop("records"), "field 'records': Field required"),
        (lambda c: c.update(spc={"pchart": {"windows": 3}}), "field 'spc.pchart.windows': unknown key"),
        (lambda c: c.update(spc={"pchart": {"rules": ["beyond_4sigma"]}}), "field 'spc.pchart.rules.0'"),
        (
            lambda c: c["recipes"][0].update(rules={"default": {"min_confidence": 2}}),
            "field 'recipes.0.rules.default.min_confidence'",
        ),
    ],
)
def test_bad_config_is_refused_in_one_line_naming_file_and_field(
    tmp_path: Path, change: Any, message: str
) -> None:
    raw = _valid()
    change(raw)
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(LinesideError) as caught:
        load_config(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text("source:\n  kind: folder\n  path: [unclosed\n")
    with pytest.raises(LinesideError, match=r"line\.yaml: line \d+ invalid YAML"):
        load_config(path)


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(LinesideError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_example_and_demo_configs_are_valid() -> None:
    example = yaml.safe_load((ROOT / "systemd" / "line.example.yaml").read_text())
    assert parse_config(example, "example", Path("/")).station.name == "cell-3-flange"
    from lineside.demo import demo_config

    demo = demo_config(Path("/nonexistent-state"))
    assert demo.trigger.mode == "free_run" and demo.max_parts == 60
