"""The anomaly kind's graph: backbone patch features, a nearest-good-patch search over the memory bank in
fixed chunks, and the smoothed anomaly map; its ONNX export with metadata and an onnxruntime parity check.

The search never holds a patches x bank matrix: each chunk of `chunk_rows` bank rows is one Gemm
(-2 p.m + ||m||^2, one patches x chunk_rows block) and a ReduceMin, the chunks unrolled at export and
folded by a running minimum; ||p||^2 is added after the minimum (it is the same for every bank row).
Peak working memory is therefore patches x chunk_rows floats, whatever the bank size (anomalib's
PatchCore export builds the full matrix: its issue #967).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from edge.modelstore.card import (
    AnomalyInfo,
    BackboneInfo,
    InputSpec,
    ModelCard,
    OutputSpec,
    Thresholds,
    TrainingInfo,
    sha256_file,
    write_card,
)
from training.judges.anomaly_threshold import ThresholdChoice
from training.judges.backbone import STAGE_CHANNELS, Normalise

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAMES = ("score", "heatmap")
LAYERS = (2, 3)  # timm stage indices: stride 8 (40 channels) and stride 16 (112 channels)
SIGMA_PX = 4.0  # the anomaly map's Gaussian smoothing, in input pixels
PARITY_RTOL = 1e-3
PARITY_ATOL = 2e-3  # in the score's units, relative to max(1, score): float32 distance rounding


PATCH_STRIDES = (8, 16)  # input pixels between two patches: stage 2's grid, or 2 x 2 of it averaged


class PatchFeatures(nn.Module):
    """RGB [0, 1] images (B, 3, H, W) to patch features (B, D, H/s, W/s): each stage's 3x3 local average
    (PatchCore's neighbourhood aggregation), the coarser stages upsampled to the first one's grid (s = 8);
    with stride 16, each 2 x 2 block of those patches averaged into one (a quarter of the patches to search
    and to bank)."""

    def __init__(self, backbone: nn.Module, layers: Sequence[int] = LAYERS, stride: int = 8) -> None:
        super().__init__()
        if stride not in PATCH_STRIDES:
            raise LinesideError(f"patch_stride: {stride} is not one of {list(PATCH_STRIDES)}")
        self.stride = stride
        self.layers = list(layers)
        self.normalise = Normalise()
        self.backbone = backbone
        prune: Any = backbone.prune_intermediate_layers
        # Drops the blocks after the last stage used and the classifier: the exported graph is smaller.
        prune(indices=self.layers, prune_head=True)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    @property
    def feature_dim(self) -> int:
        return sum(STAGE_CHANNELS[layer] for layer in self.layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        backbone: Any = self.backbone  # timm's model: forward_intermediates is not on nn.Module
        stages = backbone.forward_intermediates(
            self.normalise(images), indices=self.layers, intermediates_only=True
        )
        size = stages[0].shape[-2:]
        pooled = [self.pool(stage) for stage in stages]
        resized = [pooled[0]] + [
            F.interpolate(stage, size=size, mode="bilinear", align_corners=False) for stage in pooled[1:]
        ]
        patches = torch.cat(resized, dim=1)
        return patches if self.stride == 8 else F.avg_pool2d(patches, self.stride // 8)


def to_patches(features: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) features to (B * h * w, D) patch rows, row-major within each image."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])


class NearestGood(nn.Module):
    """Squared distance from each patch (N, D) to its nearest bank row, searched chunk by chunk."""

    def __init__(self, bank: npt.NDArray[np.float32], chunk_rows: int) -> None:
        super().__init__()
        if bank.ndim != 2 or not len(bank) or chunk_rows < 1:
            raise LinesideError(f"memory bank: shape {bank.shape} / chunk_rows {chunk_rows} unusable")
        self.bank_size = len(bank)
        self.chunk_rows = chunk_rows
        self.chunks = len(range(0, len(bank), chunk_rows))
        for index, start in enumerate(range(0, len(bank), chunk_rows)):
            rows = torch.from_numpy(np.ascontiguousarray(bank[start : start + chunk_rows], np.float32))
            # Stored transposed (D, rows), so the Gemm reads it as is; its squared norms beside it.
            self.register_buffer(f"bank_{index:04d}", rows.t().contiguous())
            self.register_buffer(f"norm_{index:04d}", (rows * rows).sum(dim=1))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        best: torch.Tensor | None = None
        for index in range(self.chunks):  # unrolled by the exporter: one Gemm + ReduceMin per chunk
            bank = getattr(self, f"bank_{index:04d}")
            norm = getattr(self, f"norm_{index:04d}")
            nearest = torch.addmm(norm, patches, bank, beta=1.0, alpha=-2.0).amin(dim=1)
            best = nearest if best is None else torch.minimum(best, nearest)
        assert best is not None  # at least one chunk: checked in __init__
        return (best + (patches * patches).sum(dim=1)).clamp_min(0.0)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ceil(4 sigma)."""
    radius = math.ceil(4 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma * sigma))
    return kernel / kernel.sum()


