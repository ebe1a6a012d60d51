"""`trm rl toy`'s curve arithmetic and figure: the smoothed line and the measured trend it reports and plots."""

from __future__ import annotations

import pytest

from trm.evaluation.plotting import read_layout
from trm.rl.toy import moving_average, plot_curve, reward_trend


def test_moving_average_is_the_trailing_mean_with_a_shorter_window_at_the_start():
    assert moving_average([0.0, 1.0, 2.0, 6.0], window=2) == [0.0, 0.5, 1.5, 4.0]
    assert moving_average([0.0, 1.0, 2.0, 6.0], window=3) == [0.0, 0.5, 1.0, 3.0]
    assert moving_average([0.4, 0.6], window=1) == [0.4, 0.6]


def test_reward_trend_measures_first_and_last_fifth_and_the_fitted_slope():
    rising = [0.1 + 0.01 * step for step in range(10)]
    trend = reward_trend(rising)
    assert trend["steps_per_fifth"] == 2
    assert trend["first_fifth"] == pytest.approx(0.105) and trend["last_fifth"] == pytest.approx(0.185)
    assert trend["slope_per_step"] == pytest.approx(0.01) and trend["fitted_rise"] == pytest.approx(0.09)
    falling = reward_trend(list(reversed(rising)))
    assert falling["slope_per_step"] == pytest.approx(-0.01) and falling["last_fifth"] < falling["first_fifth"]
    assert reward_trend([0.5])["slope_per_step"] == 0.0


def test_reward_curve_draws_raw_points_and_their_moving_average(tmp_path):
    records = [{"step": s, "reward": r, "accuracy": a}
               for s, r, a in [(1, 0.2, 0.3), (2, 0.4, 0.5), (3, 0.3, 0.4), (4, 0.7, 0.8)]]
    (axis,) = read_layout(plot_curve(records, tmp_path / "curve.png", "toy", window=2))["axes"]
    lines = [ys for _, ys in axis["lines"]]
    assert [0.2, 0.4, 0.3, 0.7] in lines and [0.3, 0.5, 0.4, 0.8] in lines  # the raw points of each series
    assert pytest.approx([0.2, 0.3, 0.35, 0.5]) in lines and pytest.approx([0.3, 0.4, 0.45, 0.6]) in lines
