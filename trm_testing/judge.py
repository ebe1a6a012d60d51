"""A scripted OpenAI-compatible judge for tests and demos: a loopback FastAPI server whose answers come from a
policy function, so tests decide exactly what the "LLM" says (and can inject 429/500 faults or stalls).

    with ScriptedJudge(policy) as judge:          # policy(request: JudgeRequest) -> str | Fault
        client = ChatClient(judge.url, "scripted")

Run as a script it serves the deterministic ``demo`` policy (used for the example picture in the docs):
    python -m trm_testing.judge --port 8011
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from trm.dag.prompts import SYSTEM_PROMPT as STRUCTURE_SYSTEM
from trm.preference.prompts import AGGREGATE_SYSTEM, PAIRWISE_SYSTEM, SUMMARY_SYSTEM
from trm_testing.serving import free_port


@dataclass
class Fault:
    """Answer with an HTTP error instead of a completion."""

    status: int = 500
    message: str = "injected fault"


@dataclass
class JudgeRequest:
    """One choice being generated: the request body, which choice of n, and the request's kind."""

    body: dict
    choice: int
    call: int  # running number of the HTTP request (0-based)

    @property
    def messages(self) -> list[dict]:
        return self.body["messages"]

    @property
    def user(self) -> str:
        return self.messages[-1]["content"]

    @property
    def kind(self) -> str:
        """structure | summary | dimension | aggregate | other"""
        system = self.messages[0]["content"] if self.messages and self.messages[0]["role"] == "system" else ""
        return {
            STRUCTURE_SYSTEM: "structure",
            SUMMARY_SYSTEM: "summary",
            PAIRWISE_SYSTEM: "dimension",
            AGGREGATE_SYSTEM: "aggregate",
        }.get(system, "other")

    # --- helpers to read the structuring prompt ---
    @property
    def step(self) -> int:
        return int(re.search(r"NEW STEP \(id (\d+)\)", self.user).group(1))

    @property
    def main_path(self) -> list[int]:
        line = re.search(r"MAIN PATH \([^)]*\): ([\d, ]+)", self.user).group(1)
        return [int(x) for x in line.split(",")]

    @property
    def open_leaves(self) -> list[int]:
        match = re.search(r"OPEN BRANCH LEAVES \(ends of abandoned lines of thought\): ([\d, ]+)", self.user)
        return [int(x) for x in match.group(1).split(",")] if match else []

    @property
    def new_step_text(self) -> str:
        return self.user.split(f"NEW STEP (id {self.step}):\n", 1)[1].split("\n\nChoose exactly one action", 1)[0]

    def traces(self) -> tuple[str, str]:
        """The two traces of a dimension or aggregation request."""
        text = self.user
        one = text.split("=== Trace 1", 1)[1].split("=== Trace 2", 1)[0]
        two = text.split("=== Trace 2", 1)[1]
        for end in ("\nCRITERION VERDICTS:", "\n\nWrite one short paragraph"):
            two = two.split(end, 1)[0]
        return one, two


Policy = Callable[[JudgeRequest], "str | Fault"]


@dataclass
class ScriptedJudge:
    policy: Policy
    honour_n: bool = True  # False: return one choice whatever n is (like servers that ignore n)
    port: int = 0
    requests: list[dict] = field(default_factory=list)
    model_name: str = "scripted-judge"

    def __post_init__(self):
        self._lock = threading.Lock()
        app = FastAPI()

        @app.get("/health")
        def health():
            return {"status": "ok"}

        @app.get("/v1/models")
        def models():
            return {"object": "list", "data": [{"id": self.model_name, "object": "model"}]}

        @app.post("/v1/chat/completions")
        def completions(body: dict, request: Request):  # sync: runs in a worker thread, so a policy may block
            with self._lock:
                call = len(self.requests)
                self.requests.append({**body, "_authorization": request.headers.get("authorization")})
            n = int(body.get("n") or 1) if self.honour_n else 1
            texts = []
            for choice in range(n):
                answer = self.policy(JudgeRequest(body, choice, call))
                if isinstance(answer, Fault):
                    return JSONResponse({"error": {"message": answer.message}}, status_code=answer.status)
                texts.append(answer)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            completion_tokens = sum(len(t.split()) for t in texts)
            return {
                "id": f"cmpl-{call}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.model_name),
                "choices": [
                    {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }

        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return len(self.requests)
        return sum(1 for body in self.requests if JudgeRequest(body, 0, 0).kind == kind)

    def __enter__(self) -> "ScriptedJudge":
        self.port = self.port or free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:  # polling the server's own flag with a deadline
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted judge did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


# ---------------------------------------------------------------- policies


def decision(text: str, which: str) -> str:
    return f"{text}\n<|decision|> {which}"


def demo_policy(req: JudgeRequest) -> str:
    """Deterministic judge for demos: reads the step's first word for structure, prefers the shorter trace."""
    if req.kind == "structure":
        word = req.new_step_text.strip().split(" ", 1)[0].strip(",.:").lower()
        main = req.main_path
        if word in ("alternatively", "instead") and len(main) >= 2:
            return "Starts a new approach from the problem statement.\n<|action|>backtrack <|previous|>0"
        if word in ("wait", "hmm") and len(main) >= 2:
            target = main[-3] if len(main) >= 3 else main[-2]
            return f"Revisits step {target}.\n<|action|>backtrack <|previous|>{target}"
        if word in ("combining", "together", "both") and req.open_leaves:
            return f"Joins two branches.\n<|action|>merge <|previous|>{req.open_leaves[0]},{main[-1]}"
        return "Carries on from the previous step.\n<|action|>continue"
    if req.kind == "summary":
        segment = req.user.split("SEGMENT:\n", 1)[1]
        return " ".join(segment.split()[:14]).rstrip(".,") + "."
    if req.kind in ("dimension", "aggregate"):
        one, two = req.traces()
        which = "Trace 1" if len(one) < len(two) else "Trace 2" if len(two) < len(one) else "Tie"
        return decision("The shorter trace reaches the answer with fewer detours.", which)
    return "I can only judge traces."


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the deterministic demo judge on a loopback port")
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args()
    from trm.ports import PortInUse, check_port_free

    try:  # fail at once, naming the holder, rather than in the server thread
        check_port_free("127.0.0.1", args.port)
    except PortInUse as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    with ScriptedJudge(demo_policy, port=args.port) as judge:
        print(f"scripted demo judge at {judge.url} (Ctrl-C to stop)", flush=True)
        try:
            judge._thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
