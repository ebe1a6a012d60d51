"""Faults against the embedded servers (issue 11 items 3, 4, 5, 11): huge texts, abandoned and excess work, idle
and malformed connections, hostile JSON. Each test reproduces the fault and asserts order or counters, not time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading

import httpx
import pytest

from trm_testing.serving import ReferenceRewardModel, asgi_client, spawn, stop, trm_command
from trm_testing.serving import free_port
from trm_testing.slow_model import slow_reward_command


@pytest.fixture(scope="module")
def reference(tiny_models):
    return ReferenceRewardModel(tiny_models["reward"])


@pytest.fixture(scope="module")
def scorer(tiny_models):
    from trm.serving.scorer import RewardScorer

    return RewardScorer(tiny_models["reward"])


def reward_app(scorer, **config):
    from trm.serving.reward_server import RewardServerConfig, build_app

    return build_app(scorer, RewardServerConfig(**config))


class GatedBackend:
    """The scorer's Rust tokenizer, except that a call with a text over `over` characters holds (as a 10 MB text
    does) until `gate` opens; records the characters of every call."""

    def __init__(self, real, over: int):
        self.real, self.over = real, over
        self.entered, self.gate = threading.Event(), threading.Event()
        self.calls: list[int] = []
        self.gate_timed_out = False

    def encode_batch(self, texts, **kwargs):
        self.calls.append(sum(len(t) for t in texts))
        if any(len(t) > self.over for t in texts):
            self.entered.set()
            self.gate_timed_out = not self.gate.wait(30)  # safety valve if the event loop is (wrongly) blocked
        return self.real.encode_batch(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


# --- 11.3: huge texts ----------------------------------------------------------------------------------------
def test_character_bound_is_safe_for_the_densest_tokens(scorer):
    """The bound refuses only texts that really are over the limit: texts made of the longest tokens (the most
    characters per token there is) have at least chars / (4 * token_chars) tokens."""
    from trm.serving.scorer import char_limit

    vocab = scorer.tokenizer.get_vocab()
    longest = max(vocab, key=len)
    assert len(longest) == scorer.token_chars
    pieces = [scorer.tokenizer.convert_tokens_to_string([longest]), *scorer.tokenizer.all_special_tokens]
    for piece in pieces:
        text = piece * 200
        tokens = len(scorer.encode([text])[0])
        assert len(text) <= 4 * scorer.token_chars * tokens, piece
    assert scorer.char_limit == char_limit(scorer.max_length, scorer.token_chars) == 4 * scorer.token_chars * 4096


def test_a_10mb_text_is_refused_before_it_is_tokenized(scorer, monkeypatch):
    """...and parsed in the helper process: json.loads of 10 MB in the server would hold the GIL (and /health)."""
    import trm.serving.http

    backend = GatedBackend(scorer._backend, over=10**9)
    monkeypatch.setattr(scorer, "_backend", backend)
    parsed_here = []
    real_parse = trm.serving.http.parse_body

    def spy(raw, *args):
        parsed_here.append(len(raw))
        return real_parse(raw, *args)

    monkeypatch.setattr(trm.serving.http, "parse_body", spy)

    async def run():
        async with asgi_client(reward_app(scorer)) as client:
            huge = await client.post("/v1/embeddings", json={"model": "RewardModel", "input": ["fine", "a" * 10**7]})
            health = await client.get("/health")
            return huge, health

    huge, health = asyncio.run(run())
    assert huge.status_code == 400, huge.text
    message = huge.json()["error"]["message"]
    assert f"body['input'][1] has 10000000 characters; any text over {scorer.char_limit} characters has more " \
           "tokens than this server's limit" in message
    assert backend.calls == []  # refused from its length alone: the tokenizer never saw it
    assert health.status_code == 200
    assert parsed_here == []  # the big body went to the helper process


def test_the_scorer_refuses_by_characters_before_tokenizing(scorer, monkeypatch):
    """In-process callers (trm score, RL) get the same bound as the server."""
    from trm.serving.scorer import InputTooManyChars

    backend = GatedBackend(scorer._backend, over=10**9)
    monkeypatch.setattr(scorer, "_backend", backend)
    with pytest.raises(InputTooManyChars, match=rf"input\[1\] has {scorer.char_limit + 1} characters; any text over "
                                                  rf"{scorer.char_limit} characters has more than the limit of 4096"):
        scorer.encode(["fine", "x" * (scorer.char_limit + 1)])
    assert backend.calls == []


def test_health_and_short_requests_are_served_while_a_long_text_is_tokenized(scorer, reference, monkeypatch):
    """A long text in the tokenizer blocks neither the event loop nor the tokenizing of other requests."""
    backend = GatedBackend(scorer._backend, over=9000)
    monkeypatch.setattr(scorer, "_backend", backend)
    long_text = "so the sum is 91 then " * 500  # over the inline size, under the character bound

    async def run():
        async with asgi_client(reward_app(scorer)) as client:
            big = asyncio.create_task(client.post("/v1/embeddings", json={"input": long_text}))
            assert await asyncio.to_thread(backend.entered.wait, 30), "the long text never reached the tokenizer"
            health = await client.get("/health")
            short = await client.post("/v1/embeddings", json={"input": "short one"})
            still_tokenizing = not big.done()
            backend.gate.set()
            return health, short, still_tokenizing, await big

    health, short, still_tokenizing, big = asyncio.run(run())
    assert not backend.gate_timed_out  # answered while the long text was held, not after the safety valve
    assert still_tokenizing
    assert health.status_code == 200
    assert short.json()["data"][0]["embedding"][0] == pytest.approx(reference.score("short one"), abs=1e-4)
    assert big.status_code == 200, big.text


class WatchedLock:
    """A tokenizer lock that says when someone tried to take it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = threading.Event()

    def acquire(self, blocking=True, timeout=-1):
        self.attempted.set()
        return self.lock.acquire(blocking, timeout)

    def release(self):
        self.lock.release()


