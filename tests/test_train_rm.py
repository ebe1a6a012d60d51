"""`trm train-rm`: a tiny TRM trained with TRL on the toy pairs learns them, saves what serving needs,
resumes after an interruption, reports over-long pairs, and is scored identically in-process and over HTTP."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from transformers import TrainerCallback

from trm_testing.training import SERVER_ENV, TOY_TEST, TOY_TRAIN, TRAIN_PAIRS, one_torch_thread, release_flags, trained_reward_model
from trm.data.preference import load_records, save_records
from trm.training.encode import encode_pairs
from trm.data.pairs import preference_parts, preference_texts
from trm.training.train_rm import ensure_pad_token, parse_args, train
from trm.cli import main as trm


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models) -> Path:
    return trained_reward_model(tmp_path_factory, tiny_models)


def run_eval(capsys, *argv: str) -> dict:
    assert trm(["eval", "rm", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_learns_toy_pairs_from_chance_to_held_out_accuracy(trained, tiny_models, capsys):
    before = run_eval(capsys, "--data", str(TOY_TEST), "--model", str(tiny_models["reward"]))
    after = run_eval(capsys, "--data", str(TOY_TEST), "--model", str(trained))
    assert before["pairs"] == after["pairs"] == len(load_records(TOY_TEST))
    assert before["accuracy"] < 0.75, before  # an untrained head is about chance
    assert after["accuracy"] >= 0.9, after
    # The toy set has no length shortcut: the shorter-trace baseline is near chance on the same pairs.
    assert 0.3 <= after["baselines"]["shorter_trace"]["accuracy"] <= 0.7
    assert after["correct"] + after["tie"] + after["wrong"] == after["pairs"]


def test_saves_model_tokenizer_and_eval_results(trained):
    from transformers import AutoConfig, AutoTokenizer

    results = json.loads((trained / "eval_results.json").read_text())
    assert results["eval_accuracy"] >= 0.9
    assert results["eval_pairs_used"] == len(load_records(TOY_TEST))
    assert results["global_step"] == TRAIN_PAIRS // 8
    assert "checkpoint-" in results["best_model_checkpoint"]
    tokenizer = AutoTokenizer.from_pretrained(trained)
    config = AutoConfig.from_pretrained(trained)
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert config.pad_token_id == tokenizer.pad_token_id and config.num_labels == 1
    stats = json.loads((trained / "trm_data_stats.json").read_text())
    assert stats["train_pairs"]["kept"] == TRAIN_PAIRS and stats["train_pairs"]["dropped_too_long"] == 0


def test_served_model_ranks_held_out_pairs_like_eval_rm(trained, tmp_path, capsys):
    from trm_testing.serving import running_server

    local_scores, served_scores = tmp_path / "local.jsonl", tmp_path / "served.jsonl"
    local = run_eval(capsys, "--data", str(TOY_TEST), "--model", str(trained), "--scores", str(local_scores))
    with running_server(["serve", "reward", "--model", str(trained)], env=SERVER_ENV) as url:
        served = run_eval(capsys, "--data", str(TOY_TEST), "--endpoint", url, "--scores", str(served_scores))
    assert served["accuracy"] >= 0.9 and served["correct"] == local["correct"]
    rows_local = [json.loads(line) for line in local_scores.read_text().splitlines()]
    rows_served = [json.loads(line) for line in served_scores.read_text().splitlines()]
    assert len(rows_local) == len(rows_served) == local["pairs"]
    for a, b in zip(rows_local, rows_served):
        assert math.isclose(a["chosen"], b["chosen"], abs_tol=1e-4) and math.isclose(a["rejected"], b["rejected"], abs_tol=1e-4)


def test_training_text_is_the_serving_text(tiny_models):
    """The ids TRL trains on are exactly the tokenization of trm_input(prompt, trace), nothing appended."""
    from transformers import AutoTokenizer

    from trm.traces import trm_input

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["reward"])
    record = load_records(TOY_TEST)[0]
    rows, stats = encode_pairs([record], tokenizer, max_length=None)
    prompt, chosen, _ = preference_parts(record)
    assert preference_texts(record)[0] == trm_input(prompt, chosen)
    assert "</think>" not in preference_texts(record)[0] and prompt == record["prompt"][0]["content"]
    assert rows[0]["chosen_input_ids"] == tokenizer(trm_input(prompt, chosen))["input_ids"]
    assert stats.kept == 1


class StopAfter(TrainerCallback):
    """Simulates a crash (pre-emption, OOM) right after a given optimizer step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"interrupted at step {state.global_step}")


