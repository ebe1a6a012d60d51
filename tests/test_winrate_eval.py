"""`trm eval winrate` against a scripted judge server on loopback (the ME² pipeline runs for real; the judge's
answers are scripted: it prefers the trace that carries the word "tidy")."""

from __future__ import annotations

import json

import pytest

from trm_testing.judge import Fault, ScriptedJudge, decision, demo_policy
from trm.evaluation.metrics import wilson_interval
from trm.evaluation.winrate import main as winrate_main
from trm.evaluation.winrate import make_pairs, summarise


def prefers_tidy(req):
    if req.kind in ("dimension", "aggregate"):
        one, two = req.traces()
        t1, t2 = "tidy" in one, "tidy" in two
        return decision("one trace is tidier", "Trace 1" if t1 and not t2 else "Trace 2" if t2 and not t1 else "Tie")
    return demo_policy(req)


def trace(tidy: bool, q: int) -> str:
    word = "tidy" if tidy else "messy"
    return (f"<think>\nFirst, a {word} start on problem {q}.\n\nThen compute the value.\n\n"
            f"So the result follows.\n</think>\nThe answer is \\boxed{{{q}}}.")


def write_generations(path, flags):
    with open(path, "w") as handle:
        for q, tidy in enumerate(flags):
            handle.write(json.dumps({"id": f"q{q}", "benchmark": "aime24", "question": f"problem {q}",
                                     "responses": [trace(tidy, q)]}) + "\n")


def test_winrate_end_to_end_with_resume(tmp_path):
    # A is tidier on q0-q2, B on q3, both tidy on q4 (a tie), B has no q5.
    write_generations(tmp_path / "a.jsonl", [True, True, True, False, True, True])
    write_generations(tmp_path / "b.jsonl", [False, False, False, True, True])
    args = ["--a", str(tmp_path / "a.jsonl"), "--b", str(tmp_path / "b.jsonl"), "--a-label", "TRM",
            "--b-label", "verifier", "--group", "toy-policy", "--repetitions", "1", "--out-dir", str(tmp_path / "out")]
    with ScriptedJudge(prefers_tidy) as judge:
        assert winrate_main(args + ["--judge-url", judge.url, "--judge-model", "scripted"]) == 0
        first_calls = judge.count()
        assert first_calls > 0
        # Re-running judges nothing again: every pair is in the audit file.
        assert winrate_main(args + ["--judge-url", judge.url, "--judge-model", "scripted"]) == 0
        assert judge.count() == first_calls
    summary = json.loads((tmp_path / "out" / "winrate.json").read_text())
    assert (summary["pairs"], summary["wins"], summary["losses"], summary["ties"]) == (5, 3, 1, 1)
    assert summary["win_rate"] == pytest.approx(0.75)
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(wilson_interval(3, 4))
    assert "| TRM | verifier | 0.750 |" in (tmp_path / "out" / "winrate.md").read_text()
    assert (tmp_path / "out" / "winrate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    audit = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    assert len(audit) == 5 and all("judgements" in row["audit"] for row in audit)


def test_dead_judge_raises_and_keeps_nothing_half_done(tmp_path):
    write_generations(tmp_path / "a.jsonl", [True, False])
    write_generations(tmp_path / "b.jsonl", [False, True])
    with ScriptedJudge(lambda req: Fault(500)) as judge:
        with pytest.raises(Exception, match="500|giving up|Unavailable"):
            winrate_main(["--a", str(tmp_path / "a.jsonl"), "--b", str(tmp_path / "b.jsonl"), "--judge-url", judge.url,
                          "--judge-model", "scripted", "--repetitions", "1", "--deadline", "1",
                          "--out-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "winrate.json").exists()  # no rate computed from failures


def test_corrupt_audit_line_with_the_judge_down_loses_nothing(tmp_path, capsys):
    """Issue 11.2: the audit keeps every finished pair through a failed resume; the bad line goes to the side file."""
    write_generations(tmp_path / "a.jsonl", [True, True, False, True])
    write_generations(tmp_path / "b.jsonl", [False, True, True, False])
    args = ["--a", str(tmp_path / "a.jsonl"), "--b", str(tmp_path / "b.jsonl"), "--judge-model", "scripted",
            "--repetitions", "1", "--deadline", "1", "--out-dir", str(tmp_path / "out")]
    audit = tmp_path / "out" / "pairs.jsonl"
    with ScriptedJudge(prefers_tidy) as judge:
        assert winrate_main(args + ["--judge-url", judge.url]) == 0
        finished = audit.read_text(encoding="utf-8").split("\n")
        corrupt = "\n".join(finished[:1] + [finished[1][:20]] + finished[2:])
        audit.write_text(corrupt, encoding="utf-8")
        with ScriptedJudge(lambda req: Fault(500)) as down:
            with pytest.raises(Exception, match="500|giving up|Unavailable"):
                winrate_main(args + ["--judge-url", down.url])
        assert audit.read_text(encoding="utf-8") == corrupt
        assert f"{audit}.set-aside" in capsys.readouterr().err
        calls = judge.count()
        assert winrate_main(args + ["--judge-url", judge.url]) == 0
        assert judge.count() > calls  # the set-aside pair is judged again
    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["pair_id"] for r in rows] == [json.loads(line)["pair_id"] for line in finished if line]
    assert [r["label"] for r in rows] == [json.loads(line)["label"] for line in finished if line]
    assert json.loads((tmp_path / "out" / "pairs.jsonl.set-aside").read_text())["text"] == finished[1][:20]


def test_wilson_interval_and_summary_arithmetic():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    outcomes = [{"label": 1, "benchmark": "x"}] * 6 + [{"label": 2, "benchmark": "x"}] * 2 + \
               [{"label": None, "benchmark": "y", "reason": "tie"}] * 3
    s = summarise(outcomes)
    assert (s["wins"], s["losses"], s["ties"], s["decided"], s["pairs"]) == (6, 2, 3, 8, 11)
    assert s["win_rate"] == 0.75 and s["reasons"] == {"tie": 3}
    pairs = make_pairs({("b", "1"): {"question": "q", "responses": ["a1", "a2"]}},
                       {("b", "1"): {"question": "q", "responses": ["b1"]}}, samples_per_question=2)
    assert [(p["response_a"], p["response_b"]) for p in pairs] == [("a1", "b1")]
