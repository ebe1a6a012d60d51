"""Tiny models: offline loading, distinct special tokens, determinism, and the `trm tiny` command."""

from __future__ import annotations

import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from trm_testing.serving import REPO


def test_reward_model_loads_and_scores_any_text(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["reward"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["reward"])
    assert model.config.num_labels == 1
    assert len({tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}) == 3
    assert model.config.pad_token_id == tokenizer.pad_token_id
    text = "Prüfe 你好 ∑ \\boxed{x}"
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    with torch.no_grad():
        logits = model(**tokenizer([text, "short"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 1)


def test_chat_model_generates_with_its_template(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["chat"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["chat"])
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt")
    assert tokenizer.decode(ids[0]).endswith("<|im_start|>assistant\n")
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= ids.shape[1] + 4


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    from trm.tiny import build_tiny_models

    a = build_tiny_models(tmp_path / "a", seed=3)
    b = build_tiny_models(tmp_path / "b", seed=3)
    c = build_tiny_models(tmp_path / "c", seed=4)
    read = lambda p: (p / "model.safetensors").read_bytes()  # noqa: E731
    assert read(a["reward"]) == read(b["reward"])
    assert (a["reward"] / "tokenizer.json").read_text() == (b["reward"] / "tokenizer.json").read_text()
    assert read(a["reward"]) != read(c["reward"])


def test_cli_lists_commands_and_builds_models(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "trm", "--help"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    for command in ("tiny", "inspect", "serve", "score", "train-rm", "eval", "dag", "generate"):
        assert f"  {command} " in help_text
    unknown = subprocess.run([sys.executable, "-m", "trm", "nope"], capture_output=True, text=True, cwd=REPO)
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
    subprocess.run([sys.executable, "-m", "trm", "tiny", "--out", str(tmp_path)], check=True, cwd=REPO, capture_output=True)
    assert (tmp_path / "reward" / "config.json").exists() and (tmp_path / "chat" / "tokenizer.json").exists()


def test_inspect_prints_the_three_texts_of_the_sample():
    out = subprocess.run(
        [sys.executable, "-m", "trm", "inspect", "--input", "data/sample.json", "--json"],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout
    import json

    shown = json.loads(out)
    assert shown["answer"] == "91"
    assert shown["trm_input"].startswith("What is the sum of all positive divisors of 36?\n")
    assert "</think>" not in shown["trm_input"] and "boxed" not in shown["reasoning"]
