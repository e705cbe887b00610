"""The detector: a verified ONNX model in an onnxruntime session, from BGR frame to detections.

Everything it needs (input size, colour order, scale, classes, thresholds) comes from the model card.
Failures raise typed errors; a failed inference is never reported as "no detections".
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.decode import check_output_shape, decode_yolov8
from edge.judge.detector.errors import InferenceError, InvalidFrame
from edge.judge.detector.onnxfile import MalformedOnnxError, references_external_data
from edge.judge.detector.preprocess import Preprocessor
from edge.judge.detector.tiling import make_tiler
from edge.judge.inspection import Detection
from edge.modelstore.card import ModelCard, load_verified

log = logging.getLogger(__name__)

_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "uint8": "tensor(uint8)"}
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class DetectionResult:
    """The detections for one frame (frame pixels, best first) and the milliseconds each step took."""

    detections: tuple[Detection, ...]
    preprocess_ms: float
    infer_ms: float
    decode_ms: float

    @property
    def timings_ms(self) -> dict[str, float]:
        return {"preprocess": self.preprocess_ms, "infer": self.infer_ms, "decode": self.decode_ms}


def select_providers(requested: list[str], available: list[str]) -> list[str]:
    """The requested providers this onnxruntime build has, in order; the CPU when none is left."""
    chosen = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning("onnxruntime lacks %s (available: %s)", ", ".join(missing), ", ".join(available))
    if not chosen:
        log.warning("no requested onnxruntime provider is available: falling back to CPUExecutionProvider")
        chosen = ["CPUExecutionProvider"]
    return chosen


def auto_threads() -> int:
    """Intra-op threads when the config says 0: every CPU this process may use.

    With spinning off (below), 2 threads on this 2-core machine beat 1 thread plus a core kept for the
    rest of the appliance in every figure of the line: trigger-to-register p50 20.6 vs 25.6 ms, p99 27.4
    vs 36.0 ms, 53 vs 43 parts/s (docs/performance.md). With spinning on, 2 threads were 2x slower.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def validate_frame(image: Any) -> npt.NDArray[np.uint8]:
    """Return the frame if it is an HxWx3 uint8 array, else raise InvalidFrame."""
    if not isinstance(image, np.ndarray):
        raise InvalidFrame(f"frame: expected an HxWx3 uint8 BGR array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise InvalidFrame(
            f"frame: expected an HxWx3 uint8 BGR array, got shape {image.shape} dtype {image.dtype}"
        )
    return image


class Detector:
    """Loads `model.onnx` + `card.json` from `model_dir`, refusing anything that does not match the card.

    A run cannot be interrupted from Python: a hung inference is the supervisor's watchdog's business.
    """

    def __init__(self, model_dir: Path, cfg: DetectorConfig | None = None) -> None:
        self._cfg = cfg or DetectorConfig()
        self._model_dir = Path(model_dir)
        self._card, onnx_path = load_verified(self._model_dir)
        if self._card.task != "detect":
            raise LinesideError(f"{onnx_path}: a {self._card.task} model, not a detector (card task)")
        self._label = f"{self._card.name} {self._card.version}"
        self._session = open_session(onnx_path, self._card, self._cfg)
        self._input_name = check_input(self._session, self._card, onnx_path)
        self._output_name = _check_output(self._session, self._card, onnx_path)
        self._preprocess = Preprocessor(self._card.input)
        self._tiler = make_tiler(self._card, self._cfg, self._session.get_inputs()[0].shape)
        log.info("model %s loaded from %s on %s", self._label, onnx_path, ", ".join(self.providers))

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def model_dir(self) -> Path:
        return self._model_dir

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers the session really uses, best first."""
        return tuple(self._session.get_providers())

    def warmup(self) -> None:
        """Run `warmup_runs` full detections on a pad-value frame, so the first part is not slow."""
        spec = self._card.input
        blank = np.full((spec.height, spec.width, 3), spec.pad_value, dtype=np.uint8)
        for _ in range(self._cfg.warmup_runs):
            self.detect(blank)

    def detect(self, image_bgr: npt.NDArray[np.uint8], conf_floor: float | None = None) -> DetectionResult:
        """Detections in `image_bgr` with confidence >= conf_floor (default: the card's floor)."""
        floor = self._card.thresholds.confidence if conf_floor is None else conf_floor
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"conf_floor must be in [0, 1], got {floor}")
        frame = validate_frame(image_bgr)
        if self._tiler is not None:  # detector.tiling: overlapping tiles, merged (tiling.py)
            tiled = self._tiler.detect(frame, floor, self.run_raw, self._label)
            return DetectionResult(tiled.detections, tiled.preprocess_ms, tiled.infer_ms, tiled.decode_ms)
        start = time.perf_counter()
        tensor, transform = self._preprocess(frame)
        preprocessed = time.perf_counter()
        output = self.run_raw(tensor)
        inferred = time.perf_counter()
        detections = decode_yolov8(
            output,
            transform=transform,
            class_names=self._card.classes,
            conf_floor=floor,
            iou=self._card.thresholds.iou,
            max_detections=self._cfg.max_detections,
            model=self._label,
        )
        decoded = time.perf_counter()
        return DetectionResult(
            detections=detections,
            preprocess_ms=(preprocessed - start) * 1000.0,
            infer_ms=(inferred - preprocessed) * 1000.0,
            decode_ms=(decoded - inferred) * 1000.0,
        )

    def run_raw(self, tensor: npt.NDArray[np.generic]) -> npt.NDArray[np.floating]:
        """Run the session on a prepared input tensor and return its first output, raw."""
        try:
            outputs = self._session.run([self._output_name], {self._input_name: tensor})
        except Exception as exc:  # onnxruntime raises several unrelated types; all mean "no result"
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InferenceError(f"model {self._label}: inference failed: {message}") from exc
        output = outputs[0]
        if not isinstance(output, np.ndarray):
            raise InferenceError(f"model {self._label}: output is {type(output).__name__}, not a tensor")
        return output


