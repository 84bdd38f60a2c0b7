"""helpers.efficiency: sizes, latency, int8 quantisation, ONNX export, pruning."""

from __future__ import annotations

import pytest
import torch

import helpers
from helpers import efficiency as eff


@pytest.fixture(scope="module")
def model_and_data():
    data = helpers.load_digits()
    torch.manual_seed(0)
    model = helpers.build_model("mlp", data.shape, 10, hidden=(128, 64))
    helpers.fit(model, data, epochs=3, val_fraction=0, verbose=False, progress=False)
    x = helpers.data.normalize(data.x_test, data.mean, data.std)
    return model.eval(), x, data.y_test


def test_dynamic_quantisation_shrinks_and_keeps_predictions(model_and_data):
    model, x, y = model_and_data
    q = eff.quantize_dynamic(model)
    assert eff.size_on_disk(q) < 0.5 * eff.size_on_disk(model)
    with torch.no_grad():
        agree = (q(x).argmax(1) == model(x).argmax(1)).float().mean()
    assert agree > 0.95


def test_onnx_export_and_int8_match_torch(model_and_data, tmp_path):
    model, x, _ = model_and_data
    path = eff.export_onnx(model, x[:1], tmp_path / "m.onnx")
    ort_out = eff.OnnxModel(path)(x)
    with torch.no_grad():
        assert torch.allclose(ort_out, model(x), atol=1e-4)
    q = eff.onnx_quantize_dynamic(path, tmp_path / "m_int8.onnx")
    assert q.stat().st_size < path.stat().st_size
    assert (eff.OnnxModel(q)(x).argmax(1) == ort_out.argmax(1)).float().mean() > 0.95


def test_pruning_zeroes_the_asked_fraction_and_compresses(model_and_data):
    model, _, _ = model_and_data
    pruned = eff.prune_global(model, 0.8)
    assert eff.sparsity(model) < 0.01
    assert abs(eff.sparsity(pruned) - 0.8) < 0.01
    assert eff.size_on_disk(pruned, compressed=True) < 0.6 * eff.size_on_disk(model, compressed=True)
    with pytest.raises(ValueError, match="amount=1.5 must be in"):
        eff.prune_global(model, 1.5)


def test_latency_is_positive_and_checks_arguments(model_and_data):
    model, x, _ = model_and_data
    assert eff.latency_ms(model, x[:1], repeats=3) > 0
    with pytest.raises(ValueError, match="repeats=0"):
        eff.latency_ms(model, x[:1], repeats=0)
