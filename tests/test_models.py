"""The course models: each test checks a property that a wrong implementation would break.

Parameter counts by formula, MACs by hand, a residual block with a zeroed branch is the
identity, convolution is translation-equivariant, global pooling is invariant, an output
depends on exactly the pixels in its receptive field, and the depthwise-separable cost formula.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import helpers
from helpers.models import (
    MODELS,
    BasicBlock,
    DepthwiseSeparable,
    conv_cost,
    count_macs,
    separable_cost,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


def _conv_bn_params(c_in: int, c_out: int) -> int:
    """A 3x3 conv without bias plus its batch norm (weight and bias per channel)."""
    return 9 * c_in * c_out + 2 * c_out


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_model_on_every_shape_gives_one_logit_row_per_image(name: str, shape):
    torch.manual_seed(0)
    model = helpers.build_model(name, shape, 7).eval()
    x = torch.randn(3, *shape)
    out = model(x)
    assert out.shape == (3, 7)
    assert model.build_args["name"] == name and model.build_args["in_shape"] == list(shape)
    # images are processed independently in eval mode: image 1 alone gives the same logits
    assert torch.allclose(model(x[1:2])[0], out[1], atol=1e-5)


def test_mlp_parameter_count_by_formula():
    model = helpers.build_model("mlp", (1, 28, 28), 10, hidden=(256, 128))
    assert helpers.count_parameters(model) == (784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)


def test_lenet5_parameter_count_matches_hand_count():
    model = helpers.build_model("lenet5", (1, 28, 28), 10)
    # conv1 6*(1*25+1), conv2 16*(6*25+1), fc 16*5*5 -> 120 -> 84 -> 10
    expected = 6 * 26 + 16 * 151 + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert helpers.count_parameters(model) == expected == 61_706


def test_small_vgg_parameter_count_by_formula():
    w = (8, 16, 32)
    model = helpers.build_model("vgg", (1, 28, 28), 10, widths=w)
    expected = sum(_conv_bn_params(a, b) + _conv_bn_params(b, b) for a, b in zip((1, *w[:-1]), w))
    assert helpers.count_parameters(model) == expected + 32 * 10 + 10


def test_small_resnet_parameter_count_by_formula():
    w = (8, 16)
    model = helpers.build_model("resnet", (1, 28, 28), 10, widths=w)
    stem = _conv_bn_params(1, 8)
    block1 = 2 * _conv_bn_params(8, 8)  # identity shortcut: no parameters
    block2 = _conv_bn_params(8, 16) + _conv_bn_params(16, 16) + (8 * 16 + 2 * 16)  # 1x1 projection + BN
    assert helpers.count_parameters(model) == stem + block1 + block2 + 16 * 10 + 10


@pytest.mark.parametrize("c_in, c_out, stride", [(8, 8, 1), (8, 16, 2)])
def test_residual_block_with_zeroed_branch_is_its_shortcut(c_in: int, c_out: int, stride: int):
    torch.manual_seed(0)
    block = BasicBlock(c_in, c_out, stride).eval()
    nn.init.zeros_(block.bn2.weight)  # F(x) = 0: the block computes ReLU(shortcut(x))
    nn.init.zeros_(block.bn2.bias)
    x = torch.randn(2, c_in, 8, 8).relu()  # inputs after a ReLU, as inside the network
    with torch.no_grad():
        out = block(x)
        expected = x if c_in == c_out and stride == 1 else torch.relu(block.shortcut(x))
    assert torch.allclose(out, expected, atol=1e-6)
    if c_in == c_out:
        assert torch.equal(out, x)  # the identity


def test_convolution_is_translation_equivariant_and_global_pooling_invariant():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular")  # wrap-around: no border effects
    x = torch.randn(1, 1, 12, 12)
    shifted = torch.roll(x, shifts=(3, -2), dims=(2, 3))
    with torch.no_grad():
        assert torch.allclose(conv(shifted), torch.roll(conv(x), shifts=(3, -2), dims=(2, 3)), atol=1e-6)
        # a dense layer on the flattened image is not equivariant
        dense = nn.Linear(144, 144)
        moved = dense(shifted.flatten(1)).view(1, 1, 12, 12)
        assert not torch.allclose(moved, torch.roll(dense(x.flatten(1)).view(1, 1, 12, 12), (3, -2), (2, 3)))


def test_vgg_and_resnet_heads_are_invariant_to_where_a_feature_is():
    torch.manual_seed(0)
    for name in ("vgg", "resnet"):
        model = helpers.build_model(name, (1, 28, 28), 10, widths=(4, 8, 16)).eval()
        features = torch.randn(2, 16, 3, 3)
        permuted = features.flatten(2)[:, :, torch.randperm(9)].view(2, 16, 3, 3)  # move every position
        with torch.no_grad():
            assert torch.allclose(model.head(features), model.head(permuted), atol=1e-6)


def test_an_output_depends_exactly_on_its_receptive_field():
    torch.manual_seed(0)
    model = helpers.build_model("vgg", (1, 28, 28), 10, widths=(4, 8, 16)).eval()
    first = model.features[0]  # one 3x3 conv-BN-ReLU: output (10, 10) sees rows/cols 9..11
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        base = first(x)[0, :, 10, 10]
        inside, outside = x.clone(), x.clone()
        inside[0, 0, 11, 9] += 5.0
        outside[0, 0, 12, 10] += 5.0
        assert not torch.allclose(first(inside)[0, :, 10, 10], base)
        assert torch.equal(first(outside)[0, :, 10, 10], base)
        # the whole network sees every pixel: its logits change when one corner pixel changes
        corner = x.clone()
        corner[0, 0, 0, 0] += 5.0
        assert not torch.allclose(model(corner), model(x))


def test_macs_of_a_conv_and_linear_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 5 * 5, 4))
    # conv: every one of 8*5*5 outputs costs 3*3*3 MACs; linear: 4 outputs * 200 inputs
    assert count_macs(model, (3, 5, 5)) == 8 * 5 * 5 * 27 + 4 * 200


def test_lenet5_macs_by_hand():
    model = helpers.build_model("lenet5", (1, 28, 28), 10)
    expected = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert count_macs(model, (1, 28, 28)) == expected


@pytest.mark.parametrize("c_in, c_out, k, stride", [(16, 32, 3, 1), (8, 24, 5, 2)])
def test_depthwise_separable_cost_formula_matches_the_module(c_in: int, c_out: int, k: int, stride: int):
    block = DepthwiseSeparable(c_in, c_out, k, stride)
    size = 14
    out = block.eval()(torch.zeros(1, c_in, size, size))
    h = out.shape[-1]
    cost = separable_cost(c_in, c_out, k, h, h)
    conv_weights = block.depthwise.weight.numel() + block.pointwise.weight.numel()
    assert out.shape == (1, c_out, h, h) and h == (size + stride - 1) // stride
    assert cost["params"] == conv_weights == helpers.count_parameters(block) - 2 * (c_in + c_out)
    assert cost["macs"] == count_macs(block, (c_in, size, size))
    full = conv_cost(c_in, c_out, k, h, h)
    assert full["params"] == nn.Conv2d(c_in, c_out, k, bias=False).weight.numel()
    ratio = cost["macs"] / full["macs"]
    assert ratio == pytest.approx(1 / c_out + 1 / k**2)


def test_cost_formulas_reject_bad_sizes():
    with pytest.raises(ValueError, match="c_in"):
        separable_cost(0, 8, 3, 4, 4)
    with pytest.raises(ValueError, match="k="):
        DepthwiseSeparable(4, 8, k=4)
    assert conv_cost(2, 3, 3, 4, 4, bias=True)["params"] == 3 * (9 * 2 + 1)


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
