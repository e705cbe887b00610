"""`lineside train` as a process: offline, resumable after a kill, not retrained when finished, exported
as a model folder edge's Detector loads; bad input refused with one line. A tiny 64 px dataset."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.judge.detector.detector import Detector
from edge.modelstore.card import load_verified
from training.fingerprint import scan_dataset
from training.train import BLOCKED

NETWORK_MARK = "TEST-GUARD: network attempt"
# The test's own guard, independent of lineside's: any lookup or TCP/UDP connect is reported and refused.
GUARDED_CLI = f"""
import sys
def guard(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        if event == "socket.connect" and isinstance(args[1], str):
            return
        print({NETWORK_MARK!r}, event, args[:2], file=sys.stderr, flush=True)
        raise ConnectionRefusedError("test: no network")
sys.addaudithook(guard)
from lineside.cli import main
sys.exit(main(sys.argv[1:]))
"""


def make_dataset(root: Path, n_train: int = 24, n_val: int = 8, size: int = 96) -> Path:
    """Dark noisy frames, two in three with one bright rectangle labelled `spot`."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            image = np.full((size, size, 3), 60, np.uint8) + rng.integers(
                0, 20, (size, size, 1), dtype=np.uint8
            )
            label = ""
            if i % 3:
                w, h = (int(v) for v in rng.integers(10, 24, 2))
                x, y = (int(v) for v in rng.integers(0, size - 24, 2))
                image[y : y + h, x : x + w] = 230
                label = f"0 {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}\n"
            cv2.imwrite(str(root / "images" / split / f"p{i:03d}.png"), image)
            (root / "labels" / split / f"p{i:03d}.txt").write_text(label)
    names = {0: "spot"}
    (root / "data.yaml").write_text(
        yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val", "names": names})
    )
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("spots") / "spots")


def train_command(data: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", GUARDED_CLI, "train", "--data", str(data), "--imgsz", "64", "--epochs", "3",
        "--batch", "16", "--workers", "0", "--device", "cpu", "--name", "spots", "--version", "0.1",
        "--work", str(tmp / "work"), "--out", str(tmp / "models" / "spots" / "0.1"), *extra,
    ]  # fmt: skip


