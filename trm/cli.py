"""The `trm` command: a table of subcommands, each owned by one module.

Every entry maps a subcommand name to the module that implements it and a one-line summary. The module
exposes ``main(argv: list[str]) -> int | None`` with its own argparse parser, so `trm --help` stays fast
(nothing heavy is imported until a subcommand runs) and each part of the toolkit owns its flags.
Groups with their own subcommands (``trm serve reward``) reuse :func:`dispatch` with a table of their own, kept in
their package's ``cli.py``; an :class:`Alias` entry keeps an old spelling working, hidden, for one release.

Exit codes, one convention: commands raise, and only :func:`dispatch` turns errors into codes and one line
``prog: error: message`` (plus the notes a command added) without traceback: 0 success; 2 bad input (argparse,
:class:`trm.errors.BadInput`, the base of the library's input errors, FileNotFoundError, IsADirectoryError); 1 a
failed run (:class:`trm.errors.RunFailed`, :class:`trm.client.BackendError`). Other exceptions keep their traceback.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import re
import sys
import types
import typing
from typing import Any, Mapping, NamedTuple, Sequence

from trm.errors import BadInput, RunFailed


class Alias(NamedTuple):
    """A hidden old spelling in a command table: runs ``target`` (words of the same table) and names it. The key
    ``ANY_FLAG`` stands for a flag where a subcommand was expected (a command that became a group)."""

    target: str


ANY_FLAG = "-"

# name -> (module, summary). Keep this list in the order a researcher meets the commands.
COMMANDS: dict[str, tuple[str, str] | Alias] = {
    "tiny": ("trm.tiny", "build tiny reward/chat models for tests and the quickstart (no downloads)"),
    "inspect": ("trm.inspect", "show the reasoning, the exact TRM input and the final answer of responses"),
    "serve": ("trm.serving.cli", "serve a reward model (embeddings API) or a chat model (chat completions API)"),
    "score": ("trm.serving.score", "score reasoning traces with a TRM endpoint or a local model"),
    "data": ("trm.data.cli", "prepare and validate datasets (webinstruct, trm-preference)"),
    "train-rm": ("trm.training.train_rm", "train a thinking reward model with TRL's RewardTrainer"),
    "reward": ("trm.rewards.cli", "compute blended rewards for responses through the verifier and the TRM"),
    "rl": ("trm.rl.cli", "check and summarise the verl GRPO configuration (train.sh --dry-run)"),
    "dag": ("trm.dag.cli", "turn reasoning traces into DAGs with an LLM judge"),
    "preference": ("trm.preference.cli", "build TRM-Preference data with ME2 pairwise judgements"),
    "generate": ("trm.evaluation.generate", "sample N responses per benchmark prompt"),
    "eval": ("trm.evaluation.cli", "evaluate: benchmark accuracy, best-of-N, win rate, reward models, figures"),
    "eval-rm": Alias("eval rm"),
    "bon": Alias("eval bon"),
    "winrate": Alias("eval winrate"),
    "figures": Alias("eval figures"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every `trm` parser's formatter: descriptions kept as written, and each option's default shown unless its help
    already states one ("default " / "default:"), or has none worth showing (None, False, an empty list)."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "hidden_aliases", ())
        if hidden:
            action = copy.copy(action)
            action.option_strings = [name for name in action.option_strings if name not in hidden]
        return super()._format_action_invocation(action)

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        return not (default is None or default is False or default is argparse.SUPPRESS or default == []
                    or re.search(r"default[:) ]", action.help or "", re.IGNORECASE)
                    or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
                    or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)))

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and self._shows_default(action):  # argparse prints no help line at all otherwise
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if not self._shows_default(action):
            return help_text
        return f"{help_text} (default: %(default)s)" if help_text else "(default: %(default)s)"


class _AliasNote:
    """Mixed into an action that has hidden old spellings: says which name to use when an old one is given."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.hidden_aliases:
            print(f"{parser.prog}: note: {option_string} is now {self.option_strings[0]}; the old name goes away in "
                  "the next release", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def add_alias(container, old: str, action: argparse.Action | str) -> None:
    """Accept ``old`` as a deprecated spelling of ``action`` (what ``add_argument`` returned on ``container``, or its
    option string): the same action, so ``required`` and mutually exclusive groups hold for either name;
    :class:`HelpFormatter` leaves the old name out of --help, and using it prints the new one."""
    if isinstance(action, str):
        action = container._option_string_actions[action]
    if old in container._option_string_actions:
        raise ValueError(f"{old} is already an option")
    action.option_strings.append(old)
    container._option_string_actions[old] = action
    if not isinstance(action, _AliasNote):
        action.hidden_aliases = ()
        action.__class__ = type(f"Aliased{type(action).__name__}", (_AliasNote, type(action)), {})
    action.hidden_aliases += (old,)


def add_dataclass_arguments(container, cls, *, defaults: Mapping[str, Any] | None = None,
                            flags: Mapping[str, str] | None = None, exclude: Sequence[str] = (),
                            prefix: str = "") -> None:
    """One flag per field of the dataclass ``cls``, so each setting is declared once: its type, default and help
    (``field(metadata={"help": ...})``, the HfArgumentParser convention) come from the field. ``defaults``
    overrides a field's default for this command, visibly, in one place; ``flags`` renames a flag into the
    project's vocabulary (``{"rm_backends": "--trm-endpoint"}``); ``exclude`` leaves fields out. The parsed
    value lands in ``args.<prefix><field name>``: build the config with :func:`dataclass_from_args`. ``prefix``
    keeps two configs with a same-named field apart in one parser (``dag_``: ``--dag-temperature``)."""
    defaults, flags = dict(defaults or {}), dict(flags or {})
    unknown = (set(defaults) | set(flags) | set(exclude)) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} declares no help (field(metadata={{'help': ...}}))")
        kind = hints[f.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        kwargs: dict[str, Any] = {"dest": prefix + f.name, "default": default, "help": f.metadata["help"]}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind in (int, float, str):
            kwargs["type"] = kind
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {kind!r}; exclude it and add it by hand")
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if "metavar" in f.metadata or prefix and kind is not bool and "choices" not in f.metadata:
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())  # the field's name, not the prefixed dest
        if default is None and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING \
                and f.name not in defaults:
            kwargs["required"] = True
        container.add_argument(flags.get(f.name, "--" + kwargs["dest"].replace("_", "-")), **kwargs)


