#!/usr/bin/env python3
"""Training throughput of `trm train-rm` (TRL RewardTrainer) vs a plain PyTorch loop, side by side.

Both train the same model (loaded from the same folder) on the same batches in the same order: the batches are
taken from the trainer's own dataloader, so padding and shapes are identical. The plain loop does exactly the
work a reward-model step needs (forward on chosen+rejected, Bradley-Terry loss with reward centering, backward,
gradient clipping, AdamW, linear schedule) and nothing else. The trainer side is timed from its on_train_begin
to its on_train_end callback (model loading, tokenization and saving are outside both timings); its batch
collation is inside its timing and outside the plain loop's, so the ratio is, if anything, pessimistic.

    python bench/bench_train_rm.py                 # small tiny-Llama (4 layers, hidden 256), 64 pairs, 3 repeats, ~2 min
    python bench/bench_train_rm.py --size tiny --repeats 3

Prints pairs/s for each and the overhead ratio (plain loop pairs/s / trainer pairs/s; target <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def trainer_run(model_dir: Path, train_file: Path, out: Path, args) -> tuple[float, int]:
    """Seconds inside trainer.train() and pairs trained, through the same `train()` that `trm train-rm` runs."""
    from transformers import TrainerCallback

    from trm.training.train_rm import parse_args, train

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_train_end(self, *a, **k):
            self.seconds = time.perf_counter() - self.start

    timer = Timer()
    argv = config_flags(model_dir, train_file, out, args)
    metrics = train(*parse_args(argv), callbacks=[timer])
    return timer.seconds, args.pairs * args.epochs if metrics else 0


def config_flags(model_dir: Path, train_file: Path, out: Path, args) -> list[str]:
    return [
        "--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
        "--max_train_samples", str(args.pairs), "--per_device_train_batch_size", str(args.batch_size),
        "--num_train_epochs", str(args.epochs), "--learning_rate", "1e-4", "--center_rewards_coefficient", "0.001",
        "--save_strategy", "no", "--eval_strategy", "no", "--logging_steps", "1000", "--disable_tqdm", "true",
        "--seed", "42", "--overwrite_output_dir",
    ]


def trainer_batches(model_dir: Path, train_file: Path, args) -> list[dict]:
    """The exact batches the trainer iterates (same seed, same sampler, same collator)."""
    from transformers import set_seed
    from trl import RewardTrainer

    from trm.data.preference import load_valid_records
    from trm.training.encode import encode_pairs
    from trm.training.train_rm import _dataset, load_model_and_tokenizer, parse_args

    with tempfile.TemporaryDirectory() as tmp:
        script, config, model_args = parse_args(config_flags(model_dir, train_file, Path(tmp), args))
        config.dataloader_pin_memory = False  # as train() does on a CPU
        model, tokenizer = load_model_and_tokenizer(model_args, config)
        rows, _ = encode_pairs(load_valid_records(train_file)[: args.pairs], tokenizer, config.max_length)
        trainer = RewardTrainer(model=model, args=config, train_dataset=_dataset(rows), processing_class=tokenizer)
        batches = []
        for _ in range(args.epochs):
            set_seed(config.seed)
            batches.extend(dict(b) for b in trainer.get_train_dataloader())
    return batches


def plain_loop(model_dir: Path, batches: list[dict], center: float = 0.001, lr: float = 1e-4) -> float:
    """Seconds for the bare forward/backward/step loop over the given batches."""
    import torch
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, len(batches))
    start = time.perf_counter()
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        chosen, rejected = torch.chunk(logits.squeeze(-1), 2)
        loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean() + center * torch.mean((chosen + rejected) ** 2)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small", help="trm.tiny model size")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps a shared CPU box steady)")
    parser.add_argument("--data", default=str(REPO / "data" / "toy_preferences_train.jsonl"))
    args = parser.parse_args()

    import torch

    from trm.tiny import build_tiny_models

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_models(Path(tmp) / "models", seed=0, size=args.size)["reward"]
        batches = trainer_batches(model_dir, Path(args.data), args)
        pairs = sum(b["input_ids"].shape[0] // 2 for b in batches)
        trainer_s, plain_s = [], []
        for repeat in range(args.repeats):
            seconds, trained = trainer_run(model_dir, Path(args.data), Path(tmp) / f"run{repeat}", args)
            assert trained == pairs, (trained, pairs)
            trainer_s.append(seconds)
            plain_s.append(plain_loop(model_dir, batches))
            print(f"repeat {repeat}: trainer {seconds:.2f}s, plain loop {plain_s[-1]:.2f}s", file=sys.stderr)
    trainer_rate = pairs / statistics.median(trainer_s)
    plain_rate = pairs / statistics.median(plain_s)
    result = {
        "model": args.size, "pairs": pairs, "batch_size": args.batch_size, "steps": len(batches),
        "threads": args.threads, "trainer_pairs_per_s": round(trainer_rate, 2),
        "plain_loop_pairs_per_s": round(plain_rate, 2), "overhead_ratio": round(plain_rate / trainer_rate, 3),
        "target_ratio": 1.3,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