def test_the_event_loop_never_waits_for_a_busy_tokenizer_lock(tiny_models, reference):
    """With truncation on, tokenizing takes a lock; a short request that finds it held waits in a thread."""
    from trm.serving.scorer import RewardScorer, TokenizerBusy

    scorer = RewardScorer(tiny_models["reward"], max_length=48, truncation="left")
    watched = WatchedLock()
    scorer._tokenizer_lock = watched
    watched.lock.acquire()  # a long tokenization elsewhere holds it
    safety = threading.Timer(30, watched.lock.release)  # frees a wrongly blocked event loop; the test then fails
    safety.start()
    with pytest.raises(TokenizerBusy):
        scorer.encode(["x"], wait=False)
    watched.attempted.clear()

    async def run():
        async with asgi_client(reward_app(scorer)) as client:
            short = asyncio.create_task(client.post("/v1/embeddings", json={"input": "short one"}))
            assert await asyncio.to_thread(watched.attempted.wait, 30)
            health = await client.get("/health")
            waiting = not short.done()
            safety.cancel()
            watched.lock.release()
            return health, waiting, await short

    try:
        health, waiting, short = asyncio.run(run())
    finally:
        safety.cancel()
    assert safety.finished.is_set() and waiting  # cancelled before firing: /health came while the lock was held
    assert health.status_code == 200
    assert short.json()["data"][0]["embedding"][0] == pytest.approx(reference.score("short one"), abs=1e-4)


