"""Issue 12 item 4 for `trm serve reward|chat` and `trm generate`: each setting is one dataclass field; its flag,
help and default come from it. A field's help missing from --help, or a parsed default that drifted from the
dataclass, fails here."""

from __future__ import annotations

import dataclasses
import io
import contextlib

import pytest

from trm.cli import dataclass_from_args, main
from trm.client import API_KEY_ENV
from trm.evaluation.backends import SamplingConfig
from trm.evaluation.generate import build_parser
from trm.serving import cli_chat, cli_reward
from trm.serving.batching import BatcherConfig
from trm.serving.chat_server import ChatServerConfig
from trm.serving.cli import server_config
from trm.serving.reward_server import RewardServerConfig

# Fields written as flags by hand: the repeatable --served-model-name, --max-body-mb (MiB), the nested batcher (its
# own flags) and the batcher's two bench knobs.
HAND_WRITTEN = {"served_model_names", "max_body_bytes", "batcher", "max_wait_ms", "gather_yields"}


def help_text(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(out.getvalue().split())


@pytest.mark.parametrize("command,configs", [
    (["serve", "reward"], [RewardServerConfig, BatcherConfig]),
    (["serve", "chat"], [ChatServerConfig, BatcherConfig]),
    (["generate"], [SamplingConfig]),
], ids=["serve reward", "serve chat", "generate"])
def test_help_shows_every_config_fields_flag_and_help(command, configs):
    text = help_text(*command)
    for config in configs:
        for f in dataclasses.fields(config):
            if f.name in HAND_WRITTEN:
                continue
            assert f"--{f.name.replace('_', '-')} " in text, (command, f.name)
            assert " ".join(f.metadata["help"].split()) in text, (command, f.name)
    assert "--served-model-name" in text or command == ["generate"]


def parsed_server_args(module, argv, monkeypatch):
    """The namespace the command's own parser gives for ``argv`` (the server is not started)."""

    class Parsed(Exception):
        pass

    def stop(parser, args):
        raise Parsed(parser.parse_args(args))

    monkeypatch.setattr(module, "parse_server_args", stop)
    with pytest.raises(Parsed) as parsed:
        module.main(argv)
    return parsed.value.args[0]


@pytest.mark.parametrize("module,config", [(cli_reward, RewardServerConfig), (cli_chat, ChatServerConfig)],
                         ids=["reward", "chat"])
def test_server_flag_defaults_are_the_config_defaults(module, config, monkeypatch):
    for name in API_KEY_ENV["reward"]:
        monkeypatch.delenv(name, raising=False)
    args = parsed_server_args(module, ["--model", "m"], monkeypatch)
    assert server_config(config, args) == config()  # the chat command then names the model folder
    assert (args.host, args.trust_remote_code) == ("127.0.0.1", False)  # security defaults

    args = parsed_server_args(module, ["--model", "m", "--max-batch-size", "3", "--max-body-mb", "0.5",
                                       "--served-model-name", "a", "--served-model-name", "b"], monkeypatch)
    monkeypatch.setenv(API_KEY_ENV["reward"][0], "from-env")
    built = server_config(config, args)
    assert (built.batcher.max_batch_size, built.max_body_bytes, built.served_model_names, built.api_key) == \
        (3, 512 * 1024, ["a", "b"], "from-env")


def test_generate_flag_defaults_are_sampling_config_defaults_but_max_tokens():
    args = build_parser("trm generate").parse_args(["--benchmark", "aime24", "--model", "m", "--output", "o"])
    assert args.max_tokens is None  # the visible override: fitted to a local model's context
    assert dataclass_from_args(SamplingConfig, args, max_tokens=SamplingConfig.max_tokens) == SamplingConfig()
    args = build_parser("trm generate").parse_args(["--benchmark", "aime24", "--model", "m", "--output", "o",
                                                    "--n", "4", "--top-p", "0.5", "--seed", "7"])
    assert dataclass_from_args(SamplingConfig, args) == SamplingConfig(n=4, top_p=0.5, seed=7, max_tokens=None)
