"""The book's plotting style, with Chinese text that renders on any machine.

`set_style()` is called by `helpers.setup()`. Chinese labels need a font with CJK glyphs:
the course depends on the PyPI package `mplfonts`, whose wheel ships Noto Sans CJK SC
(SIL Open Font License), and registers that file with matplotlib, so no system package is
needed. A system CJK font (Noto Sans CJK, WenQuanYi, SimHei, PingFang, ...) is used when
that file is absent. matplotlib falls back from the Latin font to the CJK one glyph by glyph.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.rcsetup import cycler  # matplotlib's validated cycler: no undeclared dependency

__all__ = ["CJK_FONTS", "SEABORN_THEME", "bundled_cjk_font_file", "cjk_font", "set_style"]


def bundled_cjk_font_file() -> Path | None:
    """The Noto Sans CJK SC file shipped by the `mplfonts` package, or None if not installed.

    Found without importing `mplfonts` (its import has side effects on matplotlib's config).
    """
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "fonts" / "NotoSansCJKsc-Regular.otf"
    return path if path.is_file() else None


# The first of these that is installed is used for Chinese text.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Arial Unicode MS",
)


_CJK_FILE_HINTS = ("cjk", "wqy", "simhei", "msyh", "pingfang", "sourcehan", "notosanssc")


def cjk_font() -> str | None:
    """Name of an installed font that has Chinese glyphs, or None if there is none.

    matplotlib caches its font list; a CJK font installed after that cache was written is
    not in it, so on a miss we look through the system font folders once and add CJK fonts.
    """
    bundled = bundled_cjk_font_file()
    if bundled is not None:
        names = {f.fname: f.name for f in font_manager.fontManager.ttflist}
        if str(bundled) not in names:
            font_manager.fontManager.addfont(str(bundled))
        return font_manager.FontProperties(fname=str(bundled)).get_name()
    installed = {f.name for f in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in installed), None)
    if found is None:
        for path in font_manager.findSystemFonts():
            if any(h in Path(path).name.lower() for h in _CJK_FILE_HINTS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        installed = {f.name for f in font_manager.fontManager.ttflist}
        found = next((name for name in CJK_FONTS if name in installed), None)
    return found


_warned_no_cjk = False


def _warn_no_cjk() -> None:
    """Say once that Chinese labels will show as boxes, then silence matplotlib's per-glyph warnings."""
    global _warned_no_cjk
    _warned_no_cjk = True
    warnings.warn(
        "no CJK font found: Chinese labels in figures will show as boxes. Install one "
        "(pip install mplfonts, which the course declares; or Debian/Ubuntu: apt-get install "
        "fonts-noto-cjk) and restart the kernel.",
        stacklevel=3,
    )
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")


#: seaborn's `set_theme(context="notebook", style="whitegrid", palette="colorblind")`, written out:
#: importing seaborn (and with it scipy.stats) costs two seconds per notebook, and most notebooks
#: draw with matplotlib alone. `tests/test_plots.py` checks these against seaborn itself.
SEABORN_THEME: dict[str, object] = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".8",
    "axes.grid": True,
    "axes.labelcolor": ".15",
    "axes.labelsize": 12.0,
    "axes.linewidth": 1.25,
    "axes.prop_cycle": cycler(color=[  # seaborn's "colorblind" palette
        "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
        "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
    ]),
    "axes.titlesize": 12.0,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 12.0,
    "grid.color": ".8",
    "grid.linewidth": 1.0,
    "legend.fontsize": 11.0,
    "legend.title_fontsize": 12.0,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "text.color": ".15",
    "xtick.bottom": False,
    "xtick.color": ".15",
    "xtick.labelsize": 11.0,
    "xtick.major.size": 6.0,
    "xtick.major.width": 1.25,
    "xtick.minor.size": 4.0,
    "xtick.minor.width": 1.0,
    "ytick.color": ".15",
    "ytick.labelsize": 11.0,
    "ytick.left": False,
    "ytick.major.size": 6.0,
    "ytick.major.width": 1.25,
    "ytick.minor.size": 4.0,
    "ytick.minor.width": 1.0,
}


def set_style() -> None:
    """Apply the book's plot style: seaborn's clean grid (`SEABORN_THEME`), readable sizes, CJK fallback."""
    matplotlib.rcParams.update(SEABORN_THEME)
    fonts = ["DejaVu Sans"]
    cjk = cjk_font()
    if cjk:
        fonts.append(cjk)
    elif not _warned_no_cjk:
        _warn_no_cjk()
    matplotlib.rcParams.update(
        {
            # a list of families: matplotlib falls back glyph by glyph (Latin, then CJK)
            "font.family": fonts,
            "axes.unicode_minus": False,  # CJK fonts often lack U+2212
            "figure.dpi": 80,
            "savefig.dpi": 100,
            "figure.figsize": (6.4, 4.0),
            "axes.titlesize": 12,
            "image.cmap": "gray",
        }
    )
