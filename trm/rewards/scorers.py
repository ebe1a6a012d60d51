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


MAX_BATCH_CHARS = 1 << 20
"""Characters of response text one coalesced request carries at most (with ``rm_batch_size`` texts at most): a few
hundred long traces, a body the servers parse in milliseconds."""
FLUSH_AFTER_S = 0.002
"""How long a text waits for companions before its micro-batch goes out (short next to any server's latency)."""


class PoolScorer:
    """Common part: one backend pool from the settings (rm_backends, rm_api_key, timeouts), kept and closed by the
    :class:`trm.rewards.compute.Rewarder` that owns the scorer.

    A scorer whose wire takes a list implements :meth:`score_batch`; :meth:`score` then coalesces the texts of
    concurrent calls (on the rewarder's loop) into micro-batches of ``rm_batch_size`` texts or
    :data:`MAX_BATCH_CHARS`, sent when full or :data:`FLUSH_AFTER_S` after their first text. A micro-batch is one
    pool call: it goes to the least-loaded backend and, when that fails, to another one whole, and every text gets
    its score from the one answer that succeeded (never a mix, never twice) or the call's error."""

    def __init__(self, settings: "RewardSettings"):
        from trm.rewards.compute import backend_pool

        self.settings = settings
        self.pool = backend_pool(settings.rm_backends, settings.rm_api_key, "reward", settings)
        self._pending: list[tuple["RewardRequest", asyncio.Future]] = []
        self._chars = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task] = set()

    async def score(self, request: "RewardRequest") -> float:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((request, future))
        self._chars += len(request.response) + len(request.user_prompt)
        if len(self._pending) >= self.settings.rm_batch_size or self._chars >= MAX_BATCH_CHARS:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(FLUSH_AFTER_S, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._chars = self._pending, [], 0
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple["RewardRequest", asyncio.Future]]) -> None:
        try:
            scores = await self.score_batch([request for request, _ in batch])
            if len(scores) != len(batch):
                raise RuntimeError(f"{type(self).__name__} gave {len(scores)} scores for {len(batch)} texts")
            for (_, future), score in zip(batch, scores):
                if not future.done():
                    future.set_result(score)
        except asyncio.CancelledError:  # the rewarder is closing: the waiting responses are cancelled with it
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # each waiting response raises it; nothing becomes a score
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)

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
