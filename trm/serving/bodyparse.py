"""JSON request bodies: parsed and checked (nesting, lone surrogates, strings over the server's character bound).

Large bodies are parsed in a helper process: `json.loads` holds the GIL, so a 32 MB body parsed by the server
process itself (even in a thread) stalls every other request, /health included, for the whole parse; in the helper
only the copy into a pipe costs the server, and a body that will be refused never comes back at all.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyError(ValueError):
    """A body the server refuses (400), with a message that says what to change."""


def _walk(value: Any, path: str = "body"):
    """(path, string) for every string in a parsed JSON value, depth first."""
    stack = [(path, value)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            stack.extend((f"{path}[{key!r}]", item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in reversed(list(enumerate(value))))


def parse_body(raw: bytes | bytearray, max_chars: int | None = None) -> Any:
    """The parsed body; BodyError for invalid JSON, nesting deeper than Python parses, a lone surrogate escape such
    as "\\ud800" (a pair, as in "\\ud83d\\ude00", is fine), or a string over `max_chars` characters."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError(f"request body is not valid JSON ({exc}); send a JSON object with Content-Type "
                        "application/json") from None
    except RecursionError:
        raise BodyError("request body nests JSON arrays/objects too deeply to parse; flatten it") from None
    check_surrogates = _SURROGATE_ESCAPE.search(raw) is not None  # valid UTF-8 JSON spells one only as an escape
    if check_surrogates or (max_chars is not None and len(raw) > max_chars):
        for path, text in _walk(body):
            if check_surrogates and _SURROGATE.search(text):
                raise BodyError(f"{path} contains a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), "
                                "which is not valid Unicode text; fix the encoder that produced it")
            if max_chars is not None and len(text) > max_chars:
                raise BodyError(f"{path} has {len(text)} characters; any text over {max_chars} characters has more "
                                "tokens than this server's limit, so it was refused without tokenizing; shorten it")
    return body


def _parse_in_helper(raw: bytes, max_chars: int | None) -> tuple[bool, Any]:
    try:
        return True, parse_body(raw, max_chars)
    except BodyError as exc:
        return False, str(exc)


class HelperParser:
    """One helper process (spawned on first use: the server holds model threads, so no fork) parsing large bodies."""

    def __init__(self):
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    async def parse(self, raw: bytes, max_chars: int | None) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            ok, value = await loop.run_in_executor(self._executor(), _parse_in_helper, raw, max_chars)
        except BrokenProcessPool:  # the helper died (e.g. out of memory): start a fresh one next time
            self.close()
            raise BodyError("the request body could not be parsed (the parser ran out of resources); send a "
                            "smaller body") from None
        if not ok:
            raise BodyError(value)
        return value

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
