"""The thinking reward: a verified answer earns 1 - alpha, plus up to alpha for the quality of its reasoning.

``r = v * (1 - alpha + alpha * sigmoid(t))``: a wrong answer (v = 0) earns nothing whatever the TRM says, a
right one earns between 1 - alpha and 1. Pure functions and values; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trm.rewards.verdict import Verdict

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


@dataclass(frozen=True, slots=True)
class RewardResult:
    """One response's reward and what it is made of: the verdict (v) and the raw reasoning score (t; None where the
    scorer was not asked)."""

    score: float
    verdict: Verdict
    trm_score: float | None = None

    @classmethod
    def blend(cls, verdict: Verdict, trm_score: float | None, alpha: float) -> "RewardResult":
        """``r = v`` with alpha 0 (verifier only: no reasoning score needed), else :func:`thinking_reward`."""
        verified = 1.0 if verdict.correct else 0.0
        score = verified if float(alpha) == 0.0 else thinking_reward(verified, trm_score, alpha)
        return cls(float(score), verdict, None if trm_score is None else float(trm_score))

    def columns(self, unscored: float | None = math.nan) -> dict:
        """The per-response columns of verl's ``reward_extra_info`` and of ``compute_score``'s dict: the verdict in the
        forms verl's tools read (``verify_score``, ``verify_binary``, ``acc``: the validation's core metric), the raw
        score as ``rm_score_raw``, ``unscored`` where there is none (NaN keeps verl's column numeric; JSON wants None)."""
        v, t = self.verdict, self.trm_score
        return {"score": self.score, "verify_score": float(v.correct), "verify_binary": int(v.correct),
                "acc": float(v.correct), "rm_score_raw": unscored if t is None else t, "trm_scored": t is not None,
                "has_answer": v.source != "no_answer", "verdict_source": v.source, "answer": v.answer}
