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


def test_a_batch_in_many_rule_check_rounds_gets_the_same_rewards_as_in_one(reward_server, scorer):
    """Rounds change when responses go out, never which reward lands where: right answers (even i) and wrong plain
    integers (odd i) through the real rule check, in 5 rounds of 8 and in 1."""
    requests = [RewardRequest(f"<think>{i} + {i}</think> \\boxed{{{2 * i + i % 2}}}", str(2 * i), "openai/gsm8k",
                              f"What is {i} + {i}?", f"What is {i} + {i}?") for i in range(40)]
    runs = {}
    for chunk in (8, 1024):
        rewarder = Rewarder(RewardSettings(rm_backends=reward_server, rm_batch_size=4, rule_chunk=chunk))
        try:
            runs[chunk] = rewarder.reward(requests)
        finally:
            rewarder.close()
    assert [result.verdict for result in runs[8]] == [result.verdict for result in runs[1024]]
    assert [result.score for result in runs[8]] == pytest.approx([result.score for result in runs[1024]], abs=1e-5)
    assert [result.verdict.correct for result in runs[8]] == [i % 2 == 0 for i in range(40)]
    right = [trm_input(r.user_prompt, r.response) for r in requests[::2]]
    assert [result.trm_score for result in runs[8][::2]] == pytest.approx(list(scorer.score(right)), abs=1e-4)


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


def wrong_webinstruct_batch(n: int) -> tuple[list[RewardRequest], list[Verdict]]:
    requests = [RewardRequest(f"so \\boxed{{{k + 100}}}", str(k), "TIGER-Lab/WebInstruct-verified", f"prompt {k}",
                              f"question Q{k}?") for k in range(n)]
    return requests, [Verdict(False, "math_verify", str(k + 100), "given") for k in range(n)]


def test_verifier_prompts_go_coalesced_and_a_dying_backend_retries_them_whole():
    from trm.protocol import general_verifier_input
    from trm_testing.fault_server import verifier_prompts, verifier_reply

    requests, verdicts = wrong_webinstruct_batch(N)
    decide = lambda prompt: "Final Decision: Yes" if any(f"Q{k}?" in prompt for k in range(0, N, 2)) else "No."  # noqa: E731
    with FaultServer(lambda i, request: ("delay", 0.05, ("drop",))) as dying, \
            FaultServer(lambda i, request: verifier_reply(request, decide)) as live:
        settings = RewardSettings.resolve(verifier_backends=f"{dying.url},{live.url}", verifier_batch_size=4, alpha=0.0,
                                          deadline_s=60.0)
        results = reward(settings, requests, verdicts)
    assert dying.requests and all(len(verifier_prompts(request)) > 1 for request in dying.requests)
    sent = [verifier_prompts(request) for request in live.requests]
    assert all(request.path == "/v1/completions" for request in live.requests)
    assert all(1 <= len(batch) <= 4 for batch in sent)  # coalesced, at most verifier_batch_size per request
    expected = [general_verifier_input(r.question, r.ground_truth, str(int(r.ground_truth) + 100)) for r in requests]
    assert sorted(prompt for batch in sent for prompt in batch) == sorted(expected)  # each asked exactly once
    assert [result.verdict.correct for result in results] == [k % 2 == 0 for k in range(N)]  # each its own reply
    assert {result.verdict.source for result in results} == {"llm_verifier"}


def test_backends_are_balanced_by_items_in_flight_not_requests():
    import asyncio

    from trm.client import BackendPool

    with FaultServer(lambda i, request: ("delay", 0.3, ("status", 200, {}))) as first, \
            FaultServer(lambda i, request: ("delay", 0.3, ("status", 200, {}))) as second:
        async def go():
            pool = BackendPool([first.url, second.url], deadline=10)
            try:
                big = asyncio.ensure_future(pool.post_json("/big", {}, weight=10))
                await asyncio.sleep(0.05)  # the 10-item request is in flight on one backend
                await asyncio.gather(big, *(pool.post_json("/small", {}) for _ in range(3)))
            finally:
                await pool.aclose()

        asyncio.run(go())
        paths = {server.url: [request.path for request in server.requests] for server in (first, second)}
    # the three one-item requests all go to the backend without the big one (by request count, one would join it)
    assert sorted(paths.values()) == [["/big"], ["/small"] * 3]
