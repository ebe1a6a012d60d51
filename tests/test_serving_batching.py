"""The dynamic batcher on its own: batch planning limits, ordering, failures stay inside their batch."""

from __future__ import annotations

import asyncio

import pytest

from trm.serving.batching import BatcherConfig, DynamicBatcher, _Pending, plan_batch


def _pending(costs, groups=None):
    loop = asyncio.new_event_loop()
    items = [_Pending(i, cost, (groups or [None] * len(costs))[i], loop.create_future(), order=i)
             for i, cost in enumerate(costs)]
    loop.close()
    return items


def test_plan_starts_at_the_oldest_and_adds_closest_lengths_within_the_token_budget():
    pending = _pending([100, 10, 12, 98, 11, 300, 101])
    batch = plan_batch(pending, BatcherConfig(max_batch_tokens=350, max_batch_size=64))
    assert 0 in [p.item for p in batch]  # the oldest item always goes
    assert sorted(p.item for p in batch) == [0, 3, 6]  # 98, 100, 101: similar lengths; 3 x 101 <= 350
    assert max(p.cost for p in batch) * len(batch) <= 350


def test_plan_respects_row_limit_groups_and_runs_oversized_items_alone():
    pending = _pending([5] * 10)
    assert len(plan_batch(pending, BatcherConfig(max_batch_tokens=10_000, max_batch_size=4))) == 4
    assert len(plan_batch(pending, BatcherConfig(max_batch_tokens=10_000, max_batch_size=1))) == 1
    grouped = _pending([5, 5, 5, 5], groups=["a", "b", "a", "b"])
    assert [p.item for p in plan_batch(grouped, BatcherConfig())] == [0, 2]
    huge = _pending([50_000, 10])
    assert [p.item for p in plan_batch(huge, BatcherConfig(max_batch_tokens=1000))] == [0]


def test_concurrent_submits_share_batches_and_get_their_own_results():
    seen_batches = []

    def run_batch(items):
        seen_batches.append(list(items))
        return [item * 10 for item in items]

    async def main():
        batcher = DynamicBatcher(run_batch, BatcherConfig(max_batch_size=64))
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit([i, i + 100], [3, 3]) for i in range(20)))
        finally:
            await batcher.stop()
        return results

    results = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(20)]
    assert len(seen_batches) < 20 and sum(len(b) for b in seen_batches) == 40


def test_a_failing_batch_fails_its_own_requests_and_the_batcher_goes_on():
    def run_batch(items):
        if "poison" in items:
            raise RuntimeError("model blew up")
        return [len(item) for item in items]

    async def main():
        batcher = DynamicBatcher(run_batch, BatcherConfig(max_batch_size=1))
        batcher.start()
        try:
            bad = await asyncio.gather(batcher.submit(["poison"], [1]), return_exceptions=True)
            good = await batcher.submit(["abc", "de"], [1, 1])
        finally:
            await batcher.stop()
        return bad[0], good, batcher.stats

    error, good, stats = asyncio.run(main())
    assert isinstance(error, RuntimeError) and "model blew up" in str(error)
    assert good == [3, 2]
    assert stats.items == 2  # failed batches are not counted as served


def test_wrong_result_count_is_an_error_not_a_silent_misalignment():
    async def main():
        batcher = DynamicBatcher(lambda items: items[:-1], BatcherConfig())
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="2 items"):
                await batcher.submit(["a", "b"], [1, 1])
        finally:
            await batcher.stop()

    asyncio.run(main())


def test_a_cancelled_request_leaves_the_queue_and_is_never_computed():
    """A request whose client went away drops its queued items; the forward pass already running finishes."""
    import threading

    started, gate, computed = threading.Event(), threading.Event(), []

    def run_batch(items):
        computed.extend(items)
        started.set()
        gate.wait(30)
        return items

    async def main():
        batcher = DynamicBatcher(run_batch, BatcherConfig(max_batch_size=1))
        batcher.start()
        try:
            running = asyncio.create_task(batcher.submit(["running"], [1]))
            assert await asyncio.to_thread(started.wait, 30)
            abandoned = asyncio.create_task(batcher.submit(list("abcde"), [1] * 5))
            while batcher.queued < 5:  # event-loop turns until the submission is queued
                await asyncio.sleep(0)
            abandoned.cancel()
            with pytest.raises(asyncio.CancelledError):
                await abandoned
            queued_after_cancel = batcher.queued
            gate.set()
            assert await running == ["running"]
            assert await batcher.submit(["later"], [1]) == ["later"]
        finally:
            gate.set()
            await batcher.stop()
        return queued_after_cancel, batcher.stats

    queued_after_cancel, stats = asyncio.run(main())
    assert queued_after_cancel == 0 and stats.cancelled == 5
    assert computed == ["running", "later"]  # the abandoned items never reached the model


def test_a_full_queue_refuses_now_and_an_oversized_request_for_good():
    import threading

    from trm.serving.batching import QueueFull

    started, gate = threading.Event(), threading.Event()

    def run_batch(items):
        started.set()
        gate.wait(30)
        return items

    async def main():
        batcher = DynamicBatcher(run_batch, BatcherConfig(max_batch_size=1, max_queue=3))
        batcher.start()
        try:
            running = asyncio.create_task(batcher.submit(["r"], [1]))
            assert await asyncio.to_thread(started.wait, 30)
            waiting = asyncio.create_task(batcher.submit(["a", "b"], [1, 1]))
            while batcher.queued < 2:
                await asyncio.sleep(0)
            with pytest.raises(QueueFull) as busy:
                await batcher.submit(["c", "d"], [1, 1])
            with pytest.raises(QueueFull) as never:
                await batcher.submit(["w", "x", "y", "z"], [1] * 4)
            fits = asyncio.create_task(batcher.submit(["c"], [1]))  # exactly fills the queue
            gate.set()
            return busy.value, never.value, await running, await waiting, await fits
        finally:
            gate.set()
            await batcher.stop()

    busy, never, *answers = asyncio.run(main())
    assert not busy.never and busy.retry_after_s >= 1 and "2 items are queued and 2 more" in str(busy)
    assert never.never and "4 items in one request, more than the server queues at once (3)" in str(never)
    assert answers == [["r"], ["a", "b"], ["c"]]
