"""Export: TorchScript and ONNX files give the same predictions as the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import helpers
from helpers import evaluation, export
from helpers.data import normalize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(one_thread):
    torch.manual_seed(0)
    data = helpers.load_digits()
    model = helpers.build_model("vgg", data.shape, 10, widths=(16, 32))
    helpers.fit(model, data, epochs=2, batch_size=64, lr=1e-2, device="cpu", verbose=False)
    return model.eval(), data


def test_torchscript_round_trip(trained, tmp_path: Path):
    model, data = trained
    x = normalize(data.x_test[:50], data.mean, data.std)
    path = export.to_torchscript(model, x[:2], tmp_path / "m.ts")
    loaded = export.load_torchscript(path)
    with torch.no_grad():
        diff = export.max_abs_difference(model(x), loaded(x))
    assert diff < 1e-5


def test_onnx_matches_pytorch_for_any_batch_size(trained, tmp_path: Path):
    model, data = trained
    x = normalize(data.x_test, data.mean, data.std)
    path = export.to_onnx(model, x[:2], tmp_path / "m.onnx")
    assert not list(tmp_path.glob("*.onnx.data"))  # weights inside the one file
    session = export.onnx_session(path, threads=1)
    for n in (1, 7, len(x)):
        ours = export.onnx_predict(session, x[:n])
        with torch.no_grad():
            ref = model(x[:n])
        assert ours.shape == (n, 10)
        assert export.max_abs_difference(ref, ours) < 1e-4
        assert torch.equal(ours.argmax(1), ref.argmax(1))


def test_latency_and_difference_checks():
    lat = export.latency_per_image(lambda x: x * 2, torch.ones(4, 3), repeats=3, warmup=1)
    assert lat["median_ms"] >= 0 and lat["batch"] == 4
    with pytest.raises(ValueError, match="different shapes"):
        export.max_abs_difference(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="repeats=0"):
        export.latency_per_image(lambda x: x, torch.ones(1), repeats=0)


def test_evaluation_helpers(trained):
    model, data = trained
    preds = evaluation.collect_predictions(model, data)
    assert preds.probs.shape == (len(data.y_test), 10)
    assert torch.allclose(preds.probs.sum(1), torch.ones(len(data.y_test)), atol=1e-5)
    assert preds.accuracy == pytest.approx(helpers.evaluate(model, data)["acc"], abs=1e-6)
    wrong = evaluation.misclassified(preds)
    assert (preds.y_pred[wrong] != preds.y_true[wrong]).all()
    conf = preds.confidence[wrong]
    assert (conf[:-1] >= conf[1:]).all()  # most confident mistakes first
    fig = evaluation.plot_confusion(preds.y_true, preds.y_pred, data.classes)
    assert fig.axes[0].get_xlabel() == "predicted class"
    fig2 = evaluation.plot_misclassified(data.x_test, preds, data.classes, n=6)
    assert len([a for a in fig2.axes if a.images]) == min(6, len(wrong))
