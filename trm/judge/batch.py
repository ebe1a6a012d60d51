"""Ordered, resumable batch runs: many records in flight, results written in input order, one JSONL line each.

A rerun counts the complete lines already in the output (a torn last line is dropped) and starts after them,
so an interrupted run never redoes or duplicates finished records.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

from tqdm import tqdm

from trm.jsonio import append_jsonl, count_complete_lines

T = TypeVar("T")


async def run_ordered(
    items: Sequence[T],
    worker: Callable[[int, T], Awaitable[dict]],
    output: str | Path,
    window: int = 8,
    desc: str = "records",
) -> int:
    """Run ``worker(index, item)`` for items not yet in ``output``, ``window`` at a time; returns records written."""
    done = count_complete_lines(output)
    if done > len(items):
        raise ValueError(
            f"{output} already has {done} records but the input has only {len(items)}: "
            "was it written from a different input? Use another --output."
        )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    pending: dict[int, asyncio.Task] = {}
    next_to_start = done
    written = 0
    with tqdm(total=len(items), initial=done, desc=desc, file=sys.stderr, dynamic_ncols=True) as progress:
        try:
            for index in range(done, len(items)):
                while next_to_start < len(items) and next_to_start < index + max(1, window):
                    pending[next_to_start] = asyncio.ensure_future(worker(next_to_start, items[next_to_start]))
                    next_to_start += 1
                try:
                    result = await pending.pop(index)
                except Exception as exc:
                    exc.record_index = index  # lets the command name the record that failed
                    raise
                append_jsonl(output, [result])
                written += 1
                progress.update(1)
        finally:
            for task in pending.values():
                task.cancel()
            if pending:
                await asyncio.gather(*pending.values(), return_exceptions=True)
    return written
