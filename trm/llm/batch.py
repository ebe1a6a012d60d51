"""Ordered, resumable batch runs: many records in flight, results written in input order, one JSONL line each.

What is already in the output is matched to the items by key (`trm.resumable.ResumableOutput`), so a rerun
never redoes, duplicates or loses finished records.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Awaitable, Callable, Sequence, TypeVar

from tqdm import tqdm

from trm.resumable import RecordFailed, ResumableOutput

T = TypeVar("T")


async def run_ordered(
    items: Sequence[T],
    worker: Callable[[int, T], Awaitable[dict]],
    output: ResumableOutput,
    window: int = 8,
    desc: str = "records",
) -> int:
    """Run ``worker(index, item)`` for the items ``output`` lacks, ``window`` at a time; returns records written.

    A failing item raises `RecordFailed` naming it (the records finished before it stay in the output).
    """
    todo = output.todo
    pending: dict[int, asyncio.Task] = {}
    next_to_start = 0
    written = 0
    with tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, file=sys.stderr,
              dynamic_ncols=True) as progress:
        try:
            for position, index in enumerate(todo):
                while next_to_start < len(todo) and next_to_start < position + max(1, window):
                    start = todo[next_to_start]
                    pending[start] = asyncio.ensure_future(worker(start, items[start]))
                    next_to_start += 1
                try:
                    result = await pending.pop(index)
                except Exception as exc:
                    raise RecordFailed(index, output.keys[index], items[index], exc) from exc
                output.append([(index, result)])
                written += 1
                progress.update(1)
        finally:
            for task in pending.values():
                task.cancel()
            if pending:
                await asyncio.gather(*pending.values(), return_exceptions=True)
    output.finish()
    return written
