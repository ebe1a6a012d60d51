"""`trm preference build` end to end against the scripted judge: pairing, judging, TRM-Preference output, stats,
audit, and resume after an injected judge failure."""

import json
import subprocess
import sys

import pytest

from trm_testing.judge import Fault, ScriptedJudge, decision, demo_policy
from trm.data.preference import validate_records
from trm.data.pairs import preference_texts
from trm.traces import trm_input
from trm.jsonio import read_records
from trm.cli import main as trm
from trm.preference.pipeline import form_pairs


def build_main(argv: list[str]) -> int:
    return trm(["preference", "build", *argv])


def response(k: int, answer: str = "5") -> str:
    body = "\n\n".join(f"So step {i}: keep going with detail {i}." for i in range(k))
    return f"<think>Read the problem.\n\n{body}</think>\nThe answer is \\boxed{{{answer}}}."


def traces() -> list[dict]:
    records = []
    for model, lengths in (("m1", [1, 4]), ("m2", [2, 6]), ("m3", [3])):
        for k in lengths:
            records.append({"prompt": "What is 2+3?", "model": model, "response": response(k), "correct": True})
    records.append({"prompt": "What is 2+3?", "model": "m3", "response": response(9, "6"), "correct": False})
    records.append({"prompt": "What is 1+1?", "model": "m1", "response": response(1, "2"), "correct": True})
    records.append({"prompt": "What is 1+1?", "model": "m2", "response": response(2, "3"), "correct": False})
    records.append(
        {"prompt": "What is 3+3?", "model": "m1", "response": response(2, "6"), "correct": True, "prompt_id": "q3"}
    )
    records.append(
        {"prompt": "What is 3+3?", "model": "m2", "response": response(5, "6"), "correct": True, "prompt_id": "q3"}
    )
    records.append(
        {"prompt": "What is 3+3?", "model": "m2", "response": response(5, "6"), "correct": True, "prompt_id": "q3"}
    )
    return records


def shorter_wins(req):
    if req.kind in ("dimension", "aggregate"):
        one, two = req.traces()
        which = "Trace 1" if len(one) < len(two) else "Trace 2" if len(two) < len(one) else "Tie"
        return decision("Shorter is better here.", which)
    return demo_policy(req)


def test_pairs_are_correct_distinct_capped_and_seeded():
    records = traces()
    tasks, stats = form_pairs(records, max_pairs_per_prompt=4, seed=0)
    assert (stats.prompts, stats.correct, stats.duplicate_responses) == (3, 9, 1)
    assert stats.candidate_pairs == 10 + 0 + 1 and stats.planned_pairs == 5
    assert [t.key for t in tasks] == ["What is 2+3?"] * 4 + ["q3"]
    assert all(records[t.first]["correct"] and records[t.second]["correct"] for t in tasks)
    assert tasks == form_pairs(records, 4, seed=0)[0]
    assert {t.ident for t in form_pairs(records, 4, seed=1)[0]} != {t.ident for t in tasks}
    cross, _ = form_pairs(records, 10, cross_model_only=True)
    assert all(records[t.first]["model"] != records[t.second]["model"] for t in cross)
    assert len(cross) == 8 + 1


