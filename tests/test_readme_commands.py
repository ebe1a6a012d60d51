"""Every README.md code block marked `cpu` runs verbatim, in README order, against the tiny models.

The blocks run as a reader would run them: from a checkout (here a scratch folder of links to this one, with a
fresh runs/), `.venv/bin` on PATH, after `make quickstart` (its tiny models are linked in as
runs/quickstart/models; the README's own training command makes runs/quickstart/trm). Servers a block starts in
the background keep running for the blocks after it, as in a reader's shell, and are stopped at the end.
Blocks marked `gpu`, `remote` or `setup` are not run; every shell or Python block must carry one of the marks.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # servers, training and generation on CPU: about 3 minutes on 2 shared cores

REPO = Path(__file__).resolve().parents[1]
MARKS = ("cpu", "gpu", "remote", "setup")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.M | re.S)


def readme_blocks(text: str) -> list[tuple[str, str, str, int]]:
    """(language, mark or "", body, line number) of every fenced block."""
    blocks = []
    for match in FENCE.finditer(text):
        info = match.group(1).split()
        language = info[0] if info else ""
        mark = info[1] if len(info) > 1 else ""
        blocks.append((language, mark, match.group(2), text.count("\n", 0, match.start()) + 1))
    return blocks


BLOCKS = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
CPU_BLOCKS = [(language, body, line) for language, mark, body, line in BLOCKS if mark == "cpu"]

# What a block must print besides exiting 0, keyed by a command it contains.
EXPECTED = {
    "bash trm.sh --dry-run": ["MODEL_PATH '/path/to/TRM-8B' does not exist",
                              "-m trm serve reward --model /path/to/TRM-8B", "dry run skipped: model folder"],
    "trm inspect": ["TRM input"],
    "bash train_rm.sh --dry-run": ["-m trm train-rm", "dry run checked:", "dry run skipped:"],
    "trm eval rm": ["| reward model |"],
    "trm reward": ["verdicts:"],
    "trm dag build": ["0 of ", "steps fell back"],
    "trm preference build": [],
    "trm eval figures": [],
    "trm eval bon": ["trm"],
}


def test_every_command_block_is_marked():
    for language, mark, _, line in BLOCKS:
        if language in ("bash", "sh", "shell", "python", "console"):
            assert mark in MARKS, f"README.md line {line}: ```{language} block without a mark ({', '.join(MARKS)})"
    assert len(CPU_BLOCKS) >= 8


@pytest.fixture(scope="module")
def checkout(tiny_models, tmp_path_factory):
    """A scratch folder that looks like this checkout after `make quickstart`, and the environment to run in."""
    root = tmp_path_factory.mktemp("readme")
    for entry in REPO.iterdir():
        if entry.name not in ("runs", ".git", ".pytest_cache"):
            (root / entry.name).symlink_to(entry)
    (root / "runs" / "quickstart").mkdir(parents=True)
    (root / "runs" / "quickstart" / "models").symlink_to(Path(tiny_models["reward"]).parent)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    pids: list[int] = []
    yield root, env, pids
    for pid in pids:  # the servers the blocks left running, as a reader would stop them
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 60
    for pid in pids:  # children of the blocks' shells, not ours: wait for each to be gone
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling with a deadline
        assert not _alive(pid), f"background process {pid} ignored SIGTERM"


def _alive(pid: int) -> bool:
    """Running (an exited orphan may linger as a zombie until init reaps it: that counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("language,body,line", CPU_BLOCKS, ids=[f"line{line}" for _, _, line in CPU_BLOCKS])
def test_readme_block_runs_verbatim(language, body, line, checkout):
    root, env, pids = checkout
    pid_file = root / f".background-{line}"
    if language == "python":
        script = root / f".block-{line}.py"
        script.write_text(body)
        command = ["python", str(script)]
    else:
        script = root / f".block-{line}.sh"
        # as typed into a shell that stops at the first failure; background jobs are recorded to be stopped later
        script.write_text(f"set -eo pipefail\ntrap 'jobs -p > {pid_file}' EXIT\n{body}")
        command = ["bash", str(script)]
    # output to files, not pipes: a server left in the background keeps a pipe open and the run would never end
    out_path, err_path = root / f".block-{line}.out", root / f".block-{line}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        result = subprocess.run(command, cwd=root, env=env, stdout=out, stderr=err, timeout=900)
    if pid_file.exists():
        pids += [int(pid) for pid in pid_file.read_text().split()]
    stdout = out_path.read_text()
    output = stdout + err_path.read_text()
    assert result.returncode == 0, f"README.md block at line {line} failed:\n{body}\n--- output ---\n{output[-4000:]}"
    for command_text, expected in EXPECTED.items():
        if command_text in body:
            for text in expected:
                assert text in output, f"line {line}: {text!r} not in the output of {command_text}:\n{output[-3000:]}"
    if "trm score --input data/sample.json --trm-endpoint" in body:
        http, local = [float(x) for x in re.findall(r"^(-?\d+\.\d+(?:e-?\d+)?)$", stdout, re.M)][:2]
        assert http == pytest.approx(local, abs=1e-4)  # the same score over HTTP and in-process
