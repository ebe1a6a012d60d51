"""HTTP pieces both embedded servers share: JSON errors, bearer auth, bounded request bodies, the app around its
API routes (/health, /v1/models, batcher lifetime), work cancelled when its client disconnects, and the uvicorn
runner with connection limits, a request-read timeout and rate-limited connection-error logs.

Errors use the OpenAI shape ``{"error": {"message", "type", "param", "code"}}`` so the official client raises
them with their message intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hmac
import logging
import re
import resource
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trm.serving.batching import DynamicBatcher, QueueFull
from trm.serving.bodyparse import BodyError, HelperParser, parse_body

try:  # a few times faster than json.dumps on the hot path; installed with verl (via tensordict)
    import orjson
except ImportError:  # pragma: no cover - the standard library does the same job, slower
    orjson = None

log = logging.getLogger("trm.serving")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
# Bodies at least this large are parsed in a helper process (json.loads of tens of MB holds the GIL and would
# stall /health), and the server hands freed heap pages back to the OS after serving them.
LARGE_BODY_BYTES = 1024 * 1024


HTTP_PARSERS = ("auto", "httptools", "h11")


@dataclass
class ConnectionLimits:
    """What one client (or many) may hold of the server: connections, time to send a request, header size, and
    how often connection errors are logged."""

    max_connections: int = field(default=1024, metadata={"help": (
        "Open connections; one opened beyond it is closed at once (uvicorn's own limit_concurrency, set one above, "
        "would only answer 503 to a request already connected). Lowered to the file-descriptor limit minus 64.")})
    request_read_timeout_s: float = field(default=10.0, metadata={"help": (
        "Seconds a client has to send a whole request (headers and body) once connected or after its previous "
        "response; then the connection is closed. Time the server spends computing an answer is not limited.")})
    keep_alive_timeout_s: int = field(default=5, metadata={"help": "Seconds an idle keep-alive connection stays open."})
    max_header_bytes: int = field(default=16 * 1024, metadata={"help": (
        "Largest request head (request line and headers); more is a 400.")})
    http_parser: str = field(default="auto", metadata={"choices": HTTP_PARSERS, "help": (
        "HTTP/1.1 parser: httptools (C, much less CPU per request), h11 (pure Python), or auto (httptools when "
        "installed).")})
    log_interval_s: float = field(default=10.0, metadata={"help": (
        "Connection-level warnings (invalid requests, refused or timed-out connections) are logged once per this "
        "many seconds per kind, with a count of those suppressed, so a flood cannot fill the disk.")})


class ApiError(Exception):
    """A client-visible error: status code plus a message that says what to change."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson when installed. Only for content with finite floats: orjson writes NaN as
    null, where Starlette's renderer raises (so a broken score becomes a 500, never a silent null)."""

    def render(self, content: Any) -> bytes:
        if orjson is None:
            return super().render(content)
        return orjson.dumps(content)


def error_response(status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.type, exc.param)


