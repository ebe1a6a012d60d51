"""PNG plots with matplotlib's Agg backend (no display needed). Each function takes plain data and a path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    _pyplot().close(fig)
    return path


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


def draw_grouped_bars(ax, groups: Sequence[str], bars: dict[str, Sequence[float]], title: str, ylabel: str,
                      errors: dict[str, Sequence[tuple[float, float]]] | None = None, hline: float | None = None,
                      ylim: tuple[float, float] | None = None) -> None:
    """Bars per group (x) and series (colour) on one axis, values on top; optional asymmetric error bars."""
    width = 0.8 / max(1, len(bars))
    for k, (label, values) in enumerate(bars.items()):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(groups))]
        yerr = None
        if errors and label in errors:
            lows, highs = zip(*errors[label])
            yerr = [[max(0.0, v - lo) for v, lo in zip(values, lows)], [max(0.0, hi - v) for v, hi in zip(values, highs)]]
        rects = ax.bar(xs, values, width, label=label, yerr=yerr, capsize=3)
        ax.bar_label(rects, labels=[f"{v:.2f}" if abs(v) <= 1 else f"{v:.1f}" for v in values], fontsize=7, padding=2)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    if ylim:
        ax.set_ylim(*ylim)
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
