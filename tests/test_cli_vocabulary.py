"""Issue 15, item 9: one flag vocabulary (old spellings hidden but working for one release), defaults in every
--help, `trm train-rm --help` with the project's own flags first, `trm --version`."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from importlib.metadata import version

import pytest

from trm.cli import COMMANDS, HelpFormatter, add_alias, main

# (command, new flag, old spellings) for each concept: TRM endpoint / local TRM, judge, output file / folder
RENAMED = [
    (["score"], "--trm-endpoint", ["--endpoint"]),
    (["score"], "--trm-model", ["--model"]),
    (["eval-rm"], "--trm-endpoint", ["--endpoint"]),
    (["eval-rm"], "--trm-model", ["--model"]),
    (["reward"], "--trm-endpoint", ["--rm-backends"]),
    (["reward"], "--verifier-endpoint", ["--verifier-backends"]),
    (["dag", "build"], "--judge-url", ["--base-url"]),
    (["dag", "build"], "--judge-model", ["--model"]),
    (["preference", "build"], "--judge-url", ["--base-url"]),
    (["tiny"], "--output-dir", ["--out"]),
    (["generate"], "--output", ["--out"]),
    (["eval"], "--output-dir", ["--out-dir"]),
    (["bon"], "--output-dir", ["--out-dir"]),
    (["winrate"], "--output-dir", ["--out-dir"]),
    (["figures"], "--output-dir", ["--out"]),
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


LEAVES = [[name] for name in COMMANDS if name not in ("serve", "data", "rl", "dag", "preference")] + [
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
        (["score"], "--batch-size", "16"), (["bon"], "--seed", None), (["generate"], "--temperature", None),
        (["rl", "check"], "--print-config", None), (["data", "trm-preference", "split"], "--seed", "42"),
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
