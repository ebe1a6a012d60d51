"""`trm serve reward|chat`: the embedded OpenAI-compatible servers."""

from __future__ import annotations

import argparse
import logging
import sys

from trm.cli import dispatch

SERVE_COMMANDS = {
    "reward": ("trm.serving.cli_reward", "serve a reward model (TRM) as an OpenAI embeddings API (/v1/embeddings)"),
    "chat": ("trm.serving.cli_chat", "serve a causal LM as an OpenAI (chat) completions API (/v1/chat/completions, /v1/completions)"),
    "wait": ("trm.serving.cli_wait", "wait until servers answer GET /health (for scripts that start them)"),
}


def main(argv: list[str], prog: str = "trm serve") -> int:
    return dispatch(prog, SERVE_COMMANDS, argv, "Embedded OpenAI-compatible servers (CPU or one GPU).")


# The connection flags keep their names without the unit suffix of the fields.
CONNECTION_FLAGS = {"request_read_timeout_s": "--request-read-timeout", "log_interval_s": "--log-interval",
                    "keep_alive_timeout_s": "--keep-alive-timeout"}


def common_parser(prog: str, description: str, default_port: int, default_name: str,
                  config: type) -> argparse.ArgumentParser:
    """Flags both servers share, with those of the server's ``config`` dataclass and of its batcher."""
    from trm.cli import HelpFormatter, add_dataclass_arguments
    from trm.client import API_KEY_ENV
    from trm.serving.batching import BatcherConfig
    from trm.serving.http import DEFAULT_MAX_BODY_BYTES, ConnectionLimits

    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter,
                                     epilog=f"The API key may also come from ${API_KEY_ENV['reward'][0]}.")
    parser.add_argument("--model", required=True, help="Hugging Face model folder (config.json, weights, tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port})")
    # Config fields without a flag of their own: the names are repeatable (a list) with a default per command, the
    # body limit is given in MiB, and the batcher gets its own flags (less its two tuning knobs, for benches).
    parser.add_argument("--served-model-name", action="append", dest="names", metavar="NAME",
                        help=f"name clients send as 'model' (repeatable; default {default_name})")
    parser.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_BYTES / 2**20,
                        help="largest request body in MiB; larger ones get 413")
    add_dataclass_arguments(parser, config, exclude=("served_model_names", "max_body_bytes", "batcher"))
    add_dataclass_arguments(parser, BatcherConfig, exclude=("max_wait_ms", "gather_yields"))
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", help="auto (checkpoint dtype), float32, bfloat16, float16")
    add_dataclass_arguments(parser, ConnectionLimits, flags=CONNECTION_FLAGS)
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run Python code shipped with the checkpoint (off by default)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); 1 avoids oversubscription when several "
                             "servers share a small CPU box")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def parse_server_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse the flags, refuse a port that is taken, then set up logging and torch threads as they ask (before any
    model loads)."""
    args = parser.parse_args(argv)
    from trm.ports import PortInUse, check_port_free

    try:  # before the model loads for minutes, and before a script waiting on the port finds another server there
        check_port_free(args.host, args.port)
    except PortInUse as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    return args


def server_config(config: type, args: argparse.Namespace, **fields):
    """The server's ``config`` from the flags (no --served-model-name: ``fields``' names, else the config's), with
    the API key resolved as everywhere (the flag, then the environment)."""
    from trm.cli import dataclass_from_args
    from trm.client import resolve_api_key
    from trm.serving.batching import BatcherConfig

    given = {"served_model_names": args.names} if args.names else {}
    return dataclass_from_args(config, args, **{
        "api_key": resolve_api_key(args.api_key, "reward"), "max_body_bytes": int(args.max_body_mb * 2**20),
        "batcher": dataclass_from_args(BatcherConfig, args), **fields, **given})


def connection_limits(args: argparse.Namespace):
    """The uvicorn connection limits the shared flags ask for."""
    from trm.cli import dataclass_from_args
    from trm.serving.http import ConnectionLimits

    return dataclass_from_args(ConnectionLimits, args)
