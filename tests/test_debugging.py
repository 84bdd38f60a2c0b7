"""Debugging helpers on real digits: LR range test, the training checklist, imbalance tools."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import helpers
from helpers import debugging


@pytest.fixture(scope="module")
def digits():
    return helpers.load_digits()


@pytest.fixture
def model(digits):
    torch.manual_seed(0)
    return helpers.build_model("mlp", digits.shape, digits.n_classes)


def test_lr_range_test_finds_a_sane_rate_and_leaves_the_model_alone(model, digits):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = debugging.lr_range_test(model, digits, steps=60, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.lrs == sorted(result.lrs) and len(result.lrs) == len(result.losses)
    assert min(result.losses) < result.losses[0] - 0.5, "the loss must fall somewhere in the range"
    assert 1e-4 < result.suggested_lr < 1.0
    assert math.isclose(result.suggested_lr, result.min_loss_lr / 10)
    assert result.diverged_at is not None and result.diverged_at > result.min_loss_lr
    assert "suggested" in repr(result)


def test_lr_range_test_rejects_bad_ranges(model, digits):
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        debugging.lr_range_test(model, digits, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="valid choices: 'adamw', 'sgd'"):
        debugging.lr_range_test(model, digits, optimizer="adam")


def test_plot_lr_range(model, digits):
    result = debugging.lr_range_test(model, digits, steps=20, device="cpu")
    fig = debugging.plot_lr_range(result)
    assert fig.axes[0].get_xscale() == "log"


def test_checklist_passes_a_healthy_setup(model, digits):
    report = debugging.training_checklist(model, digits, device="cpu")
    assert report.ok and not report.warnings, str(report)
    assert "all checks passed" in str(report)
    assert abs(float(report["loss on one batch"].detail.split(";")[0]) - math.log(10)) < 0.5


def test_checklist_flags_bad_normalisation(model, digits):
    raw = dataclasses.replace(digits, mean=(0.0,), std=(1 / 255,))  # pixels fed as 0..255
    report = debugging.training_checklist(model, raw, device="cpu")
    assert report["normalisation"].status == "FAIL"
    assert not report.ok and "failed" in str(report)


def test_checklist_flags_labels_out_of_range_and_missing_classes(model, digits):
    shifted = dataclasses.replace(digits, y_train=digits.y_train + 1)  # labels 1..10 for 10 classes
    report = debugging.training_checklist(model, shifted, device="cpu")
    assert report["label range"].status == "FAIL"
    assert report["all classes present"].status == "FAIL" and "missing: 0" in report["all classes present"].detail


def test_checklist_flags_nan_weights(model, digits):
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    report = debugging.training_checklist(model, digits, device="cpu")
    assert report["finite logits"].status == "FAIL"
    assert report["finite gradients"].status == "FAIL"


def test_checklist_warns_on_imbalance(model, digits):
    skewed = debugging.make_imbalanced(digits, minority=[3], keep=0.1)
    report = debugging.training_checklist(model, skewed, device="cpu")
    assert report["class balance"].status == "warn"
    assert report.ok


def test_class_weights_match_inverse_frequency():
    y = torch.tensor([0, 0, 0, 1])
    w = debugging.class_weights(y)
    assert torch.allclose(w, torch.tensor([4 / 6, 2.0]))
    assert torch.allclose(debugging.class_weights(torch.arange(5)), torch.ones(5))
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no examples"):
        debugging.class_weights(y, n_classes=3)


def test_make_imbalanced_and_oversample(digits):
    skewed = debugging.make_imbalanced(digits, minority=[1, 7], keep=0.1, seed=0)
    counts = debugging.class_counts(skewed.y_train, 10)
    full = debugging.class_counts(digits.y_train, 10)
    assert counts[1] == round(0.1 * int(full[1])) and counts[7] == round(0.1 * int(full[7]))
    assert torch.equal(counts[[0, 2]], full[[0, 2]])
    assert torch.equal(skewed.y_test, digits.y_test)
    balanced = debugging.oversample(skewed, seed=0)
    bcounts = debugging.class_counts(balanced.y_train, 10)
    assert (bcounts == counts.max()).all()
    # every oversampled image is one of the minority images that were kept
    kept = {bytes(x.numpy()) for x in skewed.x_train[skewed.y_train == 1]}
    assert {bytes(x.numpy()) for x in balanced.x_train[balanced.y_train == 1]} == kept
    with pytest.raises(ValueError, match="not classes of 'digits'"):
        debugging.make_imbalanced(digits, minority=[10])
