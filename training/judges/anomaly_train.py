"""Training of the anomaly kind (PatchCore): a memory bank of good patch features, threshold, model folder.

Learned from good parts only: the train split's parts without defect boxes (or a folder of good images)
go through the appliance's own Preprocessor and the pretrained EfficientNet-Lite0; a greedy k-center
coreset of their patch features is the memory bank; the exported graph (training/judges/anomaly_export.py)
is scored by onnxruntime on the validation split to choose the threshold, so the card's numbers are
the shipped file's. Steps are cached under the work dir: a rerun skips what is done.

The coreset is a greedy k-center of our own (greedy_coreset), not anomalib's KCenterGreedy (2.7.0), measured
here: anomalib imports offline (~5 s, no network attempt) and samples our features, but (1) it cannot be
seeded through its API (its random projection draws from numpy's global RNG via scikit-learn, random_state
None, and torch's global generator); (2) its projection (Johnson-Lindenstrauss at eps 0.9, made for 1536-dim
features) lifts our 152 dims to 203-244 for 4k-20k patches: on one CPU thread, 20k x 152 at 5 %, it took
3.2 s for a coverage radius of 17.3 against 0.9 s and 16.7 here (exact distances); (3) it pulls 36
packages (~380 MB: lightning, pandas, scikit-learn, scikit-image, kornia). The rest of anomalib does not
fit either: its PatchcoreModel fetches timm weights from the Hugging Face hub (refused offline) and its
export searches the whole bank in one patches x bank matrix (anomalib #967).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from edge.judge.detector.preprocess import Preprocessor
from edge.modelstore.card import InputSpec
from training.evaldata import read_split
from training.judges.anomaly_threshold import choose_threshold, val_metrics
from training.scoring import IMAGE_SUFFIXES

Progress = Callable[[str], None]
SHARD_IMAGES = 32  # featurised images per cache file: a killed run loses at most one shard
HOLD_OUT_EVERY = 5  # a folder of good images: every 5th is held out to set the threshold
STAMP = "finished.json"
PCA_SAMPLE = 200_000  # patches the projection is fitted on: plenty for a 152 x 152 covariance


def stderr_progress(message: str) -> None:
    print(f"lineside train anomaly: {message}", file=sys.stderr, flush=True)


class AnomalySettings(BaseModel):
    """What to train: an anomaly model of good parts. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Field(description="YOLO-layout data folder (train/val splits), or a folder of good images.")
    out: Path = Field(description="Model folder to write (model.onnx + card.json).")
    work: Path = Field(description="Work folder: cached features and coreset, so a rerun resumes.")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Model name in the card.")
    version: str = Field("0.1", pattern=r"^[A-Za-z0-9_.+-]+$", description="Model version in the card.")
    imgsz: int = Field(256, ge=64, le=1024, multiple_of=16, description="Square model input size (px).")
    coreset_ratio: float = Field(
        0.1, gt=0.0, le=1.0, description="Fraction of good patches kept in the bank."
    )
    max_bank: int = Field(100_000, ge=1, description="Cap on the memory bank's rows (whatever the ratio).")
    chunk_rows: int = Field(4096, ge=1, description="Bank rows per distance block: bounds inference memory.")
    seed: int = Field(0, ge=0, description="Seed of the coreset's random projection and start.")
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda, or a CUDA index.")
    target_escape: float = Field(
        0.05, ge=0.0, lt=1.0, description="Part escape rate the threshold is chosen for (val with defects)."
    )
    quantile: float = Field(0.99, gt=0.0, le=1.0, description="Good-only threshold: quantile of good scores.")
    margin: float = Field(
        1.10, ge=1.0, le=10.0, description="Good-only threshold: factor over that quantile."
    )
    min_area_px: float = Field(0.0, ge=0.0, description="Defect area (frame px) a reject needs; 0 = any.")
    batch: int = Field(8, ge=1, le=256, description="Images per feature-extraction batch.")
    feature_dims: int | None = Field(
        None,
        ge=1,
        le=152,
        description="Project the patch features onto this many principal directions of the good patches "
        "(PCA) before the coreset and the search: the search costs in proportion; none: all 152.",
    )
    patch_stride: Literal[8, 16] = Field(
        8,
        description="Input pixels between two patches: 8 (stage 2's grid) or 16 (2 x 2 of them averaged: a "
        "quarter of the patches to search, and of the good patches to choose the bank from).",
    )


