"""A labelled split scored through the appliance's own judges (`edge.judge.inspector.Inspector`): per part,
its truth, every stage's score and verdict, the chain's verdict and the stages' heat maps.

Whatever the kind (detect, classify, anomaly) or the chain, parts are judged by the exact code the line
runs, so the figures are the line's, not the training framework's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.judge.inspection import Verdict
from edge.judge.inspector import Inspector, load_model
from edge.judge.mapstage import MapStage
from edge.sources.config import SourceConfig
from edge.sources.imagecheck import read_image_file
from edge.station.config import RecipeConfig, load_config
from training.evaldata import Split, read_split

PROGRESS_SECONDS = 2.0


@dataclass(frozen=True)
class JudgedPart:
    """One part of the split as the chain saw it."""

    image: Path
    defective: bool
    classes: tuple[str, ...]  # the defect classes its labels name (empty for a good part)
    verdict: Verdict
    stage_scores: dict[str, float]  # by stage; a stage with nothing to score gives 0
    stage_verdicts: dict[str, Verdict]
    heatmaps: dict[str, npt.NDArray[np.uint8]] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class JudgedSplit:
    split: Split
    stages: tuple[str, ...]
    kinds: dict[str, str]
    thresholds: dict[str, float | None]
    models: dict[str, dict[str, str]]
    parts: tuple[JudgedPart, ...]
    seconds: float


def recipe_for(model: Path | None, config: Path | None, recipe: int | None) -> RecipeConfig:
    """The recipe to evaluate: a config's (default) recipe, else one model folder of any kind alone."""
    if config is not None:
        station = load_config(config)
        number = recipe if recipe is not None else station.default_recipe
        found = station.recipe(number)
        if found is None:
            raise LinesideError(f"{config}: --recipe {number} is not one of its recipes")
        return found if model is None else found.model_copy(update={"model": model})
    if model is None:
        raise LinesideError("eval: give --model or --config")
    return RecipeConfig(number=0, name="eval", model=model)


def load_inspector(recipe: RecipeConfig) -> Inspector:
    primary = load_model(recipe.model)
    return Inspector.load(recipe, primary, {s.model: load_model(s.model) for s in recipe.stages})


def _label_classes(label: Path, names: Sequence[str] | None) -> tuple[str, ...]:
    if not label.is_file():
        return ()
    found = set()
    for line in label.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts:
            index = int(float(parts[0]))
            found.add(names[index] if names is not None and 0 <= index < len(names) else f"class{index}")
    return tuple(sorted(found))


def judge_split(inspector: Inspector, data_dir: Path, split_name: str, progress: bool = True) -> JudgedSplit:
    """Every image of the split judged; progress on stderr every PROGRESS_SECONDS."""
    split = read_split(data_dir, split_name)
    start = last = time.monotonic()
    parts = []
    for number, item in enumerate(split.items, 1):
        image = read_image_file(item.image, SourceConfig(kind="folder", path=item.image.parent))
        inspection = inspector.inspect(image)
        if inspection.decision.verdict is Verdict.FAULT:
            raise LinesideError(f"{item.image}: the chain gave a FAULT ({inspection.decision.reasons[0]})")
        parts.append(
            JudgedPart(
                image=item.image,
                defective=item.defective,
                classes=_label_classes(item.label, split.classes) if item.defective else (),
                verdict=inspection.decision.verdict,
                stage_scores={s.stage: float(s.score or 0.0) for s in inspection.stages},
                stage_verdicts={s.stage: s.verdict for s in inspection.stages},
                heatmaps={s.stage: s.heatmap for s in inspection.stages if s.heatmap is not None},
            )
        )
        now = time.monotonic()
        if progress and (now - last >= PROGRESS_SECONDS or number == len(split.items)):
            eta = (now - start) / number * (len(split.items) - number)
            print(f"eval {split.name}: {number}/{len(split.items)} images, eta {eta:.0f} s", file=sys.stderr)
            last = now
    stages = inspector.stages
    return JudgedSplit(
        split=split,
        stages=tuple(s.name for s in stages),
        kinds={s.name: s.card.task for s in stages},
        thresholds={s.name: s.threshold if isinstance(s, MapStage) else None for s in stages},
        models={
            s.name: {"name": s.card.name, "version": s.card.version, "sha256": s.card.sha256} for s in stages
        },
        parts=tuple(parts),
        seconds=time.monotonic() - start,
    )
