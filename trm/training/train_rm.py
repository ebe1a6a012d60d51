"""`trm train-rm`: train a Thinking Reward Model with TRL's RewardTrainer (Bradley-Terry on preference pairs).

Every `RewardConfig` / `TrainingArguments` flag of TRL 0.26 and transformers 4.56 is accepted under its own
name (``--output_dir``, ``--learning_rate``, ``--center_rewards_coefficient``, ``--eval_strategy``,
``--load_best_model_at_end``, ``--metric_for_best_model accuracy``, ...), next to the data and model flags of
the release (``--model_name_or_path``, ``--train_file``, ``--validation_file``). A YAML/JSON file holding the
same keys can be passed instead of flags: ``trm train-rm config.yaml``.

Differences from calling RewardTrainer directly, all deliberate:
- the text of a pair is ``trm.traces.trm_input(prompt, trace)``, the exact string the servers score;
- pairs longer than ``--max_length`` are dropped *and counted* (or their traces cut with ``--truncation``);
- the tokenizer gets a pad token distinct from EOS and the model config is told about it;
- CPU-safe defaults: no bf16, no gradient checkpointing, ``report_to none``; ``train_rm.sh`` sets the
  release's GPU settings;
- resuming: ``--resume_from_checkpoint auto`` (or a path) continues from the newest ``checkpoint-*``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from trl import RewardConfig

from trm.training.encode import TRUNCATION_SIDES, EncodeStats, encode_pairs

logger = logging.getLogger("trm.train_rm")

PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]", "<|endoftext|>")
NEW_PAD_TOKEN = "<|pad|>"


@dataclass
class ScriptArguments:
    """Data flags (names as in the release's train_rm.sh)."""

    _argument_group_name = "data (trm train-rm's own flags)"

    train_file: str = field(metadata={"help": "TRM-Preference training pairs: .json, .jsonl or .parquet"})
    validation_file: str | None = field(
        default=None, metadata={"help": "held-out pairs for eval_accuracy and best-checkpoint selection"}
    )
    truncation: str | None = field(
        default=None,
        metadata={
            "help": "pairs longer than --max_length: drop and count them (default), or cut the reasoning trace "
            "at its end ('right') or start ('left'); the prompt is always kept whole",
            "choices": [*TRUNCATION_SIDES],
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N training pairs"})


@dataclass
class ModelArguments:
    """Which model to start from and how to load it."""

    _argument_group_name = "model (trm train-rm's own flags)"

    model_name_or_path: str = field(metadata={"help": "base model folder or hub id (a causal LM or a reward model)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run custom model code from the checkpoint"})
    torch_dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype the weights are loaded in (float32 keeps an fp32 master copy; use --bf16 for mixed "
            "precision); 'auto' takes the checkpoint's dtype",
            "choices": ["auto", "float32", "bfloat16", "float16"],
        },
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager | sdpa | flash_attention_2 (default: transformers' choice)"}
    )


@dataclass
class TRMRewardConfig(RewardConfig):
    """RewardConfig with defaults that run on a CPU without extra flags (train_rm.sh sets the GPU ones)."""

    _argument_group_name = ("training: TRL RewardConfig and transformers TrainingArguments, passed through under "
                            "their own names (most used: --output_dir, --learning_rate, --num_train_epochs, "
                            "--per_device_train_batch_size, --eval_strategy, --eval_steps, --save_steps)")

    output_dir: str | None = field(default="runs/trm-reward", metadata={"help": "where checkpoints and the model go"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in backward to save memory (train_rm.sh: on GPU)"}
    )
    bf16: bool | None = field(default=False, metadata={"help": "bf16 mixed precision (train_rm.sh: on with GPUs)"})
    report_to: Union[None, str, list[str]] = field(default="none", metadata={"help": "loggers: none, tensorboard, wandb"})
    logging_steps: float = field(default=10, metadata={"help": "log every N optimizer steps"})
    max_length: int | None = field(
        default=1024, metadata={"help": "longest TRM input in tokens; longer pairs are dropped (counted) or truncated"}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "a checkpoint folder, or 'auto' for the newest checkpoint-* under --output_dir"},
    )


def parse_args(argv: list[str], prog: str = "trm train-rm") -> tuple[ScriptArguments, TRMRewardConfig, ModelArguments]:
    from transformers import HfArgumentParser

    import argparse

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    # The project's own flags first in --help (the required ones among them), the pass-through ones after.
    usage = (f"{prog} --model_name_or_path PATH --train_file FILE [--validation_file FILE] [options]\n"
             f"       {prog} CONFIG.yaml|CONFIG.json")  # the full list of ~200 flags follows in the help itself
    parser = HfArgumentParser((ScriptArguments, ModelArguments, TRMRewardConfig), prog=prog, description=__doc__,
                              formatter_class=Formatter, usage=usage)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        script, model, config = parser.parse_yaml_file(os.path.abspath(argv[0]))
    elif len(argv) == 1 and argv[0].endswith(".json") and "=" not in argv[0]:
        script, model, config = parser.parse_json_file(os.path.abspath(argv[0]))
    else:
        script, model, config = parser.parse_args_into_dataclasses(args=argv)
    return script, config, model


def ensure_pad_token(tokenizer, model) -> str:
    """Give the tokenizer a pad token that is not EOS and tell the model config; returns what was done.

    A sequence classifier scores the last non-pad token, so pad == eos would make it score the wrong token
    whenever an input ends with EOS. An existing unused special token is preferred over adding a new one.
    """
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    action = "kept"
    if pad_id is None or pad_id == eos_id:
        vocab = tokenizer.get_vocab()
        candidate = next((t for t in PAD_CANDIDATES if t in vocab and vocab[t] != eos_id), None)
        if candidate is not None:
            tokenizer.pad_token = candidate
            action = f"reused {candidate!r}"
        else:
            tokenizer.add_special_tokens({"pad_token": NEW_PAD_TOKEN})
            model.resize_token_embeddings(len(tokenizer))
            action = f"added {NEW_PAD_TOKEN!r} (embeddings resized to {len(tokenizer)})"
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return action


def load_model_and_tokenizer(model_args: ModelArguments, config: TRMRewardConfig):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dtype = model_args.torch_dtype if model_args.torch_dtype == "auto" else getattr(torch, model_args.torch_dtype)
    kwargs: dict[str, Any] = {"num_labels": 1, "trust_remote_code": model_args.trust_remote_code, "dtype": dtype}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    kwargs.update(config.model_init_kwargs or {})
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, **kwargs)
    action = ensure_pad_token(tokenizer, model)
    logger.info("pad token %r (id %s): %s", tokenizer.pad_token, tokenizer.pad_token_id, action)
    if config.gradient_checkpointing:
        model.config.use_cache = False
    return model, tokenizer


def say(message: str) -> None:
    """A note on stderr, once per job (rank 0 only under accelerate/torchrun)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"[trm train-rm] {message}", file=sys.stderr)


def report_lengths(name: str, stats: EncodeStats) -> None:
    """Say on stderr what happened to over-long pairs (never silent)."""
    if stats.dropped_too_long:
        hint = "" if stats.truncation else "; pass --truncation left|right to keep them with a cut trace, or raise --max_length"
        say(
            f"{name}: dropped {stats.dropped_too_long} of {stats.pairs} pairs longer than "
            f"--max_length {stats.max_length} tokens (rows {stats.dropped_rows[:10]}{'...' if stats.dropped_too_long > 10 else ''}){hint}"
        )
    if stats.truncated:
        say(
            f"{name}: truncated the trace of {stats.truncated} of {stats.pairs} pairs "
            f"({stats.truncation} side) to fit --max_length {stats.max_length}"
        )


def last_complete_checkpoint(output_dir: str) -> str | None:
    """Newest ``checkpoint-N`` whose trainer_state.json (written last by the Trainer) is complete JSON.

    A run killed while saving leaves a newer, partial checkpoint folder; resuming from it would fail or
    silently load a half-written optimizer, so such folders are skipped with a message.
    """
    import re

    if not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(r"checkpoint-(\d+)", name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), os.path.join(output_dir, name)))
    for _, path in sorted(found, reverse=True):
        try:
            json.loads(Path(path, "trainer_state.json").read_text())
            return path
        except (OSError, ValueError):
            say(f"skipping incomplete checkpoint {path} (no readable trainer_state.json)")
    return None


def resolve_resume(config: TRMRewardConfig) -> str | None:
    """The checkpoint to resume from: an explicit path, or the newest complete one for 'auto'/'true'."""
    value = config.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "no", "none", ""):
        existing = last_complete_checkpoint(config.output_dir)
        if existing:
            say(f"{config.output_dir} already has {Path(existing).name}; starting from scratch anyway "
                "(pass --resume_from_checkpoint auto to continue from it)")
        return None
    if str(value).lower() in ("auto", "true", "yes", "last"):
        last = last_complete_checkpoint(config.output_dir)
        if last is None:
            say(f"no checkpoint under {config.output_dir}; starting from scratch")
        return last
    if not os.path.isdir(value):
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    return value


def _dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def train(script_args: ScriptArguments, config: TRMRewardConfig, model_args: ModelArguments,
          callbacks: list | None = None) -> dict:
    """Train, save model + tokenizer + eval_results.json into output_dir; return the final metrics."""
    import torch
    from trl import RewardTrainer

    from trm.data.preference import load_valid_records

    resume = resolve_resume(config)  # before any heavy work, so a wrong path fails fast
    if config.gradient_checkpointing and not config.gradient_checkpointing_kwargs:
        config.gradient_checkpointing_kwargs = {"use_reentrant": False}
    if not torch.cuda.is_available():
        config.dataloader_pin_memory = False  # nothing to pin for; avoids a warning per dataloader
    train_records = load_valid_records(script_args.train_file)
    if script_args.max_train_samples is not None:
        train_records = train_records[: script_args.max_train_samples]
    eval_records = load_valid_records(script_args.validation_file) if script_args.validation_file else None

    model, tokenizer = load_model_and_tokenizer(model_args, config)
    train_rows, train_stats = encode_pairs(train_records, tokenizer, config.max_length, script_args.truncation)
    report_lengths("train", train_stats)
    if not train_rows:
        raise ValueError(f"{script_args.train_file}: every pair is longer than --max_length {config.max_length}")
    eval_dataset, eval_stats = None, None
    if eval_records is not None:
        eval_rows, eval_stats = encode_pairs(eval_records, tokenizer, config.max_length, script_args.truncation)
        report_lengths("validation", eval_stats)
        if not eval_rows:
            raise ValueError(f"{script_args.validation_file}: every pair is longer than --max_length {config.max_length}")
        eval_dataset = _dataset(eval_rows)

    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=_dataset(train_rows),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if resume:
        say(f"resuming from {resume}")
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)
    data_stats = {"train_pairs": train_stats.as_dict()}
    train_metrics = {**train_result.metrics, "train_pairs_used": train_stats.kept, "global_step": trainer.state.global_step}
    trainer.save_metrics("train", train_metrics)
    metrics: dict[str, Any] = {"global_step": trainer.state.global_step}
    if eval_dataset is not None:
        metrics.update(trainer.evaluate())
        metrics["eval_pairs_used"] = eval_stats.kept
        data_stats["eval_pairs"] = eval_stats.as_dict()
        if trainer.state.best_model_checkpoint:
            metrics["best_model_checkpoint"] = trainer.state.best_model_checkpoint
        trainer.save_metrics("eval", metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        Path(config.output_dir, "trm_data_stats.json").write_text(json.dumps(data_stats, indent=2) + "\n")
    return metrics


def main(argv: list[str], prog: str = "trm train-rm") -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    script_args, config, model_args = parse_args(argv, prog)
    metrics = train(script_args, config, model_args)
    print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}, indent=2))
    return 0
