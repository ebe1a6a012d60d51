"""`trm rl check [overrides...]`: the dry run behind `bash train.sh --dry-run`.

Composes the full verl config with the same Hydra overrides as the launch, runs verl's validation, loads the
reward manager through verl's own ``load_reward_manager`` and prints a one-screen summary. Any error (a
misspelled key, an invalid value, a missing reward file, a bad reward argument) exits non-zero with the message
of the library that raised it.
"""

from __future__ import annotations

import argparse
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trm.cli import HelpFormatter
from trm.errors import RunFailed
from trm.rl.config import compose_ppo_config, local_path, validate_ppo_config
from trm.rl.context import check_batched_tokens, check_policy_context


def _data_notes(config: DictConfig) -> tuple[list[str], int | None]:
    """Where the data files are missing here (fine on a laptop), or present but unusable (an error); and the
    number of training rows when every training file is local (None otherwise)."""
    import pyarrow.parquet as pq

    from trm.data.webinstruct import validate_parquet

    notes = []
    train_rows: int | None = None
    for split in ("train_files", "val_files"):
        files = config.data[split]
        rows, missing = 0, False
        for file in [files] if isinstance(files, str) else list(files):
            path = local_path(file)
            if path is None:
                notes.append(f"data.{split}: {file} does not exist on this machine (checked at launch)")
                missing = True
                continue
            problems = validate_parquet(path)
            if problems:
                shown = "\n  ".join(problems[:10])
                raise ValueError(f"data.{split}: {file} is not usable for the verify reward:\n  {shown}")
            rows += pq.ParquetFile(path).metadata.num_rows
        if split == "train_files" and 0 < rows < config.data.train_batch_size:
            raise ValueError(f"data.train_files has {rows} rows, fewer than data.train_batch_size="
                             f"{config.data.train_batch_size}: verl's train dataloader (drop_last) would be empty")
        if split == "train_files" and not missing:
            train_rows = rows
    return notes, train_rows


