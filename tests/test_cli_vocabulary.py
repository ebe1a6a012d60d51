"""Issue 15, item 9: one flag vocabulary (old spellings hidden but working for one release), defaults in every
--help, `trm train-rm --help` with the project's own flags first, `trm --version`."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from trm_testing.training import TOY_TEST
from trm.cli import COMMANDS, Alias, HelpFormatter, add_alias, main

# (command, new flag, old spellings) for each concept: TRM endpoint / local TRM, judge, output file / folder
RENAMED = [
    (["score"], "--trm-endpoint", ["--endpoint"]),
    (["score"], "--trm-model", ["--model"]),
    (["eval", "rm"], "--trm-endpoint", ["--endpoint"]),
    (["eval", "rm"], "--trm-model", ["--model"]),
    (["reward"], "--trm-endpoint", ["--rm-backends"]),
    (["reward"], "--verifier-endpoint", ["--verifier-backends"]),
    (["dag", "build"], "--judge-url", ["--base-url"]),
    (["dag", "build"], "--judge-model", ["--model"]),
    (["preference", "build"], "--judge-url", ["--base-url"]),
    (["tiny"], "--output-dir", ["--out"]),
    (["generate"], "--output", ["--out"]),
    (["eval", "accuracy"], "--output-dir", ["--out-dir"]),
    (["eval", "bon"], "--output-dir", ["--out-dir"]),
    (["eval", "winrate"], "--output-dir", ["--out-dir"]),
    (["eval", "figures"], "--output-dir", ["--out"]),
]


def help_text(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("command,new,old", RENAMED, ids=[f"{' '.join(c)} {n}" for c, n, _ in RENAMED])
def test_one_name_per_concept_old_names_hidden(command, new, old):
    text = help_text(*command)
    assert re.search(rf"^\s+{re.escape(new)}\b", text, re.M), text
    for name in old:
        assert not re.search(rf"^\s+{re.escape(name)}\b", text, re.M), f"{name} still shown in {command} --help"


def test_old_spelling_still_works_and_names_the_new_one(capsys):
    parser = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    new = group.add_argument("--trm-endpoint", dest="endpoint")
    group.add_argument("--trm-model", dest="model")
    add_alias(group, "--endpoint", new)
    assert parser.parse_args(["--endpoint", "h:1"]).endpoint == "h:1"  # required group satisfied by the old name
    assert "--endpoint is now --trm-endpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--endpoint", "h:1", "--trm-model", "m"])  # still mutually exclusive
    assert "--endpoint" not in parser.format_help().replace("--trm-endpoint", "")


LEAVES = [[name] for name, entry in COMMANDS.items()
          if not isinstance(entry, Alias) and name not in ("serve", "data", "rl", "dag", "preference", "eval")] + [
    ["eval", "accuracy"], ["eval", "bon"], ["eval", "winrate"], ["eval", "rm"], ["eval", "figures"],
    ["serve", "reward"], ["serve", "chat"], ["serve", "wait"], ["data", "trm-preference", "validate"],
    ["data", "trm-preference", "split"], ["data", "webinstruct", "convert"], ["rl", "check"], ["rl", "long-context"],
    ["dag", "build"], ["dag", "render"], ["preference", "build"],
]


def test_every_subcommand_help_shows_defaults(monkeypatch):
    parsers = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    for command in LEAVES:
        parsers.clear()
        help_text(*command)
        formatter = parsers[-1].formatter_class  # the innermost parser: the one whose help was printed
        assert issubclass(formatter, (HelpFormatter, argparse.ArgumentDefaultsHelpFormatter)), (command, formatter)
    for command, flag, default in [
        (["dag", "build"], "--rounds", "1,3,4,4,4"), (["dag", "build"], "--dag-max-tokens", "512"),
        (["dag", "build"], "--max-fallback-rate", "0.1"), (["serve", "wait"], "--timeout", "300.0"),
        (["score"], "--batch-size", "16"), (["eval", "bon"], "--seed", None), (["generate"], "--temperature", None),
        (["rl", "check"], "--print-config", None), (["data", "trm-preference", "split"], "--seed", "42"),
        (["serve", "reward"], "--max-queue", "8192"), (["serve", "chat"], "--default-max-tokens", "1024"),
        (["generate"], "--top-p", "0.95"),
    ]:
        text = " ".join(help_text(*command).split())
        assert flag in text, (command, flag)
        if default is not None:
            assert f"(default: {default})" in text, (command, flag, text)


def test_train_rm_help_puts_the_projects_flags_first():
    lines = help_text("train-rm").splitlines()
    first = lambda pattern: next(i for i, line in enumerate(lines) if re.search(pattern, line))  # noqa: E731
    assert first(r"^\s+--model_name_or_path") < 60 and first(r"^\s+--train_file") < 60
    assert first(r"^\s+--train_file") < first(r"^\s+--learning_rate")
    assert first(r"^training: TRL RewardConfig") < first(r"^\s+--learning_rate")
    assert "(default: 1024)" in " ".join(lines[first(r"^\s+--max_length"):first(r"^\s+--max_length") + 4])


def test_version():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--version"]) == 0
    assert out.getvalue().strip() == f"trm {version('trm')}"


# -- one exit-code convention (trm.cli.dispatch): 2 bad input, 1 a failed run, one line without a traceback ----------
def _write(path, *records) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def exit_cases(tmp: Path, dead: str) -> list[tuple[list[str], int, str]]:
    """(command line, exit code, text of its one error line) for a bad input or a dead backend of each command."""
    no_prompt = _write(tmp / "no_prompt.jsonl", {"response": "r"})
    empty = _write(tmp / "empty.jsonl")
    no_responses = _write(tmp / "no_responses.jsonl", {"id": 1})
    out = str(tmp / "out")
    return [
        (["inspect", "--input", no_prompt], 2, "record needs a string field 'prompt'"),
        (["score", "--input", str(tmp / "missing.json"), "--trm-endpoint", dead], 2, "missing.json"),
        (["score", "--input", no_prompt, "--trm-endpoint", dead], 2, "record 0: field 'prompt' is missing"),
        (["score", "--input", _write(tmp / "ok.jsonl", {"prompt": "p", "response": "r"}), "--trm-endpoint", dead,
          "--timeout", "1"], 1, "no backend accepted a connection"),
        (["generate", "--benchmark", "nope", "--model", "m", "--output", out], 2, "unknown benchmark 'nope'"),
        (["eval", "accuracy", "--run", "no-label", "--output-dir", out], 2, "--run expects LABEL=FILE"),
        (["eval", "bon", "--generations", empty, "--output-dir", out, "--selectors", "majority"], 2, "no records"),
        (["eval", "winrate", "--a", no_responses, "--b", no_responses, "--output-dir", out, "--judge-url", dead,
          "--judge-model", "j"], 2, "records need 'id' and 'responses'"),
        (["eval", "rm", "--data", str(tmp / "missing.jsonl"), "--trm-endpoint", dead], 2, "no such file"),
        (["eval", "rm", "--data", str(TOY_TEST), "--trm-endpoint", dead, "--timeout", "1", "--limit", "1"], 1,
         "no backend accepted a connection"),
        (["eval", "figures", "--results", str(tmp / "nowhere"), "--output-dir", out], 2, "is not a directory"),
        (["dag", "build", "--input", no_prompt, "--output", out, "--judge-url", dead, "--judge-model", "j"], 2,
         "record 0 has no 'prompt' string"),
        (["dag", "build", "--input", _write(tmp / "trace.jsonl", {"prompt": "Q", "trace": "a\n\nWait, b"}),
          "--output", out, "--judge-url", dead, "--judge-model", "j", "--rounds", "x"], 2,
         "--rounds must be comma-separated integers"),
        (["dag", "render", "--input", no_prompt, "--output", out, "--index", "3"], 2, "--index 3 out of range"),
        (["preference", "build", "--input", no_prompt, "--output", out, "--judge-url", dead, "--judge-model", "j",
          "--repetitions", "0"], 2, "need --repetitions >= 1"),
        (["data", "trm-preference", "validate", str(tmp / "missing.jsonl")], 2, "no such file"),
        (["data", "webinstruct", "convert", "--input", _write(tmp / "rows.jsonl", {"question": "q"}),
          "--output", str(tmp / "o.parquet")], 2, "row 0: field 'answer' is missing"),
        (["rl", "long-context", str(tmp), str(tmp / "copy")], 2, "cannot read the policy's"),
        (["serve", "wait", "ftp://x", "--timeout", "1"], 2, "is not host:port or an http(s) URL"),
        (["serve", "wait", dead, "--timeout", "1"], 1, dead),
    ]


def test_every_command_exits_2_on_bad_input_and_1_on_a_dead_backend(tmp_path, capsys):
    from trm_testing.serving import free_port

    dead = f"127.0.0.1:{free_port()}"
    covered = set()
    for argv, code, text in exit_cases(tmp_path, dead):
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert re.search(r"^trm [\w -]+: error: ", err, re.M) and text in err and "Traceback" not in err, (argv, err)
        covered |= {" ".join(leaf) for leaf in LEAVES if argv[:len(leaf)] == leaf}
    assert {" ".join(leaf) for leaf in LEAVES} - covered == {
        "tiny", "train-rm", "reward", "serve reward", "serve chat", "data trm-preference split", "rl check",
    }  # these load a model or compose verl's config: their exits are tested in their own files


def test_an_unexpected_error_keeps_its_traceback(monkeypatch):
    import trm.inspect

    monkeypatch.setattr(trm.inspect, "main", lambda argv, prog: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["inspect"])


@pytest.mark.parametrize("old,new", [(["bon"], "eval bon"), (["winrate"], "eval winrate"),
                                     (["figures"], "eval figures"), (["eval-rm"], "eval rm"),
                                     (["eval", "--run"], "eval accuracy --run")])
def test_old_command_spellings_work_hidden_and_name_the_new_one(old, new, capsys):
    main(["--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert "eval" in listed and old[0] not in listed or old[0] == "eval"
    with pytest.raises(SystemExit) as exit_info:
        main([*old, "--help"] if old[0] != "eval" else ["eval", "--run=x", "--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert f"note: `trm {' '.join(old)}" in captured.err.replace("--run=x", "--run")
    assert f"is now `trm {new}" in captured.err.replace("--run=x", "--run")
    assert f"usage: trm {new.removesuffix(' --run')}" in captured.out
