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
