"""Shared fixtures: tiny models built once per session, and the project's own servers on loopback ports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from trm_testing.serving import running_server

# Never touch a model hub from the tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Servers and clients share two cores in CI; one torch thread each avoids oversubscription (a 2-layer forward
# was measured 15x slower with 2 threads per process on a busy 2-core machine). Inherited by server processes.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Paths of the tiny reward and chat models (`trm tiny`), built once per test session."""
    from trm.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture
def start_server():
    """Factory fixture: `url = start_server(["serve", "reward", "--model", path])`; stopped after the test."""
    stack = []

    def _start(args: list[str], **kwargs) -> str:
        manager = running_server(args, **kwargs)
        url = manager.__enter__()
        stack.append(manager)
        return url

    yield _start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def reward_server(tiny_models) -> Iterator[str]:
    """One embedded reward server on the tiny reward model, shared by the whole session."""
    with running_server(["serve", "reward", "--model", str(tiny_models["reward"])]) as url:
        yield url
