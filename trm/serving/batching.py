"""Dynamic batching: concurrent requests share forward passes.

Requests submit items; one asyncio task forms batches while the model runs the previous one in a worker thread,
so a busy model naturally collects the next batch. A batch holds items of one group (e.g. equal sampling
settings), of similar length (sorted by cost, grown around the oldest waiting item so nothing starves), and is
bounded by a padded-token budget and a row limit. The model runs off the event loop, so the server keeps
answering health checks and accepting requests during a forward pass.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Sequence

log = logging.getLogger("trm.serving")

# Padded tokens per forward pass when none is configured. A GPU wants big batches; one CPU core scores fastest in
# batches of about a thousand tokens, which fit its caches and waste little on padding (small tiny model, texts of
# 10-130 words, 64 clients: 512 / 1024 / 2048 / 16384 cost 8.2 / 7.4 / 8.1 / 17.4 CPU-s; see bench_serving --only limit).
GPU_BATCH_TOKENS = 16384
CPU_BATCH_TOKENS = 1024


def default_batch_tokens(device: str) -> int:
    """The padded-token budget per forward pass for a model on `device` (cpu, cuda, cuda:N, ...)."""
    return CPU_BATCH_TOKENS if str(device).startswith("cpu") else GPU_BATCH_TOKENS


@dataclass
class BatcherConfig:
    """Limits of one shared forward pass."""

    max_batch_tokens: int | None = field(default=None, metadata={"help": (
        "padded tokens per shared forward pass (rows x longest row); an item longer than this still runs, alone "
        f"(default: by device, {GPU_BATCH_TOKENS} on a GPU; the reward server uses {CPU_BATCH_TOKENS} on a CPU, "
        "whose caches favour small batches)")})
    max_batch_size: int = field(default=64, metadata={"help": "rows per shared forward pass; 1 turns batching off"})
    max_wait_ms: float = field(default=0.0, metadata={
        "help": "wait this long for more requests when a batch is not full (adds latency at low load; 0: never)"})
    gather_yields: int = field(default=3, metadata={
        "help": "event-loop turns given to already-arrived requests before a batch is cut after an idle spell (costs "
                "microseconds); under load, items that queued during the previous forward pass are cut at once"})
    max_queue: int = field(default=8192, metadata={
        "help": "items waiting for a forward pass, over all requests; a request that would overfill the queue gets "
                "429 with Retry-After (QueueFull) instead of growing the backlog without bound"})


class QueueFull(Exception):
    """The batcher's queue cannot take a request's items now (`retry_after_s`), or ever (`never`: too many items)."""

    def __init__(self, items: int, queued: int, max_queue: int, retry_after_s: int):
        self.never = items > max_queue
        if self.never:
            message = f"{items} items in one request, more than the server queues at once ({max_queue}); split it"
        else:
            message = (f"the server is busy: {queued} items are queued and {items} more would exceed its queue of "
                       f"{max_queue}; retry after {retry_after_s} s")
        super().__init__(message)
        self.items, self.queued, self.max_queue, self.retry_after_s = items, queued, max_queue, retry_after_s


class _Answers:
    """One request's results, filled in as its items come out of forward passes, behind one future: a future per
    item (and a gather over them) cost the event loop more than the rest of a 256-text request."""

    __slots__ = ("future", "results", "remaining")

    def __init__(self, future: asyncio.Future, size: int):
        self.future, self.results, self.remaining = future, [None] * size, size

    def deliver(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.results)


@dataclass
class _Pending:
    item: Any
    cost: int
    group: Hashable
    future: asyncio.Future  # the request's (shared by its items): done once answered, failed or abandoned
    order: int
    taken: bool = False  # chosen for a forward pass
    answers: _Answers | None = None
    index: int = 0  # position in the request


@dataclass
class BatchStats:
    """Counters exposed on /health, so tests and operators can see coalescing happen."""

    batches: int = 0
    items: int = 0
    largest_batch: int = 0
    busy_seconds: float = 0.0
    cancelled: int = 0
    """Queued items dropped because their request went away (client disconnected) before a forward pass."""
    refused: int = 0
    """Items refused because the queue was full."""
    cost: int = 0
    """Summed cost (tokens) of the items served."""
    padded_cost: int = 0
    """Summed rows x longest cost of the batches run: padded_cost / cost - 1 is the work spent on padding."""

    def record(self, size: int, seconds: float, cost: int = 0, padded_cost: int = 0) -> None:
        self.batches += 1
        self.items += size
        self.largest_batch = max(self.largest_batch, size)
        self.busy_seconds += seconds
        self.cost += cost
        self.padded_cost += padded_cost

    def as_dict(self) -> dict:
        return {"batches": self.batches, "items": self.items, "largest_batch": self.largest_batch,
                "busy_seconds": round(self.busy_seconds, 3), "cancelled": self.cancelled, "refused": self.refused,
                "tokens": self.cost, "padded_tokens": self.padded_cost}

    def retry_after_s(self, queued: int) -> int:
        """Seconds until `queued` items are likely served, from the time items took so far (1..60)."""
        per_item = self.busy_seconds / self.items if self.items else 0.1
        return max(1, min(60, math.ceil(queued * per_item)))


# Batches are planned from at most this many of the oldest waiting items (times the row limit), so planning costs
# the same with 25,000 items queued as with 500: sorting the whole queue per batch held the event loop for tens of
# milliseconds per forward pass.
PLAN_WINDOW_BATCHES = 8


def plan_batch(pending: Sequence[_Pending], config: BatcherConfig) -> list[_Pending]:
    """Pick the next batch: the oldest item plus the neighbours in length (same group) that add the least padding,
    within limits,
    among the oldest PLAN_WINDOW_BATCHES x max_batch_size items of that group (`pending` is in arrival order)."""
    oldest = min(pending, key=lambda p: p.order)
    window = PLAN_WINDOW_BATCHES * config.max_batch_size
    same = []
    for p in pending:
        if p.group == oldest.group:
            same.append(p)
            if len(same) >= window:
                break
    same.sort(key=lambda p: (p.cost, p.order))
    at = same.index(oldest)
    lo, hi = at, at + 1  # the batch is same[lo:hi], a run of similar lengths
    longest = oldest.cost
    while hi - lo < config.max_batch_size:
        left = same[lo - 1] if lo > 0 else None
        right = same[hi] if hi < len(same) else None
        if left is None and right is None:
            break
        # take the neighbour that adds the least padding: a shorter one pads itself up to the longest row, a longer
        # one pads every row already in the batch up to itself
        take_left = right is None or (left is not None and
                                      longest - left.cost <= (right.cost - longest) * (hi - lo))
        candidate = left if take_left else right
        new_longest = max(longest, candidate.cost)
        if new_longest * (hi - lo + 1) > config.max_batch_tokens:
            break
        longest = new_longest
        if take_left:
            lo -= 1
        else:
            hi += 1
    return same[lo:hi]


class DynamicBatcher:
    """Run `run_batch(items) -> results` over coalesced items from concurrent `submit` calls."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], config: BatcherConfig | None = None,
                 name: str = "model", default_tokens: int = GPU_BATCH_TOKENS):
        self.run_batch = run_batch
        self.config = config or BatcherConfig()
        if self.config.max_batch_tokens is None:  # `default_tokens`: the caller's choice for its device
            self.config = replace(self.config, max_batch_tokens=default_tokens)
        self.stats = BatchStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"trm-{name}")
        self._pending: list[_Pending] = []  # may still hold cancelled items; the loop drops them
        self._waiting = 0  # items in _pending that still wait for a forward pass
        self._order = 0
        self.in_flight = 0  # items submitted and not yet answered (queued or running)
        self.running = 0  # items in the forward pass now (it finishes even if their requests went away)
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return self._waiting

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="trm-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("server is shutting down"))
        self._pending.clear()
        self._waiting = 0
        self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[Any], costs: Sequence[int], groups: Sequence[Hashable] | None = None) -> list[Any]:
        """Queue items (with their padded-token cost and batch group); wait for all their results, in order.

        Raises QueueFull when the queue cannot take them. If the caller is cancelled (its client went away), its
        items still queued leave the queue at once; those already in a forward pass finish."""
        if self._task is None:
            raise RuntimeError("batcher not started")
        if self._waiting + len(items) > self.config.max_queue:
            self.stats.refused += len(items)
            raise QueueFull(len(items), self._waiting, self.config.max_queue,
                            self.stats.retry_after_s(self._waiting + len(items)))
        future = asyncio.get_running_loop().create_future()
        answers = _Answers(future, len(items))
        mine = []
        for index, (item, cost) in enumerate(zip(items, costs)):
            self._order += 1
            group = groups[index] if groups is not None else None
            mine.append(_Pending(item, max(1, int(cost)), group, future, self._order, answers=answers, index=index))
        self._pending.extend(mine)
        self._waiting += len(mine)
        self._wakeup.set()
        self.in_flight += len(mine)
        try:
            return await future
        except BaseException:
            # A failed or cancelled request drops its queued items, in O(its items): the loop skips items whose
            # future is done when it next plans a batch.
            dropped = sum(1 for p in mine if not p.taken)
            future.cancel()
            self.stats.cancelled += dropped
            self._waiting -= dropped
            raise
        finally:
            self.in_flight -= len(mine)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        woke = False  # the queue was empty and got its first item: its siblings may still be in flight
        while True:
            self._pending = [p for p in self._pending if not p.future.done()]
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                woke = True
                continue
            if len(self._pending) < self.config.max_batch_size:
                # After idling, let requests whose bytes already arrived reach the queue before the batch is cut.
                # Items that queued during the previous forward pass go at once: yielding here would first run the
                # previous batch's responses on the event loop while the model sits idle.
                for _ in range(self.config.gather_yields if woke else 0):
                    await asyncio.sleep(0)
                if self.config.max_wait_ms > 0 and len(self._pending) < self.config.max_batch_size:
                    await asyncio.sleep(self.config.max_wait_ms / 1000)
                self._pending = [p for p in self._pending if not p.future.done()]
                if not self._pending:
                    continue
            woke = False
            batch = plan_batch(self._pending, self.config)
            chosen = {id(p) for p in batch}
            self._pending = [p for p in self._pending if id(p) not in chosen]
            for pending in batch:
                pending.taken = True
            self._waiting -= len(batch)
            started = time.perf_counter()
            self.running = len(batch)
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except Exception as exc:  # the whole batch fails; each request reports it, the server goes on
                log.exception("batch of %d failed", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            finally:
                self.running = 0
            self.stats.record(len(batch), time.perf_counter() - started, sum(p.cost for p in batch),
                              len(batch) * max(p.cost for p in batch))
            for pending, result in zip(batch, results):
                if not pending.future.done():
                    pending.answers.deliver(pending.index, result)
