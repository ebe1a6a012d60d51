"""trm.sh, server/trm.sh and server/general-verifier.sh: backend choice, fail-fast checks, embedded servers."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai
import pytest

from trm_testing.serving import REPO, ReferenceRewardModel, spawn, stop
from trm_testing.serving import free_port

LAUNCHERS = ["trm.sh", "server/trm.sh", "server/general-verifier.sh"]


def _run(script, env, *args, cwd=REPO):
    return subprocess.run(["bash", str(REPO / script), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHON": sys.executable, **env})


# Stand-in server entry point: records what the server process was given (its argv as Python sees it, and the
# command line every user sees in `ps`), then exits.
RECORDING_ENTRY = """
import json, os, sys
if __name__ == "__main__":
    cmdline = open("/proc/self/cmdline", "rb").read().decode().split("\\0")
    record = {"argv": sys.argv[1:], "cmdline": cmdline, "env_key": os.environ.get("TRM_API_KEY")}
    open(os.environ["ENTRY_RECORD"], "w").write(json.dumps(record))
"""


@pytest.fixture
def fake_gpu_box(tmp_path):
    """PATH with an nvidia-smi that lists a GPU, PYTHONPATH with sglang/vllm stand-ins whose server entry points
    import (and record their arguments when run)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-fake)'\n")
    smi.chmod(0o755)
    site = tmp_path / "site"
    for module in ("sglang.launch_server", "vllm.entrypoints.openai.api_server"):
        *packages, name = module.split(".")
        folder = site.joinpath(*packages)
        for depth in range(1, len(packages) + 1):
            site.joinpath(*packages[:depth]).mkdir(parents=True, exist_ok=True)
            (site.joinpath(*packages[:depth]) / "__init__.py").touch()
        (folder / f"{name}.py").write_text(RECORDING_ENTRY)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(site),
            "ENTRY_RECORD": str(tmp_path / "entry.json")}


@pytest.mark.parametrize("script", LAUNCHERS)
def test_missing_or_wrong_model_path_fails_at_once(script, tmp_path):
    missing = _run(script, {"MODEL_PATH": str(tmp_path / "nope")})
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "MODEL_PATH" in missing.stderr
    not_a_model = _run(script, {"MODEL_PATH": str(tmp_path)})
    assert not_a_model.returncode == 2 and "no config.json" in not_a_model.stderr
    bad_backend = _run(script, {"MODEL_PATH": str(tmp_path), "BACKEND": "tgi"})
    assert bad_backend.returncode == 2


@pytest.mark.parametrize("script,model", [("trm.sh", "reward"), ("server/general-verifier.sh", "chat")])
def test_open_host_without_key_is_warned_about(script, model, tiny_models):
    result = _run(script, {"MODEL_PATH": str(tiny_models[model]), "HOST": "0.0.0.0"}, "--dry-run")
    assert result.returncode == 0 and "API_KEY is empty" in result.stderr and "--host 0.0.0.0" in result.stdout
    keyed = _run(script, {"MODEL_PATH": str(tiny_models[model]), "HOST": "0.0.0.0", "API_KEY": "k"}, "--dry-run")
    assert "warning" not in keyed.stderr and keyed.returncode == 0


def test_sglang_gets_the_key_but_ps_and_logs_do_not_show_it(tiny_models, fake_gpu_box):
    import json

    env = {"MODEL_PATH": str(tiny_models["reward"]), "API_KEY": "s3cret-key", **fake_gpu_box}
    result = _run("trm.sh", env, "--dry-run")
    assert "s3cret-key" not in result.stdout + result.stderr and "--api-key" not in result.stdout
    assert "API key passed to sglang through the environment (TRM_API_KEY)" in result.stdout
    started = _run("trm.sh", env)  # the stand-in sglang.launch_server records what it was given, then exits
    assert started.returncode == 0, started.stderr
    record = json.loads(open(fake_gpu_box["ENTRY_RECORD"]).read())
    assert record["argv"][-2:] == ["--api-key", "s3cret-key"]  # sglang's parser receives the key
    assert "--is-embedding" in record["argv"] and "--served-model-name" in record["argv"]
    assert not any("s3cret-key" in part for part in record["cmdline"])  # what `ps` shows
    assert record["env_key"] is None  # not inherited by the processes sglang starts
    keyless = _run("trm.sh", {**env, "API_KEY": ""})
    assert keyless.returncode == 0 and "--api-key" not in json.loads(open(fake_gpu_box["ENTRY_RECORD"]).read())["argv"]


