"""A pool of equivalent HTTP backends (TRM servers, verifier servers) behind one async ``post_json``.

Each call goes to the least-loaded healthy backend. Connection errors, timeouts, 5xx and 429 answers are
retried on another backend with exponential backoff, and the failing backend is benched for a cooldown;
the call gives up at its total deadline, with :class:`BackendsUnavailable` naming every backend and
its last error, or much sooner, after a short connect budget, when no backend accepts a connection at all (nothing
listens there: minutes of silent retries would only hide a wrong address or a server that never started). Each
backend's state changes (down with its error, answering again) are logged once per change, not per attempt. Other 4xx answers are the caller's mistake: they raise :class:`BackendRequestError` with the
server's message at once, on no other backend. Nothing here ever turns a failure into a number.

Calls that find every usable backend at its concurrency limit wait for the next free slot on *any* backend,
not in a queue of one backend: when a backend dies, the waiting calls drain to the others instead of each
discovering the failure in turn. httpx clients and futures belong to one event loop, so the pool keeps its
clients (and its slot accounting) per running loop; health is shared by all loops.

Per backend and loop the requests go through a small set of ``httpx.AsyncClient`` s ("lanes") of
``connections_per_client`` connections each, and each request takes the least busy lane. One client with
hundreds of connections would do the same job at several times the CPU cost: httpcore's connection pool walks
every connection and every queued request on each request start and end (httpx issue #3215), so its cost per
request grows with its size, and at a few hundred requests in flight the client, not the backends, sets the pace.
Lanes are created only when the busy ones are full and share one SSL context (building one costs ~40 ms).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

RETRYABLE_STATUS = frozenset({408, 429})
log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A call to the backends failed: one of the two below."""


class BackendsUnavailable(BackendError):
    """No backend answered within the call's deadline; the message names each backend and its last error."""


class BackendRequestError(BackendError):
    """A backend rejected the request itself (4xx): retrying elsewhere would not help."""

    def __init__(self, backend: str, status_code: int, message: str):
        super().__init__(f"{backend} answered {status_code}: {message}")
        self.backend = backend
        self.status_code = status_code
        self.message = message


# The one order in which every client and server of the project finds an API key: the explicit value (a flag, a
# setting, a constructor argument), then the environment variables of the endpoint's role, first set wins, then
# none. Roles keep keys apart: OPENAI_API_KEY (often a paid key) is read only for endpoints that may be outside
# services (judge, generation), never sent to the project's own reward or verifier servers.
API_KEY_ENV: dict[str, tuple[str, ...]] = {
    "reward": ("TRM_API_KEY",),  # TRM embedding servers (`trm serve reward`, sglang --api-key), and their server side
    "verifier": ("TRM_VERIFIER_API_KEY",),  # general-verifier chat servers
    "judge": ("TRM_JUDGE_API_KEY", "OPENAI_API_KEY"),  # data-pipeline and win-rate judges
    "generation": ("OPENAI_API_KEY",),  # policies sampled through an OpenAI-compatible endpoint
}


def resolve_api_key(explicit: str | None, role: str) -> str | None:
    """``explicit`` if given, else the first set variable of ``API_KEY_ENV[role]``, else None."""
    if role not in API_KEY_ENV:
        raise ValueError(f"unknown API key role {role!r}; one of {sorted(API_KEY_ENV)}")
    if explicit:
        return explicit
    for name in API_KEY_ENV[role]:
        if os.environ.get(name):
            return os.environ[name]
    return None


