"""The architecture tour: torchvision definitions built without weights, checked against metadata."""

from __future__ import annotations

import pytest
import torch

from helpers import arch_tour
from helpers.arch_tour import ARCHITECTURES, Architecture, build_without_weights, tour

SMALL = [Architecture("mobilenet_v3_small", "MobileNetV3-S", 2019, "Howard et al., ICCV 2019", "search"),
         Architecture("resnet18", "ResNet-18", 2016, "He et al., CVPR 2016", "residuals")]


@pytest.mark.slow
def test_tour_counts_match_torchvision_metadata_and_macs_match_its_ops():
    table = tour(SMALL)
    assert list(table["model"]) == ["MobileNetV3-S", "ResNet-18"]
    resnet = table.set_index("torchvision").loc["resnet18"]
    # ResNet-18 by hand: 11,689,512 parameters (He et al.'s 18-layer net with a 1000-way classifier)
    assert resnet["params (M)"] * 1e6 == pytest.approx(11_689_512, abs=0.5)
    assert resnet["GMACs (counted)"] == pytest.approx(resnet["GFLOPS"], rel=1e-3)  # torchvision's ops are MACs
    assert 60 < resnet["top-1 %"] < resnet["top-5 %"] < 100


def test_a_wrong_parameter_count_is_caught(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(arch_tour, "count_parameters", lambda model, trainable_only=True: 1)
    with pytest.raises(AssertionError, match="counted 1 parameters"):
        tour(SMALL[:1], macs=False)


def test_build_without_weights_allocates_nothing_and_rejects_unknown_names():
    model = build_without_weights("alexnet")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert build_without_weights("resnet18", "cpu").fc.weight.device == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet5'"):
        build_without_weights("resnet5")


def test_every_tour_stop_is_cited_with_a_year_and_a_venue():
    names = [a.name for a in ARCHITECTURES]
    assert len(names) == len(set(names)) >= 10
    for a in ARCHITECTURES:
        assert 2012 <= a.year <= 2022 and str(a.year) in a.paper, a


def test_plot_tour_draws_one_point_per_model():
    import matplotlib

    matplotlib.use("Agg")
    table = tour(SMALL, macs=False)
    ax = arch_tour.plot_tour(table)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2
    assert ax.get_xscale() == "log"
