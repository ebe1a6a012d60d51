"""Helpers for the serving tests: independent reference forwards, and server processes (also behind conftest's
`running_server`) that start, wait for /health and stop in one place."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


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


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> None:
    """Poll GET /health until 200; a server that exits or stays unhealthy raises with its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not healthy after {timeout}s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)  # polling a health endpoint with a deadline, not a synchronisation sleep


def spawn(command: list[str], port: int, log_dir: Path, env: dict | None = None, timeout: float = 120.0,
          log_name: str | None = None) -> ServerProcess:
    """Start a server command (output to LOG_DIR/server-PORT.log) and wait for /health; the caller `stop`s it."""
    log_path = Path(log_dir) / (log_name or f"server-{port}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log_path, timeout)
    except BaseException:
        stop(proc)
        raise
    return ServerProcess(url, proc, log_path)


def trm_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trm", *args]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the servers drain and exit), SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
