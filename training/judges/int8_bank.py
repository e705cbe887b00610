"""An INT8 anomaly model's memory bank rebuilt from its own INT8 features, and its threshold chosen again.

Quantising the backbone moves every patch feature a little; measured against a bank of fp32 features the
distances move far more than the verdict can bear (demo-anomaly 1.0.0: up to 19 against a threshold of 35). So
the INT8 copy gets its own bank: the good training parts run through the INT8 graph itself (its patch
tensor made an output), the greedy k-center coreset chooses as many rows as the fp32 bank has (the chunk
shapes, and so the graph, stay the same), and the threshold is chosen on val again by the card's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from edge.judge.detector.preprocess import Preprocessor
from edge.modelstore.card import ModelCard, read_card, sha256_file, write_card

BANK_PREFIX = "nearest.bank_"  # NearestGood's buffers, as the exporter names them (anomaly_export.py)
Progress = Callable[[str], None]


def search_chunks(model: onnx.ModelProto) -> tuple[str, list[tuple[str, str]]]:
    """The patch tensor the bank search reads, and each chunk's (bank, norm) initializer names in order."""
    gemms = [n for n in model.graph.node if n.op_type == "Gemm" and n.input[1].startswith(BANK_PREFIX)]
    patches = {n.input[0] for n in gemms}
    if not gemms or len(patches) != 1:
        raise LinesideError("not an anomaly graph: no single memory-bank search (Gemm on nearest.bank_*)")
    return patches.pop(), sorted((n.input[1], n.input[2]) for n in gemms)


def _projection(model: onnx.ModelProto, patches: str) -> tuple[str, npt.NDArray[np.float32] | None]:
    """The full-feature tensor and the PCA projection when `patches` is their MatMul, else (patches, None)."""
    initializers = {t.name: t for t in model.graph.initializer}
    producer = next((n for n in model.graph.node if patches in n.output), None)
    if producer is not None and producer.op_type == "MatMul" and producer.input[1] in initializers:
        return producer.input[0], numpy_helper.to_array(initializers[producer.input[1]]).astype(np.float32)
    return patches, None


def graph_patches(
    model: onnx.ModelProto, tensor: str, card: ModelCard, images: Sequence[Path], progress: Progress
) -> npt.NDArray[np.float32]:
    """`tensor` (patches x features) of every image, through the graph itself with edge's pre-processing."""
    import onnxruntime as ort

    from training.judges.anomaly_train import load_image

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    preprocess = Preprocessor(card.input)
    name = session.get_inputs()[0].name
    rows = []
    for index, path in enumerate(images, start=1):
        rows.append(np.asarray(session.run([tensor], {name: load_image(path, preprocess)})[0], np.float32))
        if index % 100 == 0 or index == len(images):
            progress(f"INT8 features: {index}/{len(images)} good images")
    return np.concatenate(rows)


def rebuild_bank(model: onnx.ModelProto, card: ModelCard, good: Sequence[Path], progress: Progress) -> int:
    """Replace the bank's rows (in place in `model`) by a coreset of the graph's own features of `good`;
    the rows kept, as many as before."""
    import torch

    from training.judges.anomaly_train import greedy_coreset

    if card.anomaly is None or not good:
        raise LinesideError(f"{card.name}: needs an anomaly card and good training images for its bank")
    patches, chunks = search_chunks(model)
    full, projection = _projection(model, patches)
    features = graph_patches(model, full, card, good, progress)
    rows = card.anomaly.bank_size
    seed = int(card.training.args.get("seed", 0) or 0)  # type: ignore[call-overload]
    chosen = greedy_coreset(torch.from_numpy(features), rows, seed=seed, progress=progress)
    bank = features[chosen] if projection is None else features[chosen] @ projection
    initializers = {t.name: t for t in model.graph.initializer}
    start = 0
    for bank_name, norm_name in chunks:
        width = int(initializers[bank_name].dims[1])
        block = np.ascontiguousarray(bank[start : start + width], np.float32)
        initializers[bank_name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(block.T), bank_name))
        initializers[norm_name].CopyFrom(numpy_helper.from_array((block * block).sum(axis=1), norm_name))
        start += width
    if start != rows:
        raise LinesideError(f"{card.name}: the bank's chunks hold {start} rows, the card says {rows}")
    return rows


def rebank_int8(
    int8_dir: Path,
    good: Sequence[Path],
    val_good: Sequence[Path],
    val_defective: Sequence[Path],
    progress: Progress,
) -> ModelCard:
    """Rebuild the bank of the INT8 anomaly model in `int8_dir` from its own features, choose its threshold
    on val by the fp32 card's rule, and rewrite model.onnx and card.json (the card last)."""
    from training.judges.anomaly_export import ort_session
    from training.judges.anomaly_threshold import choose_threshold, val_metrics
    from training.judges.anomaly_train import score_parts

    card = read_card(int8_dir)
    path = int8_dir / card.file
    model = onnx.load(str(path))
    rows = rebuild_bank(model, card, good, progress)
    (int8_dir / "card.json").unlink()  # a folder with a card is complete: not while the model changes
    atomic_write_bytes(path, model.SerializeToString())
    session: Any = ort_session(path)
    good_scores = score_parts(session, val_good, card.input.width, progress)
    bad_scores = score_parts(session, val_defective, card.input.width, progress)
    assert card.anomaly is not None  # rebuild_bank refused a card without it
    target = float(card.training.args.get("target_escape", 0.05))  # type: ignore[arg-type]
    choice = choose_threshold(
        good_scores, bad_scores, target_escape=target, quantile=card.anomaly.quantile or 0.99,
        margin=card.anomaly.margin or 1.10, where=f"{int8_dir} (val)",
    )  # fmt: skip
    thresholds = card.thresholds.model_copy(update={"score": choice.score, "pixel": choice.score})
    args = {**card.training.args, "int8_bank": f"{rows} rows rebuilt from the INT8 graph's own features"}
    rebuilt = card.model_copy(
        update={
            "sha256": sha256_file(path),
            "thresholds": thresholds,
            "metrics": val_metrics(good_scores, bad_scores, choice, target),
            "training": card.training.model_copy(update={"args": args}),
        }
    )
    write_card(int8_dir, rebuilt)
    return rebuilt
