"""Code quality gates that run with the test suite: ruff, mypy, and the import rules of DESIGN.md."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# edge/ is the appliance: it may import only these (and the stdlib and itself).
EDGE_FORBIDDEN = ("torch", "ultralytics", "albumentations", "training", "calibration", "lineside", "onnx")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_edge_never_imports_training_stack_or_other_parts_of_the_repo() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & set(EDGE_FORBIDDEN))
        for path in (ROOT / "edge").rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}


def test_calibration_imports_only_edge_from_the_repo() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & {"training", "lineside", "torch", "ultralytics"})
        for path in (ROOT / "calibration").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_ruff_is_clean() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "edge", "calibration", "training", "lineside", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_supervisor_and_robot_link_processes_do_not_load_the_detector_runtime() -> None:
    """They run for months and only route messages: no onnxruntime or OpenCV in their memory."""
    probe = (
        "import sys, lineside.cli, edge.runtime.supervisor, edge.runtime.workers.robotlink;"
        "lineside.cli.build_parser(only='run');"
        "print(sorted(m for m in ('onnxruntime', 'cv2', 'torch') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