def open_session(onnx_path: Path, card: ModelCard, cfg: DetectorConfig) -> ort.InferenceSession:
    """An onnxruntime session on the very bytes the card's sha256 names (LinesideError otherwise)."""
    # Load the very bytes that were hashed, so the file cannot change between the check and the load.
    data = onnx_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != card.sha256:
        raise LinesideError(f"{onnx_path}: file changed while loading; sha256 no longer matches its card")
    try:
        external = references_external_data(data)
    except MalformedOnnxError as exc:
        raise LinesideError(f"{onnx_path}: not a valid ONNX file ({exc})") from None
    if external:
        raise LinesideError(f"{onnx_path}: model references external data files; export it as one file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = cfg.threads or auto_threads()
    options.graph_optimization_level = _OPTIMIZATION[cfg.graph_optimization]
    # An idle intra-op thread sleeps instead of spinning: a spinning one burns the core that capture, the
    # robot link and the recorder need between operators (measured: 2 spinning threads on 2 cores ran
    # the line 2x slower than 1 thread; 2 sleeping threads 1.2x faster).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = select_providers(list(cfg.providers), ort.get_available_providers())
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's load errors share no base class
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LinesideError(f"{onnx_path}: onnxruntime refused the model: {first}") from None
    if session.get_providers()[0] != providers[0]:
        log.warning("%s could not start; running on %s", providers[0], session.get_providers()[0])
    return session


def check_input(session: ort.InferenceSession, card: ModelCard, onnx_path: Path) -> str:
    """The one image input's name, once its shape and type agree with the card."""
    inputs = session.get_inputs()
    spec = card.input
    expected = [1, 3, spec.height, spec.width]
    if len(inputs) != 1:
        raise LinesideError(f"{onnx_path}: model has {len(inputs)} inputs, expected one image input")
    shape = list(inputs[0].shape)
    # Symbolic dimensions (strings or None) accept whatever the card says; fixed ones must match it.
    matches = len(shape) == 4 and all(
        not isinstance(d, int) or d == e for d, e in zip(shape, expected, strict=False)
    )
    if not matches:
        raise LinesideError(f"{onnx_path}: input shape {shape} does not match card input {expected}")
    if inputs[0].type != _ORT_TYPES[spec.dtype]:
        raise LinesideError(
            f"{onnx_path}: input type {inputs[0].type} does not match card dtype {spec.dtype}"
        )
    return str(inputs[0].name)


def _check_output(session: ort.InferenceSession, card: ModelCard, onnx_path: Path) -> str:
    output = session.get_outputs()[0]
    try:
        check_output_shape(list(output.shape), len(card.classes), f"{card.name} {card.version}")
    except InferenceError as exc:
        raise LinesideError(f"{onnx_path}: {exc}") from None
    return str(output.name)