def dataclass_from_args(cls, args: argparse.Namespace, *, prefix: str = "", **overrides: Any):
    """The ``cls`` instance of the flags :func:`add_dataclass_arguments` added (fields without a flag keep their
    defaults unless given in ``overrides``)."""
    values = {f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls)
              if f.init and hasattr(args, prefix + f.name)}
    return cls(**{**values, **overrides})


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("trm")
    except PackageNotFoundError:  # run from a checkout without `pip install -e .`
        return "unknown (not installed)"


def _usage(prog: str, table: Mapping[str, tuple[str, str] | Alias], description: str) -> str:
    shown = {name: entry for name, entry in table.items() if not isinstance(entry, Alias)}
    width = max(len(name) for name in shown) + 2
    lines = [f"usage: {prog} <command> [options]", "", description, "", "commands:"]
    lines += [f"  {name:<{width}}{summary}" for name, (_, summary) in shown.items()]
    lines += ["", f"Run '{prog} <command> --help' for the options of one command; '{prog} --version' for the version."]
    return "\n".join(lines)


def exit_code(error: BaseException) -> int | None:
    """The exit code of an error a command reports in one line (see the module docstring); None: a bug, traceback."""
    if isinstance(error, (BadInput, FileNotFoundError, IsADirectoryError)):
        return 2
    client = sys.modules.get("trm.client")  # a BackendError exists only once trm.client was imported
    if isinstance(error, RunFailed) or (client is not None and isinstance(error, client.BackendError)):
        return 1
    return None


def dispatch(prog: str, table: Mapping[str, tuple[str, str] | Alias], argv: Sequence[str],
             description: str = "") -> int:
    """Run the subcommand named by argv[0] from `table` and return its exit code; print usage for --help or an
    unknown name."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(prog, table, description))
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"{prog} {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    entry = table.get(ANY_FLAG if name.startswith("-") and ANY_FLAG in table else name)
    if isinstance(entry, Alias):
        new = entry.target.split() + ([name] if name.startswith("-") else [])
        print(f"{prog}: note: `{prog} {name}` is now `{prog} {' '.join(new)}`; the old spelling goes away in the next "
              "release", file=sys.stderr)
        return dispatch(prog, table, new + rest, description)
    if entry is None:
        print(f"{prog}: unknown command {name!r}\n", file=sys.stderr)
        print(_usage(prog, table, description), file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(entry[0]).main(rest, prog=f"{prog} {name}") or 0)
    except Exception as error:
        code = exit_code(error)
        if code is None:
            raise
        print(f"{prog} {name}: error: {error}", *getattr(error, "__notes__", ()), sep="\n", file=sys.stderr)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(
        "trm",
        COMMANDS,
        sys.argv[1:] if argv is None else argv,
        "Thinking Reward Model toolkit: score, train and optimise how well a model reasons.",
    )


if __name__ == "__main__":
    sys.exit(main())