async def _http_error_handler(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; see GET /v1/models and the docs for the API"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, "invalid_request_error")


_last_traceback = [float("-inf")]


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A 500 names an id to find in the server log, never the exception text (it can hold paths or data). Each
    500 is logged, its traceback at most once per log interval (a flood of failing requests cannot fill the disk)."""
    error_id = uuid.uuid4().hex[:12]
    now = time.monotonic()
    if now - _last_traceback[0] >= ConnectionLimits.log_interval_s:
        _last_traceback[0] = now
        log.exception("unexpected error %s while serving %s", error_id, request.url.path)
    else:
        log.error("unexpected error %s while serving %s: %s (tracebacks are logged once per %g s)", error_id,
                  request.url.path, type(exc).__name__, ConnectionLimits.log_interval_s)
    return error_response(500, f"internal server error (id {error_id} in the server log)", "server_error")


class ClientDisconnected(Exception):
    """The client closed its connection before its answer was ready; its queued work was dropped."""


async def _client_disconnected_handler(request: Request, exc: ClientDisconnected) -> JSONResponse:
    return error_response(499, "client closed the connection", "client_closed_request")  # nobody reads it


async def _queue_full_handler(request: Request, exc: QueueFull) -> JSONResponse:
    if exc.never:
        return error_response(400, str(exc), param="input")
    return error_response(429, str(exc), "rate_limit_error", headers={"Retry-After": str(exc.retry_after_s)})


EXCEPTION_HANDLERS = {
    ApiError: _api_error_handler,
    HTTPException: _http_error_handler,
    ClientDisconnected: _client_disconnected_handler,
    QueueFull: _queue_full_handler,
    Exception: _unexpected_error_handler,
}


async def unless_disconnected(request: Request, work: Awaitable):
    """Await `work` (a batcher submission) while watching the connection; if the client goes away first, cancel
    the work (its queued items leave the batcher; a forward pass already running finishes) and raise
    ClientDisconnected. Call it after the body was read: the watcher consumes the request's remaining messages."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done() or not watcher.done():
            (watcher if task.done() else task).cancel()
    if task.done():
        return task.result()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.debug("client disconnected from %s; its queued work was dropped", request.url.path)
    raise ClientDisconnected()


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def read_json_object(request: Request, max_bytes: int, max_chars: int | None = None) -> dict[str, Any]:
    """The request body as a JSON object, reading at most `max_bytes` (413 beyond, 400 if not a JSON object, if it
    nests too deeply, holds a lone surrogate, or holds a string over `max_chars` characters)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {int(declared)} bytes, over the server limit of {max_bytes} bytes; "
                            "send fewer inputs per request or raise --max-body-mb")
    raw = bytearray()  # grown chunk by chunk: no 32 MB join on the event loop at the end
    async for chunk in request.stream():
        if len(raw) + len(chunk) > max_bytes:
            raise ApiError(413, f"request body is over the server limit of {max_bytes} bytes; "
                                "send fewer inputs per request or raise --max-body-mb")
        raw += chunk
    if not raw or raw.isspace():
        raise ApiError(400, "request body is empty; send a JSON object")
    parser = getattr(request.app.state, "body_parser", None) if "app" in request.scope else None
    try:
        if parser is not None and len(raw) >= LARGE_BODY_BYTES:
            request.scope.setdefault("state", {})[_LARGE_BODY] = True  # MemoryRelease trims after the response
            body = await parser.parse(raw, max_chars)
        else:
            body = parse_body(raw, max_chars)
    except BodyError as exc:
        raise ApiError(400, str(exc)) from None
    del raw
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


def check_model(body: dict, served_names: list[str]) -> str:
    """The requested model name if this server serves it (a missing name means the first served one)."""
    model = body.get("model")
    if model is None:
        return served_names[0]
    if not isinstance(model, str):
        raise ApiError(400, f"'model' must be a string, got {type(model).__name__}", param="model")
    if model not in served_names:
        raise ApiError(404, f"model {model!r} is not served here; served models: {', '.join(served_names)}",
                       type="not_found_error", param="model")
    return model


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <key>`` on every route except the open ones (health checks)."""

    def __init__(self, app, api_key: str, open_paths: tuple[str, ...] = ("/health",)):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        message = ("missing API key: send 'Authorization: Bearer <key>'" if not given
                   else "invalid API key in the Authorization header")
        response = error_response(401, message, "authentication_error", headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


_LARGE_BODY = "trm_large_body"


def _glibc(function: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL("libc.so.6"), function)
    except (OSError, AttributeError):  # not glibc: nothing to tune or trim
        return None


# glibc hands a thread's freed heap top back to the OS at once and maps large blocks afresh per allocation (under a
# moving threshold), so the model thread's activations, allocated and freed every forward pass, page-faulted anew
# each time: a quarter more CPU per score than the same forward on the main thread (10x the page faults). Fixed
# thresholds keep them in the heap; MemoryReleaseMiddleware still trims explicitly after huge bodies.
def keep_freed_memory(mmap_above: int = 32 << 20, keep_freed: int = 256 << 20) -> None:
    mallopt = _glibc("mallopt")
    if mallopt is not None:  # mallopt(3): M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1
        mallopt(-3, mmap_above)
        mallopt(-1, keep_freed)


class MemoryReleaseMiddleware:
    """After a request with a large body is answered (its strings and token lists are garbage by then), hand the
    freed heap pages back to the OS: glibc keeps them otherwise, and a few huge requests leave the server GBs big."""

    def __init__(self, app):
        self.app = app
        self.trim = _glibc("malloc_trim")

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)
        if self.trim is not None and scope.get("state", {}).get(_LARGE_BODY):
            await asyncio.to_thread(self.trim, 0)


def models_payload(served_names: list[str], created: int, max_model_len: int | None) -> dict:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "trm", "max_model_len": max_model_len}
            for name in served_names
        ],
    }