@dataclass(frozen=True)
class AnomalyData:
    """The good images to learn from, the held-out parts to set the threshold on, and a fingerprint."""

    train_good: tuple[Path, ...]
    val_good: tuple[Path, ...]
    val_defective: tuple[Path, ...]
    fingerprint: str
    description: str


def _file_digest(paths: Sequence[Path], digest: Any) -> None:
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def _content_key(*parts: object, images: Sequence[Path] = ()) -> str:
    """sha256 over JSON-able parts and the images' bytes: a cache key that survives moving the data."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    _file_digest(images, digest)
    return digest.hexdigest()


def find_data(data: Path, work: Path, progress: Progress) -> AnomalyData:
    """Good train images and validation parts: a YOLO-layout folder (part truth from read_split), else a
    folder of good images of which every 5th is held out."""
    if (data / "images" / "train").is_dir():
        train = read_split(data, "train")
        good = tuple(item.image for item in train.items if not item.defective)
        if not good:
            raise LinesideError(
                f"{data / 'images' / 'train'}: no good parts (images without boxes) to learn from"
            )
        val = read_split(data, "val")
        fingerprint = _yolo_fingerprint(data, work, progress)
        return AnomalyData(
            good,
            tuple(item.image for item in val.items if not item.defective),
            tuple(item.image for item in val.items if item.defective),
            fingerprint,
            f"{data}: {len(good)} good of {len(train.items)} train parts, {len(val.items)} val parts",
        )
    if not data.is_dir():
        raise LinesideError(f"{data}: not a data folder (images/train, ...) nor a folder of good images")
    images = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    held = tuple(p for i, p in enumerate(images) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1)
    kept = tuple(p for p in images if p not in set(held))
    if not held or not kept:
        raise LinesideError(f"{data}: {len(images)} good images; at least {HOLD_OUT_EVERY} needed")
    digest = hashlib.sha256()
    _file_digest(images, digest)
    return AnomalyData(
        kept, held, (), digest.hexdigest(), f"{data}: {len(kept)} good images, {len(held)} held out"
    )


def _yolo_fingerprint(data: Path, work: Path, progress: Progress) -> str:
    """training/fingerprint.py's data fingerprint when the folder has a data.yaml, else the splits' own."""
    if (data / "data.yaml").is_file():
        from training.fingerprint import scan_dataset

        return scan_dataset(data, work, progress).fingerprint
    from training.evaldata import split_fingerprint

    digest = hashlib.sha256()
    for split in ("train", "val"):
        digest.update(split_fingerprint(read_split(data, split)).encode())
    return digest.hexdigest()


def torch_device(device: str) -> str:
    """`auto` is the first CUDA device when torch sees one, else the CPU; a bare index means that GPU."""
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return f"cuda:{device}" if device.isdigit() else device


def load_image(path: Path, preprocess: Preprocessor) -> npt.NDArray[np.float32]:
    """The appliance's input tensor (1, 3, H, W) of an image file (a copy: the Preprocessor reuses it)."""
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise LinesideError(f"{path}: unreadable image")
    tensor, _ = preprocess(np.asarray(frame, np.uint8))
    return np.array(tensor, dtype=np.float32, copy=True)


def _eta(done: int, total: int, started: float) -> str:
    left = (time.monotonic() - started) / max(done, 1) * (total - done)
    return f"eta {int(left // 60)}m{int(left % 60):02d}s"


