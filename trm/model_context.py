"""Context lengths a model config allows, as verl and vLLM derive them (pure functions over config.json).

Used by the RL launch checks (``trm.rl.context``) and by ``trm generate`` (``--max-tokens`` within a local model's
context); it lives below both so that neither package imports the other.
"""

from __future__ import annotations

from typing import Any, Mapping

# vLLM's list of config keys that bound the context (vllm.config._get_and_verify_max_len), smallest wins.
_VLLM_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                     "max_sequence_length", "max_seq_length", "seq_len")


def _text_config(hf: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("text_config", "llm_config"):
        if isinstance(hf.get(key), Mapping) and "max_position_embeddings" not in hf:
            return hf[key]
    return hf


def verl_positions(hf: Mapping[str, Any]) -> int | None:
    """Positions verl's rollout set-up compares with prompt + response: max_position_embeddings x RoPE factor."""
    hf = _text_config(hf)
    positions = hf.get("max_position_embeddings")
    if positions is None:
        return None
    scaling = hf.get("rope_scaling") or {}
    return int(positions * float(scaling.get("factor", 1.0))) if scaling else int(positions)


def vllm_positions(hf: Mapping[str, Any]) -> int | None:
    """The longest ``max_model_len`` vLLM accepts for this config (its derivation, for the usual RoPE types)."""
    hf = _text_config(hf)
    lengths = [int(hf[key]) for key in _VLLM_LENGTH_KEYS if isinstance(hf.get(key), (int, float))]
    if not lengths:
        return None
    length = min(lengths)
    scaling = hf.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if scaling and kind not in ("su", "longrope", "llama3", "mrope", "default"):
        if kind == "yarn" and "original_max_position_embeddings" in scaling:
            length = int(scaling["original_max_position_embeddings"])
        length = int(length * float(scaling.get("factor", 1.0)))
    return length
