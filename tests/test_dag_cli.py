"""`trm dag build` as a batch job: output shape, input order, resume after a kill; `trm dag render`."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from trm_testing.judge import Fault, ScriptedJudge, demo_policy
from trm.dag.graph import Dag, validate_rules
from trm.jsonio import read_records

REPO = Path(__file__).resolve().parents[1]


def trm(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "trm", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def write_inputs(path: Path, count: int) -> list[dict]:
    records = []
    for i in range(count):
        trace = f"Problem {i}.\n\nSo first idea.\n\nWait, recheck.\n\nAlternatively, another route.\n\nTherefore {i}."
        record = (
            {"id": f"r{i}", "prompt": f"Q{i}", "trace": trace}
            if i % 2 == 0
            else {"id": f"r{i}", "prompt": f"Q{i}", "steps": ["a\n\n", "So b"]}
        )
        records.append(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def test_build_resumes_after_kill_without_redoing_or_duplicating(tmp_path):
    gate = threading.Event()

    def policy(req):
        if "QUESTION:\nQ3" in req.user:
            gate.wait(timeout=60)  # record 3 stalls until the first run has been killed
        return demo_policy(req)

    inputs, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    records = write_inputs(inputs, 6)
    args = [
        "dag",
        "build",
        "--input",
        str(inputs),
        "--output",
        str(output),
        "--model",
        "judge",
        "--concurrency",
        "2",
        "--api-key",
        "sk-never-written",
    ]
    with ScriptedJudge(policy) as judge:
        first = trm(*args, "--base-url", judge.url)
        deadline = time.monotonic() + 60
        while not (output.exists() and output.read_text().count("\n") >= 3):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "first run made no progress"
            time.sleep(0.05)  # polling the output file with a deadline
        first.kill()
        first.wait()
        gate.set()
        assert len(read_records(output)) == 3
        requests_before = judge.count("structure")
        second = trm(*args, "--base-url", judge.url)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert "sk-never-written" not in err and "sk-never-written" not in output.read_text()
        assert judge.requests[-1]["_authorization"] == "Bearer sk-never-written"
        redone = [
            b
            for b in judge.requests[requests_before:]
            if any(f"QUESTION:\nQ{i}\n" in b["messages"][-1]["content"] for i in range(3))
        ]
        assert redone == []
    out = read_records(output)
    assert [r["index"] for r in out] == list(range(6))
    assert [r["id"] for r in out] == [r["id"] for r in records]
    for record, result in zip(records, out):
        dag = Dag.from_dict(result["dag"])
        assert validate_rules(dag) == []
        assert "".join(dag.steps) == record.get("trace", "".join(record.get("steps", [])))
        assert "trace" not in result and result["usage"]["requests"] >= 1
        assert sorted(m for s in result["merged"] for m in s["members"]) == list(range(len(dag.steps)))
    # the demo judge backtracks on "Wait" and "Alternatively": the raw DAG shows it
    assert out[0]["dag"]["actions"] == ["root", "continue", "backtrack", "backtrack", "continue"]
    assert out[0]["dag"]["parents"] == [[], [0], [0], [0], [3]]


def test_resume_with_a_bad_line_and_the_judge_down_keeps_every_dag_and_names_the_failing_record(tmp_path):
    """Records are matched by (index, prompt); a corrupt line and a DAG of another input are set aside, not lost;
    a judge failure names the record (RecordFailed) and leaves the output as it was."""
    inputs, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inputs, 4)
    args = ["dag", "build", "--input", str(inputs), "--output", str(output), "--model", "judge", "--deadline", "1"]
    with ScriptedJudge(demo_policy) as judge:
        proc = trm(*args, "--base-url", judge.url)
        assert proc.wait(timeout=120) == 0, proc.communicate()
    lines = output.read_text(encoding="utf-8").split("\n")
    foreign = json.dumps({**json.loads(lines[0]), "prompt": "another input"})
    damaged = "\n".join([lines[0], lines[1][:25], foreign, lines[3], lines[2]]) + "\n"  # 1 torn, 2 out of place
    output.write_text(damaged, encoding="utf-8")
    with ScriptedJudge(lambda req: Fault(500)) as down:
        proc = trm(*args, "--base-url", down.url)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "judge failed at record 1 (0-based)" in err
    assert f"{output}.set-aside" in err and output.read_text(encoding="utf-8") == damaged
    aside = [json.loads(line) for line in Path(f"{output}.set-aside").read_text().splitlines()]
    assert [a["text"] for a in aside] == [lines[1][:25], foreign]
    with ScriptedJudge(demo_policy) as judge:
        proc = trm(*args, "--base-url", judge.url)
        assert proc.wait(timeout=120) == 0, proc.communicate()
        assert {b["messages"][-1]["content"].split("QUESTION:\n")[1][:2] for b in judge.requests} == {"Q1"}
    assert output.read_text(encoding="utf-8").split("\n") == lines  # all four, in input order


def test_bad_input_is_rejected_before_any_judge_call(tmp_path):
    inputs, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text(json.dumps({"prompt": "Q", "trace": "x"}) + "\n" + json.dumps({"prompt": "Q2"}) + "\n")
    proc = trm(
        "dag",
        "build",
        "--input",
        str(inputs),
        "--output",
        str(output),
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9",
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "'trace'" in err and not output.exists()


def test_render_writes_an_svg_with_labelled_nodes_and_groups(tmp_path):
    dag_record = {
        "dag": {
            "steps": ["p\n\n", "so\n\n", "a\n\n", "wait\n\n", "b\n\n", "both"],
            "parents": [[], [0], [1], [1], [3], [2, 4]],
            "actions": ["root", "continue", "continue", "backtrack", "continue", "merge"],
        }
    }
    path = tmp_path / "dags.jsonl"
    path.write_text(json.dumps(dag_record) + "\n")
    svg = tmp_path / "dag.svg"
    proc = trm("dag", "render", "--input", str(path), "--output", str(svg))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    import xml.etree.ElementTree as ET

    root = ET.parse(svg).getroot()
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in ["0 root", "3 backtrack", "5 merge"]:
        assert label in texts
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}rect") if g.get("class") == "super"]
    assert len(groups) == 4  # four super-nodes
    edges = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if (p.get("class") or "").startswith("edge")]
    assert len(edges) == 6
