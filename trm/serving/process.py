"""A server as a child process on a loopback port: started, healthy before anyone uses it, stopped after.

`trm rl toy` runs its TRM and verifier servers this way; the tests and benches (``trm_testing.serving``) too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trm_command(*args: str) -> list[str]:
    """``python -m trm ARGS`` with this interpreter."""
    return [sys.executable, "-m", "trm", *args]


@dataclass
class ServerProcess:
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn(command: list[str], port: int, log_path: Path, env: dict | None = None, timeout: float = 120.0,
          cwd: Path | None = None) -> ServerProcess:
    """Start ``command`` (its output to ``log_path``) and wait until 127.0.0.1:``port`` answers GET /health
    (:func:`trm.client.wait_healthy`, which gives up at once if the process exits). On failure the process is
    stopped and the error carries the log's tail; otherwise the caller :func:`stop` s it."""
    from trm.client import BackendsUnavailable, wait_healthy
    from trm.errors import RunFailed

    log_path = Path(log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout, abort=lambda: None if proc.poll() is None else f"server exited with {proc.returncode}")
    except BackendsUnavailable as error:
        stop(proc)
        raise RunFailed(f"`{' '.join(map(str, command))}` did not become healthy: {error}\n"
                        f"--- {log_path} (tail) ---\n{log_path.read_text(errors='replace')[-3000:]}") from None
    except BaseException:
        stop(proc)
        raise
    return ServerProcess(url, proc, log_path)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the servers drain and exit), SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_server(args: list[str], log_path: Path, port: int | None = None, timeout: float = 180.0,
                   env: dict | None = None) -> Iterator[ServerProcess]:
    """``python -m trm ARGS --port P`` on a free (or the given) loopback port, healthy inside the block."""
    port = port or free_port()
    server = spawn(trm_command(*args, "--port", str(port)), port, log_path, env=env, timeout=timeout)
    try:
        yield server
    finally:
        stop(server.proc)
