"""The install carries every package and the demo's data: what `pip install .` ships is what runs."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_in_the_tree_is_listed_for_installation() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("edge", "calibration", "training", "lineside")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"lineside.models"} == listed


def test_demo_data_is_declared_as_package_data() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "demo/parts/*.png" in data["lineside"] and "*/*/*.onnx" in data["lineside.models"]
