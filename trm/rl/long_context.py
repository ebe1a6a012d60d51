"""`trm rl long-context SRC DST`: a copy of a local model folder with more positions, for GRPO with long responses.

Qwen2.5-Math-1.5B/7B ship ``max_position_embeddings`` 4096, fewer than the paper's prompt 2048 + response 8192.
The copy gets 16384 positions and RoPE base 40000 in its config.json (the values the LUFFY recipe trains this model
with); every other file is symlinked (or copied with ``--copy``), so verl and vLLM both read the new limits from
disk and no override is needed. The weights are unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from trm.cli import HelpFormatter
from trm.errors import BadInput
from trm.rl.context import LONG_CONTEXT_POSITIONS, LONG_CONTEXT_ROPE_THETA, read_model_config


@dataclass
class LongContextSettings:
    max_position_embeddings: int = LONG_CONTEXT_POSITIONS  # positions written into the copy's config.json
    rope_theta: float = LONG_CONTEXT_ROPE_THETA  # RoPE base written with them (a larger base for longer contexts)
    copy: bool = False  # copy the other files instead of symlinking them (for a copy that outlives SRC)


def long_context_config(config: dict, settings: LongContextSettings) -> dict:
    """The config with the new positions and RoPE base; refuses configs whose RoPE is already scaled."""
    if config.get("rope_scaling"):
        raise BadInput(f"config.json already has rope_scaling {config['rope_scaling']}: its context is extended "
                         "another way; this command only raises max_position_embeddings and rope_theta")
    if "max_position_embeddings" not in config:
        raise BadInput("config.json has no max_position_embeddings: not a model this command knows how to extend")
    theta = settings.rope_theta
    return {**config, "max_position_embeddings": settings.max_position_embeddings,
            "rope_theta": int(theta) if float(theta).is_integer() else theta}


def write_long_context_copy(src: Path, dst: Path, settings: LongContextSettings) -> dict:
    """Write DST (which must not exist or be empty); returns the new config."""
    src, dst = Path(src).resolve(), Path(dst)
    if not src.is_dir():
        raise BadInput(f"{src} is not a model folder")
    if dst.exists() and any(dst.iterdir()):
        raise BadInput(f"{dst} exists and is not empty; choose a new folder")
    if dst.resolve() == src:
        raise BadInput("DST must differ from SRC")
    config = long_context_config(read_model_config(src), settings)
    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.name == "config.json":
            continue
        target = dst / item.name
        if not settings.copy:
            target.symlink_to(item)
        elif item.is_dir():
            shutil.copytree(item, target, symlinks=True)
        else:
            shutil.copy2(item, target)
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config


def main(argv: list[str], prog: str = "trm rl long-context") -> int:
    defaults = LongContextSettings()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("src", help="local model folder (config.json, weights, tokenizer)")
    parser.add_argument("dst", help="new folder for the copy (must not exist, or be empty)")
    parser.add_argument("--max-position-embeddings", type=int, default=defaults.max_position_embeddings,
                        help=f"positions in the copy (default {defaults.max_position_embeddings})")
    parser.add_argument("--rope-theta", type=float, default=defaults.rope_theta,
                        help=f"RoPE base in the copy (default {defaults.rope_theta})")
    parser.add_argument("--copy", action="store_true", help="copy weights and tokenizer instead of symlinking them")
    args = parser.parse_args(argv)
    settings = LongContextSettings(args.max_position_embeddings, args.rope_theta, args.copy)
    before = read_model_config(Path(args.src))
    after = write_long_context_copy(Path(args.src), Path(args.dst), settings)
    print(f"{prog}: wrote {args.dst}: max_position_embeddings {before.get('max_position_embeddings')} -> "
          f"{after['max_position_embeddings']}, rope_theta {before.get('rope_theta')} -> {after['rope_theta']}; "
          f"other files {'copied' if settings.copy else 'symlinked'} from {Path(args.src).resolve()}")
    return 0
