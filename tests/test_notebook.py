"""The retraining notebook end to end, headless (nbclient): check, train (1 epoch, tiny images), export,
INT8, evaluate, parity, register and promote, on a small generated dataset; the promoted model verifies."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import nbformat
import pytest
from nbclient import NotebookClient

from edge.modelstore.registry import read_pointer, version_dir
from training.registry import PARITY_FILE, verify_version
from training.synth import render_part

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "retrain.ipynb"
CLASSES = ("scratch", "pit", "chip")


def tiny_dataset(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """A YOLO dataset of small rendered parts (training/synth.py), half of them defective."""
    import numpy as np
    import yaml

    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            rng = np.random.default_rng([7, len(split), i])
            image, labels = render_part(rng, i % 2 == 1)
            small = cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA)  # labels are relative
            cv2.imwrite(str(root / "images" / split / f"p{i:03d}.png"), small)
            text = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
            (root / "labels" / split / f"p{i:03d}.txt").write_text(text)
    names = dict(enumerate(CLASSES))
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": names}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def with_parameters(notebook: nbformat.NotebookNode, **values: object) -> nbformat.NotebookNode:
    """Insert a cell after the one tagged `parameters` that overrides it (as papermill does)."""
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected"]}))
    return notebook


def test_notebook_trains_evaluates_and_promotes_a_model_that_verifies(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    registry = tmp_path / "models"
    notebook = with_parameters(
        nbformat.read(NOTEBOOK, as_version=4),
        DATA_DIR=str(data),
        WORK_DIR=str(tmp_path / "work"),
        REGISTRY=str(registry),
        MODEL_NAME="nb-test",
        VERSION="0.0.1",
        EPOCHS=1,
        IMGSZ=64,
        BATCH=4,
        DEVICE="cpu",
        TARGET_ESCAPE=1.0,  # a 1-epoch model finds nothing: the gate is opened for this smoke run only
        MAX_ESCAPE=1.0,
        INT8=True,
        PARITY_IMAGES=2,
        PLOTS=False,
        JUDGE_KIND="anomaly",
        JUDGE_IMGSZ=64,
        JUDGE_TARGET_ESCAPE=0.99,
    )
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    pointer = read_pointer(registry, "nb-test")
    assert (pointer.current, pointer.previous) == ("0.0.1", None)
    folder = version_dir(registry, "nb-test", "0.0.1")
    card = verify_version(registry, "nb-test", "0.0.1")
    assert card.classes == CLASSES and card.input.width == 64
    assert json.loads((folder / PARITY_FILE).read_text())["passed"] is True
    assert (folder / "eval" / "report.json").is_file()
    assert (tmp_path / "work" / "export" / "0.0.1-int8" / "model.onnx").is_file()
    printed = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "0.0.1 is current" in printed
    judge = read_pointer(registry, "nb-test-anomaly")
    assert judge.current == "0.0.1" and verify_version(registry, "nb-test-anomaly", "0.0.1").task == "anomaly"
    assert "| **chain** |" in printed or "**chain**" in printed
