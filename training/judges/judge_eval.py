"""`lineside eval` for classify and anomaly models and for a recipe's chain of judges: the split judged
through the appliance's own code, the report, its plots, and a table across sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from edge.atomic import atomic_write_text
from edge.station.config import RecipeConfig
from training.judges.judge_report import JudgeReport, build_report, markdown, write_report
from training.judges.judge_scores import judge_split, load_inspector


def evaluate_judges(  # noqa: PLR0917 (the CLI's one call)
    recipe: RecipeConfig,
    data_dirs: Sequence[Path],
    split: str,
    target_escape: float,
    out_dir: Path | None,
    plots: bool = True,
) -> list[JudgeReport]:
    """One report per data set (a folder each under `out_dir` when there are several)."""
    inspector = load_inspector(recipe)
    reports = []
    for data_dir in data_dirs:
        report = build_report(judge_split(inspector, data_dir, split), target_escape)
        if out_dir is not None:
            site_dir = out_dir if len(data_dirs) == 1 else out_dir / data_dir.name
            if plots:
                from training.judges.judge_plots import (
                    write_plots,  # matplotlib only when plots are asked for
                )

                report = replace(report, plots=write_plots(report, site_dir))
            write_report(report, site_dir)
        reports.append(report)
    if out_dir is not None and len(reports) > 1:
        atomic_write_text(out_dir / "cross_site.md", markdown(reports))
    return reports


def stage_model_dirs(recipe: RecipeConfig) -> dict[str, Path]:
    """Each stage's model folder by stage name (the names the inspector gives them)."""
    inspector = load_inspector(recipe)
    folders = [recipe.model, *(s.model for s in recipe.stages)]
    return {stage.name: folder for stage, folder in zip(inspector.stages, folders, strict=True)}
