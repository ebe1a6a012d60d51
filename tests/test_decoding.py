"""The reward's decoding: special tokens out, think tags in, the same text from a padded tensor as from id lists."""

from __future__ import annotations

import pytest
import torch

from trm.rewards.decoding import decode_padded, decode_responses, special_ids_to_drop


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models["chat"])


def rows(tokenizer) -> list[list[int]]:
    texts = ["<think>\nTwo and two.\n</think>\nSo \\boxed{4}.", "<think>x</think> The answer is: 7", "", "  spaced  out ,  ."]
    eos = tokenizer.eos_token_id
    return [tokenizer(text, add_special_tokens=False)["input_ids"] + [eos] for text in texts]


@pytest.mark.parametrize("clean_up", [False, True])
def test_padded_tensor_decodes_like_id_lists_and_like_the_tokenizer(tokenizer, clean_up, monkeypatch):
    monkeypatch.setattr(tokenizer, "clean_up_tokenization_spaces", clean_up)  # True: transformers' own path
    ids = rows(tokenizer)
    width = max(map(len, ids)) + 3
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    padded = torch.tensor([row + [pad] * (width - len(row)) for row in ids])
    lengths = torch.tensor([len(row) for row in ids])
    drop = special_ids_to_drop(tokenizer)
    expected = [tokenizer.decode([t for t in row if t not in drop], skip_special_tokens=False) for row in ids]
    assert decode_padded(tokenizer, padded, lengths) == decode_responses(tokenizer, ids) == expected
    assert expected[0].startswith("<think>\n") and "</think>" in expected[0]  # the think tags stay
    assert tokenizer.eos_token not in "".join(expected)  # special tokens go
    assert decode_padded(tokenizer, padded[:0], lengths[:0]) == []
