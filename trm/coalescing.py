"""Coalescing: single-item calls made concurrently on one event loop go out together as one list request.

The embeddings API (TRM scores) and the completions API (verifier prompts) take a list of inputs per request. A
reward batch of thousands of responses asks for one score or one verdict per response; sent one by one, the
client's per-request cost (HTTP, JSON, task switches) sets the pace as soon as the servers answer quickly. A
:class:`Coalescer` gathers the items of concurrent :meth:`Coalescer.submit` calls into micro-batches, bounded by
count and by characters, and sends one when it is full or a few milliseconds after its first item. :meth:`put`
returns the item's future at once, so a batch hands over thousands of items without a task each.

A micro-batch is one call of ``send`` (in practice one :class:`trm.client.BackendPool` call: least-loaded backend,
retried whole on another one when it fails). Every item gets its result from the one answer that succeeded, or
the call's error: never a mix of two answers, never a number made up for a failure.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH_CHARS = 1 << 20
"""Characters one micro-batch carries at most (besides its item limit): a few hundred long reasoning traces, a
body servers parse in milliseconds and far below their body limits."""
FLUSH_AFTER_S = 0.002
"""How long an item waits for companions before its micro-batch goes out (short next to any server's latency)."""


class Coalescer(Generic[Item, Result]):
    """``await coalescer.put(item, chars)`` -> the item's result from ``send(list_of_items)``, which must return
    one result per item, in order. Bound to the event loop of its first call (futures and timers are)."""

    def __init__(self, send: Callable[[list[Item]], Awaitable[list[Result]]], max_items: int,
                 max_chars: int = MAX_BATCH_CHARS, flush_after_s: float = FLUSH_AFTER_S):
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.send = send
        self.max_items = max_items
        self.max_chars = max_chars
        self.flush_after_s = flush_after_s
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._chars = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task] = set()

    def put(self, item: Item, chars: int = 0) -> "asyncio.Future[Result]":
        """Queue ``item`` (``chars`` long) for the next micro-batch; its future (call from the loop's thread)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        self._chars += chars
        if len(self._pending) >= self.max_items or self._chars >= self.max_chars:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.flush_after_s, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._chars = self._pending, [], 0
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        try:
            results = await self.send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.send!r} gave {len(results)} results for {len(batch)} items")
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
        except asyncio.CancelledError:  # the owner is closing: the waiting calls are cancelled with it
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # each waiting call raises it; nothing becomes a result
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
