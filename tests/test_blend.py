"""The thinking reward formula r = v * (1 - alpha + alpha * sigmoid(t))."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trm.rewards.blend import RewardResult, sigmoid, thinking_reward, validate_alpha
from trm.rewards.verdict import Verdict


def test_paper_values():
    assert thinking_reward(1, 0.0) == pytest.approx(0.9)  # 0.8 + 0.2 * 0.5
    assert thinking_reward(1, 2.0, alpha=0.5) == pytest.approx(0.5 + 0.5 / (1 + math.exp(-2.0)))
    assert thinking_reward(1, 3.0, alpha=0.0) == 1.0  # alpha 0: the verifier alone
    assert thinking_reward(1, -3.0, alpha=1.0) == pytest.approx(1 / (1 + math.exp(3.0)))


def test_wrong_answers_earn_nothing_whatever_the_trm_says():
    assert thinking_reward(0, 50.0) == 0.0
    assert thinking_reward(0, None) == 0.0  # the TRM need not be asked about wrong answers


def test_sigmoid_is_stable_at_extremes():
    assert sigmoid(1000.0) == 1.0 and sigmoid(-1000.0) == 0.0  # no OverflowError from exp
    assert sigmoid(-745.0) > 0.0  # keeps precision where 1 - sigmoid(745) would round to 0
    assert thinking_reward(1, -1e6) == pytest.approx(0.8) and thinking_reward(1, 1e6) == pytest.approx(1.0)


@pytest.mark.parametrize("alpha", [-0.01, 1.01, float("nan")])
def test_alpha_outside_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        thinking_reward(1, 0.0, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        validate_alpha(alpha)


@pytest.mark.parametrize("score", [None, float("nan"), float("inf")])
def test_a_verified_answer_without_a_usable_score_raises(score):
    with pytest.raises(ValueError):
        thinking_reward(1, score)


def test_verified_must_be_in_unit_interval():
    with pytest.raises(ValueError, match="verified"):
        thinking_reward(2, 0.0)


@given(
    t=st.floats(-1e4, 1e4, allow_nan=False),
    dt=st.floats(0, 1e3, allow_nan=False),
    alpha=st.floats(0, 1, allow_nan=False),
)
def test_bounds_and_monotonicity(t, dt, alpha):
    low, high = thinking_reward(1, t, alpha), thinking_reward(1, t + dt, alpha)
    assert 1 - alpha - 1e-12 <= low <= high <= 1 + 1e-12
    assert sigmoid(t) + sigmoid(-t) == pytest.approx(1.0)


def test_reward_result_columns_encode_the_verdict_once_and_mark_a_missing_trm_score():
    right = RewardResult.blend(Verdict(True, "exact_match", "6"), 2.0, alpha=0.2)
    assert right.score == pytest.approx(0.8 + 0.2 * sigmoid(2.0))
    assert right.columns() == {"score": right.score, "verify_score": 1.0, "verify_binary": 1, "acc": 1.0,
                               "rm_score_raw": 2.0, "trm_scored": True, "has_answer": True,
                               "verdict_source": "exact_match", "answer": "6"}
    wrong = RewardResult.blend(Verdict(False, "no_answer"), None, alpha=0.2)  # the TRM was never asked
    columns = wrong.columns()
    assert (wrong.score, wrong.trm_score) == (0.0, None)
    assert math.isnan(columns["rm_score_raw"]) and columns["trm_scored"] is False  # NaN keeps verl's column numeric
    assert (columns["verify_score"], columns["verify_binary"], columns["acc"], columns["has_answer"]) == (0.0, 0, 0.0, False)
    assert wrong.columns(unscored=None)["rm_score_raw"] is None  # for JSON records
    scored_anyway = RewardResult.blend(Verdict(True, "math_verify", "6"), -1.0, alpha=0.0)  # verifier only, score logged
    assert scored_anyway.score == 1.0 and scored_anyway.columns()["rm_score_raw"] == -1.0
    with pytest.raises(ValueError, match="needs a TRM score"):
        RewardResult.blend(Verdict(True, "exact_match", "6"), None, alpha=0.2)
