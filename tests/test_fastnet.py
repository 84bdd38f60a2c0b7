"""FastNet: shapes on every course image size, airbench's BatchNorm settings, build arguments, bad inputs."""

from __future__ import annotations

import pytest
import torch

import helpers
from helpers.fastnet import FastNet, build_fastnet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_logits_shape_on_every_image_size(shape):
    model = build_fastnet(shape, 7, stem=8, widths=(8, 16, 32))
    assert model(torch.zeros(5, *shape)).shape == (5, 7)
    assert model.build_args == {"name": "fastnet", "in_shape": list(shape), "n_classes": 7, "stem": 8,
                                "widths": (8, 16, 32)}


def test_pooling_happens_once_per_block_and_never_below_2x2():
    pools = lambda m: sum(isinstance(x, torch.nn.MaxPool2d) for x in m.modules())  # noqa: E731
    assert pools(FastNet((1, 28, 28), 10)) == 3  # 28 -> 14 -> 7 -> 3
    assert pools(FastNet((1, 8, 8), 10)) == 2  # 8 -> 4 -> 2, then no more


def test_batchnorm_follows_airbench():
    model = FastNet((1, 28, 28), 10, widths=(8, 16), stem=8)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.4 and not m.weight.requires_grad and m.bias.requires_grad for m in bns)
    trained = FastNet((1, 28, 28), 10, widths=(8, 16), stem=8, bn_momentum=0.1, bn_train_weight=True)
    assert all(m.momentum == 0.1 and m.weight.requires_grad for m in trained.modules()
               if isinstance(m, torch.nn.BatchNorm2d))
    # the frozen scale stays 1 through training: fit only optimises parameters that require grad
    digits = helpers.load_digits().subset(10)
    helpers.fit(model := FastNet(digits.shape, 10, widths=(8, 16), stem=8), digits, epochs=1, batch_size=32,
                device="cpu", verbose=False, progress=False, val_fraction=0)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in model.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_depth_and_temperature():
    one = FastNet((1, 28, 28), 10, stem=8, widths=(8, 16), depth=1)
    two = FastNet((1, 28, 28), 10, stem=8, widths=(8, 16), depth=2)
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())  # noqa: E731
    assert (convs(one), convs(two)) == (3, 5)
    torch.manual_seed(0)
    a = FastNet((1, 8, 8), 10, temperature=1.0).eval()
    b = FastNet((1, 8, 8), 10, temperature=4.0).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(a(x), 4 * b(x), atol=1e-5)  # logits are divided by the temperature


@pytest.mark.parametrize("kwargs,match", [({"depth": 3}, "depth=3"), ({"widths": ()}, "widths=()"),
                                          ({"temperature": 0.0}, "temperature=0.0")])
def test_bad_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        FastNet((1, 28, 28), 10, **kwargs)


def test_relu_activation_option_and_a_clear_error_for_others():
    """`activation="relu"` swaps every GELU (the ablation's cheaper variant); others are refused."""
    from torch import nn

    from helpers.fastnet import FastNet

    gelu, relu = FastNet((1, 28, 28), 10), FastNet((1, 28, 28), 10, activation="relu")
    assert sum(isinstance(m, nn.GELU) for m in gelu.modules()) == 7
    assert sum(isinstance(m, nn.ReLU) for m in relu.modules()) == 7
    assert not any(isinstance(m, nn.GELU) for m in relu.modules())
    with pytest.raises(ValueError, match="activation='tanh'.*gelu, relu"):
        FastNet((1, 28, 28), 10, activation="tanh")
