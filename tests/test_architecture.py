"""The shape of the code: no import circle anywhere, DESIGN.md's layering holds, and `edge/` reads by role.

Each rule is also run on a planted offence (a copy of the real tree with one import added), so a checker
that cannot fail would fail here.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.importgraph import cycles, forbidden_imports, import_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "calibration", "training", "lineside")
# DESIGN.md, "Parts, and which may import which": edge depends on nothing else in the repo; calibration on
# edge only; training on edge (to evaluate with the runtime's own code); lineside composes them all.
LAYERS = {
    "edge": ("calibration", "training", "lineside"),
    "calibration": ("training", "lineside"),
    "training": ("calibration", "lineside"),
}
# The shared leaves that may stay at the top of edge/; everything else lives in a package named for its role.
EDGE_LEAVES = {"__init__.py", "atomic.py", "errors.py", "geometry.py", "i18n.py", "jsonmodel.py"}


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")


def test_no_import_cycle_in_edge_calibration_training_or_lineside() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert len(graph) > 150  # the walk really saw the project
    assert cycles(graph) == []


def test_design_layering_holds() -> None:
    assert forbidden_imports(import_graph(ROOT, PACKAGES), LAYERS) == []


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # A type-only import closes the circle the source config once had with the source modules.
        (
            "edge/sources/config.py",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from edge.sources.files import FolderSource",
            ["edge.sources.config", "edge.sources.files"],
        ),
        # A lazy import inside a function counts too (evaluate <-> plots was one).
        (
            "training/evalreport.py",
            "def _late() -> None:\n    from training import evaluate",
            ["training.evalreport", "training.evaluate"],
        ),
        # A relative import resolves like an absolute one.
        (
            "edge/judge/inspection.py",
            "from .rules import Rules",
            ["edge.judge.inspection", "edge.judge.rules"],
        ),
    ],
)
def test_a_planted_cycle_is_found(tmp_path: Path, module: str, line: str, expected: list[str]) -> None:
    root = _copy(tmp_path)
    assert cycles(import_graph(root, PACKAGES)) == []
    _append(root / module, line)
    found = cycles(import_graph(root, PACKAGES))
    assert found, "the planted circle was not found"
    assert any(set(expected) <= set(group) for group in found), found


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("edge/errors.py", "from calibration.frames import grab", "edge.errors -> calibration.frames"),
        ("edge/judge/rules.py", "import lineside.cli", "edge.judge.rules -> lineside.cli"),
        (
            "edge/runtime/supervisor.py",
            "from training import plots",
            "edge.runtime.supervisor -> training.plots",
        ),
        (
            "calibration/frames.py",
            "from training.evaluate import evaluate",
            "calibration.frames -> training.evaluate",
        ),
    ],
)
def test_a_planted_forbidden_import_is_found(tmp_path: Path, module: str, line: str, expected: str) -> None:
    root = _copy(tmp_path)
    _append(root / module, line)
    assert expected in forbidden_imports(import_graph(root, PACKAGES), LAYERS)


def test_edge_top_level_holds_only_role_packages_and_shared_leaves() -> None:
    top_modules = {p.name for p in (ROOT / "edge").glob("*.py")}
    assert top_modules == EDGE_LEAVES


def test_architecture_doc_opens_with_a_map_of_every_edge_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    first_table = text[: text.index("\n## ", text.index("|"))]
    packages = sorted(p.name for p in (ROOT / "edge").iterdir() if (p / "__init__.py").is_file())
    assert len(packages) >= 8
    missing = [p for p in packages if not re.search(rf"`edge/{p}/`", first_table)]
    assert missing == [], f"docs/architecture.md's opening map does not name {missing}"
