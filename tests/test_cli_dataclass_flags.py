"""Flags derived from a config dataclass (trm.cli.add_dataclass_arguments): each setting declared once."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from trm.cli import HelpFormatter, add_dataclass_arguments, dataclass_from_args


@dataclass
class _Settings:
    endpoint: str = field(metadata={"help": "where the servers are"})
    alpha: float = field(default=0.2, metadata={"help": "weight of the thinking reward"})
    parallelism: int = field(default=1024, metadata={"help": "requests in flight"})
    score_all: bool = field(default=False, metadata={"help": "score every response"})
    model: str | None = field(default=None, metadata={"help": "served name", "choices": ["a", "b"]})
    tags: tuple = field(default=(), metadata={"help": "not a flag type"})


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t", formatter_class=HelpFormatter)
    add_dataclass_arguments(parser, _Settings, exclude=("tags",), **kwargs)
    return parser


def test_types_defaults_and_booleans_come_from_the_fields():
    args = _parser().parse_args(["--endpoint", "h:1", "--alpha", "0.5", "--score-all", "--model", "b"])
    settings = dataclass_from_args(_Settings, args)
    assert settings == _Settings(endpoint="h:1", alpha=0.5, parallelism=1024, score_all=True, model="b")
    assert dataclass_from_args(_Settings, _parser().parse_args(["--endpoint", "x", "--no-score-all"])).score_all is False


def test_a_command_overrides_a_default_and_renames_a_flag_visibly():
    parser = _parser(defaults={"parallelism": 64, "endpoint": "127.0.0.1:1"}, flags={"endpoint": "--trm-endpoint"})
    settings = dataclass_from_args(_Settings, parser.parse_args([]))
    assert (settings.parallelism, settings.endpoint) == (64, "127.0.0.1:1")
    assert "weight of the thinking reward (default: 0.2)" in " ".join(parser.format_help().split())


def test_required_fields_choices_and_mistakes_are_errors():
    with pytest.raises(SystemExit):
        _parser().parse_args([])  # endpoint has no default
    with pytest.raises(SystemExit):
        _parser().parse_args(["--endpoint", "h", "--model", "c"])
    with pytest.raises(ValueError, match="no field"):
        _parser(defaults={"nope": 1})
    with pytest.raises(TypeError, match="no flag for type"):
        add_dataclass_arguments(argparse.ArgumentParser(), _Settings)
