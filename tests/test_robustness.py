"""helpers.robustness: attacks stay in the eps-ball and raise the loss; corruptions behave."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import helpers
from helpers import robustness as rb


@pytest.fixture(scope="module")
def trained():
    data = helpers.load_digits()
    torch.manual_seed(0)
    model = helpers.build_model("lenet5", data.shape, 10)
    helpers.fit(model, data, epochs=5, val_fraction=0, verbose=False, progress=False)
    pixel_model = rb.PixelModel(model, data.mean, data.std).eval()
    return pixel_model, data.x_test[:200].float() / 255, data.y_test[:200]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attacks_stay_in_the_ball_and_increase_the_loss(trained, attack):
    model, x, y = trained
    eps = 0.1
    adv = rb.fgsm(model, x, y, eps) if attack == "fgsm" else rb.pgd(model, x, y, eps, steps=5)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)
    assert rb.accuracy(model, adv, y) < rb.accuracy(model, x, y)


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    model, x, y = trained
    assert rb.accuracy(model, rb.pgd(model, x, y, 0.15, steps=10), y) <= rb.accuracy(model, rb.fgsm(model, x, y, 0.15), y)


def test_bad_eps_is_refused(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="eps=2 must be in"):
        rb.fgsm(model, x, y, 2)


@pytest.mark.parametrize("kind", rb.CORRUPTIONS)
def test_corruptions_keep_shape_and_are_identity_at_zero(trained, kind):
    _, x, _ = trained
    assert torch.equal(rb.corrupt(x, kind, 0), x)
    severity = 0.5 if kind == "contrast" else 1.0 if kind != "rotation" else 30
    out = rb.corrupt(x, kind, severity, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_noise_has_the_requested_std_where_nothing_is_clipped():
    x = torch.full((4, 1, 32, 32), 0.5)
    out = rb.corrupt(x, "noise", 0.05, generator=torch.Generator().manual_seed(0))
    d = out - x
    assert abs(d.mean().item()) < 0.005 and d.std().item() == pytest.approx(0.05, rel=0.05)


def test_blur_spreads_a_point_symmetrically_and_keeps_its_mass():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1.0
    out = rb.corrupt(x, "blur", 1.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)  # a normalised kernel
    assert out[0, 0, 10, 10] == out.max() < 1  # the peak stays at the centre and drops
    assert torch.allclose(out, out.flip(-1)) and torch.allclose(out, out.transpose(-1, -2))


def test_rotation_by_90_degrees_is_a_transpose_flip():
    x = torch.rand(2, 1, 8, 8)
    out = rb.corrupt(x, "rotation", 90)
    assert any(torch.allclose(out, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, -1))


def test_contrast_scales_the_distance_to_the_mean():
    x = torch.rand(3, 1, 8, 8) * 0.5 + 0.25  # no clipping
    out = rb.corrupt(x, "contrast", 0.6)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out - mean, 0.4 * (x - mean), atol=1e-6)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), mean.flatten(), atol=1e-6)


def test_blur_preserves_mean_of_a_constant_image():
    x = torch.full((1, 1, 8, 8), 0.3)
    assert torch.allclose(rb.corrupt(x, "blur", 1.0), x, atol=1e-6)


def test_unknown_corruption_is_refused():
    with pytest.raises(ValueError, match="valid choices: 'noise'"):
        rb.corrupt(torch.zeros(1, 1, 8, 8), "fog", 1)


def test_adversarial_training_runs_and_reduces_loss():
    data = helpers.load_digits()
    torch.manual_seed(0)
    model = rb.PixelModel(helpers.build_model("lenet5", data.shape, 10), data.mean, data.std)
    losses = rb.fit_adversarial(model, data.x_train.float() / 255, data.y_train, eps=0.1, epochs=3)
    assert len(losses) == 3 and losses[-1] < losses[0]