def featurise(
    features: Any,
    images: Sequence[Path],
    imgsz: int,
    cache: Path,
    *,
    batch: int,
    device: str,
    progress: Progress,
) -> npt.NDArray[np.float32]:
    """Patch features (n_images * h * w, D) of `images`, cached in shards of SHARD_IMAGES under `cache`."""
    import torch

    from training.judges.anomaly_export import to_patches

    cache.mkdir(parents=True, exist_ok=True)
    preprocess = Preprocessor(InputSpec(width=imgsz, height=imgsz))
    shards: list[npt.NDArray[np.float32]] = []
    started = time.monotonic()
    for first in range(0, len(images), SHARD_IMAGES):
        shard_path = cache / f"shard_{first // SHARD_IMAGES:05d}.npy"
        if not shard_path.is_file():
            rows = []
            names = images[first : first + SHARD_IMAGES]
            for start in range(0, len(names), batch):
                tensor = np.concatenate([load_image(p, preprocess) for p in names[start : start + batch]])
                with torch.no_grad():
                    rows.append(to_patches(features(torch.from_numpy(tensor).to(device))).cpu().numpy())
            partial = shard_path.with_suffix(".partial.npy")
            np.save(partial, np.concatenate(rows).astype(np.float32))
            partial.replace(shard_path)
        shards.append(np.load(shard_path))
        done = min(first + SHARD_IMAGES, len(images))
        progress(f"featurised {done}/{len(images)} good images ({_eta(done, len(images), started)})")
    return np.concatenate(shards)


