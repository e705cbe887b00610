"""PNG charts of a dataset check: class balance and box sizes per split (matplotlib Agg, local fonts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.datasets.check import CheckReport


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; DejaVu Sans ships with matplotlib, so no font is fetched
    import matplotlib.pyplot as plt

    return plt


def _grouped_bars(ax, labels: list[str], series: dict[str, list[int]], title: str) -> None:  # type: ignore[no-untyped-def]
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (split, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=split)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_title(title)
    ax.legend()


def write_plots(report: CheckReport, out_dir: Path) -> list[Path]:
    """class_balance.png and box_sizes.png under `out_dir`; returns the written paths."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(report.names)
    written: list[Path] = []

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    _grouped_bars(
        axes[0],
        names,
        {s: [st.boxes_per_class[n] for n in names] for s, st in report.splits.items()},
        "boxes",
    )
    parts = {s: [st.good, st.defective] for s, st in report.splits.items()}
    _grouped_bars(axes[1], ["good", "defective"], parts, "parts (images)")
    fig.tight_layout()
    target = out_dir / "class_balance.png"
    fig.savefig(target, dpi=100)
    plt.close(fig)
    written.append(target)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    first = next(iter(report.splits.values()), None)
    if first is not None:
        px = {s: list(st.box_px_hist.values()) for s, st in report.splits.items()}
        rel = {s: list(st.box_rel_hist.values()) for s, st in report.splits.items()}
        _grouped_bars(axes[0], list(first.box_px_hist), px, "box size sqrt(w*h), pixels")
        _grouped_bars(axes[1], list(first.box_rel_hist), rel, "box size sqrt(w*h), fraction of image side")
    fig.tight_layout()
    target = out_dir / "box_sizes.png"
    fig.savefig(target, dpi=100)
    plt.close(fig)
    written.append(target)
    return written
