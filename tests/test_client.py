"""Backend pool and TRM scoring client against real reward servers, with faults injected on loopback ports."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from trm_testing.fault_server import FaultServer, dead_backend
from trm_testing.serving import spawn, stop
from trm_testing.serving import free_port
from trm_testing.slow_model import slow_reward_command

from trm.client import BackendPool, BackendRequestError, BackendsUnavailable, parse_backends
from trm.rewards.thinking import score_reasoning, score_responses
from trm.traces import trm_input

TEXTS = [f"Question {i}: what is {i} + {i}?\nFirst add {i} and {i}, which gives {2 * i}." for i in range(24)]


@pytest.fixture(scope="module")
def reference_scores(tiny_models):
    """The same texts scored in-process by the code path the server uses."""
    from trm.serving.scorer import RewardScorer

    return RewardScorer(tiny_models["reward"], device="cpu").score(TEXTS)


def run(coro):
    return asyncio.run(coro)


async def score_and_close(pool, texts, **kwargs):
    try:
        return await score_reasoning(pool, texts, **kwargs)
    finally:
        await pool.aclose()


def test_parse_backends_accepts_host_port_lists_and_urls():
    assert parse_backends("127.0.0.1:39999, localhost:40000") == ["http://127.0.0.1:39999", "http://localhost:40000"]
    assert parse_backends(["http://a:1/", "https://b:2", "a:1"]) == ["http://a:1", "https://b:2"]
    with pytest.raises(ValueError, match="no backends"):
        parse_backends(" , ")
    with pytest.raises(ValueError, match="not host:port"):
        parse_backends("ftp://a:1")


def test_pool_validates_its_settings():
    with pytest.raises(ValueError, match="deadline"):
        BackendPool("a:1", deadline=0)
    with pytest.raises(ValueError, match="max_concurrency_per_backend"):
        BackendPool("a:1", max_concurrency_per_backend=0)


def test_scores_match_in_process_scores_in_order(reward_server, reference_scores):
    pool = BackendPool(reward_server)
    scores = run(score_and_close(pool, TEXTS, chunk_size=5))  # 5 chunks, the last one short
    assert scores == pytest.approx(reference_scores, abs=1e-4)
    assert run(score_and_close(BackendPool(reward_server), [])) == []


def test_score_responses_builds_the_trm_input(reward_server, tiny_models):
    from trm.serving.scorer import RewardScorer

    prompts = ["Add 2 and 3.", "Name a prime."]
    responses = ["<think>2 plus 3 is 5.</think> The answer is \\boxed{5}", "Seven is prime, so 7."]
    expected = RewardScorer(tiny_models["reward"], device="cpu").score([trm_input(p, r) for p, r in zip(prompts, responses)])
    pool = BackendPool(reward_server)

    async def go():
        try:
            return await score_responses(pool, prompts, responses)
        finally:
            await pool.aclose()

    assert run(go()) == pytest.approx(expected, abs=1e-4)


def test_one_dead_backend_of_two_every_text_still_scored(reward_server, reference_scores):
    dead = dead_backend()
    pool = BackendPool([dead, reward_server], unhealthy_cooldown=30)
    scores = run(score_and_close(pool, TEXTS, chunk_size=3))
    assert scores == pytest.approx(reference_scores, abs=1e-4)
    stats = pool.stats()[f"http://{dead}"]
    assert stats["failures"] >= 1 and not stats["healthy"]  # it was tried, failed, and is benched
    assert "ConnectError" in stats["last_error"]


def test_backend_dying_mid_batch_every_text_still_scored(reward_server, reference_scores):
    # The flaky backend relays two requests to the real server, then drops every connection mid-request.
    with FaultServer(lambda i, req: ("forward",) if i < 2 else ("drop",), target=reward_server) as flaky:
        pool = BackendPool([flaky.url, reward_server], unhealthy_cooldown=0.05)
        scores = run(score_and_close(pool, TEXTS, chunk_size=2))
    assert scores == pytest.approx(reference_scores, abs=1e-4)
    assert flaky.actions.count("forward") == 2 and flaky.actions.count("drop") >= 1


def test_real_server_stopped_mid_batch_every_text_still_scored(tiny_models, reward_server, reference_scores, tmp_path):
    # The doomed server is slowed down (fault injection) so the batch is surely still running when it is killed;
    # SIGKILL, not SIGTERM, since a graceful stop would drain its in-flight requests and nothing would fail.
    port = free_port()
    server = spawn(slow_reward_command(0.2, "--model", str(tiny_models["reward"]), "--port", str(port)), port,
                   tmp_path)
    doomed = server.url
    try:
        pool = BackendPool([doomed, reward_server], max_concurrency_per_backend=4, unhealthy_cooldown=30)

        async def go():
            # One request per text; the doomed server dies after it has taken three of them.
            batch = asyncio.create_task(score_reasoning(pool, TEXTS * 2, chunk_size=1))
            give_up = time.monotonic() + 60
            while pool.stats()[doomed]["requests"] < 3 and time.monotonic() < give_up:
                await asyncio.sleep(0.005)  # polling with a deadline
            server.proc.kill()
            try:
                return await batch
            finally:
                await pool.aclose()

        scores = asyncio.run(go())
    finally:
        stop(server.proc)  # no-op when already dead
    assert scores == pytest.approx(reference_scores * 2, abs=1e-4)
    stats = pool.stats()[doomed]
    assert stats["failures"] >= 1 and not stats["healthy"], stats
    # Calls waiting for a slot moved to the live server instead of each failing on the dead one in turn.
    assert stats["failures"] <= 4 + 1, stats


def test_5xx_and_slow_backends_are_retried_elsewhere(reward_server, reference_scores):
    with FaultServer(lambda i, req: ("status", 503, {"error": {"message": "overloaded"}})) as failing, FaultServer(
        lambda i, req: ("delay", 30, ("forward",)), target=reward_server
    ) as slow:
        pool = BackendPool([failing.url, slow.url, reward_server], request_timeout=0.5, deadline=30)
        scores = run(score_and_close(pool, TEXTS, chunk_size=4))
        stats = pool.stats()
    assert scores == pytest.approx(reference_scores, abs=1e-4)
    assert "HTTP 503: overloaded" in stats[failing.url]["last_error"]
    assert "timed out" in stats[slow.url]["last_error"]


def test_all_backends_down_raises_naming_them_within_the_deadline():
    dead = dead_backend()
    with FaultServer(lambda i, req: ("delay", 60, ("status", 200, {}))) as hanging, FaultServer(
        lambda i, req: ("status", 500, {"detail": "boom"})
    ) as broken:
        pool = BackendPool([dead, hanging.url, broken.url], request_timeout=0.4, deadline=2.0)
        started = time.monotonic()
        with pytest.raises(BackendsUnavailable) as info:
            run(score_and_close(pool, ["x"]))
        elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 8.0  # kept retrying until the deadline, then gave up promptly (60 s hang injected)
    message = str(info.value)
    assert f"http://{dead}" in message and hanging.url in message and broken.url in message
    assert "HTTP 500: boom" in message and "timed out" in message


def test_client_errors_are_not_retried_and_carry_the_server_message(reward_server):
    with FaultServer(lambda i, req: ("forward",), target=reward_server) as counting:
        pool = BackendPool([counting.url], deadline=10)
        with pytest.raises(BackendRequestError) as info:
            run(score_and_close(pool, ["x"], model="NoSuchModel"))
    assert info.value.status_code == 404
    assert "NoSuchModel" in info.value.message and "RewardModel" in info.value.message
    assert len(counting.requests) == 1


def test_api_key_is_sent_as_bearer_token(reward_server, reference_scores):
    with FaultServer(lambda i, req: ("forward",), target=reward_server) as recording:
        pool = BackendPool([recording.url], api_key="sekret")
        assert run(score_and_close(pool, TEXTS[:2])) == pytest.approx(reference_scores[:2], abs=1e-4)
    assert recording.requests[0].headers["authorization"] == "Bearer sekret"


def test_proxy_variables_do_not_capture_backend_requests(reward_server, reference_scores, monkeypatch):
    dead_proxy = f"http://{dead_backend()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    pool = BackendPool(reward_server, deadline=5)
    assert run(score_and_close(pool, TEXTS[:2])) == pytest.approx(reference_scores[:2], abs=1e-4)


def test_per_backend_concurrency_limit_and_least_loaded_spread():
    reply = {"data": [{"index": 0, "embedding": [1.5]}]}
    with FaultServer(lambda i, req: ("delay", 0.2, ("status", 200, reply))) as a, FaultServer(
        lambda i, req: ("delay", 0.2, ("status", 200, reply))
    ) as b:
        pool = BackendPool([a.url, b.url], max_concurrency_per_backend=2)

        async def go():
            try:
                return await asyncio.gather(*(score_reasoning(pool, ["x"]) for _ in range(12)))
            finally:
                await pool.aclose()

        assert run(go()) == [[1.5]] * 12
    assert a.max_in_flight <= 2 and b.max_in_flight <= 2
    assert len(a.requests) + len(b.requests) == 12
    assert min(len(a.requests), len(b.requests)) >= 4  # least-loaded picking spreads equal work


def test_requests_spread_over_small_clients_within_the_limits():
    """Each backend's requests go through small clients of connections_per_client connections, made on demand."""
    reply = {"data": [{"index": 0, "embedding": [2.5]}]}
    with FaultServer(lambda i, req: ("delay", 0.2, ("status", 200, reply))) as a, FaultServer(
        lambda i, req: ("delay", 0.2, ("status", 200, reply))
    ) as b:
        pool = BackendPool([a.url, b.url], max_concurrency_per_backend=6, connections_per_client=2)

        async def go():
            try:
                scores = await asyncio.gather(*(score_reasoning(pool, ["x"]) for _ in range(30)))
                lanes = pool._loop_state().lanes
                return scores, {url: len(made) for url, made in lanes.items()}
            finally:
                await pool.aclose()

        scores, lanes = run(go())
    assert scores == [[2.5]] * 30
    assert lanes == {a.url: 3, b.url: 3}  # 6 slots / 2 connections each, no more
    assert a.max_in_flight <= 6 and b.max_in_flight <= 6
    assert max(a.max_in_flight, b.max_in_flight) >= 5  # the small clients together still fill the backend's slots
    with pytest.raises(ValueError, match="connections_per_client"):
        BackendPool("a:1", connections_per_client=0)