# --- 11.4: bounded queue ---------------------------------------------------------------------------------------
def test_a_full_queue_answers_429_with_retry_after(scorer, monkeypatch):
    from trm.serving.batching import BatcherConfig

    entered, gate = threading.Event(), threading.Event()
    real = scorer.forward

    def gated(batch):
        entered.set()
        gate.wait(30)
        return real(batch)

    monkeypatch.setattr(scorer, "forward", gated)
    app = reward_app(scorer, batcher=BatcherConfig(max_batch_size=1, max_queue=4))

    async def run():
        async with asgi_client(app) as client:
            running = asyncio.create_task(client.post("/v1/embeddings", json={"input": "in the model"}))
            assert await asyncio.to_thread(entered.wait, 30)
            queued = asyncio.create_task(client.post("/v1/embeddings", json={"input": ["q1", "q2", "q3", "q4"]}))
            deadline = asyncio.get_running_loop().time() + 30
            while (await client.get("/health")).json()["queued"] < 4:  # poll until the four items wait
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            full = await client.post("/v1/embeddings", json={"input": "one more"})
            never = await client.post("/v1/embeddings", json={"input": ["a", "b", "c", "d", "e"]})
            gate.set()
            done = [await running, await queued]
            return full, never, done, (await client.get("/health")).json()

    full, never, done, health = asyncio.run(run())
    assert full.status_code == 429, full.text
    assert int(full.headers["Retry-After"]) >= 1
    assert "4 items are queued and 1 more would exceed its queue of 4" in full.json()["error"]["message"]
    assert never.status_code == 400 and "5 items in one request, more than the server queues at once (4)" in \
        never.json()["error"]["message"]
    assert [r.status_code for r in done] == [200, 200]
    assert health["refused"] == 6 and health["items"] == 5


# --- 11.11: hostile JSON, 500s ---------------------------------------------------------------------------------
def test_deep_json_and_lone_surrogates_are_400_and_500s_hide_the_exception(scorer, reference, monkeypatch, caplog):
    deep = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    cases = {
        "deep": deep,
        "lone": b'{"input": "ab\\ud800cd"}',
        "lone in list": b'{"input": ["fine", "x\\udfff"]}',
        "pair": b'{"input": "smile \\ud83d\\ude00"}',
    }

    async def run(app, bodies):
        async with asgi_client(app) as client:
            return {name: await client.post("/v1/embeddings", content=body,
                                            headers={"Content-Type": "application/json"})
                    for name, body in bodies.items()}

    answers = asyncio.run(run(reward_app(scorer), cases))
    assert answers["deep"].status_code == 400 and "too deeply" in answers["deep"].json()["error"]["message"]
    assert answers["lone"].status_code == 400
    assert "body['input'] contains a lone UTF-16 surrogate" in answers["lone"].json()["error"]["message"]
    assert "body['input'][1] contains a lone UTF-16 surrogate" in answers["lone in list"].json()["error"]["message"]
    assert answers["pair"].status_code == 200  # an escaped surrogate pair is a valid character
    assert answers["pair"].json()["data"][0]["embedding"][0] == pytest.approx(reference.score("smile \U0001F600"),
                                                                              abs=1e-4)

    def broken(batch):
        raise RuntimeError("secret detail /srv/models/private-checkpoint")

    import trm.serving.http

    monkeypatch.setattr(scorer, "forward", broken)
    monkeypatch.setattr(trm.serving.http, "_last_traceback", [float("-inf")])
    with caplog.at_level(logging.ERROR, logger="trm.serving"):
        crashes = asyncio.run(run(reward_app(scorer), {"one": b'{"input": "x"}', "two": b'{"input": "y"}'}))
    ids = []
    for crash in crashes.values():
        assert crash.status_code == 500
        message = crash.json()["error"]["message"]
        assert "secret" not in message and "RuntimeError" not in message
        ids += re.fullmatch(r"internal server error \(id ([0-9a-f]{12}) in the server log\)", message).groups()
    logged = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert [any(i in r.getMessage() for r in logged) for i in ids] == [True, True]  # every 500 is in the log
    assert sum(r.exc_info is not None for r in logged) == 1  # its traceback once per interval


# --- 11.5: logs --------------------------------------------------------------------------------------------
def test_connection_warnings_are_logged_once_per_interval_with_a_count():
    from trm.serving.http import RateLimitFilter

    now = [100.0]
    limiter = RateLimitFilter(10.0, clock=lambda: now[0])

    def record(msg, level=logging.WARNING):
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, None, None)

    assert limiter.filter(record("Invalid HTTP request received."))
    assert not any(limiter.filter(record("Invalid HTTP request received.")) for _ in range(500))
    assert limiter.filter(record("another kind"))  # each kind has its own interval
    assert limiter.filter(record("Started server process", logging.INFO))  # info is never limited
    now[0] += 10.0
    summary = record("Invalid HTTP request received.")
    assert limiter.filter(summary)
    assert summary.getMessage() == ("Invalid HTTP request received. (and 500 more like it in the last 10 s, "
                                    "not logged)")


