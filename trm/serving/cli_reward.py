"""`trm serve reward`: a TRM behind POST /v1/embeddings (score = data[i].embedding[0])."""

from __future__ import annotations

from trm.serving.cli import common_parser, connection_limits, parse_server_args, server_config


def main(argv: list[str], prog: str = "trm serve reward") -> int:
    from trm.serving.reward_server import RewardServerConfig

    parser = common_parser(prog, __doc__, default_port=39999, default_name="RewardModel", config=RewardServerConfig)
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit per input (default: the model's max_position_embeddings)")
    parser.add_argument("--truncation", choices=["left", "right"], default=None,
                        help="truncate over-long inputs from this side (default: reject them with 400)")
    parser.add_argument("--allow-random-head", action="store_true",
                        help="serve a checkpoint without score-head weights (a causal LM) with a random head; for "
                             "tests only, its scores mean nothing (default: refuse to start)")
    args = parse_server_args(parser, argv)

    from trm.serving.http import run_app
    from trm.serving.reward_server import build_app
    from trm.serving.scorer import RewardScorer, check_model_dir

    check_model_dir(args.model)  # a missing folder or a checkpoint without score head: exit 2 (trm.cli)
    scorer = RewardScorer(args.model, device=args.device, max_length=args.max_length, truncation=args.truncation,
                          dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                          allow_random_head=args.allow_random_head)
    config = server_config(RewardServerConfig, args)
    print(f"{prog}: {args.model} on {scorer.device} as {', '.join(config.served_model_names)} at "
          f"http://{args.host}:{args.port} (max length {scorer.max_length}, truncation {args.truncation or 'off'}, "
          f"auth {'on' if config.api_key else 'off'})", flush=True)
    run_app(build_app(scorer, config), args.host, args.port, args.log_level,
            limits=connection_limits(args))
    return 0