def test_interrupted_training_resumes_to_the_same_step_count(tiny_models, tmp_path, capsys):
    out = tmp_path / "run"
    parquet = tmp_path / "train.parquet"  # training reads parquet as well as JSON/JSONL
    save_records(load_records(TOY_TRAIN)[:48], parquet)
    argv = release_flags(tiny_models["reward"], out, train_file=parquet, max_train_samples=48, validation_file=None,
                         eval_strategy="no", load_best_model_at_end=None, metric_for_best_model=None, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train(*parse_args(argv), callbacks=[StopAfter(3)])
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    assert not (out / "model.safetensors").exists()

    # A run killed while saving leaves a newer, partial checkpoint: resuming must skip it.
    partial = out / "checkpoint-4"
    partial.mkdir()
    (partial / "trainer_state.json").write_text('{"global_step": 4, "log_hi')
    steps = CountSteps()
    metrics = train(*parse_args(argv + ["--resume_from_checkpoint", "auto"]), callbacks=[steps])
    err = capsys.readouterr().err
    assert f"resuming from {out / 'checkpoint-2'}" in err and f"skipping incomplete checkpoint {partial}" in err
    assert steps.seen == [3, 4, 5, 6]  # continued after the checkpoint, did not start over
    assert metrics["global_step"] == 48 // 8
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 48 // 8 and (out / "model.safetensors").exists()


class CountSteps(TrainerCallback):
    def __init__(self):
        self.seen: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(state.global_step)


def test_over_long_pairs_are_counted_or_their_traces_truncated(tiny_models, tmp_path, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["reward"])
    records = load_records(TOY_TRAIN)[:40]
    lengths = [max(len(tokenizer(t)["input_ids"]) for t in preference_texts(r)) for r in records]
    limit = sorted(lengths)[len(lengths) // 2]
    too_long = sum(n > limit for n in lengths)
    assert too_long > 0

    rows, stats = encode_pairs(records, tokenizer, max_length=limit)
    assert stats.dropped_too_long == too_long and len(rows) == len(records) - too_long and stats.truncated == 0

    for side in ("left", "right"):
        rows, stats = encode_pairs(records, tokenizer, max_length=limit, truncation=side)
        assert len(rows) == len(records) and stats.truncated > 0 and stats.dropped_too_long == 0
        for record, row in zip(records, rows):
            full = tokenizer(preference_texts(record)[0])["input_ids"]
            ids = row["chosen_input_ids"]
            if len(full) <= limit:
                assert ids == full
                continue
            assert len(ids) == limit
            if side == "right":
                assert ids == full[:limit]
            else:
                head = len(tokenizer(preference_parts(record)[0])["input_ids"])
                assert ids[:head] == full[:head]  # the prompt is kept whole
                assert ids[head + 1 :] == full[len(full) - (limit - head - 1) :]  # the end of the trace survives

    # The command says how many pairs it dropped (never silent).
    argv = release_flags(tiny_models["reward"], tmp_path / "short", max_train_samples=40, max_length=limit,
                         validation_file=None, eval_strategy="no", load_best_model_at_end=None,
                         metric_for_best_model=None, max_steps=1)
    train(*parse_args(argv))
    assert f"dropped {too_long} of 40 pairs longer than --max_length {limit}" in capsys.readouterr().err


def test_release_flags_pass_through_and_cpu_defaults(tmp_path):
    script, config, model = parse_args([
        "--model_name_or_path", "m", "--train_file", "t.jsonl", "--validation_file", "v.jsonl",
        "--output_dir", str(tmp_path), "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "12",
        "--learning_rate", "5e-6", "--warmup_ratio", "0.03", "--weight_decay", "1e-3",
        "--center_rewards_coefficient", "0.001", "--eval_strategy", "steps", "--eval_steps", "8",
        "--save_steps", "8", "--load_best_model_at_end", "--metric_for_best_model", "accuracy", "--seed", "42",
        "--dataloader_drop_last", "--truncation", "left", "--lr_scheduler_type", "cosine",
    ])
    assert (script.train_file, script.validation_file, script.truncation) == ("t.jsonl", "v.jsonl", "left")
    assert model.model_name_or_path == "m" and model.trust_remote_code is False
    assert config.per_device_train_batch_size == 2 and config.gradient_accumulation_steps == 12
    assert config.center_rewards_coefficient == 0.001 and config.metric_for_best_model == "accuracy"
    assert config.load_best_model_at_end and config.dataloader_drop_last and config.eval_steps == 8
    assert config.lr_scheduler_type == "cosine" and config.learning_rate == 5e-6
    # CPU-safe defaults when nothing is said.
    _, plain, _ = parse_args(["--model_name_or_path", "m", "--train_file", "t.jsonl", "--output_dir", str(tmp_path)])
    assert plain.bf16 is False and plain.gradient_checkpointing is False and plain.report_to == []
    with pytest.raises(SystemExit):
        parse_args(["--model_name_or_path", "m", "--train_file", "t", "--truncation", "middle"])


def test_pad_token_is_made_distinct_from_eos(tiny_models):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["reward"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["reward"], num_labels=1)
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.eos_token_id
    ensure_pad_token(tokenizer, model)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id

    # No reusable token in the vocabulary: a new one is added and the embeddings grow to hold it.
    tokenizer.pad_token = tokenizer.eos_token
    from trm.training import train_rm

    before = model.get_input_embeddings().weight.shape[0]
    saved = train_rm.PAD_CANDIDATES
    train_rm.PAD_CANDIDATES = ()
    try:
        ensure_pad_token(tokenizer, model)
    finally:
        train_rm.PAD_CANDIDATES = saved
    assert tokenizer.pad_token == train_rm.NEW_PAD_TOKEN and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) > before - 1
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_malformed_training_file_fails_naming_row_and_field(tiny_models, tmp_path, capsys):
    records = load_records(TOY_TEST)[:5]
    records[3]["chosen"] = [{"role": "assistant"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in records))
    code = trm(["train-rm", "--model_name_or_path", str(tiny_models["reward"]), "--train_file", str(bad),
                 "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "row 3" in err and "chosen[0].content" in err
    assert not (tmp_path / "out").exists()
