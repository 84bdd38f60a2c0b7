"""fit / evaluate / predict on the real digits, and the checkpoint round trip with its error paths."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import helpers
from helpers.training import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return helpers.load_digits()


def _train(digits, seed: int, **kw):
    torch.manual_seed(seed)
    model = helpers.build_model("lenet5", digits.shape, 10)
    kw = {"epochs": 2, "batch_size": 64, "device": "cpu", "verbose": False, "seed": seed} | kw
    return model, helpers.fit(model, digits, **kw)


def test_fit_learns_digits(digits):
    model, hist = _train(digits, 0, epochs=6, lr=1e-2)
    assert len(hist) == 6 and set(hist.last) >= {"train_loss", "val_acc", "lr", "seconds"}
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    result = helpers.evaluate(model, digits)
    assert result["acc"] > 0.9, result
    frame = hist.to_frame()
    assert list(frame["epoch"]) == list(range(1, 7))
    assert hist.to_dict()["records"][0]["epoch"] == 1


def test_fit_is_deterministic_for_a_seed(digits):
    _, a = _train(digits, 3, augment=True)
    _, b = _train(digits, 3, augment=True)
    _, c = _train(digits, 4, augment=True)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.records]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_onecycle_and_cosine_schedules(digits):
    _, one = _train(digits, 0, epochs=4, schedule="onecycle", lr=1e-2)
    _, cos = _train(digits, 0, epochs=4, schedule="cosine", lr=1e-2)
    _, const = _train(digits, 0, epochs=2, schedule="constant", lr=1e-2)
    assert one["lr"][-1] < 1e-4 and cos["lr"][-1] < 1e-4  # both anneal to (almost) zero
    assert max(one["lr"]) <= 1e-2 + 1e-12 and one["lr"][0] > one["lr"][-1]
    assert const["lr"] == [1e-2, 1e-2]
    with pytest.raises(ValueError, match="schedule='step'.*onecycle"):
        _train(digits, 0, schedule="step")
    with pytest.raises(ValueError, match="optimizer='adam'.*adamw"):
        _train(digits, 0, optimizer="adam")


def test_label_smoothing_raises_the_training_loss_floor(digits):
    _, plain = _train(digits, 0, epochs=5, label_smoothing=0.0)
    _, smooth = _train(digits, 0, epochs=5, label_smoothing=0.2)
    # with smoothing 0.2 over 10 classes the loss of a perfect prediction is > 0.5
    assert smooth["train_loss"][-1] > plain["train_loss"][-1] + 0.2
    assert smooth["val_acc"][-1] > 0.8
    with pytest.raises(ValueError, match="label_smoothing"):
        _train(digits, 0, label_smoothing=1.5)


def test_early_stopping_restores_best(digits):
    torch.manual_seed(0)
    model = helpers.build_model("mlp", digits.shape, 10)
    small = digits.subset(8)
    hist = helpers.fit(model, small, epochs=40, lr=3e-2, schedule="constant", early_stopping=2,
                       device="cpu", verbose=False, val_data=digits.subset(20, seed=5))
    assert hist.stopped_early and len(hist) < 40
    best = hist.best_epoch
    assert best is not None and hist["val_loss"][best - 1] == min(hist["val_loss"])


def test_no_validation_and_bad_arguments(digits):
    _, hist = _train(digits, 0, val_fraction=0.0)
    assert math.isnan(hist["val_acc"][0])
    with pytest.raises(ValueError, match="epochs=0"):
        _train(digits, 0, epochs=0)
    with pytest.raises(ValueError, match="split='valid'"):
        helpers.evaluate(helpers.build_model("mlp", digits.shape, 10), digits, split="valid")


def test_predict_matches_model_output(digits):
    model, _ = _train(digits, 0)
    logits = helpers.predict(model, digits.x_test[:7], digits.mean, digits.std)
    from helpers.data import normalize

    with torch.no_grad():
        direct = model(normalize(digits.x_test[:7], digits.mean, digits.std))
    assert logits.shape == (7, 10) and torch.allclose(logits, direct, atol=1e-6)


def test_checkpoint_round_trip(digits, tmp_path: Path):
    model, _ = _train(digits, 0)
    path = helpers.save_checkpoint(tmp_path / "ck" / "lenet.pt", model, dataset="digits", mean=digits.mean,
                                   std=digits.std, classes=digits.classes)
    loaded, meta = helpers.load_checkpoint(path)
    assert type(loaded).__name__ == "LeNet5" and meta["classes"] == digits.classes
    x = digits.x_test[:20]
    assert torch.equal(helpers.predict(model, x, digits.mean, digits.std),
                       helpers.predict(loaded, x, meta["mean"], meta["std"]))
    assert not list(path.parent.glob("*.tmp"))


def test_checkpoint_errors(digits, tmp_path: Path):
    model, _ = _train(digits, 0, epochs=1)
    path = helpers.save_checkpoint(tmp_path / "lenet.pt", model)
    other = helpers.build_model("vgg", digits.shape, 10)
    with pytest.raises(CheckpointError, match="does not fit this model.*lenet5"):
        helpers.load_checkpoint(path, other)
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        helpers.load_checkpoint(tmp_path / "notes.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        helpers.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a course checkpoint"):
        helpers.load_checkpoint(tmp_path / "plain.pt")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint|truncated"):
        helpers.load_checkpoint(truncated)


class Payload:
    """An arbitrary Python object: unpickling it could run code, so weights_only refuses it."""

    def __reduce__(self):
        return (print, ("this would run on load",))


def test_checkpoint_with_pickled_objects_is_refused(tmp_path: Path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused.*weights_only=True"):
        helpers.load_checkpoint(evil)
    assert "would run" not in capsys.readouterr().out


def test_weight_ema_follows_its_formula():
    net = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in net.parameters()]
    ema = helpers.training.WeightEMA(net, decay=0.99)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # the "optimiser step": every weight moves by +1
    ema.update()  # first step: d_0 = min(0.99, 1/10) = 0.1, so the average moves 90 % of the way
    for s, w0 in zip(ema.shadow, start, strict=True):
        assert torch.allclose(s, w0 + 0.9, atol=1e-6)
    ema.swap()
    assert all(torch.allclose(p, w0 + 0.9, atol=1e-6) for p, w0 in zip(net.parameters(), start, strict=True))
    ema.swap()  # and back: the raw weights return
    assert all(torch.allclose(p, w0 + 1.0) for p, w0 in zip(net.parameters(), start, strict=True))
    with pytest.raises(ValueError, match="ema=1.5"):
        helpers.training.WeightEMA(net, decay=1.5)


def test_fit_with_ema_evaluates_and_keeps_the_averaged_weights(digits):
    raw, _ = _train(digits, 0, epochs=2, lr=1e-2)
    averaged, hist = _train(digits, 0, epochs=2, lr=1e-2, ema=0.9)
    differ = [not torch.equal(a, b) for a, b in zip(raw.parameters(), averaged.parameters(), strict=True)]
    assert all(differ)  # same seed, same raw trajectory: the averaged weights are different weights
    # the last validation accuracy was measured with the weights the model ends with
    _, valid = digits.split_validation(0.1, seed=0)
    logits = helpers.predict(averaged, valid.x_train, digits.mean, digits.std)
    assert hist["val_acc"][-1] == pytest.approx((logits.argmax(1) == valid.y_train).float().mean().item())
    loss = torch.nn.functional.cross_entropy(logits, valid.y_train).item()
    assert hist["val_loss"][-1] == pytest.approx(loss, rel=1e-4)


def test_flip_averaging_is_the_mean_of_two_logits(digits):
    model, _ = _train(digits, 0, epochs=1)
    x = digits.x_test[:9]
    plain = helpers.predict(model, x, digits.mean, digits.std)
    mirrored = helpers.predict(model, x.flip(-1), digits.mean, digits.std)
    both = helpers.predict(model, x, digits.mean, digits.std, flip=True)
    assert torch.allclose(both, (plain + mirrored) / 2, atol=1e-5)
    assert not torch.allclose(both, plain, atol=1e-3)  # digits are not mirror-symmetric
    acc = helpers.evaluate(model, digits, flip=True)["acc"]
    assert acc == pytest.approx((helpers.predict(model, digits.x_test, digits.mean, digits.std, flip=True)
                                 .argmax(1) == digits.y_test).float().mean().item())


def test_channels_last_changes_speed_not_results(digits):
    fast, a = _train(digits, 1, channels_last=True)
    slow, b = _train(digits, 1, channels_last=False)
    assert next(p for p in fast.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    assert next(p for p in slow.parameters() if p.dim() == 4).is_contiguous()
    for ra, rb in zip(a.records, b.records, strict=True):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-3)
        assert ra["val_acc"] == pytest.approx(rb["val_acc"], abs=0.01)
    with pytest.raises(ValueError, match="warmup=0"):
        _train(digits, 0, warmup=0.0)


def test_onecycle_survives_a_four_step_run(digits):
    # 4 steps with a 0.25 warm-up: OneCycleLR alone divides by 0.25 * 4 - 1 = 0
    model = helpers.build_model("mlp", digits.shape, 10)
    hist = helpers.fit(model, digits.subset(10), epochs=1, batch_size=32, device="cpu", verbose=False,
                       progress=False, val_fraction=0)
    assert len(hist) == 1 and math.isfinite(hist["train_loss"][0])


def test_fit_hands_the_model_back_in_the_default_memory_layout():
    """channels-last is a training-speed detail: afterwards every weight is contiguous again."""
    data = helpers.load_digits()
    model = helpers.build_model("lenet5", data.shape, 10)
    helpers.fit(model, data, epochs=1, val_fraction=0, verbose=False, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())
    torch.nn.utils.parameters_to_vector(model.parameters())  # what pruning does; fails on channels-last
