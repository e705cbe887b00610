"""The defect detector: model card + ONNX model in onnxruntime, frames in, detections out."""

from __future__ import annotations

from edge.detector.config import DetectorConfig
from edge.detector.detector import DetectionResult, Detector, select_providers, validate_frame
from edge.detector.errors import InferenceError, InvalidFrame
from edge.detector.preprocess import LetterboxTransform, Preprocessor, letterbox_transform

__all__ = [
    "DetectionResult",
    "Detector",
    "DetectorConfig",
    "InferenceError",
    "InvalidFrame",
    "LetterboxTransform",
    "Preprocessor",
    "letterbox_transform",
    "select_providers",
    "validate_frame",
]
