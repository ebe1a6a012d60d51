"""Issue 15, items 1-5: the failures a newcomer met silently or slowly now stop at once and say what happened.

Each test sets up the situation that used to go wrong (a port already served, nothing listening at an endpoint, a
causal LM served as a TRM, a judge whose every answer is rejected, a launcher run outside the venv) and checks the
fast, named failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trm_testing.judge import ScriptedJudge
from trm_testing.serving import REPO, trm_command
from trm_testing.serving import free_port
from trm.client import BackendPool, BackendsUnavailable

ENV = {**os.environ, "PYTHON": sys.executable}


def run(command: list[str], env: dict | None = None, cwd: Path = REPO, timeout: float = 120):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env or ENV)


@pytest.fixture
def held_port():
    """A port some other process (this one) listens on, as a forgotten server would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- 1. a taken port --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,model", [("reward", "reward"), ("chat", "chat")])
def test_serve_refuses_a_taken_port_naming_the_holder(kind, model, tiny_models, held_port):
    result = run(trm_command("serve", kind, "--model", str(tiny_models[model]), "--port", str(held_port)))
    assert result.returncode == 2
    assert f"port {held_port} on 127.0.0.1 is already in use (held by pid {os.getpid()}" in result.stderr
    assert "server ready" not in result.stderr  # it stopped before loading the model


@pytest.mark.parametrize("script,model", [("trm.sh", "reward"), ("server/general-verifier.sh", "chat")])
def test_launchers_refuse_a_taken_port_and_dry_runs_say_so(script, model, tiny_models, held_port):
    env = {**ENV, "MODEL_PATH": str(tiny_models[model]), "PORT": str(held_port)}
    launch = run(["bash", str(REPO / script)], env=env)
    assert launch.returncode == 2 and f"port {held_port}" in launch.stderr and f"pid {os.getpid()}" in launch.stderr
    dry = run(["bash", str(REPO / script), "--dry-run"], env=env)
    assert dry.returncode == 0 and f"port {held_port} is in use (a real launch would stop here)" in dry.stderr


def test_serve_wait_tells_a_foreign_server_from_the_one_started(reward_server):
    # The old quickstart: another server already answers /health on the port, so waiting "succeeded" on it.
    from trm.serving.cli import main as serve_main

    result = run(trm_command("serve", "wait", reward_server, "--expect-model", "quickstart-1234", "--timeout", "30"))
    assert result.returncode == 1
    assert "is not the server that was started (it serves RewardModel, not quickstart-1234)" in result.stderr
    assert serve_main(["wait", reward_server, "--expect-model", "RewardModel", "--timeout", "30"]) == 0


def test_serve_wait_stops_when_the_server_process_has_exited():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = free_port()
    result = run(trm_command("serve", "wait", f"127.0.0.1:{port}", "--pid", str(dead.pid), "--timeout", "300"))
    assert result.returncode == 1 and f"process {dead.pid} exited before" in result.stderr


# -- 2. nothing listening ---------------------------------------------------------------------------------------------
def test_refused_connections_fail_within_the_connect_budget_not_the_deadline(caplog):
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    assert BackendPool(dead).connect_budget == 10.0 and BackendPool(dead).deadline == 300.0  # the defaults
    pool = BackendPool(dead, connect_budget=1.0, deadline=300.0)

    async def call():
        try:
            # the guard is far below the 300 s deadline the old behaviour waited for
            return await asyncio.wait_for(pool.post_json("/v1/embeddings", {"input": "x"}), timeout=120)
        finally:
            await pool.aclose()

    with caplog.at_level(logging.WARNING, logger="trm.client"), pytest.raises(BackendsUnavailable) as info:
        asyncio.run(call())
    message = str(info.value)
    assert "no backend accepted a connection" in message and "connect budget 1s" in message
    assert all(f"http://{url}: ConnectError" in message for url in dead)
    # visible retries: one line per backend going down, however many attempts were made
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert len(down) == 2 and sum(stats["failures"] for stats in pool.stats().values()) > 2, down


def test_a_dead_backend_among_live_ones_is_logged_once(reward_server, caplog):
    from trm.rewards.thinking import score_reasoning

    dead = f"http://127.0.0.1:{free_port()}"
    pool = BackendPool([dead, reward_server], unhealthy_cooldown=0.0)

    async def go():
        try:
            return await score_reasoning(pool, ["a", "b", "c", "d"] * 3, chunk_size=1)
        finally:
            await pool.aclose()

    with caplog.at_level(logging.WARNING, logger="trm.client"):
        scores = asyncio.run(go())
    assert len(scores) == 12
    lines = [r.getMessage() for r in caplog.records]
    assert sum(f"backend {dead} is down" in line for line in lines) == 1, lines
    assert pool.stats()[dead]["failures"] >= 1


def test_trm_score_at_a_dead_endpoint_fails_in_seconds_and_says_why():
    port = free_port()
    result = run(trm_command("score", "--input", "data/sample.json", "--trm-endpoint", f"127.0.0.1:{port}"),
                 timeout=120)  # the old behaviour: silent for the 300 s deadline
    assert result.returncode != 0
    assert "no backend accepted a connection" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert result.stderr.count("is down") == 1  # one line for the state change, not one per retry


# -- 3. a causal LM served as a TRM -----------------------------------------------------------------------------------
def test_reward_server_refuses_a_checkpoint_without_score_head(tiny_models):
    result = run(trm_command("serve", "reward", "--model", str(tiny_models["chat"]), "--port", str(free_port())))
    assert result.returncode == 2
    assert "has no weights for score.weight" in result.stderr and "--allow-random-head" in result.stderr


