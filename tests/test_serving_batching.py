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


def test_plan_adds_the_neighbour_that_adds_the_least_padding():
    # [100, 101] so far: 95 pads itself by 6 tokens; 104 (closer to the oldest's 100) would pad two rows by 3 each
    batch = plan_batch(_pending([100, 101, 95, 104]), BatcherConfig(max_batch_tokens=1000, max_batch_size=3))
    assert sorted(p.cost for p in batch) == [95, 100, 101]


def test_plan_respects_row_limit_groups_and_runs_oversized_items_alone():
    pending = _pending([5] * 10)
    assert len(plan_batch(pending, BatcherConfig(max_batch_tokens=10_000, max_batch_size=4))) == 4
    assert len(plan_batch(pending, BatcherConfig(max_batch_tokens=10_000, max_batch_size=1))) == 1
    grouped = _pending([5, 5, 5, 5], groups=["a", "b", "a", "b"])
    assert [p.item for p in plan_batch(grouped, BatcherConfig(max_batch_tokens=10_000))] == [0, 2]
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


def test_the_batch_budget_defaults_by_device_and_a_cpu_reward_server_keeps_batches_cache_sized(tiny_models):
    """On a CPU the reward server cuts batches at CPU_BATCH_TOKENS padded tokens (one core scores fastest in
    cache-sized batches); /health counts the tokens served and the padded tokens computed."""
    import httpx

    from trm_testing.serving import ReferenceRewardModel, asgi_client
    from trm.serving.batching import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS, default_batch_tokens
    from trm.serving.reward_server import RewardServerConfig, build_app
    from trm.serving.scorer import RewardScorer

    assert default_batch_tokens("cpu") == CPU_BATCH_TOKENS < default_batch_tokens("cuda:0") == GPU_BATCH_TOKENS
    assert DynamicBatcher(len, BatcherConfig(), default_tokens=77).config.max_batch_tokens == 77
    assert DynamicBatcher(len, BatcherConfig(max_batch_tokens=5), default_tokens=77).config.max_batch_tokens == 5

    scorer = RewardScorer(tiny_models["reward"], device="cpu")
    reference = ReferenceRewardModel(tiny_models["reward"])
    texts = [f"text {i}: " + "so the sum is " * (80 + i) for i in range(12)]
    lengths = [len(row) for row in scorer.encode(texts)]
    assert min(lengths) * 4 > CPU_BATCH_TOKENS  # at most 3 of them fit one batch

    async def main():
        async with asgi_client(build_app(scorer, RewardServerConfig())) as client:
            answers = await asyncio.gather(*(client.post("/v1/embeddings", json={"input": t}) for t in texts))
            return [a.json()["data"][0]["embedding"][0] for a in answers], (await client.get("/health")).json()

    scores, health = asyncio.run(main())
    assert scores == pytest.approx([reference.score(t) for t in texts], abs=1e-4)
    assert health["items"] == 12 and health["tokens"] == sum(lengths)
    assert health["largest_batch"] <= 3 and health["batches"] >= 4
    assert sum(lengths) <= health["padded_tokens"] <= health["batches"] * CPU_BATCH_TOKENS
