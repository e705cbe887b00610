"""The classify kind's network, its ONNX export, the parity proof, the val threshold and the model card.

Graph: images (1, 3, H, W) RGB in [0, 1] -> Normalise -> EfficientNet-Lite0 features -> pool -> linear
head -> "scores" (softmax, classes[0] == "good"), and "heatmap" (1, H, W): the class activation map of the
strongest defect class minus that of "good", upsampled to the input, ReLU'd.

Two pools. `avg` (global average, the default): the map's mean (before ReLU) is exactly the logit
difference. `max` ("strongest location", multiple-instance style): the part's logits are the head's logits
at the one location whose defect evidence is highest, so the part is good only when every location is. A
defect then weighs the same whatever the size of the image around it: a `max` model trained on crops at
the appliance's scale judges the whole part (classify_data's `crop`), where an average would dilute it.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from edge.judge.detector.preprocess import Preprocessor
from edge.judge.thresholds import ScoredPart, choose_thresholds, evaluate, next_step_above
from edge.modelstore.card import (
    CARD_FILE,
    BackboneInfo,
    ModelCard,
    OutputSpec,
    Thresholds,
    TrainingInfo,
    sha256_file,
    write_card,
)
from training.export import OPSET
from training.judges.backbone import BackboneWeights, Normalise, build_backbone
from training.judges.classify_data import Frame, FrameTensor, PartSet, input_spec, load_frame
from training.judges.judge_metrics import auroc
from training.registry import export_parity, save_parity

INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "heatmap")
PARITY_ATOL = 1e-4  # scores absolute; heat map relative to its largest value (it is in logit units)
PARITY_FRAMES = 4
FloatArray = npt.NDArray[np.float32]


Pool = Literal["avg", "max"]


def location_logits(features: torch.Tensor, head: nn.Linear) -> torch.Tensor:
    """The head applied at every location of a feature map: (N, C, h, w) logits (the class activation map)."""
    return F.conv2d(features, head.weight[:, :, None, None], head.bias)


def strongest_location(cams: torch.Tensor) -> torch.Tensor:
    """(N, C) logits of each image at its location of highest defect evidence (strongest defect class's
    logit minus good's), from (N, C, h, w) per-location logits."""
    evidence = cams[:, 1:].amax(dim=1) - cams[:, 0]  # (N, h, w)
    where = evidence.flatten(1).argmax(dim=1)  # (N,)
    flat = cams.flatten(2)  # (N, C, h*w)
    return flat.gather(2, where[:, None, None].expand(-1, flat.shape[1], 1))[:, :, 0]


class Classifier(nn.Module):
    """Normalise + pretrained backbone + dropout + linear head on the pooled last feature map.

    Batch-norm statistics stay frozen at ImageNet's in training: factory batches are small and one-sided.
    """

    def __init__(self, backbone: nn.Module, n_classes: int, dropout: float = 0.2, pool: Pool = "avg") -> None:
        super().__init__()
        backbone.reset_classifier(0)  # type: ignore[operator]  # timm's; the ImageNet head is not used
        self.normalise = Normalise()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(backbone.num_features), n_classes)  # type: ignore[arg-type]
        self.pool = pool

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map (N, 1280, H/32, W/32) of RGB [0, 1] images."""
        out: torch.Tensor = self.backbone.forward_features(self.normalise(images))  # type: ignore[operator]
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        if self.pool == "max":
            return strongest_location(location_logits(self.dropout(features), self.head))
        return self.head(self.dropout(features.mean(dim=(2, 3))))  # type: ignore[no-any-return]

    def pooled_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C) logits of a (N, 1280, h, w) feature map, by this classifier's pool (no dropout)."""
        if self.pool == "max":
            return strongest_location(location_logits(features, self.head))
        return self.head(features.mean(dim=(2, 3)))  # type: ignore[no-any-return]

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


def build_classifier(
    n_classes: int, weights: BackboneWeights | None = None, pool: Pool = "avg"
) -> Classifier:
    """A new classifier on the ImageNet backbone (the head seeded by torch's global RNG)."""
    return Classifier(build_backbone(weights), n_classes, pool=pool)


TTA_VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {
    # the flipped axes of each view of the (N, C, H, W) input; () is the image as it is
    "none": ((),),
    "hflip": ((), (3,)),
    "flips": ((), (3,), (2,), (2, 3)),
}