def run(command: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def result_epochs(run_dir: Path) -> list[int]:
    with (run_dir / "results.csv").open(newline="") as handle:
        return [int(float(row["epoch"])) for row in csv.DictReader(handle, skipinitialspace=True)]


def kill_after_first_epoch(command: list[str], cwd: Path, run_dir: Path, log: Path) -> None:
    """Start training and SIGKILL it once epoch 1 is saved and epoch 2 is under way (or soon after)."""
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        saved = False
        while time.monotonic() < deadline and process.poll() is None:
            saved = saved or (
                (run_dir / "weights" / "last.pt").is_file() and (run_dir / "results.csv").is_file()
            )
            if saved and re.search(r"\s2/3\s", log.read_text(errors="replace")):
                break  # epoch 2 has started: last.pt of epoch 1 is complete
            time.sleep(0.2)
        assert process.poll() is None, (
            f"training ended before it could be interrupted:\n{log.read_text()[-3000:]}"
        )
        assert saved, f"no epoch finished in time:\n{log.read_text()[-3000:]}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the session this test started, workers included
        process.wait(timeout=30)


@pytest.mark.slow
def test_killed_training_resumes_exports_a_loadable_model_and_is_not_retrained(dataset, tmp_path):
    command = train_command(dataset, tmp_path)
    run_dir = tmp_path / "work" / "runs" / "train"
    out = tmp_path / "models" / "spots" / "0.1"

    kill_after_first_epoch(command, tmp_path, run_dir, tmp_path / "first.log")
    assert not (out / "card.json").exists()
    done_before = result_epochs(run_dir)
    assert done_before and done_before[0] == 1

    resumed = run(command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr  # ultralytics logs to stdout
    assert "resuming" in output and "Resuming training" in output
    assert result_epochs(run_dir) == [1, 2, 3]  # continued, not started over
    for log in (output, (tmp_path / "first.log").read_text()):
        assert NETWORK_MARK not in log and BLOCKED not in log
    assert (run_dir / "results.png").is_file()  # plots drawn with the local font, no download

    card, onnx_path = load_verified(out)
    assert (card.name, card.version, card.classes) == ("spots", "0.1", ("spot",))
    assert (card.input.width, card.input.height) == (64, 64)
    assert card.training.args["epochs"] == 3 and card.training.args["epochs_trained"] == 3
    assert card.training.args["opset"] == 17 and card.training.args["device"] == "cpu"
    assert (
        card.training.data_fingerprint == scan_dataset(dataset, tmp_path / "scan", lambda _: None).fingerprint
    )
    assert {"mAP50", "mAP50-95", "precision", "recall"} <= set(card.metrics)
    detector = Detector(out)
    image = cv2.imread(str(dataset / "images" / "val" / "p001.png"))
    assert image is not None
    result = detector.detect(np.asarray(image, dtype=np.uint8), conf_floor=0.0)
    assert result.infer_ms > 0 and all(d.class_name == "spot" for d in result.detections)

    last_mtime = (run_dir / "weights" / "last.pt").stat().st_mtime_ns
    onnx_mtime = onnx_path.stat().st_mtime_ns
    again = run([*command, "--int8"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished; not retraining" in again.stderr
    assert "not exporting again" in again.stderr
    int8_card, _ = load_verified(out.with_name("0.1-int8"))
    assert (int8_card.version, int8_card.precision) == ("0.1-int8", "int8")
    assert Detector(out.with_name("0.1-int8")).detect(np.asarray(image, dtype=np.uint8)).infer_ms > 0
    assert result_epochs(run_dir) == [1, 2, 3]
    assert (run_dir / "weights" / "last.pt").stat().st_mtime_ns == last_mtime
    assert onnx_path.stat().st_mtime_ns == onnx_mtime

    changed = run([*command, "--seed", "5"], tmp_path)
    assert changed.returncode == 2 and "started with seed=0, now 5" in changed.stderr


@pytest.mark.slow
def test_bare_weights_name_is_refused_with_one_line_before_any_work(dataset, tmp_path):
    result = run([*train_command(dataset, tmp_path), "--model", "yolov8n.pt"], tmp_path, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "yolov8n.pt" in lines[0] and "never downloads" in lines[0]
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_bad_label_line_is_a_clear_error_naming_the_file_and_line(dataset, tmp_path):
    broken = make_dataset(tmp_path / "broken", n_train=3, n_val=2)
    (broken / "labels" / "train" / "p002.txt").write_text("0 0.5 0.5 0.2\n")
    data_yaml = (broken / "data.yaml").read_bytes()
    result = run(train_command(broken, tmp_path), tmp_path, timeout=60)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert f"{broken / 'labels' / 'train' / 'p002.txt'}:1" in last and "expected 'class cx cy w h'" in last
    assert NETWORK_MARK not in result.stderr
    assert (broken / "data.yaml").read_bytes() == data_yaml  # the user's files are only read
    assert not list(broken.rglob("*.cache"))


def test_recipe_values_are_defaults_that_flags_override(tmp_path):
    from training.train import load_settings

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "pcb", "imgsz": 320, "epochs": 40, "augment": {"fliplr": 0.5}}))
    settings = load_settings(recipe, {"epochs": 2, "batch": None})
    assert (settings.name, settings.imgsz, settings.epochs, settings.batch) == ("pcb", 320, 2, 16)
    recipe.write_text(yaml.safe_dump({"name": "pcb", "augment": {"flip": 0.5}}))
    with pytest.raises(Exception, match="unknown ultralytics knobs"):
        load_settings(recipe, {})


@pytest.mark.parametrize(
    "recipe", sorted((Path(__file__).parent.parent / "training" / "recipes").glob("*.yaml"))
)
def test_shipped_recipes_are_valid_training_settings(recipe, tmp_path):
    """Detector recipes through the detector's settings; `kind: classify|anomaly` ones through theirs."""
    kind = yaml.safe_load(recipe.read_text(encoding="utf-8")).get("kind", "detect")
    if kind == "detect":
        from training.train import load_settings

        settings = load_settings(recipe, {})
        assert settings.model.endswith(".yaml") and settings.epochs > 0
        return
    import argparse

    from edge.jsonmodel import validate_model
    from lineside.commands.train_judges import _values

    args = argparse.Namespace(
        recipe=recipe, kind=kind, data=tmp_path, out=None, work=None, name=None, version="1.0.0",
        **dict.fromkeys(("imgsz", "epochs", "batch", "seed", "device", "workers", "lr", "target_escape",
                         "coreset_ratio", "max_bank", "chunk_rows", "quantile", "margin", "min_area_px")),
    )  # fmt: skip
    values = _values(args, "x")
    if kind == "classify":
        from training.judges.classify_train import ClassifySettings

        assert validate_model(ClassifySettings, values, str(recipe)).epochs > 0
    else:
        from training.judges.anomaly_train import AnomalySettings

        assert 0 < validate_model(AnomalySettings, values, str(recipe)).coreset_ratio <= 1


@pytest.mark.slow
def test_preview_augment_writes_a_grid_and_trains_nothing(dataset, tmp_path):
    png = tmp_path / "preview.png"
    result = run([*train_command(dataset, tmp_path), "--preview-augment", str(png)], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    grid = cv2.imread(str(png))
    assert grid is not None and grid.shape[0] >= 256 and grid.shape[1] >= 256
    assert NETWORK_MARK not in result.stderr + result.stdout  # albumentations' update check is off
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_tiled_training_records_its_tile_size_and_the_detector_tiles_with_it(dataset, tmp_path):
    from edge.judge.detector.config import DetectorConfig, TilingConfig

    # The recipe's schedule keys (fine-tuning: no warm-up) reach ultralytics as they are.
    recipe = tmp_path / "finetune.yaml"
    schedule = {"optimizer": "SGD", "lr0": 0.002, "warmup_epochs": 0.0}
    recipe.write_text(yaml.safe_dump({"name": "spots", **schedule}), encoding="utf-8")
    command = train_command(
        dataset, tmp_path, "--tile", "64", "--tile-overlap", "0.25", "--epochs", "1", "--no-plots",
        "--recipe", str(recipe),
    )  # fmt: skip
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tiled train: 24 images -> 96 tiles of 64 px" in result.stderr
    used = yaml.safe_load((tmp_path / "work" / "runs" / "train" / "args.yaml").read_text())
    assert {key: used[key] for key in schedule} == schedule
    out = tmp_path / "models" / "spots" / "0.1"
    card, _ = load_verified(out)
    assert card.training.args["tiling"] == {"size": 64, "overlap": 0.25}
    assert (card.input.width, card.input.height) == (64, 64)
    detector = Detector(out, DetectorConfig(tiling=TilingConfig()))  # tile size from the card
    image = cv2.imread(str(dataset / "images" / "val" / "p002.png"))
    assert image is not None
    result_96 = detector.detect(np.asarray(image, dtype=np.uint8), conf_floor=0.0)
    assert all(0 <= v <= 96 for d in result_96.detections for v in d.box)


def test_detector_only_flags_are_refused_for_the_judge_kinds(tmp_path):
    from tests.line import lineside

    done = lineside("train", "--kind", "anomaly", "--data", str(tmp_path), "--model", "best.pt")
    assert done.returncode == 2 and "lineside train: --model: only for --kind detect" in done.stderr
    done = lineside("train", "--kind", "anomaly", "--data", str(tmp_path), "--epochs", "3")
    assert done.returncode == 2 and "--epochs: an anomaly model is not trained in epochs" in done.stderr


def test_judge_flags_are_refused_where_they_do_nothing(tmp_path):
    from tests.line import lineside

    done = lineside("train", "--data", str(tmp_path), "--crop", "256")  # --kind detect
    assert done.returncode == 2 and "--crop: only for --kind classify or anomaly" in done.stderr
    done = lineside("train", "--data", str(tmp_path), "--tta", "hflip")
    assert done.returncode == 2 and "--tta: only for --kind classify or anomaly" in done.stderr
    done = lineside("train", "--kind", "anomaly", "--data", str(tmp_path), "--pool", "max")
    assert done.returncode == 2 and "--pool: not for --kind anomaly" in done.stderr
    done = lineside("train", "--kind", "classify", "--data", str(tmp_path), "--patch-stride", "16")
    assert done.returncode == 2 and "--patch-stride: not for --kind classify" in done.stderr


def test_classify_crop_and_pool_flags_reach_the_settings(tmp_path):
    from lineside.cli import build_parser
    from lineside.commands.train_judges import _values

    args = build_parser().parse_args(
        [
            "train",
            "--kind",
            "classify",
            "--data",
            str(tmp_path),
            "--imgsz",
            "640",
            "--crop",
            "256",
            "--pool",
            "max",
        ]
    )
    values = _values(args, "parts")
    assert (values["imgsz"], values["crop"], values["pool"]) == (640, 256, "max")
