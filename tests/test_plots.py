"""helpers.plots: the book style renders Chinese text and draws image grids."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import helpers
from helpers.plots import cjk_font, set_style, to_display


def test_chinese_labels_render_without_missing_glyphs(tmp_path):
    if cjk_font() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    set_style()
    fig, ax = plt.subplots()
    ax.set_title("Background · 背景介绍")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph is a UserWarning
        fig.savefig(tmp_path / "cjk.png")
    plt.close(fig)


def test_to_display_handles_layouts_and_ranges():
    chw = torch.rand(3, 5, 7)
    assert to_display(chw).shape == (5, 7, 3)
    assert to_display(torch.zeros(1, 4, 4, dtype=torch.uint8)).shape == (4, 4)
    normalised = to_display(np.array([[-2.0, 0.0], [1.0, 3.0]]))
    assert normalised.min() == 0 and normalised.max() == pytest.approx(1)


def test_show_images_grid_and_titles():
    digits = helpers.load_digits()
    fig = helpers.show_images(digits.x_train[:10], titles=list("abcdefghij"), ncols=4)
    assert len(fig.axes) == 12 and fig.axes[0].get_title() == "a"
    plt.close(fig)


def test_plot_history_draws_train_and_validation():
    digits = helpers.load_digits()
    model = helpers.build_model("mlp", digits.shape, 10)
    history = helpers.fit(model, digits, epochs=2, verbose=False)
    fig = helpers.plot_history(history)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["train", "validation"]
    plt.close(fig)
