"""Server processes on free loopback ports that start, wait for /health and stop in one place, and independent
reference forwards for the serving tests."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import httpx

from trm.serving import process
from trm.serving.process import ServerProcess, free_port, stop, trm_command  # noqa: F401  (names the tests import)

REPO = Path(__file__).resolve().parents[1]
PROMPT_PROBE = Path(__file__).resolve().parent / "prompt_probe"  # on a server's PYTHONPATH: logs its prompt ids


class ReferenceRewardModel:
    """Plain transformers, one unpadded forward per text: what the server's scores must equal."""

    def __init__(self, path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()

    def score(self, text: str) -> float:
        import torch

        with torch.inference_mode():
            return self.model(**self.tokenizer(text, return_tensors="pt")).logits[0, 0].item()

    def score_ids(self, ids: list[int]) -> float:
        import torch

        with torch.inference_mode():
            return self.model(input_ids=torch.tensor([ids])).logits[0, 0].item()

    def n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])


class ReferenceCausalLM:
    """Plain transformers greedy decoding, one prompt, no padding: what the chat server's temperature-0 text must
    equal, through the chat template (/v1/chat/completions) or on raw text (/v1/completions)."""

    def __init__(self, path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()

    def chat_ids(self, messages: list[dict]) -> list[int]:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    def text_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt)["input_ids"]

    def greedy_ids(self, ids: list[int], max_tokens: int) -> tuple[str, list[int]]:
        """(text, new tokens before the end token) of greedy `generate`."""
        import torch

        with torch.inference_mode():
            out = self.model.generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, len(ids):].tolist()
        for i, token in enumerate(new):
            if token in self.model.generation_config.eos_token_id:
                new = new[:i]
                break
        return self.tokenizer.decode(new, skip_special_tokens=True), new

    def greedy_chat(self, messages: list[dict], max_tokens: int) -> tuple[str, list[int]]:
        return self.greedy_ids(self.chat_ids(messages), max_tokens)

    def greedy_text(self, prompt: str, max_tokens: int) -> tuple[str, list[int]]:
        return self.greedy_ids(self.text_ids(prompt), max_tokens)


@contextlib.asynccontextmanager
async def asgi_client(app, base_url: str = "http://trm"):
    """An httpx client on a server app in this process, its lifespan (batcher) running: no port, no model reload.
    App exceptions become 500 responses, as behind uvicorn."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=60) as client:
            yield client


def spawn(command: list[str], port: int, log_dir: Path, env: dict | None = None, timeout: float = 120.0,
          log_name: str | None = None) -> ServerProcess:
    """:func:`trm.serving.process.spawn` with the output in LOG_DIR/server-PORT.log, run from the repo root."""
    return process.spawn(command, port, Path(log_dir) / (log_name or f"server-{port}.log"), env=env, timeout=timeout,
                         cwd=REPO)


@contextlib.contextmanager
def running_server(args: list[str], port: int | None = None, timeout: float = 180.0, env: dict | None = None) -> Iterator[str]:
    """Start `python -m trm <args> --port P` and yield its base URL once GET /health answers 200 (the log, in
    $TMPDIR, is shown if it fails to come up)."""
    port = port or free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"trm-test-server-{port}.log"
    with process.running_server(args, log_path, port=port, timeout=timeout, env=env) as server:
        yield server.url