def run_length(config: DictConfig, train_rows: int | None) -> str:
    """Steps and epochs of the run as verl's trainer counts them (drop_last batches; whichever bound comes first).

    Raises when the epochs end before ``trainer.total_training_steps``: verl would stop early, without the final
    validation and checkpoint it runs on the last step.
    """
    t = config.trainer
    steps, epochs, batch = t.total_training_steps, t.total_epochs, config.data.train_batch_size
    if train_rows is None:
        what = f"{steps} steps (trainer.total_training_steps)" if steps is not None else f"{epochs} epochs"
        return (f"{what}, at most {epochs} epochs; steps per epoch not computed: the training parquet is not on "
                f"this machine (rows / data.train_batch_size {batch})")
    per_epoch = train_rows // batch
    if steps is None:
        return f"{epochs} epochs x {per_epoch} steps ({train_rows} rows / batch {batch}) = {epochs * per_epoch} steps"
    if per_epoch * epochs < steps:
        needed = -(-steps // per_epoch)
        raise ValueError(
            f"trainer.total_training_steps={steps} but {train_rows} rows / batch {batch} = {per_epoch} steps per epoch "
            f"x trainer.total_epochs={epochs} = {per_epoch * epochs} steps: verl would stop there, without its "
            f"last-step validation and checkpoint. Set TOTAL_EPOCHS={needed} or TOTAL_TRAINING_STEPS={per_epoch * epochs}")
    return (f"{steps} steps (trainer.total_training_steps) = {steps / per_epoch:.2f} epochs of {per_epoch} steps "
            f"({train_rows} rows / batch {batch}); trainer.total_epochs={epochs} allows {per_epoch * epochs}")


def _load_tokenizer(config: DictConfig) -> tuple[Any, str | None]:
    model = config.actor_rollout_ref.model.path
    if local_path(model) is None:
        return None, f"policy {model} is not a local path here: the reward manager was built without its tokenizer"
    from verl.utils import hf_tokenizer

    return hf_tokenizer(str(local_path(model)), trust_remote_code=config.data.get("trust_remote_code", False)), None


def load_manager(config: DictConfig, tokenizer: Any, num_examine: int = 0):
    """The reward manager exactly as main_ppo builds it."""
    from verl.trainer.ppo.reward import load_reward_manager

    return load_reward_manager(
        config, tokenizer, num_examine=num_examine, **config.reward_model.get("reward_kwargs", {})
    )


def summary(config: DictConfig, manager: Any, checks: list[str], notes: list[str], length: str,
            context: list[str]) -> str:
    a = config.actor_rollout_ref.actor
    r = config.actor_rollout_ref.rollout
    ref = config.actor_rollout_ref.ref
    d = config.data
    t = config.trainer
    responses = d.train_batch_size * r.n
    lines = [
        f"verl GRPO config OK: {', '.join(checks)}",
        f"  policy     {config.actor_rollout_ref.model.path}",
        f"  data       train {d.train_files}",
        f"             val   {d.val_files}",
        f"  algorithm  {config.algorithm.adv_estimator}; kl loss {a.use_kl_loss} ({a.kl_loss_type}, {a.kl_loss_coef}); "
        f"kl in reward {config.algorithm.use_kl_in_reward}; entropy {a.entropy_coeff}",
        f"  batch      {d.train_batch_size} prompts x {r.n} rollouts = {responses} responses/step; "
        f"mini-batch {a.ppo_mini_batch_size}; lr {a.optim.lr}",
        f"  length     {length}",
        f"  clip       low {a.clip_ratio_low}, high {a.clip_ratio_high}, c {a.clip_ratio_c}",
        f"  rollout    {r.name} TP {r.tensor_model_parallel_size}; T={r.temperature}; "
        f"prompt {d.max_prompt_length} / response {d.max_response_length} tokens",
        f"  context    {context[0]}",
        *[f"             {line}" for line in context[1:]],
        f"  memory     actor {a.ppo_max_token_len_per_gpu} / rollout log-prob {r.log_prob_max_token_len_per_gpu} / "
        f"ref log-prob {ref.log_prob_max_token_len_per_gpu} tokens per GPU; vLLM gpu_memory_utilization "
        f"{r.gpu_memory_utilization}; ref param_offload {ref.fsdp_config.param_offload}",
        f"  schedule   val batch {d.val_batch_size}; test every {t.test_freq} steps (before training "
        f"{t.val_before_train}); save every {t.save_freq} steps; kl_ctrl.kl_coef {config.algorithm.kl_ctrl.kl_coef}",
        f"  hardware   {t.n_gpus_per_node} GPUs x {t.nnodes} node(s)",
        f"  reward     manager {config.reward_model.reward_manager} ({type(manager).__module__}."
        f"{type(manager).__name__}); async {config.reward_model.launch_reward_fn_async}; "
        f"fn {config.custom_reward_function.path}:{config.custom_reward_function.name}",
    ]
    describe = getattr(manager, "describe", None)
    if callable(describe):
        lines += [f"             {line}" for line in describe()]
    lines += [f"  note: {note}" for note in notes]
    return "\n".join(lines)


def run_check(overrides: list[str]) -> str:
    """Compose, validate and load the reward manager; return the summary (raises on any problem)."""
    config = compose_ppo_config(overrides)
    checks = ["hydra composition"] + validate_ppo_config(config)
    notes, train_rows = _data_notes(config)
    length = run_length(config, train_rows)
    context = [check_batched_tokens(config)]
    context[:0] = check_policy_context(config, local_path(config.actor_rollout_ref.model.path))
    checks.append("context and batched tokens")
    tokenizer, note = _load_tokenizer(config)
    notes += [note] if note else []
    actor = config.actor_rollout_ref.actor
    if actor.ppo_mini_batch_size > config.data.train_batch_size:
        notes.append(f"actor.ppo_mini_batch_size {actor.ppo_mini_batch_size} > data.train_batch_size "
                     f"{config.data.train_batch_size}: one policy update per step")
    if config.reward_model.reward_manager == "verify" and config.custom_reward_function.get("reward_kwargs"):
        raise ValueError("custom_reward_function.reward_kwargs reach only the per-sample compute_score, not the verify "
                         "manager: pass them as +reward_model.reward_kwargs.<name>=...")
    manager = load_manager(config, tokenizer)
    checks.append("reward manager loaded")
    return summary(config, manager, checks, notes, length, context)


def main(argv: list[str], prog: str = "trm rl check") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Compose verl's ppo_trainer config with Hydra overrides, validate it and load the reward "
        "manager, without GPUs. `bash train.sh --dry-run [overrides]` calls this with train.sh's overrides.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.train_batch_size=64")
    parser.add_argument("--print-config", action="store_true", help="also print the full resolved config (YAML)")
    args = parser.parse_args(argv)
    try:
        text = run_check(args.overrides)
        if args.print_config:
            print(OmegaConf.to_yaml(compose_ppo_config(args.overrides), resolve=True))
    except Exception as error:  # the dry run's job is to report the library's message, whatever raised it
        raise RunFailed(f"config check failed: {type(error).__name__}: {error}") from error
    print(text)
    return 0
