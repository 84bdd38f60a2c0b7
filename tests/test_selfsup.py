"""helpers.selfsup: NT-Xent against a loop over the formula, augmentations, probe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import helpers
from helpers import selfsup


def nt_xent_loop(z1, z2, tau):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / denom)
    return total / n


def test_nt_xent_matches_the_formula_written_as_a_loop():
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    assert selfsup.nt_xent(z1, z2, 0.5).item() == pytest.approx(nt_xent_loop(z1, z2, 0.5), rel=1e-5)


def test_nt_xent_is_small_for_matching_views_and_checks_inputs():
    z = torch.eye(8)
    assert selfsup.nt_xent(z, z, 0.1) < selfsup.nt_xent(z, z.roll(1, 0), 0.1)
    with pytest.raises(ValueError, match="temperature=0"):
        selfsup.nt_xent(z, z, 0)


def test_augment_makes_different_valid_views_of_real_digits():
    x = helpers.load_digits().x_train[:32].float() / 255
    gen = torch.Generator().manual_seed(0)
    a, b = selfsup.simclr_augment(x, gen), selfsup.simclr_augment(x, gen)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, b)


def test_pretraining_lowers_the_loss_and_probe_beats_chance():
    data = helpers.load_digits()
    x = data.x_train.float() / 255
    torch.manual_seed(0)
    enc = selfsup.Encoder(dim=32, proj_dim=16)
    losses = selfsup.pretrain(enc, x, epochs=3, batch_size=256)
    assert losses[-1] < losses[0]
    f_train, f_test = selfsup.features(enc, x), selfsup.features(enc, data.x_test.float() / 255)
    assert f_train.shape == (len(x), 32)
    assert selfsup.linear_probe(f_train, data.y_train, f_test, data.y_test) > 0.5
