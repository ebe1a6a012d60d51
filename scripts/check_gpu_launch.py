"""Feed every launcher's ``--dry-run`` command to the real parsers and set-up code of the pinned GPU stack, on a CPU.

    python scripts/check_gpu_launch.py --train-python /tmp/gpuenv-train/bin/python \\
                                       --sglang-python /tmp/gpuenv-sglang/bin/python

The two interpreters hold the two GPU environments (requirements-gpu-train.txt: verl 0.6.0 + vllm 0.11.0;
requirements-gpu-trm-server.txt: sglang[srt] 0.5.2; docs/rl.md says how to build them on a CPU box). For each case
the launcher composes its command exactly as on a cluster, then a probe run in the right environment gives it to:

- trm.sh -> sglang's ``ServerArgs`` argument parser and its ``__post_init__`` (which builds sglang's ModelConfig and
  checks ``--context-length`` against the model);
- server/general-verifier.sh -> vLLM's api_server argument parser, ``validate_parsed_serve_args`` and vLLM's
  ModelConfig (``--max-model-len`` against the model);
- train.sh -> verl's vLLM rollout set-up (``vLLMRollout.__init__``: its context and batched-token checks), with
  vLLM's ``LLM`` constructor captured instead of run, then vLLM's ModelConfig built from the captured arguments.

Only the device is faked: sglang's kernel library (it needs the CUDA driver to import) is stubbed, sglang is told the
device is a CUDA GPU with 141 GB, and torch.distributed reports the launch's world size. Models are config.json files
of the real architectures (data/model_configs/) with a tiny tokenizer; no weights are read. Each case states what
should happen; the script exits 1 when a verdict differs. Not part of `make test` (it needs the GPU wheels).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE_MEMORY_MB = 143771  # what sglang is told the (faked) GPU holds: an H200


# ---------------------------------------------------------------------------------------------------------------
# Probes: run inside the GPU environments (python check_gpu_launch.py --probe KIND < case.json)
# ---------------------------------------------------------------------------------------------------------------

def _install_kernel_stub(roots: tuple[str, ...]) -> None:
    """Import stand-ins for device-kernel libraries that need the CUDA driver at import (the faked device)."""
    import importlib.abc
    import importlib.machinery
    import types

    class Anything:
        def __init__(self, name):
            self._name = name

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(f"{self._name}.{name}")

        def __call__(self, *args, **kwargs):
            return Anything(f"{self._name}()")

        def __getitem__(self, key):
            return Anything(f"{self._name}[]")

        def __mro_entries__(self, bases):
            return (object,)

    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(f"{self.__name__}.{name}")

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in roots:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            module = Stub(spec.name)
            module.__path__ = []
            return module

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Finder())


def _flags(parser, argv: list[str], namespace) -> list[dict]:
    """Per flag of argv: known to the parser, and the value it parsed to."""
    rows = []
    for i, item in enumerate(argv):
        if not item.startswith("--"):
            continue
        action = parser._option_string_actions.get(item)
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
        shown = "<key>" if item == "--api-key" else value
        if action is None:
            rows.append({"item": f"flag {item} {shown or ''}".strip(), "ok": False, "detail": "unknown flag"})
        else:
            parsed = getattr(namespace, action.dest, None) if namespace is not None else None
            rows.append({"item": f"flag {item} {shown or ''}".strip(), "ok": namespace is not None,
                         "detail": f"{action.dest}={'<key>' if item == '--api-key' else parsed!r}"})
    return rows


class _ParseError(Exception):
    pass


def _parse(parser, argv):
    def error(message):
        raise _ParseError(message)

    parser.error = error
    try:
        return parser.parse_args(argv), None
    except _ParseError as e:
        return None, str(e)


def probe_sglang(case: dict) -> list[dict]:
    from unittest import mock

    _install_kernel_stub(("sgl_kernel",))
    import torch
    import sglang.srt.server_args as server_args

    parser = argparse.ArgumentParser()
    server_args.ServerArgs.add_cli_args(parser)
    namespace, error = _parse(parser, case["argv"])
    rows = _flags(parser, case["argv"], namespace)
    if error:
        return rows + [{"item": "sglang argument parser", "ok": False, "detail": error}]
    with mock.patch.object(server_args, "get_device", return_value="cuda"), \
            mock.patch.object(server_args, "get_device_memory_capacity", return_value=DEVICE_MEMORY_MB), \
            mock.patch.object(torch.cuda, "is_available", return_value=True), \
            mock.patch.object(torch.cuda, "get_device_capability", return_value=(9, 0)):
        try:
            args = server_args.ServerArgs.from_cli_args(namespace)
        except Exception as e:  # sglang's own verdict, whatever it raises
            return rows + [{"item": "limit: sglang ServerArgs/ModelConfig (context length)", "ok": False,
                            "detail": f"{type(e).__name__}: {str(e)[:400]}"}]
    return rows + [{"item": "limit: sglang ServerArgs/ModelConfig (context length)", "ok": True,
                    "detail": f"context_length={args.context_length}, is_embedding={args.is_embedding}, "
                              f"api_key={'set' if args.api_key else 'unset'}"}]


def _fake_vllm_device() -> None:
    """vLLM's CUDA wheel finds no driver here and falls back to a platform with no device; give that platform the
    two answers a CUDA one gives (its device type, and that sleep mode, which verl turns on, is available)."""
    from vllm.platforms import current_platform

    current_platform.device_type = "cuda"
    current_platform.is_sleep_mode_available = lambda: True


def probe_vllm_server(case: dict) -> list[dict]:
    _fake_vllm_device()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())
    namespace, error = _parse(parser, case["argv"])
    rows = _flags(parser, case["argv"], namespace)
    if error:
        return rows + [{"item": "vLLM argument parser", "ok": False, "detail": error}]
    try:
        validate_parsed_serve_args(namespace)
    except Exception as e:
        return rows + [{"item": "limit: vLLM ModelConfig (max_model_len)", "ok": False, "detail": _error(e)}]
    rows.append({"item": "vLLM validate_parsed_serve_args", "ok": True, "detail": "chat template and options"})
    return rows + [_model_config_row("limit: vLLM ModelConfig (max_model_len)",
                                     lambda: AsyncEngineArgs.from_cli_args(namespace).create_model_config())]


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"


def _model_config_row(item: str, make_model_config) -> dict:
    """Whether vLLM builds its ModelConfig (where max_model_len is checked against the model's positions)."""
    try:
        return {"item": item, "ok": True, "detail": f"max_model_len={make_model_config().max_model_len}"}
    except Exception as e:
        return {"item": item, "ok": False, "detail": _error(e)}


def probe_verl_rollout(case: dict) -> list[dict]:
    from unittest import mock

    import torch.distributed
    from omegaconf import OmegaConf

    sys.path.insert(0, str(REPO))
    from trm.rl.config import compose_ppo_config
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig
    import verl.workers.rollout.vllm_rollout.vllm_rollout_spmd as spmd
    from vllm import EngineArgs

    _fake_vllm_device()

    config = compose_ppo_config(case["overrides"])
    OmegaConf.resolve(config)
    rows = [{"item": "verl config composition", "ok": True, "detail": f"{len(case['overrides'])} overrides"}]
    model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model, dataclass_type=HFModelConfig)
    rollout_config = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    captured: dict = {}

    class Captured(Exception):
        pass

    def capture_llm(**kwargs):
        captured.update(kwargs)
        raise Captured

    world = int(config.trainer.n_gpus_per_node * config.trainer.nnodes)
    r = config.actor_rollout_ref.rollout
    limit = (f"limit: verl vLLMRollout set-up (positions >= prompt+response {r.prompt_length + r.response_length}; "
             f"max_num_batched_tokens {r.max_num_batched_tokens} >= max_model_len)")
    with mock.patch.object(spmd, "LLM", capture_llm), mock.patch.object(torch.distributed, "get_world_size",
                                                                         return_value=world):
        try:
            spmd.vLLMRollout(rollout_config, model_config, device_mesh=None)
        except Captured:
            rows.append({"item": limit, "ok": True, "detail": "reached vLLM's LLM(...) with "
                         f"max_model_len={captured.get('max_model_len')}, hf_overrides={captured.get('hf_overrides')}"})
        except (AssertionError, ValueError) as e:
            return rows + [{"item": limit, "ok": False, "detail": f"{type(e).__name__}: {' '.join(str(e).split())}"}]
    fields = set(EngineArgs.__dataclass_fields__)
    for key, value in captured.items():  # what verl hands LLM(...), which passes it on to EngineArgs
        rows.append({"item": f"LLM argument {key}", "ok": key in fields,
                     "detail": f"{value!r}" if key in fields else "not an EngineArgs field"})
    return rows + [_model_config_row("limit: vLLM ModelConfig from verl's LLM arguments (max_model_len)",
                                     lambda: EngineArgs(**captured).create_model_config())]


