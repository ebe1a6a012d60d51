"""Unbiased pass@k, avg@k and per-benchmark metrics."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm.evaluation.metrics import avg_at_k, benchmark_metrics, pass_at_k, pass_at_k_closed_form


def brute_force_pass_at_k(flags: list[bool], k: int) -> float:
    subsets = list(combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in s) for s in subsets) / len(subsets)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_closed_form_and_enumeration(nck):
    n, c, k = nck
    flags = [True] * c + [False] * (n - c)
    value = pass_at_k(n, c, k)
    assert value == pytest.approx(pass_at_k_closed_form(n, c, k), abs=1e-12)
    assert value == pytest.approx(brute_force_pass_at_k(flags, k), abs=1e-12)


def test_pass_at_k_edges_and_errors():
    assert pass_at_k(16, 0, 4) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(64, 1, 64) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)


def test_avg_at_k_and_benchmark_metrics():
    per_question = [[True, False, True, False], [False, False, False, False], [True, True, True, True]]
    assert avg_at_k(per_question[0]) == 0.5
    assert avg_at_k(per_question[0], 2) == 0.5
    with pytest.raises(ValueError):
        avg_at_k([True], 2)
    metrics = benchmark_metrics(per_question, ks=(1, 2, 4, 8))
    assert metrics["accuracy"] == pytest.approx(100 * 2 / 3)
    assert metrics["avg@4"] == pytest.approx(100 * (0.5 + 0 + 1) / 3)
    assert metrics["pass@1"] == pytest.approx(metrics["avg@4"])
    assert metrics["pass@4"] == pytest.approx(100 * 2 / 3)
    assert metrics["pass@2"] == pytest.approx(100 * (pass_at_k(4, 2, 2) + 0 + 1) / 3)
    assert "pass@8" not in metrics  # more than the samples available
