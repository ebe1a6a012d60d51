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


def common_parser(prog: str, description: str, default_port: int, default_name: str) -> argparse.ArgumentParser:
    """Flags both servers share."""
    from trm.cli import HelpFormatter
    from trm.client import API_KEY_ENV

    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.add_argument("--model", required=True, help="Hugging Face model folder (config.json, weights, tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port})")
    parser.add_argument("--served-model-name", action="append", dest="served_model_names", metavar="NAME",
                        help=f"name clients send as 'model' (repeatable; default {default_name})")
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' on every route but /health "
                             f"(or set {API_KEY_ENV['reward'][0]})")
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit per input (default: the model's max_position_embeddings)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", help="auto (checkpoint dtype), float32, bfloat16, float16")
    from trm.serving.batching import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS, BatcherConfig

    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help=f"padded tokens per shared forward pass (default {GPU_BATCH_TOKENS} on a GPU; the reward "
                             f"server uses {CPU_BATCH_TOKENS} on a CPU, whose caches favour small batches)")
    parser.add_argument("--max-batch-size", type=int, default=64,
                        help="rows per shared forward pass; 1 turns batching off (default 64)")
    parser.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body in MiB (default 32)")
    from trm.serving.http import HTTP_PARSERS, ConnectionLimits

    parser.add_argument("--max-queue", type=int, default=BatcherConfig.max_queue,
                        help="items waiting for a forward pass; beyond, requests get 429 with Retry-After "
                             f"(default {BatcherConfig.max_queue})")
    parser.add_argument("--max-connections", type=int, default=ConnectionLimits.max_connections,
                        help=f"open connections; more are closed at once (default {ConnectionLimits.max_connections})")
    parser.add_argument("--request-read-timeout", type=float, default=ConnectionLimits.request_read_timeout_s,
                        help="seconds a client has to send a whole request before its connection is closed "
                             f"(default {ConnectionLimits.request_read_timeout_s:g})")
    parser.add_argument("--http-parser", choices=HTTP_PARSERS, default=ConnectionLimits.http_parser,
                        help="HTTP/1.1 parser: httptools (C, much less CPU per request), h11 (pure Python) or auto "
                             f"(httptools when installed; default {ConnectionLimits.http_parser})")
    parser.add_argument("--log-interval", type=float, default=ConnectionLimits.log_interval_s,
                        help="log each kind of connection warning at most once per this many seconds "
                             f"(default {ConnectionLimits.log_interval_s:g})")
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


def shared_config(args: argparse.Namespace) -> dict:
    """Config fields both servers take from the shared flags (API key, body limit, batching)."""
    from trm.client import resolve_api_key
    from trm.serving.batching import BatcherConfig

    return dict(
        api_key=resolve_api_key(args.api_key, "reward"),
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        batcher=BatcherConfig(max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size,
                              max_queue=args.max_queue),
    )


def connection_limits(args: argparse.Namespace):
    """The uvicorn connection limits the shared flags ask for."""
    from trm.serving.http import ConnectionLimits

    return ConnectionLimits(max_connections=args.max_connections, request_read_timeout_s=args.request_read_timeout,
                            http_parser=args.http_parser, log_interval_s=args.log_interval)
