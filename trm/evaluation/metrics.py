"""Accuracy, avg@k and the unbiased pass@k estimator.

All functions are pure and take per-sample correctness flags, so the same arithmetic serves `trm eval accuracy`,
`trm eval bon` (the oracle reference line) and the tests.
"""

from __future__ import annotations

from math import comb
from typing import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Computed as a running product (no huge binomials), exact for the integer ranges seen in practice.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples, got n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=0}^{k-1} (n-c-i) / (n-i)
    fail = 1.0
    for i in range(k):
        fail *= (n - c - i) / (n - i)
    return 1.0 - fail


def pass_at_k_closed_form(n: int, c: int, k: int) -> float:
    """The textbook closed form with exact binomials (reference for tests and small n)."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def avg_at_k(flags: Sequence[bool], k: int | None = None) -> float:
    """Mean correctness of the first k samples of one question (all samples when k is None)."""
    flags = list(flags) if k is None else list(flags)[:k]
    if not flags:
        raise ValueError("avg@k of a question without samples")
    if k is not None and len(flags) < k:
        raise ValueError(f"avg@{k} needs {k} samples, the question has {len(flags)}")
    return sum(bool(f) for f in flags) / len(flags)


def mean(values: Sequence[float]) -> float:
    values = list(values)
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)


def benchmark_metrics(per_question: Sequence[Sequence[bool]], ks: Sequence[int] = (1,)) -> dict[str, float]:
    """Percentages over questions: accuracy (first sample), avg@n (all samples) and pass@k for each k <= n.

    n is the smallest sample count over the questions, so every question contributes the same k values.
    """
    if not per_question:
        raise ValueError("no questions to score")
    n = min(len(flags) for flags in per_question)
    if n == 0:
        raise ValueError("a question has no graded samples")
    out = {
        "questions": float(len(per_question)),
        "samples_per_question": float(n),
        "accuracy": 100.0 * mean([bool(flags[0]) for flags in per_question]),
        f"avg@{n}": 100.0 * mean([avg_at_k(flags, n) for flags in per_question]),
    }
    for k in ks:
        if k <= n:
            out[f"pass@{k}"] = 100.0 * mean([pass_at_k(n, sum(map(bool, flags[:n])), k) for flags in per_question])
    return out


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default); (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
