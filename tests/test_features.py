"""Tests for helpers.features: Sobel vs SciPy, HOG vs scikit-image, receptive field formula vs gradient."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.feature import hog
from torch import nn

import helpers
from helpers import features


def test_sobel_matches_scipy_on_a_real_photo():
    image = helpers.load_photo("camera")[::4, ::4].astype(np.float64)  # [128, 128]
    gx, gy, mag = features.sobel(image)
    assert gx.shape == image.shape
    np.testing.assert_allclose(gx.numpy(), ndimage.sobel(image, axis=1, mode="reflect"), atol=1e-9)
    np.testing.assert_allclose(gy.numpy(), ndimage.sobel(image, axis=0, mode="reflect"), atol=1e-9)
    np.testing.assert_allclose(mag.numpy(), np.hypot(gx.numpy(), gy.numpy()))


def test_sobel_sees_a_vertical_edge_only_in_x():
    image = np.zeros((6, 6))
    image[:, 3:] = 1.0
    gx, gy, _ = features.sobel(image)
    assert gx[2, 2] == 4.0 and gx[2, 3] == 4.0 and gx[2, 0] == 0.0
    assert torch.all(gy == 0)


def test_sobel_refuses_colour():
    with pytest.raises(ValueError, match="grayscale"):
        features.sobel(np.zeros((4, 4, 3)))


def test_hog_features_match_skimage_on_digits():
    digits = helpers.load_digits()
    x = digits.x_train[:5]  # [5, 1, 8, 8]
    feats = features.hog_features(x)
    assert feats.shape == (5, 36)
    ref = hog(x[3, 0].numpy().astype(float), orientations=9, pixels_per_cell=(4, 4),
              cells_per_block=(1, 1), block_norm="L2-Hys")
    np.testing.assert_allclose(feats[3], ref)


def test_hog_features_refuse_bad_cells():
    with pytest.raises(ValueError, match="does not fit"):
        features.hog_features(np.zeros((2, 8, 8)), pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    with pytest.raises(ValueError, match="grayscale"):
        features.hog_features(np.zeros((8, 8)))


def test_receptive_field_of_three_3x3_convs_is_7():
    net = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)])
    table = features.receptive_field_table(net)
    assert table["rf"].tolist() == [3, 5, 7]
    assert table["jump"].tolist() == [1, 1, 1]


@pytest.mark.parametrize("arch", ["lenet5", "vgg"])
def test_formula_matches_gradient_measurement(arch):
    model = helpers.build_model(arch, (1, 28, 28), 10)
    table = features.receptive_field_table(model)
    assert int(table["rf"].iloc[-1]) == features.empirical_receptive_field(model, size=96)


def test_dilation_and_stride_enter_the_formula():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3, dilation=2, padding=2),
                        nn.MaxPool2d(2))
    table = features.receptive_field_table(net)
    assert table["rf"].tolist() == [3, 3 + 2 * 2 * 2, 11 + 1 * 2]
    assert features.empirical_receptive_field(net, size=64) == 13


def test_receptive_field_refuses_networks_without_spatial_layers():
    with pytest.raises(ValueError, match="no Conv2d"):
        features.receptive_field_table(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
