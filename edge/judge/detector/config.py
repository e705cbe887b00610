"""Detector settings from the appliance YAML: which onnxruntime providers, threads and graph optimisation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Short names a technician may write in the YAML, and the onnxruntime provider each one means.
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


class TilingConfig(BaseModel):
    """Cut each frame into overlapping tiles, detect on each, merge (edge/judge/detector/tiling.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int | None = Field(
        None,
        ge=32,
        le=8192,
        description="Tile edge in frame pixels; unset: the tile size the model was trained on (its card).",
    )
    overlap: float = Field(
        0.2, ge=0.0, lt=0.9, description="Least overlap of neighbouring tiles, as a fraction of the tile."
    )
    max_batch: int = Field(
        8, ge=1, le=64, description="Most tiles per inference when the model's batch dimension is free."
    )


class DetectorConfig(BaseModel):
    """How the detector runs its ONNX model. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description=(
            "onnxruntime execution providers in order of preference: full names such as"
            " 'CUDAExecutionProvider' or the short names cpu, cuda, tensorrt, openvino. Providers this"
            " onnxruntime build lacks are skipped with a log line; if none is left the CPU is used."
        ),
    )
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description=(
            "Intra-op threads for one inference (idle threads sleep, never spin). 0 (auto): on a running"
            " line with supervisor.cpu_placement auto, every usable CPU but one, which the rest of the line"
            " keeps; elsewhere (placement off, one CPU, one-off commands) every CPU. Fewer threads than CPUs"
            " leave CPUs to the rest of the appliance, and supervisor.cpu_placement then keeps inference on"
            " CPUs of its own (docs/performance.md)."
        ),
    )
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimisation level applied when the session is created."
    )
    warmup_runs: int = Field(
        2, ge=0, le=100, description="Inferences run on a blank frame by warmup() before the first part."
    )
    max_detections: int = Field(
        300, ge=1, le=10000, description="Most detections kept per frame after NMS, highest confidence first."
    )
    tiling: TilingConfig | None = Field(
        None, description="Detect on overlapping tiles of each frame (small defects on large frames)."
    )

    @field_validator("providers")
    @classmethod
    def _expand_short_names(cls, value: list[str]) -> list[str]:
        expanded: list[str] = []
        for name in value:
            full = PROVIDER_ALIASES.get(name.strip().lower(), name.strip())
            if not full.endswith("ExecutionProvider"):
                known = ", ".join(PROVIDER_ALIASES)
                raise ValueError(f"unknown provider {name!r}: use one of {known} or a full onnxruntime name")
            if full not in expanded:
                expanded.append(full)
        return expanded
