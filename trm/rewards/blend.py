"""The thinking reward: a verified answer earns 1 - alpha, plus up to alpha for the quality of its reasoning.

``r = v * (1 - alpha + alpha * sigmoid(t))``: a wrong answer (v = 0) earns nothing whatever the TRM says, a
right one earns between 1 - alpha and 1. Pure functions; no I/O.
"""

from __future__ import annotations

import math

DEFAULT_ALPHA = 0.2


def sigmoid(x: float) -> float:
    """Logistic function that neither overflows nor loses precision for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def validate_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha


def thinking_reward(verified: float, trm_score: float | None, alpha: float = DEFAULT_ALPHA) -> float:
    """``verified * (1 - alpha + alpha * sigmoid(trm_score))``.

    ``verified`` is the verifier's 0/1 (a float in [0, 1] is accepted), ``trm_score`` the raw TRM score.
    When ``verified`` is 0 the TRM score is not needed and may be None (it was never requested); when it is
    needed it must be a finite number: a missing or broken score raises instead of becoming a reward.
    """
    alpha = validate_alpha(alpha)
    verified = float(verified)
    if not 0.0 <= verified <= 1.0:
        raise ValueError(f"verified must be in [0, 1], got {verified}")
    if verified == 0.0:
        return 0.0
    if trm_score is None:
        raise ValueError("a verified answer needs a TRM score, got None")
    trm_score = float(trm_score)
    if not math.isfinite(trm_score):
        raise ValueError(f"TRM score must be finite, got {trm_score}")
    return verified * (1.0 - alpha + alpha * sigmoid(trm_score))
