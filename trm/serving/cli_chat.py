"""`trm serve chat`: a causal LM behind POST /v1/chat/completions and /v1/completions (non-streaming, n samples,
stop strings)."""

from __future__ import annotations

from pathlib import Path

from trm.serving.cli import common_parser, connection_limits, parse_server_args, shared_config


def main(argv: list[str], prog: str = "trm serve chat") -> int:
    parser = common_parser(prog, __doc__, default_port=23888, default_name="the model folder's name")
    parser.add_argument("--chat-template", default=None, metavar="FILE",
                        help="Jinja chat template replacing the model's (e.g. chat_templates/verifier.jinja)")
    parser.add_argument("--default-max-tokens", type=int, default=1024,
                        help="max_tokens for requests that do not set it (default 1024)")
    args = parse_server_args(parser, argv)

    from trm.serving.chat_server import ChatServerConfig, build_app
    from trm.serving.generator import ChatGenerator
    from trm.serving.http import run_app
    from trm.serving.scorer import check_model_dir

    check_model_dir(args.model)  # this, a missing template file or a model without chat template: exit 2 (trm.cli)
    template = Path(args.chat_template).read_text(encoding="utf-8") if args.chat_template else None
    generator = ChatGenerator(args.model, device=args.device, dtype=args.dtype, chat_template=template,
                              trust_remote_code=args.trust_remote_code)
    names = args.served_model_names or [Path(args.model).resolve().name]
    config = ChatServerConfig(served_model_names=names, max_length=args.max_length,
                              default_max_tokens=args.default_max_tokens, **shared_config(args))
    print(f"{prog}: {args.model} on {generator.device} as {', '.join(names)} at http://{args.host}:{args.port} "
          f"(template {args.chat_template or 'from the model'}, auth {'on' if config.api_key else 'off'})", flush=True)
    run_app(build_app(generator, config), args.host, args.port, args.log_level,
            limits=connection_limits(args))
    return 0
