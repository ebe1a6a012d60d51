"""Token ids of preference pairs, with over-long pairs dropped and counted, or their traces truncated.

TRL's RewardTrainer would tokenize the records itself (appending EOS, or applying a chat template) and drop
pairs longer than ``max_length`` without saying so. We tokenize the TRM input text exactly as a client sends
it to the server (``tokenizer(text)``, special tokens as the tokenizer adds them, nothing appended), and hand
TRL pre-tokenized ``chosen_input_ids`` / ``rejected_input_ids``. Length handling is explicit:

- ``truncation=None``: a pair whose chosen or rejected input exceeds ``max_length`` is dropped and counted;
- ``truncation="right"`` / ``"left"``: the *trace* loses tokens at its end / its start; the prompt is kept
  whole (a pair whose prompt alone does not fit is still dropped and counted).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

from trm.data.pairs import preference_texts

TRUNCATION_SIDES = ("left", "right")


@dataclass
class EncodeStats:
    """What happened to the pairs of one split; written into eval_results.json / printed."""

    pairs: int = 0
    kept: int = 0
    dropped_too_long: int = 0
    truncated: int = 0
    max_length: int | None = None
    truncation: str | None = None
    dropped_rows: list[int] = field(default_factory=list)

    def as_dict(self, rows_shown: int = 20) -> dict:
        out = asdict(self)
        out["dropped_rows"] = self.dropped_rows[:rows_shown]
        return out


def _encode_one(tokenizer, text: str, prompt_chars: int, max_length: int | None, truncation: str | None):
    """(ids, was_truncated); ids is None when the text cannot fit."""
    if max_length is None:
        return tokenizer(text)["input_ids"], False
    if truncation is None:
        ids = tokenizer(text)["input_ids"]
        return (ids if len(ids) <= max_length else None), False
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    ids, offsets, special = enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
    if len(ids) <= max_length:
        return ids, False
    # head: leading special tokens and every token that starts inside the prompt or its newline;
    # tail: trailing special tokens (e.g. an EOS some tokenizers add); body: the trace tokens between.
    head = 0
    while head < len(ids) and (special[head] or offsets[head][0] <= prompt_chars):
        head += 1
    tail = len(ids)
    while tail > head and special[tail - 1]:
        tail -= 1
    budget = max_length - head - (len(ids) - tail)
    if budget < 1:
        return None, False
    body = ids[head:tail]
    body = body[:budget] if truncation == "right" else body[len(body) - budget :]
    return ids[:head] + body + ids[tail:], True


def encode_pairs(records: list[dict], tokenizer, max_length: int | None, truncation: str | None = None,
                 progress: bool = True) -> tuple[list[dict], EncodeStats]:
    """Rows ``{"chosen_input_ids", "rejected_input_ids"}`` for TRL, and what was dropped or truncated."""
    from trm.data.pairs import preference_parts

    if truncation is not None and truncation not in TRUNCATION_SIDES:
        raise ValueError(f"truncation must be one of {TRUNCATION_SIDES} or None, got {truncation!r}")
    stats = EncodeStats(pairs=len(records), max_length=max_length, truncation=truncation)
    rows: list[dict] = []
    iterator = records
    if progress and len(records) > 2000:
        from tqdm.auto import tqdm

        iterator = tqdm(records, desc="tokenizing pairs", file=sys.stderr)
    for row, record in enumerate(iterator):
        prompt = preference_parts(record)[0]
        chosen_text, rejected_text = preference_texts(record)
        chosen, cut_c = _encode_one(tokenizer, chosen_text, len(prompt), max_length, truncation)
        rejected, cut_r = _encode_one(tokenizer, rejected_text, len(prompt), max_length, truncation)
        if chosen is None or rejected is None:
            stats.dropped_too_long += 1
            stats.dropped_rows.append(row)
            continue
        stats.truncated += int(cut_c or cut_r)
        rows.append({"chosen_input_ids": chosen, "rejected_input_ids": rejected})
    stats.kept = len(rows)
    return rows, stats
