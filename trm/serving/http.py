"""HTTP pieces both embedded servers share: JSON errors, bearer auth, bounded request bodies, the app around its
API routes (/health, /v1/models, batcher lifetime), and the uvicorn runner.

Errors use the OpenAI shape ``{"error": {"message", "type", "param", "code"}}`` so the official client raises
them with their message intact.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trm.serving.batching import DynamicBatcher

try:  # a few times faster than json.dumps on the hot path; installed with verl (via tensordict)
    import orjson
except ImportError:  # pragma: no cover - the standard library does the same job, slower
    orjson = None

log = logging.getLogger("trm.serving")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


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


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error while serving %s", request.url.path)
    return error_response(500, f"internal server error: {type(exc).__name__}: {exc}", "server_error")


EXCEPTION_HANDLERS = {
    ApiError: _api_error_handler,
    HTTPException: _http_error_handler,
    Exception: _unexpected_error_handler,
}


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, reading at most `max_bytes` (413 beyond, 400 if not a JSON object)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {int(declared)} bytes, over the server limit of {max_bytes} bytes; "
                            "send fewer inputs per request or raise --max-body-mb")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body is over the server limit of {max_bytes} bytes; "
                                "send fewer inputs per request or raise --max-body-mb")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON ({exc}); send a JSON object with Content-Type "
                            "application/json") from None
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
        state["ready"] = True
        log.info("%s server ready: %s as %s", kind, model_path, ", ".join(served_model_names))
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.stop()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok" if state["ready"] else "loading", "model": served_model_names[0],
                             "queued": batcher.queued, "in_flight": batcher.in_flight, **batcher.stats.as_dict()},
                            status_code=200 if state["ready"] else 503)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse(models_payload(served_model_names, created, max_model_len))

    routes = [Route("/health", health, methods=["GET"]), Route("/v1/models", models, methods=["GET"]), *api_routes]
    middleware = [Middleware(BearerAuthMiddleware, api_key=api_key)] if api_key else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)


def run_app(app, host: str, port: int, log_level: str = "info", graceful_timeout_s: float = 300.0) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then stops accepting and lets in-flight requests finish (a SIGTERM stop
    returns normally, so the process exits 0)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            """uvicorn re-raises the signals it caught once shut down; a SIGTERM it drained cleanly is not re-raised,
            so a supervisor's ordinary stop ends with exit status 0."""
            with super().capture_signals():
                yield
                captured = getattr(self, "_captured_signals", [])
                captured[:] = [sig for sig in captured if sig != signal.SIGTERM]

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=int(graceful_timeout_s), access_log=log_level == "debug")
    Server(config).run()