def test_one_client_per_event_loop_and_use_from_threads(reward_server, reference_scores):
    pool = BackendPool(reward_server)

    async def client_identity_and_scores():
        first = pool._loop_state()
        scores = await score_reasoning(pool, TEXTS[:3])
        assert pool._loop_state() is first  # clients and slot accounting reused within the loop
        clients = first.clients()
        assert clients and all(not client.is_closed for client in clients)
        await pool.aclose()
        assert all(client.is_closed for client in clients)
        return id(first), scores

    results: list = []
    threads = [threading.Thread(target=lambda: results.append(asyncio.run(client_identity_and_scores()))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 3
    for _, scores in results:
        assert scores == pytest.approx(reference_scores[:3], abs=1e-4)
    # A later loop on the main thread gets a working client of its own.
    assert run(score_and_close(pool, TEXTS[:1])) == pytest.approx(reference_scores[:1], abs=1e-4)


def test_malformed_answers_raise_instead_of_becoming_scores():
    # A malformed answer is that backend's fault: retried until the deadline, then reported with its reason
    # (every shape of it: tests/test_score_validation.py).
    with FaultServer(lambda i, req: ("status", 200, {"data": [{"index": 0, "embedding": []}]})) as bad:
        with pytest.raises(BackendsUnavailable, match="without a score"):
            run(score_and_close(BackendPool([bad.url], deadline=0.5), ["x"]))
    with FaultServer(lambda i, req: ("status", 200, {"data": []})) as short:
        with pytest.raises(BackendsUnavailable, match="0 items for 1 inputs"):
            run(score_and_close(BackendPool([short.url], deadline=0.5), ["x"]))
