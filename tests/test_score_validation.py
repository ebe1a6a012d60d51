"""Issue 11.9: a TRM backend whose embeddings answer is malformed never yields a score. The answer is checked
strictly (a float, finite and plausible, exactly one per input, indices a permutation); a violation is that
backend's fault, so the pool retries elsewhere (the real reward server answers) or raises at its deadline."""

from __future__ import annotations

import asyncio

import pytest
from trm_testing.fault_server import FaultServer

from trm.client import BackendPool, BackendsUnavailable
from trm.rewards.thinking import score_reasoning

TEXTS = ["Question: 1 + 1?\nOne plus one is two.", "Question: 2 + 2?\nTwo plus two is four."]


def item(index, embedding):
    return {"object": "embedding", "index": index, "embedding": embedding}


def answer(*items):
    return {"object": "list", "data": list(items), "model": "RewardModel", "usage": {"prompt_tokens": 1, "total_tokens": 1}}


GOOD = [item(0, [0.25]), item(1, [-0.5])]
MALFORMED = {  # name: (answer for the two texts, part of the reason the pool reports)
    "string score": (answer(item(0, ["0.5"]), GOOD[1]), "is str"),
    "boolean score": (answer(item(0, [True]), GOOD[1]), "is bool"),
    "huge score": (answer(item(0, [1e308]), GOOD[1]), "not a finite number"),
    "infinite score": (answer(item(0, [float("inf")]), GOOD[1]), "not a finite number"),
    "NaN score": (answer(item(0, [float("nan")]), GOOD[1]), "not a finite number"),
    "two values": (answer(item(0, [0.1, 0.2]), GOOD[1]), "expected [score]"),
    "empty embedding": (answer(item(0, []), GOOD[1]), "without a score"),
    "duplicate index": (answer(item(0, [0.1]), item(0, [0.2])), "appears twice"),
    "index out of range": (answer(item(0, [0.1]), item(2, [0.2])), "not an integer in [0, 2)"),
    "boolean index": (answer(item(0, [0.1]), item(True, [0.2])), "not an integer"),
    "missing index": (answer(item(0, [0.1]), {"embedding": [0.2]}), "not an integer"),
    "missing item": (answer(GOOD[0]), "1 items for 2 inputs"),
    "extra item": (answer(*GOOD, item(2, [0.3])), "3 items for 2 inputs"),
    "no data": ({"object": "list"}, "no items for 2 inputs"),
}


async def scores(pool, texts):
    try:
        return await score_reasoning(pool, texts)
    finally:
        await pool.aclose()


def test_a_well_formed_answer_in_any_order_is_read_by_index():
    with FaultServer(lambda i, req: ("status", 200, answer(GOOD[1], GOOD[0]))) as server:
        assert asyncio.run(scores(BackendPool([server.url]), TEXTS)) == [0.25, -0.5]


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_answer_raises_naming_the_fault_and_never_becomes_a_score(name):
    bad, reason = MALFORMED[name]
    with FaultServer(lambda i, req: ("status", 200, bad)) as server:
        with pytest.raises(BackendsUnavailable, match="malformed answer") as error:
            asyncio.run(scores(BackendPool([server.url], deadline=0.5), TEXTS))
    assert reason in str(error.value)
    assert len(server.requests) >= 1


@pytest.mark.parametrize("name", ["string score", "duplicate index", "missing item", "huge score"])
def test_a_malformed_backend_is_benched_and_the_real_server_answers(name, reward_server, tiny_models):
    from trm.serving.scorer import RewardScorer

    bad, _ = MALFORMED[name]
    expected = RewardScorer(tiny_models["reward"], device="cpu").score(TEXTS)
    with FaultServer(lambda i, req: ("status", 200, bad)) as server:
        pool = BackendPool([server.url, reward_server], unhealthy_cooldown=60)

        async def many():
            try:
                return await asyncio.gather(*(score_reasoning(pool, TEXTS) for _ in range(6)))
            finally:
                await pool.aclose()

        results = asyncio.run(many())
    for got in results:
        assert got == pytest.approx(expected, abs=1e-4)
    assert pool.stats()[server.url]["failures"] >= 1 and "malformed answer" in pool.stats()[server.url]["last_error"]