def test_query_credentials_are_redacted():
    from trm.serving.http import redact_query

    assert redact_query('GET /v1/models?api_key=s3cr3t&x=1 HTTP/1.1') == 'GET /v1/models?api_key=***&x=1 HTTP/1.1'
    assert redact_query("/x?a=1&Access_Token=abc&TOKEN=d") == "/x?a=1&Access_Token=***&TOKEN=***"
    assert redact_query("/v1/models?monkey=1") == "/v1/models?monkey=1"


# --- real uvicorn: disconnects, idle and malformed connections, logs -------------------------------------------
@pytest.fixture(scope="module", params=["httptools", "h11"])
def guarded_server(request, tiny_models, tmp_path_factory):
    """Batches of one item, each 0.3 s slower (injected), debug logs, a 3 s request-read timeout, and connection
    warnings logged once an hour (so each kind appears once here); with each HTTP parser."""
    port = free_port()
    server = spawn(slow_reward_command(0.3, "--model", str(tiny_models["reward"]), "--port", str(port),
                                       "--max-batch-size", "1", "--log-level", "debug", "--request-read-timeout", "3",
                                       "--log-interval", "3600", "--http-parser", request.param),
                   port, tmp_path_factory.mktemp("guarded"))
    server.port = port
    server.parser = request.param
    yield server
    stop(server.proc)


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=30).json()


def _poll(url: str, done, what: str) -> dict:
    """/health once `done(health)`; a refused connection counts as not done yet."""
    import time

    deadline = time.monotonic() + 60
    while True:
        try:
            health = _health(url)
        except httpx.TransportError as exc:
            health = {"error": repr(exc)}
        if "error" not in health and done(health):
            return health
        assert time.monotonic() < deadline, f"{what}: {health}"
        time.sleep(0.02)  # polling /health with a deadline


def test_a_disconnected_clients_queued_work_is_dropped(guarded_server):
    url = guarded_server.url
    texts = [f"abandoned text number {i}" for i in range(12)]
    body = json.dumps({"model": "RewardModel", "input": texts}).encode()
    start = _health(url)
    sock = socket.create_connection(("127.0.0.1", guarded_server.port))
    sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: trm\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    queued = _poll(url, lambda h: h["in_flight"] >= 12, "the request never reached the batcher")
    sock.close()  # the client gives up mid-request
    after = _poll(url, lambda h: h["in_flight"] == h["running"] == 0, "the abandoned items stayed")
    computed = after["items"] - start["items"]
    assert after["items"] - queued["items"] <= 2  # at most the forward pass running at the disconnect (+1 racing)
    assert after["cancelled"] - start["cancelled"] == 12 - computed >= 10
    assert httpx.post(f"{url}/v1/embeddings", json={"input": "still here"}, timeout=30).status_code == 200


def test_idle_and_trickling_connections_are_closed_and_logged_once(guarded_server):
    with socket.create_connection(("127.0.0.1", guarded_server.port)) as idle, \
            socket.create_connection(("127.0.0.1", guarded_server.port)) as trickle:
        trickle.sendall(b"GET /health HTTP/1.1\r\nHost: trm\r\n")  # headers never finish
        idle.settimeout(60)
        trickle.settimeout(60)
        assert idle.recv(1) == b""  # closed by the server
        assert trickle.recv(1024) == b""
    assert guarded_server.log().count("closed a connection that sent no complete request within 3.0 s") == 1


def test_malformed_requests_are_logged_once_not_per_connection(guarded_server):
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", guarded_server.port)) as sock:
            sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            sock.settimeout(60)
            assert sock.recv(1024).startswith(b"HTTP/1.1 400")
    assert guarded_server.log().count("Invalid HTTP request received.") == 1
    assert _health(guarded_server.url)["status"] == "ok"