class AnomalyMap(nn.Module):
    """Patch distances (h * w,) to the map over the input (1, H, W): bilinear upsampling, then a fixed
    separable Gaussian blur with reflected borders."""

    kernel_x: torch.Tensor
    kernel_y: torch.Tensor

    def __init__(self, grid: tuple[int, int], size: tuple[int, int], sigma: float = SIGMA_PX) -> None:
        super().__init__()
        self.grid = grid
        self.size = size
        kernel = gaussian_kernel(sigma)
        self.radius = len(kernel) // 2
        if min(size) <= self.radius:
            raise LinesideError(f"anomaly map: input {size} is too small for a blur of radius {self.radius}")
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1))
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1))

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        grid = distances.reshape(1, 1, *self.grid)
        image = F.interpolate(grid, size=self.size, mode="bilinear", align_corners=False)
        r = self.radius
        padded = F.pad(image, (r, r, r, r), mode="reflect")
        blurred = F.conv2d(F.conv2d(padded, self.kernel_x), self.kernel_y)
        return blurred[:, 0]


class AnomalyModel(nn.Module):
    """The exported module: images (1, 3, H, W) to score (1,) = the map's maximum and heatmap (1, H, W)."""

    projection: torch.Tensor | None

    def __init__(
        self,
        features: PatchFeatures,
        bank: NearestGood,
        imgsz: int,
        projection: npt.NDArray[np.float32] | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.nearest = bank
        # PCA: (D, k) principal directions of the good patches; the bank holds projected rows.
        self.register_buffer("projection", None if projection is None else torch.from_numpy(projection))
        # stage 2's grid (stride 8 with TF "same" padding; imgsz is a multiple of 16), pooled to the stride
        grid = math.ceil(imgsz / 8) // (features.stride // 8)
        self.map = AnomalyMap((grid, grid), (imgsz, imgsz))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = to_patches(self.features(images))
        if self.projection is not None:
            patches = patches @ self.projection
        heatmap = self.map(self.nearest(patches).sqrt())
        return heatmap.amax(dim=(1, 2)), heatmap


def _finish_graph(onnx_bytes: bytes, metadata: dict[str, str], where: Path) -> bytes:
    """Fold the static shape arithmetic (TF "same" padding) with onnxslim, so every output has its
    fixed shape; add the metadata; run onnx.checker."""
    import importlib

    import onnx

    onnxslim: Any = importlib.import_module("onnxslim")  # untyped
    model = onnxslim.slim(onnx.load_from_string(onnx_bytes))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise LinesideError(
            f"{where}: exported graph fails onnx.checker ({str(exc).splitlines()[0]})"
        ) from None
    data: bytes = model.SerializeToString()
    return data


def ort_session(path: Path) -> object:
    """An onnxruntime CPU session using as many threads as torch does (the appliance runs it on CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session: object, image: npt.NDArray[np.float32]) -> tuple[float, npt.NDArray[np.float32]]:
    """Score and heatmap of one (1, 3, H, W) image through an onnxruntime session."""
    score, heatmap = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})  # type: ignore[attr-defined]
    return float(score[0]), np.asarray(heatmap, np.float32)


def check_parity(model: AnomalyModel, path: Path, images: Sequence[npt.NDArray[np.float32]]) -> float:
    """Largest score/heatmap difference between onnxruntime and the torch module on `images`;
    LinesideError when it exceeds the tolerance."""
    session = ort_session(path)
    worst = 0.0
    with torch.no_grad():
        for image in images:
            score, heatmap = model(torch.from_numpy(image))
            ort_score, ort_heatmap = run_session(session, image)
            scale = max(1.0, abs(float(score[0])))
            diff = max(abs(ort_score - float(score[0])), float(np.abs(ort_heatmap - heatmap.numpy()).max()))
            worst = max(worst, diff / scale)
            if diff > PARITY_ATOL * scale + PARITY_RTOL * abs(float(score[0])):
                raise LinesideError(
                    f"{path}: onnxruntime differs from torch by {diff:.3g} (score {float(score[0]):.4g}):"
                    " export refused"
                )
    return worst


def export_anomaly(model: AnomalyModel, path: Path, imgsz: int, metadata: dict[str, str]) -> Path:
    """Export `model` (CPU, eval) to `path` as a static batch-1 opset-17 graph with `metadata` in its
    metadata_props, checked by onnx.checker and written atomically."""
    import tempfile
    import warnings

    model = model.cpu().eval()
    dummy = torch.zeros(1, 3, imgsz, imgsz, dtype=torch.float32)
    with (
        tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as scratch,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        # timm's TF "same" padding leaves shape arithmetic the exporter cannot fold; onnxslim folds it.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        raw = Path(scratch) / "raw.onnx"
        torch.onnx.export(
            model,
            (dummy,),
            str(raw),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        exported = raw.read_bytes()
    return atomic_write_bytes(path, _finish_graph(exported, metadata, path))


def model_metadata(backbone_sha256: str, bank: NearestGood) -> dict[str, str]:
    """The metadata_props the appliance checks against the card."""
    return {
        "lineside.task": "anomaly",
        "lineside.backbone_sha256": backbone_sha256,
        "lineside.bank_size": str(bank.bank_size),
        "lineside.chunk_rows": str(bank.chunk_rows),
    }


def write_anomaly_card(
    out: Path,
    onnx_path: Path,
    *,
    name: str,
    version: str,
    imgsz: int,
    choice: ThresholdChoice,
    min_area_px: float,
    metrics: dict[str, object],
    backbone: dict[str, str],
    training: TrainingInfo,
    coreset_ratio: float,
    feature_dim: int | None = None,
    pca_from: int | None = None,
    patch_stride: int = 8,
) -> ModelCard:
    """card.json beside model.onnx (written last: a folder with a card is complete); the card."""
    bank_size, chunk_rows = _bank_metadata(onnx_path)
    full_dim = sum(STAGE_CHANNELS[layer] for layer in LAYERS)
    card = ModelCard(
        name=name,
        version=version,
        task="anomaly",
        sha256=sha256_file(onnx_path),
        input=InputSpec(width=imgsz, height=imgsz),
        output=OutputSpec(layout="anomaly_map"),
        classes=("anomaly",),
        # The score is the map's maximum, so with min_area_px 0 the pixel rule and the score rule agree:
        # the map reaches the score threshold exactly where a part is rejected.
        thresholds=Thresholds(score=choice.score, pixel=choice.score, min_area_px=min_area_px),
        training=training,
        metrics=metrics,
        backbone=BackboneInfo(**backbone),
        anomaly=AnomalyInfo(
            bank_size=bank_size,
            feature_dim=feature_dim or full_dim,
            pca_from=pca_from,
            chunk_rows=chunk_rows,
            coreset_ratio=coreset_ratio,
            layers=LAYERS,
            patch_stride=patch_stride,
            threshold_source=choice.source,
            quantile=choice.quantile,
            margin=choice.margin,
        ),
    )
    write_card(out, card)
    return card


def _bank_metadata(onnx_path: Path) -> tuple[int, int]:
    """bank_size and chunk_rows as the exported file states them (the card must agree with the file)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    try:
        return int(props["lineside.bank_size"]), int(props["lineside.chunk_rows"])
    except (KeyError, ValueError):
        raise LinesideError(f"{onnx_path}: metadata lineside.bank_size/chunk_rows missing") from None