def test_auto_mode_needs_the_server_entry_point_not_just_the_package(tiny_models, fake_gpu_box, tmp_path):
    # a plain `sglang` install: the package imports, its server does not (sgl_kernel missing)
    (tmp_path / "site" / "sglang" / "launch_server.py").write_text("import sgl_kernel\n")
    result = _run("trm.sh", {"MODEL_PATH": str(tiny_models["reward"]), **fake_gpu_box}, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "backend embedded (sglang.launch_server is not importable" in result.stdout
    assert "No module named 'sgl_kernel'" in result.stdout
    forced = _run("trm.sh", {"MODEL_PATH": str(tiny_models["reward"]), "BACKEND": "sglang", **fake_gpu_box})
    assert forced.returncode == 2 and "sgl_kernel" in forced.stderr


@pytest.mark.parametrize("script,model,variable,flag", [
    ("server/general-verifier.sh", "chat", "MAX_MODEL_LEN", "--max-model-len"),
    ("trm.sh", "reward", "MAX_LENGTH", "--context-length"),
])
def test_context_limit_above_the_models_positions_is_refused(script, model, variable, flag, tiny_models,
                                                             fake_gpu_box):
    env = {"MODEL_PATH": str(tiny_models[model]), **fake_gpu_box}  # the tiny models have 4096 positions
    over = _run(script, {**env, variable: "10240"}, "--dry-run")
    assert over.returncode == 2
    assert f"{variable}=10240 exceeds the 4096 positions of {tiny_models[model]}" in over.stderr
    assert f"Set {variable}=4096 or less" in over.stderr
    fits = _run(script, {**env, variable: "4096"}, "--dry-run")
    assert fits.returncode == 0, fits.stderr
    assert f"{variable}=4096 fits the model's 4096 positions" in fits.stdout and f"{flag} 4096" in fits.stdout
    assert _run(script, {**env, variable: "4k"}, "--dry-run").returncode == 2


def test_auto_picks_the_embedded_server_without_gpu_engines_and_says_why(tiny_models, tmp_path):
    # no nvidia-smi on PATH and an empty sglang-free interpreter path: this machine's situation
    env = {"MODEL_PATH": str(tiny_models["reward"]), "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}
    result = _run("trm.sh", env, "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "backend embedded (sglang.launch_server is not importable" in result.stdout
    assert "-m trm serve reward --model" in result.stdout and "--port 39999" in result.stdout
    forced = _run("trm.sh", {**env, "BACKEND": "sglang"})
    assert forced.returncode == 2 and "import sglang.launch_server" in forced.stderr


def test_auto_picks_sglang_and_vllm_on_a_gpu_box(tiny_models, fake_gpu_box):
    trm = _run("server/trm.sh", {"MODEL_PATH": str(tiny_models["reward"]), "TP_SIZE": "4", **fake_gpu_box},
               "--dry-run")
    assert trm.returncode == 0, trm.stderr
    assert "backend sglang (sglang.launch_server imports and a GPU is visible)" in trm.stdout
    for flag in ("server/sglang_server.py --model-path", "--is-embedding", "--served-model-name RewardModel", "--tp-size 4",
                 "--host 127.0.0.1", "--port 39999"):
        assert flag in trm.stdout
    verifier = _run("server/general-verifier.sh", {"MODEL_PATH": str(tiny_models["chat"]), **fake_gpu_box},
                    "--dry-run")
    assert verifier.returncode == 0, verifier.stderr
    assert "backend vllm (vllm.entrypoints.openai.api_server imports and a GPU is visible)" in verifier.stdout
    for flag in ("-m vllm.entrypoints.openai.api_server", "--served-model-name TIGER-Lab/general-verifier",
                 f"--chat-template {REPO}/chat_templates/verifier.jinja", "--port 23888"):
        assert flag in verifier.stdout
    # still the embedded server when asked, even on a GPU box
    embedded = _run("trm.sh", {"MODEL_PATH": str(tiny_models["reward"]), "BACKEND": "embedded", **fake_gpu_box},
                    "--dry-run")
    assert "backend embedded (BACKEND=embedded)" in embedded.stdout


def test_trm_sh_serves_the_embedded_reward_server(tiny_models, tmp_path):
    port = free_port()
    env = {"MODEL_PATH": str(tiny_models["reward"]), "PORT": str(port), "PYTHON": sys.executable,
           "MAX_LENGTH": "16", "EXTRA_ARGS": "--truncation left"}
    server = spawn(["bash", str(REPO / "trm.sh")], port, tmp_path, env=env)
    try:
        assert "backend embedded" in server.log()
        text = "a long reasoning trace " * 20
        result = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x").embeddings.create(model="RewardModel",
                                                                                            input=text)
        assert result.usage.prompt_tokens == 16  # MAX_LENGTH and EXTRA_ARGS reached the server
        reference = ReferenceRewardModel(tiny_models["reward"])
        ids = reference.tokenizer(text)["input_ids"]
        reference.tokenizer.truncation_side = "left"
        kept = reference.tokenizer(text, truncation=True, max_length=16)["input_ids"]
        assert kept[-3:] == ids[-3:]
        assert len(kept) == 16 and kept[0] == reference.tokenizer.bos_token_id
        assert result.data[0].embedding[0] == pytest.approx(reference.score_ids(kept), abs=1e-4)
    finally:
        stop(server.proc)


def test_general_verifier_sh_serves_chat_with_the_concatenating_template(tiny_models, tmp_path):
    port = free_port()
    env = {"MODEL_PATH": str(tiny_models["chat"]), "PORT": str(port), "PYTHON": sys.executable, "API_KEY": "k-9"}
    server = spawn(["bash", str(REPO / "server/general-verifier.sh")], port, tmp_path, env=env)
    try:
        messages = [{"role": "system", "content": "Judge: "}, {"role": "user", "content": "is 91 equal to 91.0?"}]
        body = {"model": "TIGER-Lab/general-verifier", "messages": messages, "max_tokens": 1}
        assert httpx.post(f"{server.url}/v1/chat/completions", json=body).status_code == 401  # the key reached it
        wrong = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer k-8"})
        assert wrong.status_code == 401
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k-9")
        answer = client.chat.completions.create(model="TIGER-Lab/general-verifier", messages=messages,
                                                temperature=0, max_tokens=4)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tiny_models["chat"])
        plain = tokenizer("Judge: is 91 equal to 91.0?", add_special_tokens=False)["input_ids"]
        assert answer.usage.prompt_tokens == len(plain)  # no roles, no markers: contents joined as they are
        assert [m.id for m in client.models.list().data] == ["TIGER-Lab/general-verifier"]
    finally:
        stop(server.proc)


def test_serve_wait_returns_once_healthy_and_fails_on_dead_servers(reward_server, capsys):
    from trm.serving.cli import main as serve_main

    assert serve_main(["wait", reward_server, "--timeout", "30"]) == 0
    dead = f"127.0.0.1:{free_port()}"
    assert serve_main(["wait", f"{reward_server},{dead}", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert dead in err and "not healthy" in err
