"""HTTP pieces both embedded servers share: JSON errors, bearer auth, bounded request bodies, uvicorn runner.

Errors use the OpenAI shape ``{"error": {"message", "type", "param", "code"}}`` so the official client raises
them with their message intact.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

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


def run_app(app, host: str, port: int, log_level: str = "info", graceful_timeout_s: float = 300.0) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then stops accepting and lets in-flight requests finish."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=int(graceful_timeout_s), access_log=log_level == "debug")
    uvicorn.Server(config).run()
