"""`trm inspect`: show how the toolkit reads responses, before any model is involved.

For each `{"prompt", "response"}` record it prints the reasoning trace, the exact TRM input text and the
extracted final answer, so a researcher can check the text shapes on their own data.
"""

from __future__ import annotations

import argparse
import json

from trm.cli import HelpFormatter
from trm.errors import BadInput
from trm.jsonio import read_records
from trm.traces import extract_answer, reasoning, trm_input


def describe(record: dict) -> dict:
    for field in ("prompt", "response"):
        if not isinstance(record.get(field), str):
            raise BadInput(f"record needs a string field {field!r}; got keys {sorted(record)}")
    return {
        "reasoning": reasoning(record["response"]),
        "trm_input": trm_input(record["prompt"], record["response"]),
        "answer": extract_answer(record["response"]),
    }


def main(argv: list[str], prog: str = "trm inspect") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--input", required=True, help="JSON object, JSON list or JSONL of {prompt, response}")
    parser.add_argument("--json", action="store_true", help="print one JSON object per record instead of text")
    args = parser.parse_args(argv)
    for index, record in enumerate(read_records(args.input)):
        shown = describe(record)
        if args.json:
            print(json.dumps(shown, ensure_ascii=False))
            continue
        print(f"===== record {index} =====")
        print("----- reasoning (scored by the TRM) -----")
        print(shown["reasoning"].strip())
        print("----- exact TRM input -----")
        print(repr(shown["trm_input"]))
        print("----- extracted final answer -----")
        print(shown["answer"])
    return 0