def run_build(judge, tmp_path, name, *extra):
    out = tmp_path / f"{name}.jsonl"
    code = build_main(
        [
            "--input",
            str(tmp_path / "traces.jsonl"),
            "--output",
            str(out),
            "--base-url",
            judge.url,
            "--model",
            "j",
            "--repetitions",
            "2",
            "--max-pairs-per-prompt",
            "3",
            "--concurrency",
            "2",
            "--price-input-per-mtok",
            "0.5",
            "--price-output-per-mtok",
            "2.0",
            *extra,
        ]
    )
    return code, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One preference build over the bundled-style traces with a consistent judge (shared by two tests)."""
    tmp_path = tmp_path_factory.mktemp("prefs")
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in traces()))
    with ScriptedJudge(shorter_wins) as judge:
        code, out = run_build(judge, tmp_path, "prefs")
    assert code == 0
    return tmp_path, out


def test_end_to_end_preference_file_stats_and_audit(built):
    tmp_path, out = built
    prefs = read_records(out)
    assert prefs and validate_records(prefs) == []
    for record in prefs:
        assert record["prompt"][0]["role"] == "user" and record["chosen"][0]["role"] == "assistant"
        assert len(record["chosen"][0]["content"]) < len(record["rejected"][0]["content"])
        chosen_text, _ = preference_texts(record)  # what `trm train-rm` scores
        assert chosen_text == trm_input(record["prompt"][0]["content"], record["chosen"][0]["content"])
    stats = json.loads((tmp_path / "prefs.stats.json").read_text())
    assert stats["pairs_planned"] == stats["pairs_judged"] == 4
    assert stats["pairs_kept"] == len(prefs)
    assert stats["pairs_kept"] + sum(stats["dropped"].values()) == 4
    usage = stats["judge_usage"]
    assert usage["total_tokens"] > 0
    assert (
        abs(stats["estimated_cost_usd"] - (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 2.0) / 1e6)
        < 1e-6
    )
    audit = read_records(tmp_path / "prefs.audit.jsonl")
    assert len(audit) == 4 and len({line["pair_id"] for line in audit}) == 4
    for line in audit:
        assert len(line["judgements"]) == 4  # 2 orders x 2 repetitions
        assert all(j["aggregate"]["rationale"] == "Shorter is better here." for j in line["judgements"])
        assert len(line["views"]) == 2 and line["views"][0]["macro"].startswith("<Root id=0")
    # each trace's views were billed once, to the first pair that used it
    billed = sum(line["view_usage"]["requests"] for line in audit)
    assert billed == sum(
        v["usage"]["requests"]
        for line in audit
        for v, n in zip(line["views"], line["responses"])
        if n not in {m for earlier in audit[: audit.index(line)] for m in earlier["responses"]}
    )


def test_resume_after_judge_failure_gives_each_pair_once_in_order(tmp_path, capsys):
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in traces()))
    with ScriptedJudge(shorter_wins) as judge:
        code, reference = run_build(judge, tmp_path, "reference")
    assert code == 0
    calls = {"limit": 45}

    def flaky(req):
        return Fault(503) if req.call >= calls["limit"] else shorter_wins(req)

    with ScriptedJudge(flaky) as judge:
        code, out = run_build(judge, tmp_path, "resumed", "--deadline", "1", "--concurrency", "1")
        assert code == 1
        partial = read_records(tmp_path / "resumed.audit.jsonl")
        assert 0 < len(partial) < 4
        assert f"judge failed at pair {len(partial)} (0-based)" in capsys.readouterr().err  # RecordFailed.index
        calls["limit"] = 10**9
        code, out = run_build(judge, tmp_path, "resumed", "--deadline", "1", "--concurrency", "1")
        assert code == 0
    audit = read_records(tmp_path / "resumed.audit.jsonl")
    expected = [line["pair_id"] for line in read_records(tmp_path / "reference.audit.jsonl")]
    assert [line["pair_id"] for line in audit] == expected
    assert audit[: len(partial)] == partial
    assert read_records(out) == read_records(reference)


def test_bad_input_names_record_and_field(tmp_path, capsys):
    (tmp_path / "traces.jsonl").write_text(
        json.dumps({"prompt": "Q", "model": "m", "response": "r", "correct": "yes"}) + "\n"
    )
    code = build_main(
        [
            "--input",
            str(tmp_path / "traces.jsonl"),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--base-url",
            "http://127.0.0.1:9",
            "--model",
            "j",
        ]
    )
    assert code == 2
    assert "record 0: 'correct' must be a bool" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.slow
def test_train_rm_reads_the_preference_file(built, tiny_models):
    tmp_path, out = built
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trm",
            "train-rm",
            "--model_name_or_path",
            str(tiny_models["reward"]),
            "--train_file",
            str(out),
            "--output_dir",
            str(tmp_path / "rm"),
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "2",
            "--report_to",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_loss" in proc.stdout + proc.stderr


def test_render_draws_a_dag_from_the_audit_file(built):
    from trm.dag.render import main as render_main

    tmp_path, _ = built
    svg = tmp_path / "pair0_trace1.svg"
    assert (
        render_main(
            ["--input", str(tmp_path / "prefs.audit.jsonl"), "--index", "0", "--trace", "1", "--output", str(svg)]
        )
        == 0
    )
    audit = read_records(tmp_path / "prefs.audit.jsonl")
    steps = audit[0]["views"][1]["dag"]["num_steps"]
    text = svg.read_text()
    assert text.startswith("<svg") and text.count('class="node"') == steps


def test_a_first_position_judge_keeps_nothing(tmp_path):
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in traces()))

    def first(req):
        return decision("The first one.", "Trace 1") if req.kind in ("dimension", "aggregate") else demo_policy(req)

    with ScriptedJudge(first) as judge:
        code, out = run_build(judge, tmp_path, "biased")
    assert code == 0 and out.read_text() == ""
    stats = json.loads((tmp_path / "biased.stats.json").read_text())
    assert stats["pairs_kept"] == 0 and stats["dropped"]["position_bias"] == stats["pairs_judged"] == 4


def test_reuses_dags_from_trm_dag_build(tmp_path):
    from trm.dag.build_cli import main as dag_main

    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in traces()))
    dags = tmp_path / "dags.jsonl"
    with ScriptedJudge(demo_policy) as judge:
        args = ["--input", str(tmp_path / "traces.jsonl"), "--output", str(dags), "--base-url", judge.url]
        assert dag_main([*args, "--model", "j"]) == 0

    def no_structuring(req):  # any structuring request would fail the run
        return Fault(400, "no DAG requests expected") if req.kind == "structure" else shorter_wins(req)

    with ScriptedJudge(no_structuring) as judge:
        code, out = run_build(judge, tmp_path, "reused", "--dags", str(dags))
        assert code == 0 and judge.count("structure") == 0
    built = read_records(dags)
    for line in read_records(tmp_path / "reused.audit.jsonl"):
        for number, views in zip(line["responses"], line["views"]):
            assert views["dag"] == built[number]["dag"]

    (tmp_path / "short.jsonl").write_text("".join(r + "\n" for r in dags.read_text().splitlines()[:3]))
    code, _ = run_build(judge, tmp_path, "bad", "--dags", str(tmp_path / "short.jsonl"))
    assert code == 2


def test_help_shows_every_config_field_and_flags_parse_to_the_dataclass_defaults(capsys):
    """Each setting is declared once (a dataclass field with its help): both commands' --help show every field's
    help, the parsed defaults are the dataclasses' (no command overrides one), and the same-named fields of the
    three configs (temperature, top_p, max_tokens) land each in their own config."""
    from dataclasses import fields

    from trm.dag.build import DagConfig
    from trm.dag.build_cli import build_parser as dag_parser, dag_config_from_args
    from trm.preference.build_cli import build_parser as preference_parser, pipeline_config_from_args
    from trm.preference.pairwise import PairwiseConfig
    from trm.preference.pipeline import PipelineConfig
    from trm.preference.views import ViewConfig

    def helps(*configs) -> list[str]:
        return [" ".join(f.metadata["help"].split()) for cls in configs for f in fields(cls) if "help" in f.metadata]

    for command, configs in ((["dag", "build"], [DagConfig]),
                             (["preference", "build"], [DagConfig, PairwiseConfig, ViewConfig, PipelineConfig])):
        with pytest.raises(SystemExit):
            trm([*command, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        for text in helps(*configs):
            assert text in shown, (command, text)

    required = ["--input", "i", "--output", "o", "--judge-url", "u", "--judge-model", "m"]
    assert dag_config_from_args(dag_parser("d").parse_args(required)) == DagConfig()
    config = pipeline_config_from_args(preference_parser("p").parse_args(required))
    assert (config.dag, config.pairwise, config.views, config.audit_views) == (
        DagConfig(), PairwiseConfig(), ViewConfig(), PipelineConfig().audit_views)
    config = pipeline_config_from_args(preference_parser("p").parse_args(required + [
        "--dag-temperature", "0.11", "--judge-temperature", "0.22", "--summary-temperature", "0.33",
        "--summary-max-tokens", "7", "--rounds", "1,2", "--max-steps", "5", "--repetitions", "1", "--no-audit-views"]))
    assert (config.dag.temperature, config.pairwise.temperature, config.views.temperature) == (0.11, 0.22, 0.33)
    assert (config.views.max_tokens, config.dag.max_tokens, config.pairwise.max_tokens) == (7, 512, 1024)
    assert (config.dag.rounds, config.dag.max_steps, config.pairwise.repetitions, config.audit_views) == (
        (1, 2), 5, 1, False)