class ClassifierGraph(nn.Module):
    """What is exported: (scores (1, C), heatmap (1, H, W)) of a classifier, in eval mode.

    With test-time flips the part is judged as it is and mirrored, in one batch: the probabilities are
    the views' mean, the heat map the mean of each view's map flipped back onto the part.
    """

    def __init__(self, classifier: Classifier, tta: str = "none") -> None:
        super().__init__()
        self.classifier = classifier
        self.views = TTA_VIEWS[tta]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.classifier.head
        batch = torch.cat([images.flip(axes) if axes else images for axes in self.views])
        feats = self.classifier.features(batch)
        logits = self.classifier.pooled_logits(feats)  # (views, C)
        probabilities = torch.softmax(logits, dim=1).mean(dim=0, keepdim=True)
        cams = location_logits(feats, head)  # (views, C, h, w)
        strongest = logits.mean(dim=0, keepdim=True)[:, 1:].argmax(dim=1, keepdim=True) + 1
        index = strongest[:, :, None, None].expand(cams.shape[0], 1, cams.shape[2], cams.shape[3])
        evidence = torch.gather(cams, 1, index) - cams[:, :1]
        heat = F.interpolate(evidence, size=images.shape[2:], mode="bilinear", align_corners=False)
        maps = [heat[i : i + 1].flip(axes) if axes else heat[i : i + 1] for i, axes in enumerate(self.views)]
        return probabilities, torch.relu(torch.stack(maps).mean(dim=0))[:, 0]