def test_an_oversized_request_head_is_400_and_a_large_body_is_not_mistaken_for_one(guarded_server):
    pieces = [b"GET /health HTTP/1.1\r\nHost: trm\r\nX-Pad: "] + [b"a" * 2000] * 20  # never ends
    if guarded_server.parser == "httptools":  # which also bounds a whole head that arrives at once (h11 does not)
        pieces = [b"".join(pieces) + b"\r\n\r\n"]
    with socket.create_connection(("127.0.0.1", guarded_server.port)) as sock:
        sock.settimeout(60)
        with contextlib.suppress(OSError):  # the server may close before the rest is sent
            for piece in pieces:
                sock.sendall(piece)  # however the server's reads split them, the head never completes
        assert sock.recv(1024).startswith(b"HTTP/1.1 400")
    texts = [f"text {i} " + "so the sum is 91 " * 40 for i in range(4)]  # a ~3 KB body per text, 12 KB each
    with httpx.Client(timeout=60) as client:  # one keep-alive connection: heads and bodies of several requests
        for _ in range(3):
            answer = client.post(f"{guarded_server.url}/v1/embeddings", json={"input": texts * 4})
            assert answer.status_code == 200 and len(answer.json()["data"]) == 16
    assert _health(guarded_server.url)["status"] == "ok"


def test_the_parser_in_use_is_the_one_asked_for(guarded_server):
    from trm.serving.http import resolve_http_parser

    assert resolve_http_parser("auto") == "httptools"  # installed with requirements.txt
    with pytest.raises(ValueError, match="unknown HTTP parser"):
        resolve_http_parser("llhttp")
    pid = guarded_server.proc.pid
    maps = open(f"/proc/{pid}/maps").read()
    assert ("httptools" in maps) == (guarded_server.parser == "httptools")


def test_a_query_string_api_key_never_reaches_the_debug_log(guarded_server):
    answer = httpx.get(f"{guarded_server.url}/v1/models?api_key=SECRET-QUERY-KEY-123", timeout=30)
    assert answer.status_code == 200
    log = guarded_server.log()
    assert "/v1/models?api_key=*** HTTP/1.1" in log  # the access log line is written before the response
    assert "SECRET-QUERY-KEY-123" not in log


def test_maximum_size_text_and_hostile_json_over_the_wire(guarded_server):
    url = guarded_server.url
    huge = httpx.post(f"{url}/v1/embeddings", json={"input": "b" * 30_000_000}, timeout=120)
    assert huge.status_code == 400 and "body['input'] has 30000000 characters" in huge.json()["error"]["message"]
    lone = httpx.post(f"{url}/v1/embeddings", content=b'{"input": "\\ud800"}', timeout=30)
    assert lone.status_code == 400 and "lone UTF-16 surrogate" in lone.json()["error"]["message"]
    assert _health(url)["status"] == "ok"


def test_connections_over_the_limit_are_closed(tiny_models, tmp_path):
    port = free_port()
    server = spawn(trm_command("serve", "reward", "--model", str(tiny_models["reward"]), "--port", str(port),
                               "--max-connections", "3", "--request-read-timeout", "120"), port, tmp_path)
    held = []
    try:
        for _ in range(3):  # three requests whose bodies never come: the app is reading them (100 Continue)
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: trm\r\nContent-Type: application/json\r\n"
                         b"Expect: 100-continue\r\nContent-Length: 40\r\n\r\n")
            sock.settimeout(60)
            assert sock.recv(1024).startswith(b"HTTP/1.1 100")
            held.append(sock)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/health", timeout=30)  # a fourth connection is closed at once
        for sock in held:
            sock.close()
        _poll(server.url, lambda h: h["status"] == "ok", "the server did not recover")
    finally:
        for sock in held:
            sock.close()
        stop(server.proc)
    assert "refused a connection: 3 are open, the limit is 3" in server.log()
