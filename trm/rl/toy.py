"""`trm rl toy`: a real GRPO loop on a CPU: TRL's GRPOTrainer, the thinking reward, the embedded servers.

verl needs vLLM/sglang and a GPU for a single step, so this is where the RL loop itself runs end to end at toy
scale: the tiny chat model (``trm tiny``) as the policy, small additions (operands 0..4) as the task, and
:class:`trm.integrations.trl.ThinkingReward` as the reward, through a TRM server (``trm serve reward``) and a
verifier server (``trm serve chat``), started here on loopback unless their URLs are given.

The random-init policy writes noise, so it first gets a short SFT on toy traces (``<think> a + b = c </think>
\\boxed{c}``) that teaches the format and some sums; GRPO then has right and wrong answers within a group to
learn from. The toy rows' data source is rule-checked only (integer answers need no LLM judge), so the verifier
is wired into the pipeline but not asked; add the data source to ``llm_data_sources`` to route failures to it.
Per step it prints the mean reward (and its moving average), the accuracy and the mean raw TRM score of the scored
(verified) answers; at the end the measured trend (mean reward of the first and last fifth of the steps, least-squares
slope) and the accuracy on every sum before and after GRPO. It writes ``steps.jsonl``, ``summary.json`` and
``reward_curve.png`` (raw points and moving averages) to the run folder (``--plot`` writes the figure elsewhere too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TOY_DATA_SOURCE = "toy_arithmetic"


@dataclass
class ToyConfig:
    """One `trm rl toy` run; every field is a flag of the same name (help from its metadata)."""

    output_dir: str = field(default="runs/rl_toy", metadata={"help": (
        "Run folder: tiny models, toy rows, server logs, steps.jsonl, reward_curve.png.")})
    seed: int = field(default=0, metadata={"help": "Seed of the toy rows, the tiny models, SFT and GRPO sampling."})
    max_operand: int = field(default=4, metadata={"help": (
        "Operands run 0..max_operand: 25 sums by default, all of them in every step; 9 gives all 100 single-digit "
        "sums, each drawn about twice in 30 steps of 8 prompts, too rarely for GRPO to move it.")})
    sft_steps: int = field(default=160, metadata={"help": (
        "Optimizer steps of the SFT warm-up (batch 32, lr 1e-3): the format and most sums. A weaker warm-up leaves "
        "more room that GRPO does not use here: after 120 (accuracy 0.39) the reward stayed flat, after 80 (a "
        "quarter of the answers missing) near 0.1.")})
    steps: int = field(default=30, metadata={"help": "GRPO steps (one generation batch each)."})
    prompts_per_step: int = field(default=25, metadata={"help": (
        "Prompts per GRPO step; each is sampled ``num_generations`` times. 25: every sum in every step, so a step's "
        "reward measures the policy on the whole set; with 8 it swung by about 0.1 with the draw and hid the rise.")})
    num_generations: int = field(default=8, metadata={"help": "Completions per prompt (GRPO's group)."})
    learning_rate: float = field(default=5e-4, metadata={"help": (
        "GRPO learning rate, after warm-up (1e-3 can halve the accuracy in one step, 2e-3 collapses the tiny "
        "policy into rambling).")})
    warmup_ratio: float = field(default=0.3, metadata={"help": (
        "Share of the steps with a linearly rising learning rate: Adam's first steps on noisy policy gradients "
        "are sign steps of the full rate on every weight.")})
    temperature: float = field(default=0.7, metadata={"help": (
        "Sampling temperature of GRPO's generations (and of the before/after accuracy); at 1.0 a sixth of the "
        "tiny policy's samples are garbage without an answer.")})
    max_completion_length: int = field(default=32, metadata={"help": (
        "Token budget of a completion (a toy trace takes about 20).")})
    alpha: float = field(default=0.2, metadata={"help": (
        "Weight of the thinking reward (0: verifier only, no TRM server needed).")})
    trm_endpoint: str | None = field(default=None, metadata={"help": (
        "TRM servers (host:port list); default: start `trm serve reward` on the tiny reward model here.")})
    verifier_endpoint: str | None = field(default=None, metadata={"help": (
        "Verifier servers; default: start `trm serve chat` on the tiny chat model here.")})
    trm_model: str | None = field(default=None, metadata={"help": (
        "Reward model folder for the TRM server started here (default: the tiny random-init reward model).")})
    plot: str | None = field(default=None, metadata={"help": (
        "Also write the reward curve here (e.g. assets/rl_toy.png).")})
    smoothing_window: int = field(default=5, metadata={"help": (
        "Steps in the moving average drawn over the raw per-step points (and in steps.jsonl).")})
    torch_threads: int = field(default=1, metadata={"help": (
        "Torch threads here and in the servers started here: the tiny models are too small for threads to pay, "
        "and on 2 busy cores 2 threads ran the SFT warm-up 7x slower than 1.")})


def toy_rows(seed: int = 0, max_operand: int = 9) -> list[dict]:
    """All additions a + b with 0 <= a, b <= max_operand as verl RL rows (the layout of `trm data webinstruct
    convert`), shuffled."""
    rows = []
    pairs = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
    random.Random(seed).shuffle(pairs)
    for index, (a, b) in enumerate(pairs):
        question = f"What is {a} + {b}?"
        rows.append({
            "data_source": TOY_DATA_SOURCE,
            "prompt": [{"role": "user", "content": question}],
            "reward_model": {"style": "rule", "ground_truth": str(a + b)},
            "extra_info": {"user_prompt": question, "question": question, "index": index, "split": "train"},
        })
    return rows


def toy_trace(row: dict) -> str:
    """The SFT target for a row: a short reasoning trace and the boxed answer."""
    question = row["extra_info"]["question"]
    expression = question.removeprefix("What is ").removesuffix("?")
    return f"<think>\n{expression} = {row['reward_model']['ground_truth']}\n</think>\n\\boxed{{{row['reward_model']['ground_truth']}}}"


def policy_tokenizer(path: str | Path):
    """The policy's tokenizer as TRL's generation needs it: left padding; EOS is the end of the assistant turn
    (TRL stops at ``tokenizer.eos_token_id`` only); and no ``token_type_ids`` (the tiny tokenizer returns them and
    Llama's ``generate`` rejects them)."""
    from transformers import AutoTokenizer

    from trm.tiny import IM_END

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    tokenizer.eos_token = IM_END
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


def sft_warmup(model, tokenizer, rows: list[dict], steps: int, seed: int, batch_size: int = 32, lr: float = 1e-3) -> float:
    """Teacher-forced cross-entropy on the completion tokens of toy traces (the prompt is masked); returns the
    last batch's loss."""
    import torch

    end = tokenizer.eos_token_id  # the end of the turn (policy_tokenizer)
    examples = []
    for row in rows:
        prompt_ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True)
        target = tokenizer(toy_trace(row), add_special_tokens=False)["input_ids"] + [end]
        examples.append((prompt_ids + target, len(prompt_ids)))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        width = max(len(examples[i][0]) for i in picks)
        ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        labels = torch.full((batch_size, width), -100)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for row_number, i in enumerate(picks):
            tokens, prompt_len = examples[i]
            ids[row_number, : len(tokens)] = torch.tensor(tokens)
            labels[row_number, prompt_len : len(tokens)] = torch.tensor(tokens[prompt_len:])
            mask[row_number, : len(tokens)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return float(loss.detach())


def sampled_accuracy(model, tokenizer, rows: list[dict], reward, samples: int, temperature: float,
                     max_new_tokens: int, seed: int) -> float:
    """Share of right answers over ``samples`` completions of every row, sampled as GRPO samples them (full
    softmax at ``temperature``) and judged by ``reward``'s pipeline: the whole toy set, not the draw of a step."""
    import torch

    from trm.rewards.compute import reward_batch_sync

    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True) for r in rows]
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (ids != tokenizer.pad_token_id).long()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_k=0,
                             top_p=1.0, max_new_tokens=max_new_tokens, num_return_sequences=samples,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    completion_ids = [[t for t in row if t != tokenizer.pad_token_id] for row in out[:, width:].tolist()]
    repeated = [r for r in rows for _ in range(samples)]
    columns = {key: [r[key] for r in repeated] for key in ("data_source", "reward_model", "extra_info")}
    requests = reward.requests([r["prompt"] for r in repeated], [""] * len(repeated), completion_ids, columns)
    results = reward_batch_sync(requests, reward.settings)
    return sum(r.verdict.correct for r in results) / len(results)