def export_onnx(
    classifier: Classifier, imgsz: int, path: Path, backbone_sha256: str, tta: str = "none"
) -> Path:
    """Write the graph as a static batch-1 fp32 ONNX file (opset 17) with lineside's metadata, checked.

    The TorchScript exporter (dynamo=False): the default dynamo exporter needs onnxscript (not a dependency)
    and emits opset 18 and up, which it would have to down-convert to the contract's 17.
    """
    import onnx

    graph = ClassifierGraph(classifier, tta).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.export")
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is chosen on purpose (see above): its deprecation notice is no news
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            graph, (dummy,), str(scratch), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            opset_version=OPSET, dynamo=False, external_data=False,
        )  # fmt: skip
    model = onnx.load(str(scratch))
    scratch.unlink()
    for key, value in (("lineside.task", "classify"), ("lineside.backbone_sha256", backbone_sha256)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise LinesideError(
            f"{path}: exported graph fails onnx.checker ({str(exc).splitlines()[0]})"
        ) from None
    return atomic_write_bytes(path, model.SerializeToString())


def onnx_session(path: Path) -> Any:
    """An onnxruntime CPU session using as many threads as torch is allowed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(
    onnx_path: Path,
    classifier: Classifier,
    frames: Sequence[Frame],
    imgsz: int,
    *,
    to_tensor: Callable[[Frame], torch.Tensor] | None = None,
    tta: str = "none",
) -> float:
    """Largest (scaled) difference between onnxruntime on edge's pre-processing and the torch classifier on
    training's (`to_tensor`, default FrameTensor); LinesideError above PARITY_ATOL."""
    session = onnx_session(onnx_path)
    preprocess = Preprocessor(input_spec(imgsz))
    to_tensor = to_tensor or FrameTensor(imgsz)
    graph = ClassifierGraph(classifier, tta).eval()
    worst = 0.0
    for frame in frames:
        served, _ = preprocess(frame)
        scores, heat = session.run(list(OUTPUT_NAMES), {INPUT_NAME: served})
        with torch.no_grad():
            ref_scores, ref_heat = (t.numpy() for t in graph(to_tensor(frame)))
        heat_scale = max(1.0, float(np.abs(ref_heat).max()))
        worst = max(
            worst, float(np.abs(scores - ref_scores).max()), float(np.abs(heat - ref_heat).max()) / heat_scale
        )
    if worst > PARITY_ATOL:
        raise LinesideError(
            f"{onnx_path}: onnxruntime on edge's pre-processing differs from the trained torch model by"
            f" {worst:.2e} (> {PARITY_ATOL:g}): export or pre-processing mismatch, model refused"
        )
    return worst


def served_defect_scores(onnx_path: Path, parts: PartSet, imgsz: int) -> FloatArray:
    """Defect score (1 - P(good)) of every part, as the appliance computes it: Preprocessor + onnxruntime."""
    session = onnx_session(onnx_path)
    preprocess = Preprocessor(input_spec(imgsz))
    scores = np.empty(len(parts.items), np.float32)
    for index, item in enumerate(parts.items):
        tensor, _ = preprocess(load_frame(item.image))
        probabilities = session.run([OUTPUT_NAMES[0]], {INPUT_NAME: tensor})[0]
        scores[index] = 1.0 - float(probabilities[0, 0])
    return scores


def choose_score_threshold(
    names: Sequence[str], scores: npt.ArrayLike, defective: Sequence[bool], target_escape: float
) -> tuple[float, dict[str, object]]:
    """The defect-score threshold with escape <= target at the lowest overkill (edge's chooser), and what it
    gives. Never one that rejects every good part: then the best escape + overkill instead, said so."""
    values = [float(s) for s in np.asarray(scores, np.float64)]
    parts = [ScoredPart(n, d, {"defect": s}) for n, d, s in zip(names, defective, values, strict=True)]
    # The chooser's default ceiling (0.9) suits detector confidences; a well-trained classifier's good parts
    # can score above it (DeepPCB: 0.0 % / 7.3 % under the ceiling, 0.9 % / 0.5 % at 0.997 above it).
    chosen = choose_thresholds(parts, ["defect"], target_escape=target_escape, ceiling=1.0)
    target_met = chosen.escape_rate <= target_escape and chosen.overkill_rate < 1.0
    if not target_met:
        candidates = {next_step_above(p.best["defect"]) for p in parts if not p.defective}
        trials = [evaluate(parts, {"defect": round(c, 6)}) for c in sorted(candidates)]
        chosen = min(trials, key=lambda op: op.escape_rate + op.overkill_rate)
        print(
            f"lineside train: no threshold meets escape <= {target_escape:g} without rejecting every good"
            f" val part; using the best escape + overkill ({chosen.thresholds['defect']:.4f})",
            file=sys.stderr,
        )
    threshold = round(chosen.thresholds["defect"], 4)
    metrics: dict[str, object] = {
        "split": "val",
        "parts": len(parts),
        "defective_parts": sum(defective),
        "good_parts": len(parts) - sum(defective),
        "target_escape_rate": target_escape,
        "target_met": target_met,
        "threshold": threshold,
        "escape_rate": round(chosen.escape_rate, 4),
        "overkill_rate": round(chosen.overkill_rate, 4),
        "auroc": None if (a := auroc(values, defective)) is None else round(a, 4),
    }
    return threshold, metrics


def require_good_and_defective(val: PartSet) -> None:
    """The threshold is chosen on `val`: it must hold both good and defective parts."""
    labels = {item.label != 0 for item in val.items}
    if labels != {False, True}:
        raise LinesideError(
            f"{val.root}: the {val.split} split needs good and defective parts to choose a threshold"
        )


def export_classifier(
    classifier: Classifier,
    out_dir: Path,
    *,
    name: str,
    version: str,
    imgsz: int,
    classes: tuple[str, ...],
    val: PartSet,
    target_escape: float,
    weights: BackboneWeights,
    training: TrainingInfo,
    tta: str = "none",
) -> ModelCard:
    """Export to out_dir (model.onnx, then card.json last), proven equal to the torch model through edge's
    pre-processing, with thresholds.score chosen on `val` through the exported model itself. A parity
    failure raises LinesideError and leaves no card (the appliance loads no folder without one)."""
    require_good_and_defective(val)
    defective = [item.label != 0 for item in val.items]
    classifier = classifier.eval().cpu()
    # A folder with a card is complete: drop an older card first, so a failed export leaves none behind.
    (out_dir / CARD_FILE).unlink(missing_ok=True)
    onnx_path = export_onnx(classifier, imgsz, out_dir / "model.onnx", weights.sha256, tta)
    frames = [load_frame(item.image) for item in val.items[:PARITY_FRAMES]]
    parity = check_parity(onnx_path, classifier, frames, imgsz, tta=tta)
    scores = served_defect_scores(onnx_path, val, imgsz)
    names = [item.image.name for item in val.items]
    threshold, metrics = choose_score_threshold(names, scores, defective, target_escape)
    metrics["parity_max_diff"] = float(f"{parity:.3g}")
    metrics["test_time_views"] = len(TTA_VIEWS[tta])
    card = ModelCard(
        name=name,
        version=version,
        task="classify",
        sha256=sha256_file(onnx_path),
        input=input_spec(imgsz),
        output=OutputSpec(layout="class_map"),
        classes=classes,
        thresholds=Thresholds(score=threshold),
        training=training,
        metrics=metrics,
        precision="fp32",
        backbone=BackboneInfo.model_validate(weights.card_info()),
    )
    write_card(out_dir, card)
    save_parity(out_dir, export_parity(card.sha256, parity, len(frames), PARITY_ATOL))
    return card
