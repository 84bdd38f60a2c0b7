"""The four course models on every dataset shape: output shape, parameter counts, MACs, summary."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import helpers
from helpers.models import MODELS, count_macs

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_model_on_every_shape(name: str, shape):
    model = helpers.build_model(name, shape, 7)
    out = model(torch.zeros(3, *shape))
    assert out.shape == (3, 7)
    assert model.build_args["name"] == name and model.build_args["in_shape"] == list(shape)
    assert helpers.count_parameters(model) > 0 and count_macs(model, shape) > 0


def test_lenet5_parameter_count_matches_hand_count():
    model = helpers.build_model("lenet5", (1, 28, 28), 10)
    # conv1 6*(1*25+1), conv2 16*(6*25+1), fc 16*5*5 -> 120 -> 84 -> 10
    expected = 6 * 26 + 16 * 151 + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert helpers.count_parameters(model) == expected


def test_macs_of_a_conv_and_linear_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 5 * 5, 4))
    # conv: every one of 8*5*5 outputs costs 3*3*3 MACs; linear: 4 outputs * 200 inputs
    assert count_macs(model, (3, 5, 5)) == 8 * 5 * 5 * 27 + 4 * 200


def test_trainable_only_and_frozen():
    model = helpers.build_model("mlp", (1, 8, 8), 10, hidden=(32,))
    total = helpers.count_parameters(model)
    assert total == 64 * 32 + 32 + 32 * 10 + 10
    for p in model.net[1].parameters():
        p.requires_grad_(False)
    assert helpers.count_parameters(model) == 32 * 10 + 10
    assert helpers.count_parameters(model, trainable_only=False) == total


def test_summary_lists_layers_and_total():
    model = helpers.build_model("resnet", (1, 28, 28), 10)
    text = helpers.summary(model, (1, 28, 28))
    assert "total" in text and f"{helpers.count_parameters(model):,}" in text
    assert "[1, 10]" in text and "Conv2d" in text
    assert model.training  # summary restores the mode


def test_unknown_model_names_choices():
    with pytest.raises(ValueError, match="valid choices: 'mlp', 'lenet5', 'vgg', 'resnet'"):
        helpers.build_model("alexnet", (1, 8, 8), 10)