def step_records(log_history: list[dict], name: str) -> list[dict]:
    """Per GRPO step: reward, accuracy and mean TRM score as TRL logged them (logging_steps=1)."""
    records = []
    for entry in log_history:
        if f"{name}/accuracy" not in entry:
            continue
        records.append({
            "step": entry["step"],
            "reward": entry["reward"],
            "accuracy": entry[f"{name}/accuracy"],
            "trm_score_mean": entry.get(f"{name}/trm_score_mean"),
            "has_answer": entry[f"{name}/has_answer"],
        })
    return records


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    return [sum(values[max(0, i + 1 - window) : i + 1]) / (i + 1 - max(0, i + 1 - window)) for i in range(len(values))]


def reward_trend(rewards: list[float]) -> dict:
    """Whether the curve rises, as numbers: the mean reward of the first and the last fifth of the steps, and the
    least-squares slope per step (times the steps: the fitted rise over the run)."""
    n, k = len(rewards), max(1, len(rewards) // 5)
    slope = statistics.linear_regression(range(n), rewards).slope if n > 1 else 0.0
    return {"steps_per_fifth": k, "first_fifth": sum(rewards[:k]) / k, "last_fifth": sum(rewards[-k:]) / k,
            "slope_per_step": slope, "fitted_rise": slope * (n - 1)}


def plot_curve(records: list[dict], path: str | Path, title: str, window: int) -> Path:
    from trm.evaluation.plotting import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    steps = [r["step"] for r in records]
    for key, label, color in (("reward", "mean reward", "C0"), ("accuracy", "accuracy (verifier)", "C1")):
        values = [r[key] for r in records]
        ax.plot(steps, values, marker=".", linestyle="none", alpha=0.45, color=color, label=f"{label}, per step")
        ax.plot(steps, moving_average(values, window), color=color, label=f"{label}, mean of last {window} steps")
    ax.set(title=title, xlabel="GRPO step", ylabel="batch mean", ylim=(0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def run(config: ToyConfig) -> list[dict]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from trm.integrations.trl import ThinkingReward
    from trm.serving.process import running_server
    from trm.tiny import build_tiny_models

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    models = build_tiny_models(out / "models", seed=config.seed)
    rows = toy_rows(config.seed, config.max_operand)
    (out / "toy_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    tokenizer = policy_tokenizer(models["chat"])
    policy = AutoModelForCausalLM.from_pretrained(models["chat"])
    started = time.monotonic()
    loss = sft_warmup(policy, tokenizer, rows, config.sft_steps, config.seed)
    print(f"SFT warm-up: {config.sft_steps} steps in {time.monotonic() - started:.1f}s, last loss {loss:.3f}", flush=True)

    threads = ["--torch-threads", str(config.torch_threads)]
    with contextlib.ExitStack() as stack:
        rm = config.trm_endpoint
        if rm is None and config.alpha > 0:
            rm = stack.enter_context(running_server(
                ["serve", "reward", "--model", str(config.trm_model or models["reward"]), *threads],
                out / "trm-server.log", timeout=300.0)).url
        verifier = config.verifier_endpoint or stack.enter_context(running_server(
            ["serve", "chat", "--model", str(models["chat"]), "--served-model-name", "TIGER-Lab/general-verifier",
             *threads],
            out / "verifier-server.log", timeout=300.0)).url
        reward = ThinkingReward(rm_backends=rm, verifier_backends=verifier, alpha=config.alpha, deadline_s=120.0,
                                tokenizer=tokenizer)
        for line in reward.settings.describe():
            print(line, flush=True)
        args = GRPOConfig(
            output_dir=str(out / "grpo"), max_steps=config.steps, learning_rate=config.learning_rate,
            per_device_train_batch_size=config.prompts_per_step * config.num_generations,
            num_generations=config.num_generations, max_completion_length=config.max_completion_length,
            lr_scheduler_type="constant_with_warmup", warmup_ratio=config.warmup_ratio,
            temperature=config.temperature, beta=0.0,
            # No division by the group's reward std: with most of a group right, it blows up the push-down on the
            # few wrong answers, which spreads the policy's mass and its entropy climbs until it rambles; truncated
            # rambling is left out of the loss for the same reason.
            scale_rewards="none", mask_truncated_completions=True, logging_steps=1, save_strategy="no",
            report_to="none", use_cpu=True,
            seed=config.seed, disable_tqdm=True, dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer)
        reward.attach(trainer)
        measure = lambda: sampled_accuracy(policy, tokenizer, rows, reward, 8, config.temperature,  # noqa: E731
                                           config.max_completion_length, config.seed)
        before = measure()
        started = time.monotonic()
        trainer.train()
        elapsed = time.monotonic() - started
        after = measure()

    records = step_records(trainer.state.log_history, reward.__name__)
    smoothed = moving_average([r["reward"] for r in records], config.smoothing_window)
    print(f"\n{'step':>4} {'reward':>7} {'mean of last ' + str(config.smoothing_window):>16} {'accuracy':>8} "
          f"{'answered':>8} {'TRM mean':>8}")
    for r, mean in zip(records, smoothed):
        r["reward_moving_average"] = mean
        trm_mean = "-" if r["trm_score_mean"] is None else f"{r['trm_score_mean']:.3f}"
        print(f"{r['step']:>4} {r['reward']:>7.3f} {mean:>16.3f} {r['accuracy']:>8.3f} {r['has_answer']:>8.3f} "
              f"{trm_mean:>8}")
    trend = reward_trend([r["reward"] for r in records])
    k = trend["steps_per_fifth"]
    print(f"GRPO: {len(records)} steps in {elapsed:.0f}s; mean reward of the first {k} steps "
          f"{trend['first_fifth']:.3f}, of the last {k} {trend['last_fifth']:.3f}; "
          f"fitted slope {trend['slope_per_step']:+.4f} per step ({trend['fitted_rise']:+.3f} over the run)")
    print(f"accuracy on all {len(rows)} sums (8 samples each, temperature {config.temperature:g}): "
          f"{before:.3f} before GRPO, {after:.3f} after")
    summary = {"accuracy_before": before, "accuracy_after": after, "reward_trend": trend,
               "grpo_seconds": elapsed, "config": vars(config)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    title = (f"trm rl toy (seed {config.seed}): tiny policy, sums of 0..{config.max_operand}, "
             f"{config.prompts_per_step} prompts x {config.num_generations} samples/step, alpha {config.alpha}")
    for path in [out / "reward_curve.png"] + ([Path(config.plot)] if config.plot else []):
        print(f"wrote {plot_curve(records, path, title, config.smoothing_window)}")
    return records


def main(argv: list[str], prog: str = "trm rl toy") -> int:
    from trm.cli import HelpFormatter, add_alias, add_dataclass_arguments, dataclass_from_args

    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    add_dataclass_arguments(parser, ToyConfig)
    for old_name, name in (("--out", "--output-dir"), ("--rm-backends", "--trm-endpoint"),
                           ("--verifier-backends", "--verifier-endpoint")):
        add_alias(parser, old_name, name)  # the project's one flag vocabulary; old spellings for one release
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the servers started here are stopped
    run(dataclass_from_args(ToyConfig, args))  # a dead server or a failed reward raises: never a curve for it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
