"""Sequence-length limits of a GRPO launch that verl and vLLM only check on the GPUs, checked from the config.

Three limits, each a start-up failure on the cluster when broken:
- vLLM's token budget per step (``rollout.max_num_batched_tokens``) must hold one whole prompt + response when
  chunked prefill is on (verl raises in its vLLM rollout set-up, ``vllm_rollout_spmd.vLLMRollout``);
- verl asserts that the policy's positions (its model config, after ``model.override_config``, times a RoPE
  scaling factor) cover prompt + response (same place);
- vLLM refuses a ``max_model_len`` above the positions of the config it reads itself: config.json on disk plus
  ``engine_kwargs.vllm.hf_overrides``; verl's override does not reach it.

Qwen2.5-Math-1.5B/7B ship 4096 positions against the paper's 2048 + 8192. The fixes: a copy of the model with
16384 positions and RoPE base 40000 (the LUFFY recipe; ``trm rl long-context``), the same two values as overrides
in both places (``LONG_CONTEXT=1 bash train.sh``), or prompt + response capped at the model's positions (SimpleRL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trm.errors import BadInput
from trm.model_context import verl_positions, vllm_positions

LONG_CONTEXT_POSITIONS = 16384  # the LUFFY copy of Qwen2.5-Math-7B: max_position_embeddings
LONG_CONTEXT_ROPE_THETA = 40000  # ... and rope_theta, so that the extra positions stay usable


class ContextError(BadInput):
    """A length limit that the launch would hit at start-up; the message names the fix."""


def _plain(node: Any) -> dict:
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def read_model_config(model_path: Path) -> dict:
    """config.json of a local model folder (raises with the path when it is missing or not JSON)."""
    file = Path(model_path) / "config.json"
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ContextError(f"cannot read the policy's {file}: {error}") from None


def check_batched_tokens(config: DictConfig) -> str:
    """The rollout's batched-token budget against one whole sequence; a line for the summary, or raise."""
    r = config.actor_rollout_ref.rollout
    budget = int(r.max_num_batched_tokens)
    sequence = int(r.max_model_len or config.data.max_prompt_length + config.data.max_response_length)
    line = f"vLLM max_num_batched_tokens {budget} >= max_model_len {sequence} (prompt + response)"
    if budget < sequence and r.enable_chunked_prefill:
        raise ContextError(
            f"actor_rollout_ref.rollout.max_num_batched_tokens={budget} is smaller than one sequence ({sequence} = "
            f"prompt + response) with chunked prefill on: verl refuses this at rollout set-up. Set "
            f"MAX_NUM_BATCHED_TOKENS={sequence} or more (train.sh's default is max(65536, prompt + response)).")
    return line if budget >= sequence else f"vLLM max_num_batched_tokens {budget} < {sequence} (chunked prefill off)"


def fixes(model: str, positions: int, needed: int) -> str:
    """The three ways out, spelled out for this model."""
    return (
        f"  (a) write a long-context copy and train it: trm rl long-context {model} {model.rstrip('/')}-16k; "
        f"MODEL_PATH={model.rstrip('/')}-16k (max_position_embeddings {LONG_CONTEXT_POSITIONS}, rope_theta "
        f"{LONG_CONTEXT_ROPE_THETA}, as LUFFY)\n"
        f"  (b) LONG_CONTEXT=1 bash train.sh: the same two values as verl's actor_rollout_ref.model.override_config "
        f"and vLLM's actor_rollout_ref.rollout.engine_kwargs.vllm.hf_overrides\n"
        f"  (c) cap MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH at {positions} (as SimpleRL; shorter than the "
        f"paper's {needed})")


def check_policy_context(config: DictConfig, model_dir: Path | None) -> list[str]:
    """Both context limits of the policy; summary lines, or raise ContextError naming the fix that applies."""
    d = config.data
    model = str(config.actor_rollout_ref.model.path)
    needed = int(d.max_prompt_length + d.max_response_length)
    max_model_len = int(config.actor_rollout_ref.rollout.max_model_len or needed)
    if model_dir is None:
        note = f"check skipped: {model} is not a local folder here, so its config.json was not read"
        if "qwen2.5-math" in model.lower():
            note += (f" (Qwen2.5-Math ships 4096 positions < prompt + response {needed}: train a long-context copy "
                     f"or set LONG_CONTEXT=1; docs/rl.md)")
        return [note]
    on_disk = read_model_config(model_dir)
    override = _plain(config.actor_rollout_ref.model.get("override_config"))
    override = override.get("model_config", override)  # verl accepts either shape
    engine = _plain(config.actor_rollout_ref.rollout.get("engine_kwargs")).get("vllm") or {}
    hf_overrides = dict(engine.get("hf_overrides") or {})
    verl_limit = verl_positions({**on_disk, **override})
    vllm_limit = vllm_positions({**on_disk, **hf_overrides})
    disk_limit = verl_positions(on_disk)
    verl_ok = verl_limit is None or verl_limit >= needed
    vllm_ok = vllm_limit is None or vllm_limit >= max_model_len
    if verl_ok and vllm_ok:
        how = "config.json" if not (override or hf_overrides) else (
            f"verl override_config {override or '{}'}, vLLM hf_overrides {hf_overrides or '{}'}")
        return [f"{needed} positions needed (prompt {d.max_prompt_length} + response {d.max_response_length}); "
                f"policy has {verl_limit} (verl) / {vllm_limit} (vLLM) via {how}"]
    if not verl_ok and not vllm_ok:
        raise ContextError(
            f"policy {model} has {disk_limit} positions (config.json) but prompt {d.max_prompt_length} + response "
            f"{d.max_response_length} = {needed}: verl asserts and vLLM refuses max_model_len {max_model_len} at "
            f"start-up. Fixes (pick one):\n{fixes(model, disk_limit or 0, needed)}")
    if verl_ok:
        raise ContextError(
            f"verl sees {verl_limit} positions (actor_rollout_ref.model.override_config) but vLLM reads config.json "
            f"({vllm_limit} positions) and refuses max_model_len {max_model_len}: set the same values in "
            f"actor_rollout_ref.rollout.engine_kwargs.vllm.hf_overrides (LONG_CONTEXT=1 sets both) or use a "
            f"long-context copy (trm rl long-context)")
    raise ContextError(
        f"vLLM gets {vllm_limit} positions (engine_kwargs.vllm.hf_overrides) but verl's model config has {verl_limit} "
        f"< {needed} and verl asserts: set the same values in actor_rollout_ref.model.override_config "
        f"(LONG_CONTEXT=1 sets both) or use a long-context copy (trm rl long-context)")