def greedy_coreset(
    patches: Any, rows: int, *, seed: int, progress: Progress, every: int | None = None
) -> npt.NDArray[np.int64]:
    """Indices of `rows` patches chosen by greedy k-center (PatchCore's coreset) on the raw features:
    from a seeded random start, each step adds the patch farthest from all chosen so far.

    `patches` is a torch tensor (N, D) on the device to run on; progress about every 10 %.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(len(patches), (1,), generator=generator)[0])]
    norms = (patches * patches).sum(dim=1)
    # nearest[i]: squared distance from patch i to its nearest chosen patch (||p||^2 - 2 p.c + ||c||^2).
    # Every step works in two preallocated vectors: a fresh N-float temporary per step (thousands of
    # steps) fragmented the allocator until a 1 M-patch coreset was killed at 24 GB.
    nearest = torch.full_like(norms, float("inf"))
    distance = torch.empty_like(norms)
    every = every or max(1, rows // 10)
    started = time.monotonic()
    for step in range(1, rows + 1):
        centre = chosen[-1]
        torch.mv(patches, patches[centre], out=distance)
        distance.mul_(-2.0).add_(norms).add_(norms[centre]).clamp_min_(0.0)
        torch.minimum(nearest, distance, out=nearest)
        if step == rows:
            break
        chosen.append(int(torch.argmax(nearest)))
        if step % every == 0:
            progress(f"coreset: {step}/{rows} rows ({_eta(step, rows, started)})")
    progress(f"coreset: {rows} rows in {time.monotonic() - started:.1f}s")
    return np.asarray(chosen, np.int64)


def coreset(
    patches: npt.NDArray[np.float32],
    ratio: float,
    max_bank: int,
    *,
    seed: int,
    device: str,
    progress: Progress,
) -> npt.NDArray[np.float32]:
    """The memory bank: the greedy k-center coreset of `patches`, ratio x patches rows, at most max_bank."""
    import torch

    rows = max(1, min(max_bank, math.floor(len(patches) * ratio)))
    progress(f"coreset: choosing {rows} of {len(patches)} good patches on {device}")
    indices = greedy_coreset(torch.from_numpy(patches).to(device), rows, seed=seed, progress=progress)
    return np.ascontiguousarray(patches[indices])


def _cached_array(path: Path, make: Callable[[], npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    if path.is_file():
        return np.asarray(np.load(path), np.float32)
    array = make()
    partial = path.with_suffix(".partial.npy")
    np.save(partial, array)
    partial.replace(path)
    return array


@dataclass(frozen=True)
class MemoryBank:
    """The coreset rows, how many good patches they were chosen from, and the PCA projection (if any)."""

    rows: npt.NDArray[np.float32]
    patches_seen: int
    projection: npt.NDArray[np.float32] | None


def pca_projection(
    patches: npt.NDArray[np.float32], dims: int, *, seed: int, progress: Progress
) -> npt.NDArray[np.float32]:
    """The good patches' first `dims` principal directions (D, dims), each signed so that its largest
    component is positive (a rerun exports the same graph). Fitted on at most PCA_SAMPLE patches."""
    if dims > patches.shape[1]:
        raise LinesideError(f"feature_dims: {dims} is more than the {patches.shape[1]} features of a patch")
    rng = np.random.default_rng(seed)
    sample = patches
    if len(patches) > PCA_SAMPLE:
        sample = patches[np.sort(rng.choice(len(patches), PCA_SAMPLE, replace=False))]
    centred = sample.astype(np.float64) - sample.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(values)[::-1][:dims]
    top = vectors[:, order]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(dims)])
    kept = float(values[order].sum() / values.sum())
    progress(f"PCA: {dims} of {patches.shape[1]} dimensions keep {kept:.1%} of the good patches' variance")
    return np.ascontiguousarray(top, np.float32)


def memory_bank(
    settings: AnomalySettings, data: AnomalyData, weights: Any, progress: Progress
) -> tuple[MemoryBank, Any]:
    """The coreset bank (cached; projected when feature_dims is set) and the feature module."""
    import torch

    from training.judges.anomaly_export import LAYERS, PatchFeatures
    from training.judges.backbone import build_backbone

    device = torch_device(settings.device)
    features = PatchFeatures(build_backbone(weights), stride=settings.patch_stride).eval()
    # stride 8 keeps the key it had before strides existed, so cached features stay usable
    stride = () if settings.patch_stride == 8 else (settings.patch_stride,)
    key = _content_key(settings.imgsz, LAYERS, *stride, weights.sha256, images=data.train_good)[:16]
    root = settings.work / "anomaly" / f"features-{key}"
    patches = featurise(
        features.to(device), data.train_good, settings.imgsz, root / "shards",
        batch=settings.batch, device=device, progress=progress,
    )  # fmt: skip
    choice = _content_key(settings.coreset_ratio, settings.max_bank, settings.seed)[:16]
    bank = _cached_array(
        root / f"bank-{choice}.npy",
        lambda: coreset(
            patches, settings.coreset_ratio, settings.max_bank, seed=settings.seed, device=device,
            progress=progress,
        ),
    )  # fmt: skip
    projection = None
    if settings.feature_dims is not None:
        # The coreset is chosen on the full features and then projected: chosen in the projected space,
        # the magnetic-tile model read val AUROC 0.810 instead of 0.86 (docs/training.md).
        dims = settings.feature_dims
        projection = _cached_array(
            root / f"pca-{dims}-{settings.seed}.npy",
            lambda: pca_projection(patches, dims, seed=settings.seed, progress=progress),
        )
        bank = np.ascontiguousarray(bank @ projection, np.float32)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return MemoryBank(bank, len(patches), projection), features.cpu()


def score_parts(
    session: Any, images: Sequence[Path], imgsz: int, progress: Progress
) -> npt.NDArray[np.float64]:
    """Image scores of `images` through the exported model (an onnxruntime session), as the appliance scores
    them (edge/judge/mapstage.py): the heat map's largest value on the part, the letterbox border cropped
    off. The graph's own `score` also sees the border, where an elongated part's edge against the grey can
    be hotter than any defect: a threshold chosen on it passed 6.6 % of magnetic tile's defective val parts
    on the line where the card said 4.9 %.
    """
    from training.judges.anomaly_export import run_session

    preprocess = Preprocessor(InputSpec(width=imgsz, height=imgsz))
    scores = []
    for path in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise LinesideError(f"{path}: unreadable image")
        tensor, box = preprocess(np.asarray(frame, np.uint8))
        _, heat = run_session(session, np.array(tensor, dtype=np.float32, copy=True))
        top, left = box.pad_y, box.pad_x
        scores.append(float(heat[0, top : top + box.resized_height, left : left + box.resized_width].max()))
    if images:
        progress(f"scored {len(images)} validation parts with the exported model")
    return np.asarray(scores, np.float64)


def _finished(settings: AnomalySettings, identity: str) -> bool:
    """True when `out` already holds this very run's intact model (its stamp, card and sha256 agree)."""
    from edge.modelstore.card import load_verified

    try:
        stamp = json.loads((settings.work / "anomaly" / STAMP).read_text(encoding="utf-8"))
        card, _ = load_verified(settings.out)
    except (OSError, ValueError, LinesideError):
        return False
    return bool(stamp.get("identity") == identity and stamp.get("onnx_sha256") == card.sha256)