def test_random_head_only_when_asked(tiny_models):
    from trm.serving.scorer import MissingScoreHead, RewardScorer

    with pytest.raises(MissingScoreHead):
        RewardScorer(tiny_models["chat"])
    scores = RewardScorer(tiny_models["chat"], allow_random_head=True).score(["some reasoning"])
    assert len(scores) == 1
    RewardScorer(tiny_models["reward"])  # a real TRM checkpoint loads as before


# -- 4. a judge whose answers are all rejected ------------------------------------------------------------------------
def test_dag_build_reports_fallbacks_and_fails_above_the_limit(tmp_path):
    inputs, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    trace = "First idea.\n\nWait, recheck.\n\nAlternatively, another route.\n\nTherefore 4."
    inputs.write_text(json.dumps({"prompt": "Q", "trace": trace}) + "\n")
    args = ["dag", "build", "--input", str(inputs), "--output", str(output), "--judge-model", "judge",
            "--rounds", "1"]
    with ScriptedJudge(lambda request: "no idea, sorry") as judge:
        failed = run(trm_command(*args, "--judge-url", judge.url))
        assert failed.returncode == 1, failed.stderr
        assert "3 of 3 steps fell back to 'continue' (no valid judge answer): 100.0%" in failed.stderr
        assert "above 10.0%" in failed.stderr and "--max-fallback-rate 1" in failed.stderr
        accepted = run(trm_command(*args, "--judge-url", judge.url, "--max-fallback-rate", "1"))
        assert accepted.returncode == 0 and "3 of 3 steps fell back" in accepted.stderr


# -- 5. a launcher run outside the venv -------------------------------------------------------------------------------
LAUNCHER_FILES = ["train.sh", "train_rm.sh", "trm.sh", "server/launch-lib.sh", "trm/ports.py"]


@pytest.fixture
def bare_checkout(tmp_path):
    """The launchers in a folder with no .venv, run by a shell whose python3 cannot import trm (no venv active)."""
    for name in LAUNCHER_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # python3 that does not see the installed trm: this interpreter without site-packages, isolated
    (bin_dir / "python3").write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    (bin_dir / "python3").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", PYTHONNOUSERSITE="1", PYTHONPATH="")
    return tmp_path, env


@pytest.mark.parametrize("script", ["train.sh", "train_rm.sh", "trm.sh"])
def test_launchers_without_venv_say_what_to_do(script, bare_checkout, tiny_models):
    root, env = bare_checkout
    env["MODEL_PATH"] = str(tiny_models["reward"])
    result = run(["bash", str(root / script), "--dry-run"], env=env, cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot import the trm package. Run 'make test' first" in result.stderr
    assert "source .venv/bin/activate" in result.stderr and "Traceback" not in result.stderr


def test_launchers_use_the_project_venv_when_it_is_not_active(bare_checkout, tiny_models):
    root, env = bare_checkout
    (root / ".venv").symlink_to(sys.prefix)  # the venv the tests run in, where a fresh `make test` would put it
    result = run(["bash", str(root / "trm.sh"), "--dry-run"], env={**env, "MODEL_PATH": str(tiny_models["reward"])},
                 cwd=root)
    assert result.returncode == 0, result.stderr
    assert f"using {root}/.venv/bin/python (the project's .venv, not active in this shell)" in result.stderr
    assert f"{root}/.venv/bin/python -m trm serve reward" in result.stdout


# -- 6. dry runs check the same things and say what they skipped -------------------------------------------------------
def test_dry_runs_of_all_launchers_report_checked_and_skipped(tmp_path):
    env = {**ENV, "MODEL_PATH": str(tmp_path / "not-here"), "TRAIN_FILE": str(tmp_path / "pairs.json"),
           "TOTAL_TRAINING_STEPS": "2"}
    reports = {}
    for script, extra in [("trm.sh", []), ("train_rm.sh", []),
                          ("train.sh", ["data.train_files=data/webinstruct_tiny.parquet",
                                        "data.val_files=data/webinstruct_tiny.parquet", "data.train_batch_size=8"])]:
        result = run(["bash", str(REPO / script), "--dry-run", *extra], env=env, timeout=300)
        assert result.returncode == 0, (script, result.stderr)
        checked = re.search(rf"^{script}: dry run checked: (.*)$", result.stderr, re.M)
        skipped = re.search(rf"^{script}: dry run skipped: (.*)$", result.stderr, re.M)
        assert checked and skipped, (script, result.stderr)
        assert f"{sys.executable} imports trm" in checked.group(1), script
        reports[script] = (result.stdout, checked.group(1), skipped.group(1), result.stderr)
    # the placeholder model path: the command is still printed, and the missing path named
    stdout, _, skipped, stderr = reports["trm.sh"]
    assert "-m trm serve reward --model" in stdout and "model folder (MODEL_PATH does not exist)" in skipped
    assert f"MODEL_PATH '{tmp_path / 'not-here'}' does not exist" in stderr
    stdout, _, skipped, stderr = reports["train_rm.sh"]
    assert "-m trm train-rm" in stdout and "TRAIN_FILE (does not exist)" in skipped
    assert stdout.count("\n") == 1  # the command alone on stdout, nothing stray
    assert "verl config" in reports["train.sh"][1] and "GPUs" in reports["train.sh"][2]
