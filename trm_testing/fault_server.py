"""Fault injection for backend-pool tests: a tiny HTTP/1.1 server on a loopback port, run in a thread.

It exists only to produce faults the real servers cannot be asked for (injected latency, 500s, connections
dropped mid-request, scripted verifier replies). Its "forward" action passes a request through unchanged to
a real server, so the answers the tests check still come from the project's own servers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable

import httpx

# An action decides what happens to one request. Kinds:
#   ("forward",)                 pass through to `target` (a real server) and relay its answer
#   ("status", code, json_obj)   answer with this status and JSON body
#   ("drop",)                    close the connection without answering
#   ("delay", seconds, action)   wait, then perform `action`
Action = tuple


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class FaultServer:
    """``script(index, request) -> action`` picks each request's fate; ``index`` counts from 0."""

    script: Callable[[int, Request], Action]
    target: str | None = None
    capacity: int | None = None  # requests served at once; others queue (a backend with fixed capacity)
    requests: list[Request] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __enter__(self) -> "FaultServer":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    async def start(self, port: int = 0, backlog: int = 100) -> asyncio.AbstractServer:
        """Listen on the running event loop: the thread of ``with FaultServer(...)``, or a benchmark's own process."""
        self._client = httpx.AsyncClient(timeout=60.0)
        self._capacity = asyncio.Semaphore(self.capacity) if self.capacity else None
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, backlog=backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self._server

    def __exit__(self, *exc) -> None:
        async def stop():
            self._server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:  # requests still sleeping in an injected delay
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._client.aclose()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(path, headers, body)
                index = len(self.requests)
                self.requests.append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self._capacity is None:
                        answer = await self._perform(self.script(index, request), request)
                    else:
                        async with self._capacity:
                            answer = await self._perform(self.script(index, request), request)
                finally:
                    self.in_flight -= 1
                if answer is None:
                    writer.close()
                    return
                status, payload = answer
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _perform(self, action: Action, request: Request) -> tuple[int, bytes] | None:
        kind = action[0]
        self.actions.append(kind)
        if kind == "delay":
            await asyncio.sleep(action[1])
            self.actions.pop()
            return await self._perform(action[2], request)
        if kind == "drop":
            return None
        if kind == "status":
            return action[1], json.dumps(action[2]).encode()
        if kind == "forward":
            forwarded = await self._client.post(
                f"{self.target}{request.path}", content=request.body, headers={"content-type": "application/json"}
            )
            return forwarded.status_code, forwarded.content
        raise ValueError(f"unknown fault action {action!r}")


def chat_completion(text: str) -> dict:
    """An OpenAI-shaped chat completion whose message is ``text`` (for scripted verifier replies)."""
    return {
        "id": "scripted",
        "object": "chat.completion",
        "model": "TIGER-Lab/general-verifier",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def verifier_prompts(request: Request) -> list[str]:
    """The verifier inputs of one request: the prompts of a /v1/completions request (a list or one string), or the
    message contents of a chat request joined as the plain verifier template joins them."""
    body = request.json()
    if request.path == "/v1/completions":
        return body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    return ["".join(message["content"] for message in body["messages"])]


def verifier_reply(request: Request, decide: Callable[[str], str | None], finish_reason: str = "stop") -> Action:
    """A verifier's answer on either API (``/v1/completions`` with one choice per prompt, or a chat completion):
    ``decide(prompt)`` is the reply text for each prompt (None: a reply without content)."""
    texts = [decide(prompt) for prompt in verifier_prompts(request)]
    if request.path != "/v1/completions":
        completion = chat_completion("")
        completion["choices"][0].update(message={"role": "assistant", "content": texts[0]}, finish_reason=finish_reason)
        return "status", 200, completion
    return "status", 200, {
        "id": "scripted", "object": "text_completion", "model": "TIGER-Lab/general-verifier",
        "choices": [{"index": i, "text": text, "finish_reason": finish_reason} for i, text in enumerate(texts)],
        "usage": {"prompt_tokens": len(texts), "completion_tokens": len(texts), "total_tokens": 2 * len(texts)},
    }


_RESERVED: list[socket.socket] = []


def dead_backend() -> str:
    """``host:port`` of a port that is bound but never listens: connections are refused, and no server
    started meanwhile (ours or another test run's) can take the port, as it could after a plain free_port()."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)  # held for the life of the test process
    return f"127.0.0.1:{sock.getsockname()[1]}"
