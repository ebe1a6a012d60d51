"""`trm score`: a local model and a TRM server give the same scores for the same records."""

from __future__ import annotations

import json

import pytest

from trm_testing.serving import REPO, ReferenceRewardModel
from trm_testing.serving import free_port
from trm.cli import main as trm
from trm.traces import trm_input


def score_main(argv: list[str]) -> int:
    return trm(["score", *argv])


SAMPLE = REPO / "data" / "sample.json"


def _records(n=5):
    sample = json.loads(SAMPLE.read_text())
    return [{"id": i, "prompt": f"{sample['prompt']} (variant {i})",
             "response": "<think>\n" + "check again. " * i + "done</think>\nSo \\boxed{91}."} for i in range(n)]


def test_single_object_prints_the_same_score_both_ways(tiny_models, reward_server, capsys):
    assert score_main(["--input", str(SAMPLE), "--model", str(tiny_models["reward"])]) == 0
    local = float(capsys.readouterr().out.strip())
    assert score_main(["--input", str(SAMPLE), "--endpoint", reward_server]) == 0
    remote = float(capsys.readouterr().out.strip())
    assert remote == pytest.approx(local, abs=1e-4)
    sample = json.loads(SAMPLE.read_text())
    expected = ReferenceRewardModel(tiny_models["reward"]).score(trm_input(sample["prompt"], sample["response"]))
    assert local == pytest.approx(expected, abs=1e-4)


def test_jsonl_file_gets_trm_score_per_record_and_resumes(tiny_models, reward_server, tmp_path):
    records = _records(7)
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    local_out, remote_out = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"
    assert score_main(["--input", str(data), "--model", str(tiny_models["reward"]), "--output", str(local_out),
                       "--batch-size", "3"]) == 0
    # endpoint given twice: the pool spreads load; a half-written earlier run resumes
    remote_out.write_text(local_out.read_text().splitlines(keepends=True)[0] + '{"id": 1, "torn')
    assert score_main(["--input", str(data), "--endpoint", f"{reward_server},{reward_server}", "--output",
                       str(remote_out), "--resume", "--batch-size", "2"]) == 0
    local = [json.loads(line) for line in local_out.read_text().splitlines()]
    remote = [json.loads(line) for line in remote_out.read_text().splitlines()]
    assert [r["id"] for r in local] == [r["id"] for r in remote] == list(range(7))
    assert [r["trm_score"] for r in remote] == pytest.approx([r["trm_score"] for r in local], abs=1e-4)
    assert all(r["prompt"] == original["prompt"] for r, original in zip(local, records))


def test_existing_output_is_not_overwritten_silently(tiny_models, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text('{"keep": true}\n')
    assert score_main(["--input", str(SAMPLE), "--model", str(tiny_models["reward"]), "--output", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert out.read_text() == '{"keep": true}\n'


def test_bad_records_and_dead_servers_are_errors_not_scores(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r"}\n{"prompt": "p"}\n')
    assert score_main(["--input", str(bad), "--endpoint", "127.0.0.1:9"]) == 2
    assert "record 1: field 'response' is missing" in capsys.readouterr().err

    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "p", "response": "r"}\n')
    out = tmp_path / "out.jsonl"
    dead = f"127.0.0.1:{free_port()}"
    assert score_main(["--input", str(good), "--endpoint", dead, "--output", str(out), "--timeout", "1",
                       "--deadline", "2"]) == 1
    err = capsys.readouterr().err
    assert dead in err and "--resume" in err
    assert not out.exists() or out.read_text() == ""  # nothing was turned into a number


LINE_BREAKS = ["\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def _scored_run(tiny_models, tmp_path, records):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["--input", str(data), "--model", str(tiny_models["reward"]), "--output", str(out), "--resume"]
    assert score_main(args) == 0
    return args, out


def test_resume_of_a_finished_run_keeps_records_holding_any_line_break(tiny_models, tmp_path):
    """Issue 11.1: splitlines() cut such files to pieces on resume; now a finished run is left byte for byte."""
    records = [{**r, "prompt": r["prompt"] + sep + "end"} for r, sep in zip(_records(len(LINE_BREAKS)), LINE_BREAKS)]
    args, out = _scored_run(tiny_models, tmp_path, records)
    finished = out.read_bytes()
    assert "\u2028".encode() in finished and "\x85".encode() in finished
    assert score_main(args) == 0
    assert out.read_bytes() == finished
    scored = [json.loads(line) for line in finished.decode().split("\n") if line]
    assert [{k: v for k, v in r.items() if k != "trm_score"} for r in scored] == records


def test_resume_matches_records_by_content_and_a_corrupt_line_is_set_aside(tiny_models, tmp_path, capsys):
    """Issue 11.2: a valid last line of another record is used for that record (not counted for the next one);
    a corrupt line in the middle, resumed with the endpoint down, keeps everything and goes to the side file."""
    records = _records(7)
    args, out = _scored_run(tiny_models, tmp_path, records)
    reference = out.read_text(encoding="utf-8").split("\n")[:-1]

    stale = json.loads(reference[5])
    stale["trm_score"] = 123.0  # recognisable: resume must keep it, not rescore record 5
    out.write_text("\n".join(reference[:2] + [json.dumps(stale)]) + "\n", encoding="utf-8")
    assert score_main(args) == 0
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in resumed] == list(range(7)) and resumed[5]["trm_score"] == 123.0
    assert [r["trm_score"] for i, r in enumerate(resumed) if i != 5] == \
        pytest.approx([json.loads(line)["trm_score"] for i, line in enumerate(reference) if i != 5], abs=1e-5)

    corrupt = "\n".join(reference[:3] + ['{"id": 3, "prompt": "cut'] + reference[4:]) + "\n"
    out.write_text(corrupt, encoding="utf-8")
    capsys.readouterr()
    dead = ["--endpoint", f"127.0.0.1:{free_port()}", "--timeout", "1", "--deadline", "1.5"]
    assert score_main(args[:2] + dead + args[4:]) == 1
    err = capsys.readouterr().err
    side = tmp_path / "out.jsonl.set-aside"
    assert str(side) in err and "set aside 1" in err
    assert out.read_text(encoding="utf-8") == corrupt  # six finished records kept, nothing shrunk
    assert json.loads(side.read_text())["text"] == '{"id": 3, "prompt": "cut'
    assert score_main(args) == 0  # endpoint back (here: the local model): only record 3 is scored
    final = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n")[:-1]]
    assert final[:3] + final[4:] == [json.loads(line) for line in reference[:3] + reference[4:]]
    assert final[3]["trm_score"] == pytest.approx(json.loads(reference[3])["trm_score"], abs=1e-5)  # batch noise
