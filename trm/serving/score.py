"""`trm score`: TRM scores for {"prompt", "response"} records, through TRM servers or a local model.

Both ways score the same text (`trm.traces.trm_input`: the prompt, a newline, the reasoning before `</think>`)
with the same forward path, so they agree. A single JSON object prints its score; a list or JSONL file becomes
JSONL with a `trm_score` field per record, written as it goes. An interrupted run resumes with --resume: the
records already written are matched to the input by content (`trm.resumable`), whatever their order.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

from trm.cli import HelpFormatter, dataclass_from_args
from trm.errors import BadInput
from trm.jsonio import read_records
from trm.resumable import ResumableOutput, content_key
from trm.scoring import Scorer, ScoringConfig, add_scorer_arguments
from trm.traces import trm_input

SCORE_FIELD = "trm_score"


def record_texts(records: Sequence[dict], prompt_key: str = "prompt", response_key: str = "response") -> list[str]:
    """TRM input texts of records; a record without string prompt/response is named in the error."""
    texts = []
    for index, record in enumerate(records):
        for key in (prompt_key, response_key):
            if not isinstance(record.get(key), str):
                found = "missing" if key not in record else f"a {type(record[key]).__name__}"
                raise BadInput(f"record {index}: field {key!r} is {found}; every record needs string "
                                 f"{prompt_key!r} and {response_key!r} fields")
        texts.append(trm_input(record[prompt_key], record[response_key]))
    return texts


def _is_single_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except json.JSONDecodeError:
        return False


def main(argv: list[str], prog: str = "trm score") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--input", required=True, help="JSON object, JSON list or JSONL of {prompt, response}")
    parser.add_argument("--output", help="JSONL to write (records + trm_score); default: a single object prints "
                                         "its score, several records print JSONL to stdout")
    parser.add_argument("--resume", action="store_true", help="keep the records already in --output, score the rest")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--prompt-key", default="prompt")
    parser.add_argument("--response-key", default="response")
    add_scorer_arguments(parser)
    args = parser.parse_args(argv)

    from tqdm import tqdm

    path = Path(args.input)
    records = read_records(path)
    texts = record_texts(records, args.prompt_key, args.response_key)
    if not records:
        raise BadInput(f"{path} has no records")
    single = args.output is None and _is_single_object(path)

    todo = list(range(len(records)))
    output = None
    if args.output:
        out = Path(args.output)
        if out.exists() and out.stat().st_size and not (args.resume or args.overwrite):
            raise BadInput(f"{out} exists; pass --resume to continue it or --overwrite to replace it")
        if args.overwrite and out.exists():
            out.unlink()
        output = ResumableOutput(out, [content_key(r, [SCORE_FIELD]) for r in records],
                                 key_of=lambda r: content_key(r, [SCORE_FIELD]), check=_check_scored).open()
        todo = output.todo
        write = output.append
    else:
        def write(batch):
            for _, record in batch:
                print(json.dumps(record, ensure_ascii=False), flush=True)

    scorer = Scorer(dataclass_from_args(ScoringConfig, args))

    # A window of texts is scored per call (in flight together, over the servers), written in order when done.
    window = args.batch_size * (max(1, args.concurrency) if args.trm_endpoint else 4)
    progress = tqdm(total=len(records), initial=len(records) - len(todo), desc="trm score", unit="rec",
                    file=sys.stderr, disable=single)
    try:
        for start in range(0, len(todo), window):
            indices = todo[start : start + window]
            scores = scorer.score([texts[i] for i in indices])
            if single:
                print(scores[0])
            else:
                write([(i, {**records[i], SCORE_FIELD: score}) for i, score in zip(indices, scores)])
            progress.update(len(indices))
        if output is not None:
            output.finish()
    except Exception as exc:  # a failed request stops the run; what was written stays, --resume continues
        if args.output:
            exc.add_note(f"{progress.n} records are in {args.output}; rerun with --resume")
        raise
    finally:
        progress.close()
        scorer.close()
    return 0


def _check_scored(record: dict, index: int) -> str | None:
    """Why a written record has no usable score (None when it has one)."""
    score = record.get(SCORE_FIELD)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        return f"{SCORE_FIELD} is {score!r}, not a finite number"
    return None
