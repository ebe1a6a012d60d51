"""The TRM texts of concurrent responses go out coalesced (``rm_batch_size`` per embeddings request). A backend that
dies inside a coalesced request costs no reward: the whole micro-batch is retried on another backend, every text
is scored exactly once from one real answer, and when no backend answers the batch raises instead of scoring 0."""

from __future__ import annotations

import pytest

from trm.client import BackendsUnavailable
from trm.rewards.compute import RewardRequest, RewardSettings, Rewarder
from trm.rewards.verdict import Verdict
from trm.traces import trm_input
from trm_testing.fault_server import FaultServer

N = 12


@pytest.fixture(scope="module")
def scorer(tiny_models):
    from trm.serving.scorer import RewardScorer

    return RewardScorer(tiny_models["reward"])


def verified_batch(n: int = N) -> tuple[list[RewardRequest], list[Verdict]]:
    requests = [RewardRequest(f"<think>step {i}: {i} + {i} = {2 * i}</think> \\boxed{{{2 * i}}}", str(2 * i),
                              "openai/gsm8k", f"What is {i} + {i}?", f"What is {i} + {i}?") for i in range(n)]
    return requests, [Verdict(True, "exact_match", str(2 * i), "given") for i in range(n)]


def reward(settings: RewardSettings, requests, verdicts):
    rewarder = Rewarder(settings)
    try:
        return rewarder.reward(requests, rule_verdicts=verdicts)
    finally:
        rewarder.close()


def test_a_backend_dying_inside_a_coalesced_request_is_retried_elsewhere_whole(reward_server, scorer):
    requests, verdicts = verified_batch()
    texts = [trm_input(r.user_prompt, r.response) for r in requests]
    with FaultServer(lambda i, request: ("delay", 0.05, ("drop",))) as dying, \
            FaultServer(lambda i, request: ("forward",), target=reward_server) as live:
        settings = RewardSettings(rm_backends=f"{dying.url},{live.url}", rm_batch_size=4, deadline_s=60.0)
        results = reward(settings, requests, verdicts)
    # the dying backend took at least one coalesced request (least-loaded spreads the first two) and answered none
    assert dying.requests and all(len(request.json()["input"]) > 1 for request in dying.requests)
    # the live server saw every text exactly once, in micro-batches of at most rm_batch_size
    sent = [request.json()["input"] for request in live.requests]
    assert all(1 <= len(batch) <= 4 for batch in sent)
    assert sorted(text for batch in sent for text in batch) == sorted(texts)
    # each response got its own text's score from the real server, none a zero
    assert [result.trm_score for result in results] == pytest.approx(list(scorer.score(texts)), abs=1e-4)
    assert all(result.score > 0.5 for result in results)


def test_coalesced_requests_with_every_backend_dying_raise_instead_of_rewarding():
    requests, verdicts = verified_batch(6)
    with FaultServer(lambda i, request: ("drop",)) as first, FaultServer(lambda i, request: ("drop",)) as second:
        settings = RewardSettings(rm_backends=f"{first.url},{second.url}", rm_batch_size=3, deadline_s=2.0)
        with pytest.raises(BackendsUnavailable, match="no backend answered POST /v1/embeddings"):
            reward(settings, requests, verdicts)
        assert any(len(request.json()["input"]) == 3 for request in first.requests + second.requests)


def test_rm_batch_size_is_validated():
    with pytest.raises(ValueError, match="rm_batch_size must be >= 1"):
        RewardSettings(rm_batch_size=0)
