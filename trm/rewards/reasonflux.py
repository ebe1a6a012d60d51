"""ReasonFlux-PRM-7B as the reasoning scorer (``reward_scorer=reasonflux``): the Table 2 baseline.

Wire format: vLLM's pooling API (``POST /pooling``, vLLM 0.11 ``vllm serve Gen-Verse/ReasonFlux-PRM-7B
--runner pooling``) in its chat form, ``{"model", "messages"}``: the server renders the model's own chat template,
so no template is retyped here. The user turn is the TRM's prompt half (``extra_info.user_prompt``), the assistant
turn the reasoning (the same text the TRM scores, :func:`trm.traces.reasoning`) split into steps at blank lines,
each step followed by :data:`trm.protocol.REASONFLUX_STEP_TAG` (the model card's format). The step pooler answers
``{"data": [{"index": 0, "data": [[p_bad, p_good], ...]}]}``, one pair per tag (a flat ``[p_good, ...]`` list is
accepted too).

One number per trajectory: the mean of the steps' ``p_good`` (the model card gives step rewards only; the mean
weighs every step alike and does not let one early step decide the score, unlike min or last). It enters the shared
formula as its logit, ``t = log(p / (1 - p))``, so ``sigmoid(t) = p`` and a verified answer earns
``1 - alpha + alpha * p``: the same role the TRM's sigmoid plays. ``p`` is clipped to ``[1e-6, 1 - 1e-6]`` to keep
``t`` finite. Every probability must be a finite number in [0, 1] with at least one step, else the answer is
malformed and the pool retries elsewhere.
"""

from __future__ import annotations

import asyncio
import math
import re

from trm.protocol import REASONFLUX_STEP_TAG
from trm.rewards.scorers import PoolScorer, register_scorer
from trm.rewards.thinking import finite_score, pooled_items
from trm.traces import reasoning

POOLING_PATH = "/pooling"
P_CLIP = 1e-6


def reasoning_steps(response: str) -> list[str]:
    """The reasoning of ``response`` split at blank lines (the model card's step split); one step if none."""
    trace = reasoning(response)
    steps = [step.strip() for step in re.split(r"\n\s*\n", trace) if step.strip()]
    return steps or [trace.strip()]


def prm_messages(user_prompt: str, response: str) -> list[dict]:
    steps = reasoning_steps(response)
    return [
        {"role": "user", "content": user_prompt},
        {"role": "assistant", "content": "".join(step + REASONFLUX_STEP_TAG for step in steps)},
    ]


def step_probabilities(pooled) -> list[float]:
    """``p_good`` per step from one pooling item's ``data``; ValueError when it is not what a step pooler returns."""
    if not isinstance(pooled, list) or not pooled:
        raise ValueError(f"pooling data {str(pooled)[:200]} has no step scores")
    probs = []
    for k, step in enumerate(pooled):
        if isinstance(step, list):
            if len(step) != 2:
                raise ValueError(f"step {k} has {len(step)} values, expected [p_bad, p_good]")
            step = step[1]
        p = finite_score(step, f"step {k} probability")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"step {k} probability {p} is outside [0, 1]")
        probs.append(p)
    return probs


def trajectory_score(probs: list[float]) -> float:
    """The logit of the mean step probability (see the module docstring)."""
    p = min(max(sum(probs) / len(probs), P_CLIP), 1.0 - P_CLIP)
    return math.log(p / (1.0 - p))


def _parse(answer) -> float:
    (pooled,) = pooled_items(answer, 1, "data")
    return trajectory_score(step_probabilities(pooled))


@register_scorer("reasonflux")
class ReasonFluxScorer(PoolScorer):
    """ReasonFlux-PRM through a vLLM pooling server at ``rm_backends`` (served name ``rm_model``)."""

    def submit(self, request) -> "asyncio.Future[float]":  # one pooling request per response (no list input)
        return asyncio.ensure_future(self._score(request))

    async def _score(self, request) -> float:
        payload = {"model": self.settings.rm_model, "messages": prm_messages(request.user_prompt, request.response)}
        return await self.pool.post_json(POOLING_PATH, payload, parse=_parse)
