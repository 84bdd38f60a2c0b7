"""helpers.interpret: hand-made Grad-CAM against Captum, saliency, occlusion, feature maps."""

from __future__ import annotations

import pytest
import torch

import helpers
from helpers import interpret


@pytest.fixture(scope="module")
def digits_model():
    data = helpers.load_digits()
    torch.manual_seed(0)
    model = helpers.build_model("lenet5", data.shape, data.n_classes)
    helpers.fit(model, data, epochs=3, val_fraction=0, verbose=False, device="cpu")
    x = helpers.data.normalize(data.x_test[:6], data.mean, data.std)
    return model.eval(), x


def test_grad_cam_matches_captum_layer_grad_cam(digits_model):
    from captum.attr import LayerGradCam

    model, x = digits_model
    layer = model.features[3]  # second convolution
    target = model(x).argmax(1)
    ours = interpret.grad_cam(model, x, layer, upsample=False)
    theirs = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)[:, 0].detach()
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    assert ours.abs().sum() > 0
    up = interpret.grad_cam(model, x, layer, target=3)
    assert up.shape == (6, 8, 8) and (up >= 0).all()


def test_grad_cam_rejects_bad_targets_and_foreign_layers(digits_model):
    model, x = digits_model
    with pytest.raises(ValueError, match="target"):
        interpret.grad_cam(model, x, model.features[3], target=10)
    with pytest.raises(ValueError, match="not called"):
        interpret.grad_cam(model, x, torch.nn.Conv2d(1, 1, 1))


def test_saliency_is_the_input_gradient(digits_model):
    model, x = digits_model
    sal = interpret.saliency(model, x[:1], target=2)
    xg = x[:1].clone().requires_grad_(True)
    model(xg)[0, 2].backward()
    assert torch.allclose(sal, xg.grad.abs().amax(dim=1))


def test_occlusion_of_a_pixel_that_does_not_matter_gives_zero():
    class OnlyTopLeft(torch.nn.Module):
        def forward(self, x):
            s = x[:, :, :2, :2].sum(dim=(1, 2, 3))
            return torch.stack([s, -s], dim=1)

    x = torch.ones(1, 1, 8, 8)
    heat = interpret.occlusion(OnlyTopLeft(), x, target=0, patch=2, stride=2)
    assert heat.shape == (1, 8, 8)
    assert heat[0, 0, 0] > 0 and heat[0, 4:, 4:].abs().max() == 0
    with pytest.raises(ValueError, match="larger"):
        interpret.occlusion(OnlyTopLeft(), x, patch=9)


def test_feature_maps_capture_named_layers(digits_model):
    model, x = digits_model
    maps = interpret.feature_maps(model, x, {"conv1": model.features[0], "conv2": model.features[3]})
    assert maps["conv1"].shape == (6, 6, 8, 8) and maps["conv2"].shape[1] == 16
    with pytest.raises(ValueError, match="empty"):
        interpret.feature_maps(model, x, {})
