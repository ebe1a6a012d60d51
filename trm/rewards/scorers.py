"""Reasoning scorers behind the reward formula ``r = v * (1 - alpha + alpha * sigmoid(t))``, chosen by name.

``RewardSettings.reward_scorer`` names one of :data:`SCORERS` (the same register-by-name pattern as verl's reward
managers): ``trm`` (the paper's Thinking Reward Model, default) or ``reasonflux`` (the ReasonFlux-PRM baseline of
Table 2). A scorer turns one response into the raw score ``t``; the blend and everything around it is shared, so
the baselines differ only in ``t``. Both talk to the servers named by ``rm_backends`` through one
:class:`trm.client.BackendPool`, which retries failures and malformed answers elsewhere.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from trm.rewards.compute import RewardRequest, RewardSettings

SCORERS: dict[str, type] = {}


def register_scorer(name: str) -> Callable[[type], type]:
    """Class decorator: make a scorer selectable as ``reward_scorer=<name>``."""

    def add(cls: type) -> type:
        if SCORERS.get(name, cls) is not cls:
            raise ValueError(f"reward scorer {name!r} is already registered to {SCORERS[name].__name__}")
        SCORERS[name] = cls
        return cls

    return add


def scorer_class(name: str) -> type:
    if name not in SCORERS:
        raise ValueError(f"unknown reward_scorer {name!r}; registered: {', '.join(sorted(SCORERS))}")
    return SCORERS[name]


class PoolScorer:
    """Common part: one backend pool from the settings (rm_backends, rm_api_key, timeouts), kept and closed by the
    :class:`trm.rewards.compute.Rewarder` that owns the scorer.

    A scorer whose wire takes a list implements :meth:`score_batch`; :meth:`score` then coalesces the texts of
    concurrent calls (on the rewarder's loop) into micro-batches of ``rm_batch_size`` texts
    (:class:`trm.coalescing.Coalescer`): one pool call each, retried whole on another backend when it fails, and
    every text gets its score from the one answer that succeeded (never a mix, never twice) or the call's error."""

    def __init__(self, settings: "RewardSettings"):
        from trm.coalescing import Coalescer
        from trm.rewards.compute import backend_pool

        self.settings = settings
        self.pool = backend_pool(settings.rm_backends, settings.rm_api_key, "reward", settings)
        self._coalescer = Coalescer(self.score_batch, settings.rm_batch_size)

    def submit(self, request: "RewardRequest") -> "asyncio.Future[float]":
        """The raw score of ``request``, as a future (on the rewarder's loop): the rewarder hands over a whole batch."""
        return self._coalescer.put(request, len(request.response) + len(request.user_prompt))

    async def score(self, request: "RewardRequest") -> float:
        return await self.submit(request)

    async def score_batch(self, requests: list["RewardRequest"]) -> list[float]:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.pool.aclose()


@register_scorer("trm")
class TrmScorer(PoolScorer):
    """The TRM's raw scores of ``trm_input(user_prompt, response)`` from an embeddings server, a list per request."""

    async def score_batch(self, requests: list["RewardRequest"]) -> list[float]:
        from trm.rewards.thinking import score_reasoning
        from trm.traces import trm_input

        texts = [trm_input(request.user_prompt, request.response) for request in requests]
        return await score_reasoning(self.pool, texts, model=self.settings.rm_model, chunk_size=len(texts))


from trm.rewards import reasonflux  # noqa: E402,F401  (registers "reasonflux")
