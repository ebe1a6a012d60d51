"""`trm serve chat`: a causal LM behind POST /v1/chat/completions and /v1/completions (non-streaming, n samples,
stop strings)."""

from __future__ import annotations

from pathlib import Path

from trm.serving.cli import common_parser, connection_limits, parse_server_args, server_config


def main(argv: list[str], prog: str = "trm serve chat") -> int:
    from trm.serving.chat_server import ChatServerConfig

    parser = common_parser(prog, __doc__, default_port=23888, default_name="the model folder's name",
                           config=ChatServerConfig)
    parser.add_argument("--chat-template", default=None, metavar="FILE",
                        help="Jinja chat template replacing the model's (e.g. chat_templates/verifier.jinja)")
    args = parse_server_args(parser, argv)

    from trm.serving.chat_server import build_app
    from trm.serving.generator import ChatGenerator
    from trm.serving.http import run_app
    from trm.serving.scorer import check_model_dir

    check_model_dir(args.model)  # this, a missing template file or a model without chat template: exit 2 (trm.cli)
    template = Path(args.chat_template).read_text(encoding="utf-8") if args.chat_template else None
    generator = ChatGenerator(args.model, device=args.device, dtype=args.dtype, chat_template=template,
                              trust_remote_code=args.trust_remote_code)
    config = server_config(ChatServerConfig, args, served_model_names=[Path(args.model).resolve().name])
    print(f"{prog}: {args.model} on {generator.device} as {', '.join(config.served_model_names)} at "
          f"http://{args.host}:{args.port} (template {args.chat_template or 'from the model'}, auth "
          f"{'on' if config.api_key else 'off'})", flush=True)
    run_app(build_app(generator, config), args.host, args.port, args.log_level,
            limits=connection_limits(args))
    return 0