PROBES = {"sglang": probe_sglang, "vllm-server": probe_vllm_server, "verl-rollout": probe_verl_rollout}


# ---------------------------------------------------------------------------------------------------------------
# Driver: compose each launcher's command, hand it to the probe in the right environment, compare verdicts
# ---------------------------------------------------------------------------------------------------------------

def make_model(folder: Path, config_file: str, **changes) -> Path:
    """A model folder: the real architecture's config.json and a tiny tokenizer (no weights)."""
    from trm.tiny import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save_pretrained(folder)
    config = json.loads((REPO / "data" / "model_configs" / config_file).read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}, indent=2))
    return folder


def launcher_command(script: str, env: dict, python: str) -> tuple[int, list[str], str]:
    """(exit code, the server's argv after its entry point, launcher output) of `bash script --dry-run`."""
    result = subprocess.run(["bash", str(REPO / script), "--dry-run"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHON": python, **env}, timeout=120)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        return result.returncode, [], output
    line = [ln for ln in result.stdout.splitlines() if ln.startswith(f"{script}: ") and python in ln][-1]
    argv = shlex.split(line.split(": ", 1)[1])
    for marker in ("server/sglang_server.py", "sglang.launch_server", "vllm.entrypoints.openai.api_server"):
        hits = [i for i, a in enumerate(argv) if a.endswith(marker)]
        if hits:
            return 0, argv[hits[0] + 1:], output
    raise RuntimeError(f"no server entry point in {line!r}")


def train_overrides(env: dict, tmp: Path) -> tuple[int, list[str], str]:
    """The Hydra overrides `bash train.sh --dry-run` passes to `trm rl check` (captured by a stand-in Python)."""
    echo = tmp / "print-args"
    echo.write_text('#!/bin/sh\nprintf "%s\\0" "$@"\n')
    echo.chmod(0o755)
    result = subprocess.run(["bash", str(REPO / "train.sh"), "--dry-run"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, **env, "PYTHON": str(echo)}, timeout=60)
    if result.returncode != 0:
        return result.returncode, [], result.stderr.strip()
    args = result.stdout.split("\0")[:-1]
    return 0, args[4:], ""


def run_probe(python: str, kind: str, case: dict) -> list[dict]:
    result = subprocess.run([python, str(Path(__file__).resolve()), "--probe", kind], input=json.dumps(case),
                            capture_output=True, text=True, cwd=REPO, timeout=600,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("PROBE-RESULT ")]
    if not lines:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        return [{"item": f"probe {kind}", "ok": False, "detail": f"probe crashed (rc {result.returncode}):\n{tail}"}]
    return json.loads(lines[-1][len("PROBE-RESULT "):])


def cases(models: dict[str, Path]) -> list[dict]:
    """Each launcher case: name, how to compose it, and the expected verdict (True: starts; False: refused)."""
    trm, verifier, policy, long_copy, llama = (models[k] for k in ("trm", "verifier", "policy", "copy", "llama"))
    base_train = {"MODEL_PATH": str(policy)}
    return [
        {"name": "trm.sh defaults (TRM-8B-like, sglang)", "launcher": "trm.sh", "probe": "sglang",
         "env": {"MODEL_PATH": str(trm), "BACKEND": "sglang"}, "expect": True},
        {"name": "trm.sh MAX_LENGTH=16384 API_KEY=... TP_SIZE=2", "launcher": "trm.sh", "probe": "sglang",
         "env": {"MODEL_PATH": str(trm), "BACKEND": "sglang", "MAX_LENGTH": "16384", "API_KEY": "sk-check-0123456789",
                 "TP_SIZE": "2"},
         "expect": True},
        {"name": "trm.sh MAX_LENGTH=200000 (> 131072 positions)", "launcher": "trm.sh", "probe": "sglang",
         "env": {"MODEL_PATH": str(trm), "BACKEND": "sglang", "MAX_LENGTH": "200000"}, "expect": False,
         "direct": ["--model-path", str(trm), "--is-embedding", "--context-length", "200000"]},
        {"name": "general-verifier.sh defaults (Qwen2.5-Math-based, vLLM)", "launcher": "server/general-verifier.sh",
         "probe": "vllm-server", "env": {"MODEL_PATH": str(verifier), "BACKEND": "vllm"}, "expect": True},
        {"name": "general-verifier.sh MAX_MODEL_LEN=4096 TP_SIZE=2", "launcher": "server/general-verifier.sh",
         "probe": "vllm-server", "env": {"MODEL_PATH": str(verifier), "BACKEND": "vllm", "MAX_MODEL_LEN": "4096",
                                         "TP_SIZE": "2"}, "expect": True},
        {"name": "general-verifier.sh MAX_MODEL_LEN=8192 (> 4096 positions)", "launcher": "server/general-verifier.sh",
         "probe": "vllm-server", "env": {"MODEL_PATH": str(verifier), "BACKEND": "vllm", "MAX_MODEL_LEN": "8192"},
         "expect": False, "direct": ["--model", str(verifier), "--max-model-len", "8192",
                                     "--chat-template", str(REPO / "chat_templates" / "verifier.jinja")]},
        {"name": "train.sh defaults, Qwen2.5-Math-7B config as shipped (4096 positions)", "launcher": "train.sh",
         "probe": "verl-rollout", "env": base_train, "expect": False},
        {"name": "train.sh LONG_CONTEXT=1 (verl override_config + vLLM hf_overrides)", "launcher": "train.sh",
         "probe": "verl-rollout", "env": {**base_train, "LONG_CONTEXT": "1"}, "expect": True},
        {"name": "train.sh on a `trm rl long-context` copy", "launcher": "train.sh", "probe": "verl-rollout",
         "env": {"MODEL_PATH": str(long_copy)}, "expect": True},
        {"name": "train.sh verl override only (no hf_overrides)", "launcher": "train.sh", "probe": "verl-rollout",
         "env": base_train, "extra": ["+actor_rollout_ref.model.override_config.max_position_embeddings=16384"],
         "expect": False},
        {"name": "train.sh LONG_CONTEXT=1 MAX_NUM_BATCHED_TOKENS=8192 (verl's default)", "launcher": "train.sh",
         "probe": "verl-rollout", "env": {**base_train, "LONG_CONTEXT": "1", "MAX_NUM_BATCHED_TOKENS": "8192"},
         "expect": False},
        {"name": "train.sh capped at 4096 (MAX_PROMPT_LENGTH=1024 MAX_RESPONSE_LENGTH=3072)", "launcher": "train.sh",
         "probe": "verl-rollout", "env": {**base_train, "MAX_PROMPT_LENGTH": "1024", "MAX_RESPONSE_LENGTH": "3072"},
         "expect": True},
        {"name": "train.sh Llama-3.1-8B-Instruct policy (131072 positions)", "launcher": "train.sh",
         "probe": "verl-rollout", "env": {"MODEL_PATH": str(llama)}, "expect": True},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-python", default=sys.executable,
                        help="Python of the training environment (verl 0.6.0 + vllm 0.11.0)")
    parser.add_argument("--sglang-python", required=False, help="Python of the TRM-server environment (sglang 0.5.2)")
    parser.add_argument("--probe", choices=sorted(PROBES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print("PROBE-RESULT " + json.dumps(PROBES[args.probe](json.loads(sys.stdin.read()))))
        return 0

    sys.path.insert(0, str(REPO))
    from trm.rl.long_context import LongContextSettings, write_long_context_copy

    tmp = Path(tempfile.mkdtemp(prefix="check-gpu-launch-"))
    try:
        models = {
            "trm": make_model(tmp / "TRM-8B", "llama-3.1-8b.json", architectures=["LlamaForSequenceClassification"],
                              num_labels=1),
            "verifier": make_model(tmp / "general-verifier", "qwen2.5-math-7b.json"),
            "policy": make_model(tmp / "Qwen2.5-Math-7B", "qwen2.5-math-7b.json"),
            "llama": make_model(tmp / "Llama-3.1-8B-Instruct", "llama-3.1-8b.json"),
        }
        models["copy"] = tmp / "Qwen2.5-Math-7B-16k"
        write_long_context_copy(models["policy"], models["copy"], LongContextSettings())
        mismatches = 0
        for case in cases(models):
            python = args.sglang_python if case["probe"] == "sglang" else args.train_python
            print(f"\n== {case['name']}  [{case['launcher']}; expected: {'starts' if case['expect'] else 'refused'}]")
            if python is None:
                print("   SKIPPED: no --sglang-python given")
                continue
            if case["launcher"] == "train.sh":
                rc, overrides, output = train_overrides(case["env"], tmp)
                rows = run_probe(python, case["probe"], {"overrides": overrides + case.get("extra", [])})
            else:
                rc, server_argv, output = launcher_command(case["launcher"], case["env"], python)
                if rc != 0:
                    print(f"   launcher REFUSED it (rc {rc}): {output.splitlines()[-1]}")
                    rows = run_probe(python, case["probe"], {"argv": case["direct"]}) if "direct" in case else []
                    if rows:
                        print(f"   the same value given straight to {case['probe']}:")
                else:
                    if case["env"].get("API_KEY"):
                        server_argv += ["--api-key", case["env"]["API_KEY"]]  # what server/sglang_server.py appends
                    rows = run_probe(python, case["probe"], {"argv": server_argv})
            for row in rows:
                print(f"   {'accepted' if row['ok'] else 'REJECTED'}  {row['item']}: {row['detail']}")
            started = rc == 0 and bool(rows) and all(row["ok"] for row in rows)
            verdict = "ok" if started == case["expect"] else "UNEXPECTED"
            mismatches += verdict != "ok"
            print(f"   => {'starts' if started else 'refused'} ({verdict})")
        print(f"\n{mismatches} unexpected verdict(s)")
        return 1 if mismatches else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
