"""The classify and anomaly kinds' runner: a verified ONNX model giving a score and a heat map per frame.

Both kinds take the detector's exact pre-processing (letterbox, colour order, scale from the card) and
return a heat map over the model input; this module crops it back to the frame's content and maps its
points to frame pixels. The card must agree with what the exporter wrote into the model file itself
(task, backbone weights, memory bank), so a card copied from another model is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.detector import check_input, open_session, validate_frame
from edge.judge.detector.errors import InferenceError
from edge.judge.detector.preprocess import LetterboxTransform, Preprocessor
from edge.modelstore.card import ModelCard, load_verified

# The outputs of each layout, by name, in the order `run` returns them.
OUTPUTS = {"class_map": ("scores", "heatmap"), "anomaly_map": ("score", "heatmap")}


@dataclass(frozen=True)
class MapOutput:
    """One frame's score and heat map; the map covers the frame (letterbox border cropped off)."""

    score: float  # classify: defect probability, 1 - P(good); anomaly: the anomaly score
    class_scores: tuple[float, ...]  # classify: each class's probability (classes[0] is good); anomaly: ()
    heatmap: npt.NDArray[np.float32]  # (h, w) in model-input pixels over the frame's resized content
    transform: LetterboxTransform
    preprocess_ms: float
    infer_ms: float

    @property
    def timings_ms(self) -> dict[str, float]:
        return {"preprocess": self.preprocess_ms, "infer": self.infer_ms}

    def to_frame(self, u: float, v: float) -> tuple[float, float]:
        """A heat-map point (column, row; pixel centres) in frame pixels."""
        ratio = self.transform.ratio
        return ((u + 0.5) / ratio - 0.5, (v + 0.5) / ratio - 0.5)

    def frame_px_per_map_px(self) -> float:
        """Frame pixels covered by one heat-map pixel (area)."""
        return 1.0 / (self.transform.ratio**2)


class ScoreMapModel:
    """Loads a classify or anomaly model folder, refusing anything that does not match its card."""

    def __init__(self, model_dir: Path, cfg: DetectorConfig | None = None) -> None:
        self._cfg = cfg or DetectorConfig()
        self._model_dir = Path(model_dir)
        self._card, onnx_path = load_verified(self._model_dir)
        if self._card.task == "detect":
            raise LinesideError(f"{onnx_path}: a detector, not a classify or anomaly model (card task)")
        self._label = f"{self._card.name} {self._card.version}"
        self._session = open_session(onnx_path, self._card, self._cfg)
        self._input_name = check_input(self._session, self._card, onnx_path)
        self._outputs = _check_outputs(self._session, self._card, onnx_path)
        check_metadata(self._session, self._card, onnx_path)
        self._preprocess = Preprocessor(self._card.input)

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def model_dir(self) -> Path:
        return self._model_dir

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._session.get_providers())

    def warmup(self) -> None:
        spec = self._card.input
        blank = np.full((spec.height, spec.width, 3), spec.pad_value, dtype=np.uint8)
        for _ in range(self._cfg.warmup_runs):
            self.run(blank)

    def run_raw(self, tensor: npt.NDArray[np.generic]) -> list[npt.NDArray[np.float32]]:
        """The session on a prepared input tensor, outputs raw (the bench's floor)."""
        try:
            outputs = self._session.run(list(self._outputs), {self._input_name: tensor})
        except Exception as exc:  # onnxruntime raises several unrelated types; all mean "no result"
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InferenceError(f"model {self._label}: inference failed: {message}") from exc
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    def run(self, image_bgr: npt.NDArray[np.uint8]) -> MapOutput:
        """Score and heat map of one BGR frame; InferenceError (never a low score) when the model fails."""
        frame = validate_frame(image_bgr)
        start = time.perf_counter()
        tensor, transform = self._preprocess(frame)
        prepared = time.perf_counter()
        first, heat = self.run_raw(tensor)
        inferred = time.perf_counter()
        values = np.asarray(first, dtype=np.float64).reshape(-1)
        heatmap = np.asarray(heat, dtype=np.float32).reshape(heat.shape[-2:])
        # One pass, no temporary: a NaN or an infinity anywhere makes the float64 sum non-finite (finite
        # float32 values cannot overflow it).
        if not np.all(np.isfinite(values)) or not np.isfinite(heatmap.sum(dtype=np.float64)):
            raise InferenceError(f"model {self._label}: output holds NaN or infinity")
        top, left = transform.pad_y, transform.pad_x
        content = heatmap[top : top + transform.resized_height, left : left + transform.resized_width]
        if self._card.task == "classify":
            if values.size != len(self._card.classes) or not -1e-3 <= values.sum() - 1.0 <= 1e-3:
                raise InferenceError(f"model {self._label}: scores are not one probability per class")
            score, classes = float(np.clip(1.0 - values[0], 0.0, 1.0)), tuple(float(v) for v in values)
        else:
            score, classes = float(values[0]), ()
        return MapOutput(
            score, classes, content, transform, (prepared - start) * 1000.0, (inferred - prepared) * 1000.0
        )


def _check_outputs(session: ort.InferenceSession, card: ModelCard, onnx_path: Path) -> tuple[str, ...]:
    expected = OUTPUTS[card.output.layout]
    names = tuple(str(o.name) for o in session.get_outputs())
    if set(expected) - set(names):
        raise LinesideError(
            f"{onnx_path}: outputs {list(names)} lack {sorted(set(expected) - set(names))} "
            f"(card output.layout {card.output.layout})"
        )
    shapes = {str(o.name): list(o.shape) for o in session.get_outputs()}
    heat = shapes["heatmap"]
    size = [card.input.height, card.input.width]
    if len(heat) != 3 or any(isinstance(d, int) and d != e for d, e in zip(heat[1:], size, strict=True)):
        raise LinesideError(f"{onnx_path}: heatmap shape {heat} is not (1, {size[0]}, {size[1]})")
    return expected


def check_metadata(session: ort.InferenceSession, card: ModelCard, onnx_path: Path) -> None:
    """The card must say what the exporter wrote into the (sha256-verified) model file itself."""
    meta = session.get_modelmeta().custom_metadata_map
    claims: dict[str, str] = {"lineside.task": card.task}
    if card.backbone is not None:
        claims["lineside.backbone_sha256"] = card.backbone.weights_sha256
    if card.anomaly is not None:
        claims["lineside.bank_size"] = str(card.anomaly.bank_size)
        claims["lineside.chunk_rows"] = str(card.anomaly.chunk_rows)
    for key, claimed in claims.items():
        if meta.get(key) != claimed:
            raise LinesideError(
                f"{onnx_path}: card says {key.split('.', 1)[1]} {claimed[:16]}, the model file says "
                f"{(meta.get(key) or 'nothing')[:16]}: card refused"
            )
