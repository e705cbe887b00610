"""The registry, its promotion gate and the line's hot swap for classify and anomaly models."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.scoremap import ScoreMapModel
from edge.modelstore.hotswap import ModelWatcher, SwapOutcome, current_model_dir, load_inspectors
from edge.station.config import RecipeConfig, RegistryModelConfig
from tests.mapmodels import dark_part, make_map_model, with_spot
from training.registry import GateConfig, add_version, promote


def _split(root: Path) -> Path:
    for split in ("val",):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\nval: images/val\nnames: [spot]\n", encoding="utf-8")
    for i, radius in enumerate([None, 4, None, 6]):
        frame = dark_part() if radius is None else with_spot(dark_part(), 50, 50, radius)
        cv2.imwrite(str(root / "images" / "val" / f"p{i}.png"), frame)
        label = "" if radius is None else "0 0.3 0.4 0.1 0.1\n"
        (root / "labels" / "val" / f"p{i}.txt").write_text(label, encoding="utf-8")
    return root


def test_an_anomaly_model_is_promoted_through_the_gate_and_the_line_swaps_to_it(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    gate = GateConfig(max_escape_rate=0.0, require_parity=False)
    data = _split(tmp_path / "data")
    for version, threshold in (("1.0.0", 0.5), ("1.1.0", 0.6), ("2.0.0", 0.95)):
        built = make_map_model(
            tmp_path / version, "anomaly", name="tile", version=version, threshold=threshold
        )
        add_version(registry, built)
    promote(registry, "tile", "1.0.0", gate=gate, eval_data=data)
    with pytest.raises(LinesideError, match=r"escape rate 1\.0000 is above"):
        promote(registry, "tile", "2.0.0", gate=gate, eval_data=data)  # 0.95 passes every spot (0.8)
    recipe = RecipeConfig(
        number=1, name="t", model_registry=RegistryModelConfig(dir=registry, name="tile", poll_s=0.1)
    )
    cfg = DetectorConfig(warmup_runs=1)
    loaded = load_inspectors([recipe], current_model_dir(recipe), cfg)
    watcher = ModelWatcher([recipe], cfg, loaded)
    promote(registry, "tile", "1.1.0", gate=gate, eval_data=data)
    deadline = time.monotonic() + 20
    outcome = SwapOutcome()
    while time.monotonic() < deadline and not outcome.swapped:
        outcome = watcher.poll()
        time.sleep(0.05)
    watcher.close()
    primary = outcome.swapped[1].primary
    assert isinstance(primary, ScoreMapModel) and primary.card.version == "1.1.0"
