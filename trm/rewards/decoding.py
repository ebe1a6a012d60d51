"""Response text from token ids for the reward: special tokens out, think tags in.

Trainers decode with ``skip_special_tokens=True`` (TRL's GRPOTrainer does), which also erases ``<think>`` and
``</think>`` where a tokenizer marks them special (the tiny models do): the TRM scores the text before
``</think>``, so the reward decodes the ids itself. Used by the verl ``verify`` manager and the TRL reward.
"""

from __future__ import annotations

from typing import Any, Sequence

from trm.traces import THINK_CLOSE, THINK_OPEN


def special_ids_to_drop(tokenizer: Any) -> set[int]:
    """Ids of special tokens (EOS, pad, chat markers), except the think tags."""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(added, "special", False)}
    vocab = tokenizer.get_vocab()
    return special - {vocab[t] for t in (THINK_OPEN, THINK_CLOSE) if t in vocab}


def decode_responses(tokenizer: Any, ids: Sequence[Sequence[int]]) -> list[str]:
    """Texts of token id lists with special tokens dropped and the think tags kept."""
    drop = special_ids_to_drop(tokenizer)
    return tokenizer.batch_decode([[int(t) for t in row if int(t) not in drop] for row in ids], skip_special_tokens=False)
