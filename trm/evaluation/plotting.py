"""PNG plots with matplotlib's Agg backend (no display needed). Each function takes plain data and a path.

Every PNG carries its layout in a text chunk (``trm-layout``: titles with whether they fit the figure, per axis its
y range, bar heights and labels), so tests check what was drawn from the file itself. Titles too wide for the
figure are wrapped; missing values (None) are not drawn (no bar, no label), and y ranges follow the drawn data.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Sequence

LAYOUT_KEY = "trm-layout"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _titles(fig) -> list:
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    if getattr(fig, "_suptitle", None) is not None and fig._suptitle.get_text():
        titles.append(fig._suptitle)
    return titles


def _fit_titles(fig) -> None:
    """Wrap each title onto more lines until it is no wider than its figure (or its axis, for axis titles)."""
    renderer = fig.canvas.get_renderer()
    for text in _titles(fig):
        limit = fig.bbox.width if text is getattr(fig, "_suptitle", None) else max(
            ax.bbox.width for ax in fig.axes if ax.title is text)
        original = text.get_text().replace("\n", " ")
        chars = len(original)
        while text.get_window_extent(renderer).width > limit and chars > 10:
            chars = int(chars * 0.85)
            text.set_text("\n".join(textwrap.wrap(original, chars)))


def layout(fig) -> dict:
    """What a reader sees: titles (text, fits inside the figure), and per axis its y range, bar heights and labels."""
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    titles = []
    for text in _titles(fig):
        box = text.get_window_extent(renderer)
        titles.append({"text": text.get_text(), "fits": bool(box.x0 >= figure_box.x0 - 0.5
                                                              and box.x1 <= figure_box.x1 + 0.5
                                                              and box.y1 <= figure_box.y1 + 0.5)})
    axes = []
    for ax in fig.axes:
        from matplotlib.patches import Rectangle

        bars = [patch.get_height() for patch in ax.patches if isinstance(patch, Rectangle)]
        labels = [text.get_text() for text in ax.texts]
        axes.append({"title": ax.get_title(), "ylim": list(ax.get_ylim()), "bars": bars, "labels": labels,
                     "lines": [[list(map(float, line.get_xdata())), list(map(float, line.get_ydata()))]
                               for line in ax.get_lines() if len(line.get_xdata()) > 1]})
    return {"titles": titles, "axes": axes}


def read_layout(path: str | Path) -> dict:
    """The layout a PNG written here was drawn with (see :func:`layout`)."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text[LAYOUT_KEY])


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    _fit_titles(fig)
    fig.tight_layout()
    fig.canvas.draw()
    fig.savefig(path, dpi=130, metadata={LAYOUT_KEY: json.dumps(layout(fig))})
    _pyplot().close(fig)
    return path


def data_ylim(values: Sequence[float | None], headroom: float = 0.15) -> tuple[float, float] | None:
    """A y range from the values that exist, with room for the labels on top; None when there are none."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return None
    low, high = min(0.0, min(present)), max(0.0, max(present))
    if high == low:
        high = low + 1.0
    return low - (headroom * (high - low) if low < 0 else 0.0), high + headroom * (high - low)


def plot_lines(series: dict[str, tuple[Sequence[int], Sequence[float], Sequence[float] | None]], path: str | Path,
               title: str, ylabel: str = "accuracy (%)", xlabel: str = "N (candidates)", reference: dict | None = None,
               dotted: Sequence[str] = ()) -> Path:
    """Accuracy against N on a log2 axis; `series`: label -> (xs, means, stds or None); dashed `reference` lines.

    Series named in `dotted` are drawn with a dotted line (only their end points are known).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, (xs, ys, errs) in series.items():
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label, linestyle=":" if label in dotted else "-")
    for (label, (xs, ys)), style in zip((reference or {}).items(), ["--", ":", "-."] * 4):
        ax.plot(xs, ys, linestyle=style, color="grey", alpha=0.8, label=label)
    all_x = sorted({x for xs, _, _ in series.values() for x in xs})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_x)
    ax.set_xticklabels([str(x) for x in all_x])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def draw_grouped_bars(ax, groups: Sequence[str], bars: dict[str, Sequence[float | None]], title: str, ylabel: str,
                      errors: dict[str, Sequence[tuple[float, float] | None]] | None = None,
                      hline: float | None = None, ylim: tuple[float, float] | None = None) -> None:
    """Bars per group (x) and series (colour) on one axis, values on top; optional asymmetric error bars.

    A None value is missing: no bar and no label are drawn for it (never a 0). Without ``ylim`` the y range
    follows the values present; a panel with none says so.
    """
    width = 0.8 / max(1, len(bars))
    for k, (label, values) in enumerate(bars.items()):
        kept = [(i, v) for i, v in enumerate(values) if v is not None]
        xs = [i - 0.4 + width * (k + 0.5) for i, _ in kept]
        heights = [v for _, v in kept]
        yerr = None
        if errors and label in errors:
            spans = [errors[label][i] or (v, v) for i, v in kept]
            yerr = [[max(0.0, v - lo) for v, (lo, _) in zip(heights, spans)],
                    [max(0.0, hi - v) for v, (_, hi) in zip(heights, spans)]]
        rects = ax.bar(xs, heights, width, label=label, yerr=yerr if heights else None, capsize=3)
        ax.bar_label(rects, labels=[f"{v:.2f}" if abs(v) <= 1 else f"{v:.1f}" for v in heights], fontsize=7, padding=2)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    present = [v for values in bars.values() for v in values if v is not None]
    ylim = ylim or data_ylim(present)
    if ylim:
        ax.set_ylim(*ylim)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def plot_grouped_bars(groups: Sequence[str], bars: dict[str, Sequence[float]], path: str | Path, title: str,
                      ylabel: str, errors: dict[str, Sequence[tuple[float, float]]] | None = None,
                      hline: float | None = None, ylim: tuple[float, float] | None = None) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(groups) * max(1, len(bars))), 4.2))
    draw_grouped_bars(ax, groups, bars, title, ylabel, errors, hline, ylim)
    return _save(fig, path)


def plot_bar_panels(panels: Sequence[tuple[str, Sequence[str], dict[str, Sequence[float]]]], path: str | Path,
                    ylabel: str, suptitle: str = "") -> Path:
    """Side-by-side grouped bar charts: `panels` is a list of (title, groups, bars)."""
    plt = _pyplot()
    width = max(6.4, sum(0.5 * len(g) * max(1, len(b)) for _, g, b in panels))
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.4), squeeze=False)
    for ax, (title, groups, bars) in zip(axes[0], panels):
        draw_grouped_bars(ax, groups, bars, title, ylabel)
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)