def parse_backends(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"h1:p1,h2:p2"`` / ``"http://h:p/"`` / ``"https://api.host/v1"`` / a list of those -> base URLs like
    ``"http://h1:p1"``: the one URL normaliser, so an OpenAI-style ``/v1`` root and a bare host:port name the same
    server (callers post to ``/v1/...`` paths)."""
    items = spec.split(",") if isinstance(spec, str) else [str(item) for item in spec]
    urls: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "://" not in item:
            item = f"http://{item}"
        url = httpx.URL(item)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"backend {item!r} is not host:port or an http(s) URL")
        base = str(url).rstrip("/").removesuffix("/v1")
        if base not in urls:
            urls.append(base)
    if not urls:
        raise ValueError(f"no backends in {spec!r}; expected a comma-separated host:port list")
    return urls


@dataclass
class _BackendState:
    url: str
    unhealthy_until: float = 0.0
    failed_at: float = float("-inf")
    last_error: str = ""
    requests: int = 0
    failures: int = 0
    down: bool = False  # logged as down and not answered since
    unreachable: bool = False  # its last attempt could not connect (refused, unreachable, connect timeout)


@dataclass
class _Lane:
    """One small pooled client for one backend (see the module docstring for why not one big one)."""

    client: httpx.AsyncClient
    in_flight: int = 0


@dataclass
class _LoopState:
    in_flight: dict[str, int]  # requests sent to each backend and not yet answered (its concurrency limit)
    load: dict[str, int]  # items (texts, prompts) of those requests: what least-loaded balances
    lanes: dict[str, list[_Lane]]  # per backend, created on demand
    waiters: deque = field(default_factory=deque)  # futures of calls waiting for a free slot, oldest first

    def clients(self) -> list[httpx.AsyncClient]:
        return [lane.client for lanes in self.lanes.values() for lane in lanes]


class BackendPool:
    """Spread JSON POSTs over equivalent backends with health tracking, retries and a total deadline."""

    def __init__(
        self,
        backends: str | list[str],
        *,
        max_concurrency_per_backend: int = 64,
        connections_per_client: int = 2,
        request_timeout: float = 60.0,
        deadline: float = 300.0,
        api_key: str | None = None,
        unhealthy_cooldown: float = 10.0,
        backoff_base: float = 0.05,
        backoff_max: float = 2.0,
        trust_env: bool = False,
        connect_budget: float | None = 10.0,
    ):
        """
        Args:
            backends: comma-separated ``host:port`` / URLs, or a list of them.
            max_concurrency_per_backend: requests in flight to one backend at a time (per event loop).
            connections_per_client: connections of each of the small clients a backend's requests are spread
                over (per event loop); small keeps the client's CPU cost per request flat, see the module docstring.
            request_timeout: seconds one attempt on one backend may take.
            deadline: seconds one :meth:`post_json` call may take in total, waiting and retries included.
            api_key: sent as ``Authorization: Bearer <key>`` when set.
            unhealthy_cooldown: seconds a failing backend is skipped while healthy ones remain.
            backoff_base, backoff_max: exponential backoff between retries (with jitter), in seconds.
            trust_env: honour HTTP(S)_PROXY and friends. Off by default: backends are cluster-internal, and a
                proxy variable set for downloads would otherwise capture every reward request.
            connect_budget: seconds a call keeps retrying while no backend has accepted a connection in it (also
                the connect timeout of one attempt); then it raises :class:`BackendsUnavailable` long before
                ``deadline``. None: retry refused connections until the deadline (servers still starting).
        """
        self.backends = parse_backends(backends)
        if max_concurrency_per_backend < 1:
            raise ValueError(f"max_concurrency_per_backend must be >= 1, got {max_concurrency_per_backend}")
        if connections_per_client < 1:
            raise ValueError(f"connections_per_client must be >= 1, got {connections_per_client}")
        for name, value in (("request_timeout", request_timeout), ("deadline", deadline),
                            ("connect_budget", 1.0 if connect_budget is None else connect_budget)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.max_concurrency_per_backend = max_concurrency_per_backend
        self.connections_per_client = min(connections_per_client, max_concurrency_per_backend)
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.unhealthy_cooldown = unhealthy_cooldown
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.trust_env = trust_env
        self.connect_budget = connect_budget
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._states = {url: _BackendState(url) for url in self.backends}
        self._loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._ssl_context = None  # shared by every client of this pool, made on first use
        self._urls: dict[tuple[str, str], httpx.URL] = {}  # parsed once: httpx's URL parsing is costly per request

    def __repr__(self) -> str:
        return f"BackendPool({','.join(self.backends)})"

    # -- per-loop state ------------------------------------------------------------------------------------
    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = _LoopState({url: 0 for url in self.backends}, {url: 0 for url in self.backends},
                                                         {url: [] for url in self.backends})
            return state

    def _new_client(self) -> httpx.AsyncClient:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context(trust_env=self.trust_env)
        size = self.connections_per_client
        return httpx.AsyncClient(
            headers=self._headers,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            timeout=httpx.Timeout(self.request_timeout, connect=min(self.request_timeout,
                                                                     self.connect_budget or self.request_timeout)),
            trust_env=self.trust_env,
            verify=self._ssl_context,
        )

    def _take_lane(self, loop_state: _LoopState, url: str) -> _Lane:
        """The least busy lane of ``url`` with a free connection; a new lane when all are full (the backend's
        slot limit guarantees that there is room for one)."""
        lanes = loop_state.lanes[url]
        lane = min(lanes, key=lambda candidate: candidate.in_flight, default=None)
        if lane is None or lane.in_flight >= self.connections_per_client:
            lane = _Lane(self._new_client())
            lanes.append(lane)
        lane.in_flight += 1
        return lane

    async def aclose(self) -> None:
        """Close the HTTP clients of the running loop (clients of other, finished loops are just dropped)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.pop(loop, None)
        if state is not None:
            await asyncio.gather(*(client.aclose() for client in state.clients()), return_exceptions=True)

    async def __aenter__(self) -> "BackendPool":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # -- health --------------------------------------------------------------------------------------------
    def _mark_unhealthy(self, url: str, error: str) -> None:
        state = self._states[url]
        state.failures += 1
        state.last_error = error
        state.failed_at = time.monotonic()
        state.unhealthy_until = state.failed_at + self.unhealthy_cooldown
        if not state.down:
            state.down = True
            others = len(self.backends) - sum(s.down for s in self._states.values())
            log.warning("backend %s is down (%s); retrying on %s", url, error,
                        f"the other {others} backend(s)" if others else "every backend until the call gives up")

    def healthy_backends(self) -> list[str]:
        now = time.monotonic()
        return [url for url, state in self._states.items() if state.unhealthy_until <= now]

    def stats(self) -> dict[str, dict]:
        """Per-backend request/failure counts and last error (for logs and benchmarks)."""
        return {
            url: {"requests": s.requests, "failures": s.failures, "healthy": s.unhealthy_until <= time.monotonic(), "last_error": s.last_error}
            for url, s in self._states.items()
        }

    def _choose(self, loop_state: _LoopState, tried: set[str]) -> str | None:
        """A backend with a free slot: healthy ones (all, when none is), untried in this call first, least
        loaded (fewest items in flight) first; None when every candidate is at its limit."""
        now = time.monotonic()
        usable = [url for url in self.backends if self._states[url].unhealthy_until <= now] or self.backends
        limit = self.max_concurrency_per_backend
        for candidates in ([url for url in usable if url not in tried], usable):
            free = [url for url in candidates if loop_state.in_flight[url] < limit]
            if free:
                least = min(loop_state.load[url] for url in free)
                return random.choice([url for url in free if loop_state.load[url] == least])
        return None

    async def _acquire(self, loop_state: _LoopState, tried: set[str], give_up_at: float, weight: int) -> str | None:
        """Take a slot on a backend, waiting for one to free up; None at the deadline."""
        while True:
            url = self._choose(loop_state, tried)
            if url is not None:
                loop_state.in_flight[url] += 1
                loop_state.load[url] += weight
                return url
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                return None
            waiter = asyncio.get_running_loop().create_future()
            loop_state.waiters.append(waiter)
            try:
                # A released slot wakes the oldest waiter; the timeout re-checks health changes meanwhile.
                await asyncio.wait_for(waiter, timeout=min(remaining, 1.0))
            except TimeoutError:
                pass

    def _release(self, loop_state: _LoopState, url: str, weight: int) -> None:
        loop_state.in_flight[url] -= 1
        loop_state.load[url] -= weight
        while loop_state.waiters:
            waiter = loop_state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    # -- requests ------------------------------------------------------------------------------------------
    async def post_json(self, path: str, payload: dict, parse: Callable[[Any], Any] | None = None,
                        weight: int = 1) -> Any:
        """POST ``payload`` to ``path`` on one backend and return its JSON answer (see class docstring).

        ``weight`` is the work the request carries (the texts of a list request): backends are balanced by the
        items in flight, so that a few large requests and many small ones load them alike.

        ``parse`` turns the JSON answer into the caller's value (never None). A ``ValueError`` from it means the
        backend answered 2xx with something malformed (wrong count, wrong types, impossible values): that
        backend is benched and the call retried elsewhere, like a 5xx, so a broken answer never becomes a value.
        """
        loop_state = self._loop_state()
        started = time.monotonic()
        give_up_at = started + self.deadline
        tried: set[str] = set()
        attempt = 0
        connected = False  # some backend accepted a connection during this call
        while True:
            url = await self._acquire(loop_state, tried, give_up_at, weight)
            if url is None:
                raise self._unavailable(path, started)
            tried.add(url)
            if len(tried) == len(self.backends):
                tried = set()  # every backend had a go: the next round starts over, after a backoff
            lane = self._take_lane(loop_state, url)
            try:
                result = await self._attempt(lane.client, url, path, payload, give_up_at - time.monotonic(), parse)
            finally:
                lane.in_flight -= 1
                self._release(loop_state, url, weight)
            if result is not None:
                return result
            connected = connected or not self._states[url].unreachable
            attempt += 1
            delay = min(self.backoff_max, self.backoff_base * (2 ** min(attempt - 1, 16)))
            delay *= 0.5 + random.random()  # jitter, so retries from many calls do not arrive in lockstep
            remaining = give_up_at - time.monotonic()
            if not connected and self.connect_budget is not None:
                budget_left = started + self.connect_budget - time.monotonic()
                if budget_left <= 0:
                    raise self._unavailable(path, started, refused=True)
                remaining = min(remaining, budget_left)
            if remaining <= 0:
                raise self._unavailable(path, started)
            await asyncio.sleep(min(delay, remaining))

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, path: str, payload: dict, remaining: float,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """One try on one backend: the (parsed) JSON answer, None for a retryable failure; raises on 4xx."""
        state = self._states[url]
        state.requests += 1
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                response = await client.post(
                    self._url(url, path), json=payload, timeout=min(self.request_timeout, max(remaining, 0.001))
                )
                body = response.content
        except httpx.ConnectTimeout:
            state.unreachable = True
            limit = self.connect_budget or self.request_timeout
            self._mark_unhealthy(url, f"ConnectTimeout: no connection within {limit:g}s")
            return None
        except (TimeoutError, httpx.TimeoutException):
            state.unreachable = False
            if remaining < self.request_timeout and state.last_error:
                return None  # cut short by the call's deadline: keep the backend's own last error for the report
            self._mark_unhealthy(url, f"timed out on {path}")
            return None
        except httpx.TransportError as exc:
            state.unreachable = isinstance(exc, httpx.ConnectError)
            self._mark_unhealthy(url, f"{type(exc).__name__}: {exc or 'connection failed'}")
            return None
        state.unreachable = False
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            self._mark_unhealthy(url, f"HTTP {response.status_code}: {_message(response)}")
            return None
        if response.status_code >= 400:
            raise BackendRequestError(url, response.status_code, _message(response))
        try:
            result = response.json()
        except ValueError:
            self._mark_unhealthy(url, f"answered {response.status_code} with a body that is not JSON: {body[:200]!r}")
            return None
        if parse is not None:
            try:
                result = parse(result)
            except ValueError as exc:
                self._mark_unhealthy(url, f"malformed answer to {path}: {exc}")
                return None
        if sent_at > state.failed_at:  # a good answer to a request sent after the last failure ends the cooldown
            state.unhealthy_until = 0.0
            if state.down:
                state.down = False
                log.warning("backend %s answers again (after %d failed attempts in all)", url, state.failures)
        return result

    def _url(self, base: str, path: str) -> httpx.URL:
        key = (base, path)
        parsed = self._urls.get(key)
        if parsed is None:
            parsed = self._urls[key] = httpx.URL(f"{base}{path}")
        return parsed

    def _unavailable(self, path: str, started: float, refused: bool = False) -> BackendsUnavailable:
        lines = [f"  {url}: {self._states[url].last_error or 'no answer before the deadline'}" for url in self.backends]
        if refused:
            head = (f"no backend accepted a connection for POST {path} within {time.monotonic() - started:.1f}s "
                    f"(connect budget {self.connect_budget:g}s): is a server running at each address, and is it "
                    "the right host:port?")
        else:
            head = (f"no backend answered POST {path} within {time.monotonic() - started:.1f}s "
                    f"(deadline {self.deadline:g}s)")
        return BackendsUnavailable(f"{head}; backends:\n" + "\n".join(lines))


def _message(response: httpx.Response) -> str:
    """The server's error message: OpenAI-style ``{"error": {"message"}}``, FastAPI ``detail``, else text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
        if "detail" in body:
            return str(body["detail"])[:500]
        if "message" in body:
            return str(body["message"])[:500]
    return str(body)[:500]


def wait_healthy(backends: str | list[str], timeout: float, expect_model: str | None = None,
                 api_key: str | None = None, abort: Callable[[], str | None] | None = None) -> list[str]:
    """Block until every backend answers GET /health with 200; returns their base URLs.

    With ``expect_model``, a healthy server must also list that name in GET /v1/models (sent with ``api_key``): a
    script that started its server under a unique extra name so learns at once when another server holds the port.
    Raises :class:`BackendsUnavailable` then, at ``timeout`` (naming each waiting backend and its last error), or
    when ``abort()`` returns a reason to stop (the process that should become the server has exited).
    """
    urls = parse_backends(backends)
    waiting, last_error = list(urls), {}
    give_up_at = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=5.0, trust_env=False, headers=headers) as client:
        while True:
            for url in list(waiting):
                try:
                    response = client.get(f"{url}/health")
                except httpx.HTTPError as exc:
                    last_error[url] = f"{type(exc).__name__}: {exc}"
                    continue
                if response.status_code != 200:
                    last_error[url] = f"HTTP {response.status_code}: {_message(response)}"
                    continue
                if expect_model is not None:
                    _check_serves(client, url, expect_model)
                waiting.remove(url)
            if not waiting:
                return urls
            reason = abort() if abort is not None else None
            if reason:
                raise BackendsUnavailable(f"{reason} before {', '.join(waiting)} became healthy")
            if time.monotonic() > give_up_at:
                raise BackendsUnavailable(f"not healthy after {timeout:g}s: " + "; ".join(
                    f"{url} ({last_error.get(url, 'no answer')})" for url in waiting))
            time.sleep(0.2)  # polling a health route with a deadline


def _check_serves(client: httpx.Client, url: str, name: str) -> None:
    """Raise unless the server at ``url`` lists ``name`` in /v1/models, saying what it serves instead."""
    try:
        response = client.get(f"{url}/v1/models")
        names = [entry.get("id") for entry in response.json()["data"]] if response.status_code == 200 else None
        found = f"it serves {', '.join(map(str, names))}" if names is not None else \
            f"GET /v1/models answered {response.status_code}: {_message(response)}"
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        names, found = None, f"GET /v1/models failed: {type(exc).__name__}: {exc}"
    if names is None or name not in names:
        raise BackendsUnavailable(f"{url} is healthy but is not the server that was started ({found}, not {name}); "
                                  "another server holds that port")
