"""helpers.vit: patches, the attention formula against PyTorch, the small ViT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import helpers
from helpers import vit


def test_patchify_cuts_real_digits_into_row_major_patches():
    x = helpers.load_digits().x_train[:3].float()  # [3, 1, 8, 8]
    patches = vit.patchify(x, 4)
    assert patches.shape == (3, 4, 16)
    assert torch.equal(patches[1, 1], x[1, 0, :4, 4:].reshape(-1))  # top-right patch
    assert torch.equal(patches[2, 2], x[2, 0, 4:, :4].reshape(-1))  # bottom-left patch


def test_patchify_rejects_a_patch_that_does_not_divide():
    with pytest.raises(ValueError, match="patch=3 must be >= 1 and divide"):
        vit.patchify(torch.zeros(1, 1, 8, 8), 3)


def test_attention_matches_torch_scaled_dot_product_attention():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 17, 8, generator=gen) for _ in range(3))
    ours, weights = vit.attention(q, k, v, return_weights=True)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 17))


def test_attention_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes do not fit"):
        vit.attention(torch.zeros(1, 3, 4), torch.zeros(1, 3, 5), torch.zeros(1, 3, 5))


def test_small_vit_learns_digits_above_chance():
    data = helpers.load_digits()
    torch.manual_seed(0)
    model = vit.build_vit(data.shape, 10, patch=2, dim=32, depth=1)
    assert model.build_args["name"] == "vit"
    assert model(torch.zeros(5, *data.shape)).shape == (5, 10)
    helpers.fit(model, data, epochs=8, lr=5e-3, val_fraction=0, verbose=False, progress=False)
    assert helpers.evaluate(model, data)["acc"] > 0.5  # chance is 0.1


def test_vit_parameter_count_matches_the_formula():
    # 28x28 images in 7x7 patches: N = 16 tokens of C*P*P = 49 numbers, width D, MLP width H = 2D
    c, p, d, depth, k = 1, 7, 48, 2, 10
    n, h = (28 // p) ** 2, 2 * d
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * h + h + h * d + d)  # 2 LN, qkv, proj, MLP
    expected = (c * p * p * d + d) + d + (n + 1) * d + depth * block + 2 * d + (d * k + k)
    model = vit.build_vit((c, 28, 28), k, patch=p, dim=d, depth=depth, heads=4)
    assert helpers.count_parameters(model) == expected


def test_without_position_embeddings_the_vit_ignores_patch_order():
    torch.manual_seed(0)
    model = vit.build_vit((1, 28, 28), 10, patch=7, dim=16, depth=1, heads=2).eval()
    x = torch.rand(3, 1, 28, 28)
    grid = x.reshape(3, 1, 4, 7, 4, 7)                       # [B, C, 4 rows of patches, 7, 4 cols, 7]
    swapped = grid.flip(2).flip(4).reshape(3, 1, 28, 28)    # the 4x4 patches in reverse order, each intact
    with torch.no_grad():
        assert not torch.allclose(model(x), model(swapped), atol=1e-4)   # learned positions see the order
        model.pos.zero_()
        assert torch.allclose(model(x), model(swapped), atol=1e-5)       # without them: a set of patches
