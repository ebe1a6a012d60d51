#!/usr/bin/env python3
"""Write toy TRM-Preference pairs: two correct traces per question, the rejected one with ME² defects.

The traces come from `trm.data.toy_traces` (which explains the defects and why there is no length shortcut).
The committed files were written with:

    python scripts/make_toy_preferences.py --train 256 --test 96 --seed 0 --out data/toy_preferences
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trm.data.toy_traces import DEFECTS, make_pair, make_pairs  # noqa: F401  (re-exported for callers of the script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=256, help="number of training pairs")
    parser.add_argument("--test", type=int, default=96, help="number of held-out pairs (drawn after the training ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/toy_preferences", help="prefix: writes PREFIX_train.jsonl, PREFIX_test.jsonl")
    args = parser.parse_args(argv)
    rows = make_pairs(args.train + args.test, args.seed)
    for split, part in (("train", rows[: args.train]), ("test", rows[args.train :])):
        path = Path(f"{args.out}_{split}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            for row in part:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {len(part)} pairs to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
