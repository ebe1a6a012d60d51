"""A verl rollout batch (``DataProto``) built from text, laid out exactly as verl's rollout hands it to the reward.

Prompts are left-padded, responses right-padded, ``attention_mask`` covers both; the reward manager finds each
response's last valid token from it. Used by tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class RolloutSample:
    """One rollout: the prompt row's fields and the policy's response text."""

    prompt: str  # the prompt as the policy saw it (already templated)
    response: str
    ground_truth: str
    data_source: str
    extra_info: dict = field(default_factory=dict)
    uid: str = ""  # rollouts of the same prompt share a uid (GRPO group)


def rollout_batch(tokenizer: Any, samples: Sequence[RolloutSample]):
    """The DataProto verl's trainer passes to ``reward_fn(batch)`` after generation."""
    from verl import DataProto

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompts = [tokenizer(s.prompt, add_special_tokens=False)["input_ids"] for s in samples]
    responses = []
    for s in samples:
        ids = tokenizer(s.response, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:  # a finished generation ends with EOS
            ids = ids + [tokenizer.eos_token_id]
        responses.append(ids)
    p_len = max(1, max(len(p) for p in prompts))
    r_len = max(1, max(len(r) for r in responses))
    n = len(samples)
    prompt_ids = torch.full((n, p_len), pad, dtype=torch.long)
    response_ids = torch.full((n, r_len), pad, dtype=torch.long)
    mask = torch.zeros((n, p_len + r_len), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if p:
            prompt_ids[i, p_len - len(p) :] = torch.tensor(p)
            mask[i, p_len - len(p) : p_len] = 1
        if r:
            response_ids[i, : len(r)] = torch.tensor(r)
            mask[i, p_len : p_len + len(r)] = 1
    position_ids = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    return DataProto.from_dict(
        tensors={
            "prompts": prompt_ids,
            "responses": response_ids,
            "input_ids": torch.cat([prompt_ids, response_ids], dim=-1),
            "attention_mask": mask,
            "position_ids": position_ids,
        },
        non_tensors={
            "data_source": np.array([s.data_source for s in samples], dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": s.ground_truth} for s in samples], dtype=object),
            "extra_info": np.array([dict(s.extra_info) for s in samples], dtype=object),
            "uid": np.array([s.uid or str(i) for i, s in enumerate(samples)], dtype=object),
        },
    )