def export_and_check(
    settings: AnomalySettings, data: AnomalyData, bank: MemoryBank, features: Any, sha: str
) -> tuple[Path, Any]:
    """model.onnx in `out` (any old card removed first: a folder with a card is complete), checked
    against the torch module on a few validation parts; the path and an onnxruntime session."""
    from edge.modelstore.card import sha256_file
    from training.judges.anomaly_export import (
        PARITY_ATOL,
        AnomalyModel,
        NearestGood,
        check_parity,
        export_anomaly,
        model_metadata,
        ort_session,
    )
    from training.registry import export_parity, save_parity

    nearest = NearestGood(bank.rows, settings.chunk_rows)
    model = AnomalyModel(features, nearest, settings.imgsz, projection=bank.projection).eval()
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "card.json").unlink(missing_ok=True)
    path = export_anomaly(
        model, settings.out / "model.onnx", settings.imgsz, model_metadata(sha, model.nearest)
    )
    preprocess = Preprocessor(InputSpec(width=settings.imgsz, height=settings.imgsz))
    probes = [*data.val_good[:2], *data.val_defective[:1]]
    worst = check_parity(model, path, [load_image(p, preprocess) for p in probes])
    parity = export_parity(sha256_file(path), worst, len(probes), PARITY_ATOL)
    save_parity(settings.out, parity)  # the registry's promotion gate reads it
    return path, ort_session(path)


def train_anomaly(settings: AnomalySettings, progress: Progress = stderr_progress) -> Path:
    """Train, export and card an anomaly model into `settings.out`; return that folder.

    Offline (the network guard is installed first); a rerun reuses cached features and coreset, and
    returns at once when `out` already holds this run's intact model.
    """
    from training.train import go_offline

    go_offline()
    from edge.modelstore.card import TrainingInfo
    from training.export import code_version
    from training.judges.anomaly_export import write_anomaly_card
    from training.judges.backbone import locate_weights

    weights = locate_weights()
    data = find_data(settings.data, settings.work, progress)
    progress(data.description)
    # patch_stride 8 (the default) is left out, so a run from before strides existed is still recognised
    dumped = settings.model_dump(
        mode="json", exclude={"device", "batch", *(("patch_stride",) if settings.patch_stride == 8 else ())}
    )
    identity = _content_key(dumped, data.fingerprint, weights.sha256)
    if _finished(settings, identity):
        progress(f"{settings.out}: already trained from this data and these settings")
        return settings.out
    bank, features = memory_bank(settings, data, weights, progress)
    onnx_path, session = export_and_check(settings, data, bank, features, weights.sha256)
    good = score_parts(session, data.val_good, settings.imgsz, progress)
    defective = score_parts(session, data.val_defective, settings.imgsz, progress)
    where = str(settings.data / "images" / "val") if data.val_defective else f"{settings.data} (held out)"
    choice = choose_threshold(
        good, defective, target_escape=settings.target_escape, quantile=settings.quantile,
        margin=settings.margin, where=where,
    )  # fmt: skip
    metrics = val_metrics(good, defective, choice, settings.target_escape)
    training = TrainingInfo(
        data_fingerprint=data.fingerprint,
        code_version=code_version(),
        args=settings.model_dump(mode="json"),
        dataset=data.description,
    )
    card = write_anomaly_card(
        settings.out, onnx_path, name=settings.name, version=settings.version, imgsz=settings.imgsz,
        choice=choice, min_area_px=settings.min_area_px, metrics=metrics, backbone=weights.card_info(),
        training=training, coreset_ratio=min(1.0, len(bank.rows) / bank.patches_seen),
        feature_dim=bank.rows.shape[1],
        pca_from=None if bank.projection is None else bank.projection.shape[0],
        patch_stride=settings.patch_stride,
    )  # fmt: skip
    stamp = {"identity": identity, "onnx_sha256": card.sha256}
    atomic_write_text(settings.work / "anomaly" / STAMP, json.dumps(stamp) + "\n")
    progress(f"{settings.out}: threshold {choice.score:.4g} ({choice.source}), metrics {metrics}")
    return settings.out
