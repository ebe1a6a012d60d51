"""Tiny Llama models built on the fly, so tests and the quickstart never download anything.

`trm tiny --output-dir DIR` writes:
  DIR/reward  a LlamaForSequenceClassification (num_labels=1) with its tokenizer: a stand-in TRM
  DIR/chat    a LlamaForCausalLM with its tokenizer and a chat template: a stand-in verifier / judge / policy

The tokenizer is a byte-level BPE trained here with `tokenizers`, so any unicode text encodes. Its pad, bos
and eos tokens are distinct: a reward model whose pad equals eos finds the wrong "last token" and scores
padding. Everything is deterministic given the seed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from trm.cli import HelpFormatter, add_alias

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_TOKENS = ("<think>", "</think>")

# A ChatML-style template; `add_generation_prompt` opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny Llama. `tiny` is for tests (seconds); `small` is for benchmarks."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int


SIZES = {
    "tiny": TinySize(1024, 64, 128, 2, 4, 4096),
    "small": TinySize(4096, 256, 688, 4, 8, 4096),
}


def _corpus(seed: int) -> list[str]:
    """Math-flavoured text with reasoning markers, so the BPE learns useful merges for traces."""
    import random

    rng = random.Random(seed)
    words = (
        "so wait but therefore alternatively let need check answer final the a of is to and we compute "
        "sum product equal number value solve equation step first then next hence thus because if not "
        "maybe actually hmm okay right question problem prime square root fraction integer total"
    ).split()
    symbols = list("0123456789+-*/=()[]{}^_.,:;!?$\\") + ["\\boxed{", "\\frac{", "</think>", "<think>", "\n\n"]
    lines = []
    for _ in range(3000):
        parts = [rng.choice(words if rng.random() < 0.7 else symbols) for _ in range(rng.randint(4, 24))]
        lines.append(" ".join(parts))
    return lines


def build_tokenizer(seed: int = 0, vocab_size: int = 1024):
    """A byte-level BPE tokenizer with distinct special tokens, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, IM_START, IM_END, *THINK_TOKENS]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=SIZES["tiny"].max_position_embeddings,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _llama_config(tokenizer, size: TinySize, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_attention_heads,
        max_position_embeddings=size.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        **extra,
    )


def build_tiny_models(out: str | Path, seed: int = 0, size: str = "tiny") -> dict[str, Path]:
    """Write DIR/reward and DIR/chat; return their paths. Idempotent for a given (seed, size)."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    shape = SIZES[size]
    out = Path(out)
    tokenizer = build_tokenizer(seed=seed, vocab_size=shape.vocab_size)
    tokenizer.model_max_length = shape.max_position_embeddings
    paths = {"reward": out / "reward", "chat": out / "chat"}

    torch.manual_seed(seed)
    reward = LlamaForSequenceClassification(_llama_config(tokenizer, shape, num_labels=1))
    torch.manual_seed(seed + 1)
    chat = LlamaForCausalLM(_llama_config(tokenizer, shape))
    chat.generation_config.pad_token_id = tokenizer.pad_token_id
    chat.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(IM_END)]

    for name, model in (("reward", reward), ("chat", chat)):
        paths[name].mkdir(parents=True, exist_ok=True)
        model.save_pretrained(paths[name], safe_serialization=True)
        tokenizer.save_pretrained(paths[name])
        (paths[name] / "trm_tiny.json").write_text(json.dumps({"seed": seed, "size": size, "kind": name}) + "\n")
    return paths


def main(argv: list[str], prog: str = "trm tiny") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--output-dir", dest="out", required=True, help="folder to write reward/ and chat/ into")
    parser.add_argument("--seed", type=int, default=0, help="seed for the tokenizer corpus and the weights")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny", help="tiny (tests) or small (benchmarks)")
    add_alias(parser, "--out", "--output-dir")
    args = parser.parse_args(argv)
    paths = build_tiny_models(args.out, seed=args.seed, size=args.size)
    for name, path in paths.items():
        print(f"{name:>6}: {path}")
    return 0
