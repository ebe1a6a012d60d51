"""Every plot the toolkit draws, rendered to PNG and checked on the layout it was drawn with (read back from the
file): titles fit the figure, missing values draw nothing, y ranges come from the data."""

from __future__ import annotations

import pytest

from trm.evaluation import bon, figures, tables, winrate
from trm.evaluation.plotting import data_ylim, plot_bar_panels, plot_grouped_bars, plot_lines, read_layout

# The quickstart's title, cut off at the figure's edge before titles were wrapped.
LONG_TITLE = "CPU toy: synthetic pool (wrong answers tend to have ME² defects), trained tiny TRM"


def assert_titles_fit(layout: dict) -> None:
    assert layout["titles"], "no title drawn"
    for title in layout["titles"]:
        assert title["fits"], title


def test_bon_plot_wraps_a_long_title_and_draws_the_data(tmp_path):
    result = {"n_values": [1, 2, 4, 8], "pass@n": [40.0, 60.0, 75.0, 90.0], "mean_accuracy": 40.0,
              "selectors": {"trm": {"mean": [40.0, 55.0, 66.0, 72.0], "std": [1.0, 2.0, 3.0, 4.0]},
                            "random": {"mean": [40.0, 41.0, 39.0, 40.0], "std": [1.0, 1.0, 1.0, 1.0]}}}
    layout = read_layout(bon.plot(result, tmp_path / "bon.png", LONG_TITLE))
    assert_titles_fit(layout)
    assert "\n" in layout["titles"][0]["text"] and layout["titles"][0]["text"].replace("\n", " ") == LONG_TITLE
    (axis,) = layout["axes"]
    drawn = {tuple(ys) for _, ys in axis["lines"]}
    assert (40.0, 55.0, 66.0, 72.0) in drawn and (40.0, 60.0, 75.0, 90.0) in drawn
    low, high = axis["ylim"]
    assert low <= 39.0 and high >= 90.0


def test_table2_figure_leaves_missing_averages_out(tmp_path):
    # A run on the math benchmarks only: no STEM column, so its average is missing ("–" in the table), not 0.
    rows = [{"policy": "tiny-chat", "reward": "untrained", "values": {name: 10.0 for name in tables.MATH}},
            {"policy": "tiny-chat", "reward": "TRM", "values": {name: 21.25 for name in tables.MATH}}]
    layout = read_layout(figures.table2_figure(rows, tmp_path / "table2.png", "Table 2 shape: toy"))
    assert_titles_fit(layout)
    stem, math = layout["axes"]
    assert stem["title"] == "STEM avg" and stem["bars"] == [] and "0.00" not in stem["labels"]
    assert "no data" in stem["labels"]
    assert math["bars"] == pytest.approx([10.0, 21.25]) and "0.00" not in math["labels"]
    low, high = math["ylim"]
    assert low == 0.0 and 21.25 < high < 30.0  # from the data, not matplotlib's -0.04..0.04 for an empty axis


def test_winrate_plot_skips_missing_comparisons(tmp_path):
    summaries = [{"group": "q7b", "a": "TRM", "b": "base", "win_rate": 0.8, "ci_low": 0.6, "ci_high": 0.9},
                 {"group": "q7b", "a": "TRM", "b": "verifier", "win_rate": 0.6, "ci_low": 0.4, "ci_high": 0.75},
                 {"group": "llama", "a": "TRM", "b": "base", "win_rate": None, "ci_low": None, "ci_high": None}]
    layout = read_layout(winrate.plot(summaries, tmp_path / "winrate.png"))
    assert_titles_fit(layout)
    (axis,) = layout["axes"]
    assert sorted(axis["bars"]) == pytest.approx([0.6, 0.8])  # llama has no decided pair: no bar
    assert axis["ylim"] == pytest.approx([0.0, 1.05])


def test_paper_figures_titles_fit(tmp_path):
    pngs = [path for path in figures.paper_figures(tmp_path) if path.suffix == ".png"]
    assert len(pngs) == 3
    for path in pngs:
        layout = read_layout(path)
        assert_titles_fit(layout)
        for axis in layout["axes"]:
            assert axis["bars"] or axis["lines"], (path.name, axis)


def test_generic_plots_follow_their_data(tmp_path):
    bars = read_layout(plot_grouped_bars(["a", "b"], {"x": [3.0, None], "y": [None, 5.0]}, tmp_path / "bars.png",
                                         LONG_TITLE + " " + LONG_TITLE, "value"))
    assert_titles_fit(bars)
    assert bars["axes"][0]["bars"] == [3.0, 5.0] and bars["axes"][0]["ylim"][1] >= 5.0
    panels = read_layout(plot_bar_panels([("p", ["a"], {"x": [-2.0]})], tmp_path / "panels.png", "v", LONG_TITLE))
    assert_titles_fit(panels)
    low, high = panels["axes"][0]["ylim"]
    assert low < -2.0 and high >= 0.0
    lines = read_layout(plot_lines({"s": ([1, 2], [1.0, 2.0], None)}, tmp_path / "lines.png", "short"))
    assert lines["titles"] == [{"text": "short", "fits": True}]


def test_data_ylim():
    assert data_ylim([None, None]) is None
    assert data_ylim([0.0]) == (0.0, pytest.approx(1.15))
    assert data_ylim([None, 10.0]) == (0.0, pytest.approx(11.5))
