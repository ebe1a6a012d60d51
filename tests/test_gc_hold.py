"""Automatic garbage collection is held off while a reward batch is in flight (RewardSettings.hold_gc) and resumes
after it, also when the batch fails; concurrent batches count; a process that had turned collection off keeps it
off. The batch's view is taken from a fault server in this process: it records gc.isenabled() as each request
arrives."""

from __future__ import annotations

import gc
import threading

import pytest

from trm.client import BackendsUnavailable
from trm.rewards.compute import RewardRequest, RewardSettings, Rewarder
from trm.rewards.gc_hold import gc_held_off
from trm.rewards.verdict import Verdict
from trm_testing.fault_server import FaultServer


@pytest.fixture(autouse=True)
def collection_on():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


def test_held_off_inside_resumed_after_and_counted_across_threads():
    with gc_held_off():
        assert not gc.isenabled()
        inner_done, outer_may_leave = threading.Event(), threading.Event()

        def other_batch():
            with gc_held_off():
                inner_done.set()
                outer_may_leave.wait(5)  # leaves after the first batch: collection resumes only then

        thread = threading.Thread(target=other_batch)
        thread.start()
        assert inner_done.wait(5)
    assert not gc.isenabled()  # the other batch is still in flight
    outer_may_leave.set()
    thread.join(5)
    assert gc.isenabled()
    with gc_held_off(False):
        assert gc.isenabled()


def test_a_process_that_turned_collection_off_keeps_it_off():
    gc.disable()
    with gc_held_off():
        assert not gc.isenabled()
    assert not gc.isenabled()


def scored_batch(n: int = 6) -> tuple[list[RewardRequest], list[Verdict]]:
    requests = [RewardRequest(f"<think>{i}</think> \\boxed{{{i}}}", str(i), "openai/gsm8k", f"q{i}", f"q{i}")
                for i in range(n)]
    return requests, [Verdict(True, "exact_match", str(i), "given") for i in range(n)]


def embeddings(seen: list[bool]):
    def answer(index, request):
        seen.append(gc.isenabled())
        texts = request.json()["input"]
        return ("status", 200, {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [0.5]}
                                                           for i in range(len(texts))]})
    return answer


@pytest.mark.parametrize("hold", [True, False])
def test_a_reward_batch_holds_collection_off_while_in_flight(hold):
    seen: list[bool] = []
    requests, verdicts = scored_batch()
    with FaultServer(embeddings(seen)) as trm:
        rewarder = Rewarder(RewardSettings(rm_backends=trm.url, rm_batch_size=2, hold_gc=hold))
        try:
            results = rewarder.reward(requests, rule_verdicts=verdicts)
        finally:
            rewarder.close()
    assert [result.trm_score for result in results] == [0.5] * 6
    assert len(seen) == 3 and seen == [not hold] * 3
    assert gc.isenabled()


def test_a_failing_batch_resumes_collection():
    requests, verdicts = scored_batch(2)
    with FaultServer(lambda i, request: ("drop",)) as dead:
        rewarder = Rewarder(RewardSettings(rm_backends=dead.url, deadline_s=1.0))
        try:
            with pytest.raises(BackendsUnavailable):
                rewarder.reward(requests, rule_verdicts=verdicts)
        finally:
            rewarder.close()
    assert gc.isenabled()
