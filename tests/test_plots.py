"""helpers.plots: the book style renders Chinese text and draws image grids."""

from __future__ import annotations

import subprocess
import sys
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import helpers
from helpers.plots import cjk_font, set_style, to_display


def _render(text: str) -> np.ndarray:
    fig = plt.figure(figsize=(1.2, 0.6), dpi=100)
    fig.text(0.5, 0.5, text, fontsize=28, ha="center", va="center")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., 0].copy()
    plt.close(fig)
    return pixels


def test_chinese_labels_render_with_real_glyphs_from_the_pip_font(tmp_path):
    """The font comes from the mplfonts wheel: no system package, no warning, no tofu boxes."""
    from helpers.style import bundled_cjk_font_file

    assert bundled_cjk_font_file() is not None, "mplfonts (declared in pyproject) ships Noto Sans CJK SC"
    assert cjk_font() == "Noto Sans CJK SC"
    set_style()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph is a UserWarning
        fig, ax = plt.subplots()
        ax.set_title("Background · 背景介绍")
        fig.savefig(tmp_path / "cjk.png")
        plt.close(fig)
        # a missing glyph is drawn as the same empty box for every character: two different
        # characters that render identically would mean tofu
        bei, jing = _render("背"), _render("景")
    assert (bei < 128).sum() > 20 and not np.array_equal(bei, jing)


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
    assert fig.axes[3].get_title() == "d"  # row-major order
    # each panel shows its own image, pixel for pixel (first and last)
    for i in (0, 9):
        shown = np.asarray(fig.axes[i].get_images()[0].get_array())
        assert np.array_equal(shown, to_display(digits.x_train[i]))
    assert not fig.axes[10].get_images() and not fig.axes[10].axison  # the spare panels are blank
    plt.close(fig)


def test_plot_history_draws_train_and_validation():
    digits = helpers.load_digits()
    model = helpers.build_model("mlp", digits.shape, 10)
    history = helpers.fit(model, digits, epochs=2, verbose=False)
    fig = helpers.plot_history(history)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["train", "validation"]
    train_line = fig.axes[0].get_lines()[0]
    assert list(train_line.get_ydata()) == pytest.approx(history.to_frame()["train_loss"].tolist())
    plt.close(fig)


def test_the_written_out_theme_is_seaborns():
    """SEABORN_THEME spares every notebook seaborn's import; it must stay what seaborn sets."""
    import matplotlib as mpl
    import seaborn as sns

    from helpers.style import SEABORN_THEME

    with mpl.rc_context():
        mpl.rcdefaults()
        defaults = dict(mpl.rcParams)
        sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
        seaborn_sets = {k: v for k, v in mpl.rcParams.items() if v != defaults[k] and k != "image.cmap"}
        mpl.rcdefaults()
        mpl.rcParams.update(SEABORN_THEME)
        ours = {k: mpl.rcParams[k] for k in seaborn_sets}
        assert set(SEABORN_THEME) == set(seaborn_sets)
        for key, value in seaborn_sets.items():
            if key == "axes.prop_cycle":  # same colours, as hex strings instead of RGB tuples
                theirs = [mpl.colors.to_hex(c["color"]) for c in value]
                assert [mpl.colors.to_hex(c["color"]) for c in ours[key]] == theirs
            else:
                assert ours[key] == value, key
    set_style()


def test_setup_imports_neither_seaborn_nor_torchvision():
    """Both cost seconds at every notebook's start; they load only where a notebook uses them."""
    code = ("import sys, helpers; helpers.setup(helpers.check_params(seed=0), quiet=True); "
            "print(sorted({'seaborn', 'torchvision', 'scipy.stats'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
