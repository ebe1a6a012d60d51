"""`trm data trm-preference` and the record -> text rules: malformed records are named by row and field,
files convert between JSON/JSONL/parquet without loss, splits are seeded, descriptions count what is there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trm_testing.training import REPO, TOY_TEST
from trm.data.preference import (
    PreferenceDataError,
    load_records,
    load_valid_records,
    save_records,
    split_records,
    validate_records,
)
from trm.data.pairs import RecordError, preference_texts, trace_lengths
from trm.cli import main as trm


def main(argv: list[str]) -> int:
    return trm(["data", "trm-preference", *argv])


def good(question="What is 2 + 3?", chosen="<think>2 + 3 = 5.</think> \\boxed{5}", rejected="<think>hmm 5</think> 5"):
    return {
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("rejected"), "'rejected'"),
        (lambda r: r.update(prompt=[]), "'prompt'"),
        (lambda r: r.update(prompt=[{"role": "system", "content": "be brief"}]), "'prompt'"),
        (lambda r: r["chosen"][0].pop("content"), "'chosen[0].content'"),
        (lambda r: r["rejected"][0].update(content=7), "'rejected[0].content'"),
        (lambda r: r["chosen"][0].update(role=None), "'chosen[0].role'"),
        (lambda r: r.update(rejected=[{"role": "user", "content": "x"}]), "'rejected'"),
        (lambda r: r.update(chosen="not" and 3), "'chosen'"),
    ],
)
def test_malformed_records_are_named_by_row_and_field(mutate, field):
    records = [good(), good(), good()]
    mutate(records[1])
    errors = validate_records(records)
    assert len(errors) == 1
    assert errors[0].startswith("row 1: field ") and field in errors[0]


def test_validate_command_lists_every_problem_and_fails(tmp_path, capsys):
    records = [good() for _ in range(6)]
    records[2]["chosen"] = [{"role": "assistant"}]
    records[5]["prompt"] = 42
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert "row 2: field 'chosen[0].content'" in captured.err and "row 5: field 'prompt'" in captured.err
    assert json.loads(captured.out) == {"file": str(path), "records": 6, "malformed": 2}
    assert main(["validate", str(TOY_TEST)]) == 0
    path.write_text(json.dumps(good()) + '\n"just a string"\n')  # not even an object: the line is named
    assert main(["validate", str(path)]) == 2
    assert "pairs.jsonl:2: expected a JSON object" in capsys.readouterr().err


def test_broken_json_line_is_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good()) + "\n{not json\n")
    with pytest.raises(PreferenceDataError, match=r"pairs.jsonl:2: not valid JSON"):
        load_valid_records(path)


def test_text_rules_use_the_user_turns_and_the_reasoning_only():
    record = good()
    record["prompt"] = [
        {"role": "system", "content": "You are a careful solver."},
        {"role": "user", "content": "Part one."},
        {"role": "user", "content": "Part two?"},
    ]
    chosen, rejected = preference_texts(record)
    assert chosen == "Part one.\nPart two?\n2 + 3 = 5."
    assert rejected == "Part one.\nPart two?\nhmm 5"
    assert trace_lengths(record) == (len("2 + 3 = 5."), len("hmm 5"))
    # TRL's "standard" format (plain strings) gives the same text.
    plain = {"prompt": "Part one.\nPart two?", "chosen": record["chosen"][0]["content"], "rejected": "<think>hmm 5</think> 5"}
    assert preference_texts(plain) == (chosen, rejected)
    with pytest.raises(RecordError):
        preference_texts({"prompt": "q", "chosen": "a"})


@pytest.mark.parametrize("first, second", [("jsonl", "parquet"), ("parquet", "json"), ("json", "jsonl")])
def test_convert_round_trips_between_formats(tmp_path, first, second, capsys):
    records = load_records(TOY_TEST)[:12]
    source = tmp_path / f"pairs.{first}"
    save_records(records, source)
    target = tmp_path / f"pairs.{second}"
    assert main(["convert", str(source), str(target)]) == 0
    assert load_records(target) == records
    assert json.loads(capsys.readouterr().out)["records"] == 12


def test_convert_refuses_invalid_input_and_writes_nothing(tmp_path, capsys):
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    target = tmp_path / "out.parquet"
    assert main(["convert", str(source), str(target)]) == 2
    assert "row 0: field 'rejected': missing" in capsys.readouterr().err
    assert not target.exists()
    assert main(["convert", str(source), str(tmp_path / "out.csv")]) == 2


def test_split_is_seeded_disjoint_and_complete(tmp_path, capsys):
    records = load_records(TOY_TEST)
    train, validation = split_records(records, 0.25, seed=42)
    assert len(validation) == round(0.25 * len(records)) and len(train) + len(validation) == len(records)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in validation}
    assert split_records(records, 0.25, seed=42) == (train, validation)
    assert split_records(records, 0.25, seed=7) != (train, validation)
    assert len(split_records(records, 10, seed=0)[1]) == 10

    out_train, out_val = tmp_path / "t.parquet", tmp_path / "v.jsonl"
    assert main(["split", str(TOY_TEST), "--validation-size", "0.25", "--seed", "42",
                 "--train-out", str(out_train), "--validation-out", str(out_val)]) == 0
    assert load_records(out_train) == train and load_records(out_val) == validation
    capsys.readouterr()
    assert main(["split", str(TOY_TEST), "--validation-size", "0", "--train-out", "a.json", "--validation-out", "b.json"]) == 2


def test_describe_counts_pairs_and_length_percentiles(tiny_models, capsys):
    assert main(["describe", str(TOY_TEST), "--tokenizer", str(tiny_models["reward"])]) == 0
    summary = json.loads(capsys.readouterr().out)
    records = load_records(TOY_TEST)
    assert summary["pairs"] == len(records)
    chars = [len(preference_texts(r)[0]) for r in records]
    assert summary["chars"]["chosen_input"]["p0"] == min(chars) and summary["chars"]["chosen_input"]["p100"] == max(chars)
    tokens = summary["tokens"]["longest_of_pair"]
    assert 0 < tokens["p0"] <= tokens["p50"] <= tokens["p90"] <= tokens["p100"]
    # No length shortcut in the toy set: the chosen trace is the shorter one in about half the pairs.
    assert 0.3 * len(records) <= summary["chosen_trace_shorter"] <= 0.7 * len(records)


def test_command_is_reachable_from_the_trm_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trm", "data", "trm-preference", "validate", str(TOY_TEST)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["malformed"] == 0


def _toy_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_toy_preferences", REPO / "scripts" / "make_toy_preferences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_pairs_are_correct_length_matched_and_only_the_rejected_has_defects():
    from trm.traces import extract_answer, reasoning

    generator = _toy_generator()
    records = generator.make_pairs(300, seed=5)
    defect_words = ("wait", "hmm", "other words", "start over", "no,")
    longer = 0
    for record in records:
        question = record["prompt"][0]["content"]
        chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
        # Both are correct: the same boxed answer, and it is the question's answer.
        numbers = [int(w) for w in question.replace("?", " ").replace(".", " ").split() if w.isdigit()]
        assert extract_answer(chosen) == extract_answer(rejected) == str(numbers[0] + numbers[1] * numbers[2])
        assert not any(w in reasoning(chosen).lower() for w in defect_words)
        assert any(w in reasoning(rejected).lower() for w in defect_words) and record["defects"]
        ratio = len(reasoning(chosen)) / len(reasoning(rejected))
        assert 0.85 <= ratio <= 1.15
        longer += len(reasoning(chosen)) > len(reasoning(rejected))
    assert 0.4 * len(records) <= longer <= 0.6 * len(records)  # no length shortcut either way
    assert {d for r in records for d in r["defects"]} == set(generator.DEFECTS)


def test_committed_toy_files_are_what_the_generator_writes(tmp_path):
    generator = _toy_generator()
    assert generator.main(["--train", "256", "--test", "96", "--seed", "0", "--out", str(tmp_path / "toy")]) == 0
    for split in ("train", "test"):
        committed = (REPO / "data" / f"toy_preferences_{split}.jsonl").read_text()
        assert (tmp_path / f"toy_{split}.jsonl").read_text() == committed