def serving_app(kind: str, model_path: str | Path, batcher: DynamicBatcher, served_model_names: list[str],
                api_key: str | None, max_model_len: int | None, *api_routes: Route) -> Starlette:
    """A server around its API routes: GET /health (503 until the batcher runs, then its counters), GET /v1/models,
    bearer auth when `api_key` is set, OpenAI-shaped errors; the batcher lives as long as the app."""
    created = int(time.time())
    state = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        app.state.body_parser = HelperParser()
        state["ready"] = True
        log.info("%s server ready: %s as %s", kind, model_path, ", ".join(served_model_names))
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.stop()
            app.state.body_parser.close()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok" if state["ready"] else "loading", "model": served_model_names[0],
                             "queued": batcher.queued, "in_flight": batcher.in_flight, "running": batcher.running,
                             **batcher.stats.as_dict()},
                            status_code=200 if state["ready"] else 503)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse(models_payload(served_model_names, created, max_model_len))

    routes = [Route("/health", health, methods=["GET"]), Route("/v1/models", models, methods=["GET"]), *api_routes]
    middleware = [Middleware(MemoryReleaseMiddleware)]
    if api_key:
        middleware.append(Middleware(BearerAuthMiddleware, api_key=api_key))
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)


class RateLimitFilter(logging.Filter):
    """Let one record per (logger, message) through per `interval_s`; the next one that passes says how many were
    suppressed. For connection-level warnings, which a flood of bad clients would otherwise repeat per connection."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval_s, self.clock = interval_s, clock
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key, now = (record.name, str(record.msg)), self.clock()
        last = self.last.get(key)
        if last is not None and now - last < self.interval_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self.last[key] = now
        skipped = self.suppressed.pop(key, 0)
        if skipped:
            record.msg = f"{record.msg} (and {skipped} more like it in the last {now - last:.0f} s, not logged)"
        return True


_SECRET_QUERY = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|auth|password|secret)=)[^&\s\"]*")


def redact_query(text: str) -> str:
    """`text` with the values of credential-like query parameters (api_key=..., token=...) replaced by ***."""
    return _SECRET_QUERY.sub(r"\1***", text)


class RedactQueryFilter(logging.Filter):
    """Keep credentials a client put in a query string (?api_key=...) out of the logs (uvicorn's access log
    writes the full path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def install_log_filters(limits: ConnectionLimits) -> None:
    """Rate-limit connection-level warnings of uvicorn, asyncio and this module; redact query credentials."""
    for name in ("uvicorn.error", "asyncio", "trm.serving.connections"):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RateLimitFilter)]:
            logger.removeFilter(old)
        logger.addFilter(RateLimitFilter(limits.log_interval_s))
    for name in ("uvicorn.access", "uvicorn.error", "trm.serving"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
            logger.addFilter(RedactQueryFilter())


def effective_max_connections(limits: ConnectionLimits) -> int:
    """The connection limit, lowered to leave 64 file descriptors (model files, logs) under the process limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft - 64))


def resolve_http_parser(name: str) -> str:
    """httptools (uvicorn's C parser: a fraction of h11's per-request CPU) when installed, else h11."""
    if name not in HTTP_PARSERS:
        raise ValueError(f"unknown HTTP parser {name!r}; choose one of {', '.join(HTTP_PARSERS)}")
    if name != "auto":
        return name
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def guarded_protocol(limits: ConnectionLimits, max_connections: int, parser: str = "h11"):
    """uvicorn's HTTP protocol (`parser`: h11 or httptools) with a connection cap and a request-read timeout, which
    uvicorn lacks: a connection that has not sent a whole request within `request_read_timeout_s` (after opening,
    or after its previous response) is closed, so half-open and trickling clients cannot pile up until file
    descriptors run out. With httptools, a request head over `max_header_bytes` is a 400 (h11 checks it itself)."""
    if parser == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    conn_log = logging.getLogger("trm.serving.connections")

    class GuardedProtocol(Base):
        _read_timer = None
        # httptools only: the head being read, its size in parsed fields and in bytes received, requests read
        _in_head, _head_bytes, _head_received, _messages = False, 0, 0, 0

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                conn_log.warning("refused a connection: %d are open, the limit is %d (--max-connections)",
                                 len(self.connections) - 1, max_connections)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
            self._read_timer = self.loop.call_later(limits.request_read_timeout_s, self._read_timeout)

        def _read_timeout(self) -> None:
            self._read_timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not cycle.more_body:
                return  # the request is in; the app is answering it (re-armed when the response completes)
            conn_log.warning("closed a connection that sent no complete request within %s s "
                             "(--request-read-timeout)", limits.request_read_timeout_s)
            self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
            super().connection_lost(exc)

        if parser == "httptools":  # h11 bounds the head itself (h11_max_incomplete_event_size)
            def _grow_head(self, size: int) -> None:
                self._head_bytes += size
                if self._head_bytes > limits.max_header_bytes:  # uvicorn answers a parser error with a 400
                    raise ValueError(f"request head over {limits.max_header_bytes} bytes")

            def on_message_begin(self) -> None:
                self._in_head, self._head_bytes, self._head_received = True, 0, 0
                super().on_message_begin()

            def on_url(self, url: bytes) -> None:
                self._grow_head(len(url))
                super().on_url(url)

            def on_header(self, name: bytes, value: bytes) -> None:
                self._grow_head(len(name) + len(value) + 4)
                super().on_header(name, value)

            def on_headers_complete(self) -> None:
                self._in_head = False
                super().on_headers_complete()

            def on_message_complete(self) -> None:
                self._messages += 1
                super().on_message_complete()

            def data_received(self, data: bytes) -> None:
                """Also bound a head that arrives in pieces and never completes a header line."""
                messages = self._messages
                super().data_received(data)
                if self._messages == messages and self._in_head and not self.transport.is_closing():
                    self._head_received += len(data)
                    if self._head_received > limits.max_header_bytes:
                        self.logger.warning("Invalid HTTP request received.")
                        self.send_400_response(f"request head over {limits.max_header_bytes} bytes")

    return GuardedProtocol


def run_app(app, host: str, port: int, log_level: str = "info", graceful_timeout_s: float = 300.0,
            limits: ConnectionLimits | None = None) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then stops accepting and lets in-flight requests finish (a SIGTERM stop
    returns normally, so the process exits 0)."""
    import uvicorn

    limits = limits or ConnectionLimits()

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            """uvicorn re-raises the signals it caught once shut down; a SIGTERM it drained cleanly is not re-raised,
            so a supervisor's ordinary stop ends with exit status 0."""
            with super().capture_signals():
                yield
                captured = getattr(self, "_captured_signals", [])
                captured[:] = [sig for sig in captured if sig != signal.SIGTERM]

    max_connections = effective_max_connections(limits)
    if max_connections < limits.max_connections:
        log.warning("max connections lowered from %d to %d: the process may open only %d files",
                    limits.max_connections, max_connections, max_connections + 64)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=int(graceful_timeout_s), access_log=log_level == "debug",
                            http=guarded_protocol(limits, max_connections, resolve_http_parser(limits.http_parser)),
                            limit_concurrency=max_connections + 1,
                            timeout_keep_alive=limits.keep_alive_timeout_s,
                            h11_max_incomplete_event_size=limits.max_header_bytes)
    install_log_filters(limits)  # after uvicorn.Config, which (re)configures its loggers
    keep_freed_memory()
    Server(config).run()
