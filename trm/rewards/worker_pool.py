"""Persistent worker processes that run one function per item under a hard, per-item time bound.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot stop one stuck call (a sympy expression that
never finishes would pin a worker, and the batch, forever), and it queues items ahead of their start, so a
per-item deadline cannot be measured. Here every worker is a plain ``python -m`` subprocess (no ``fork`` of a
threaded parent, no re-import of the caller's ``__main__``, works inside daemonic processes) that handles one
item at a time over a socket. The caller's thread measures each item's deadline from the moment it was
handed out; a worker past its deadline is killed and replaced, and its item is reported as timed out.
Any thread may call :meth:`WorkerPool.map`; concurrent calls share the workers. Each worker leads its own process
group, and a kill takes the whole group: helpers a checked function forks (verl's prime_math does) die with it.
A whole call can be given a deadline too, so that workers that never become ready (hung or killed while
importing) end it with :class:`PoolStalled` instead of stalling it forever.

Messages are length-prefixed JSON (never pickle), so only JSON-safe items and results travel.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

READY = "ready"


@dataclass(frozen=True)
class Outcome:
    """What happened to one item: status is "ok" (value set), "timeout", "error" or "crash" (detail says why)."""

    status: str
    value: Any = None
    detail: str = ""


class WorkerStartError(RuntimeError):
    """A worker process could not import its function: a broken install, not a bad item."""


class PoolStalled(RuntimeError):
    """A :meth:`WorkerPool.map` call passed its deadline; the message says what the workers were doing."""


def _worker_env() -> dict[str, str]:
    """The caller's environment, plus the folder holding `trm` so workers import the same code."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONWARNINGS": "ignore"}


_SPAWNER: tuple[int, ThreadPoolExecutor] | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawn(function: str) -> "_Worker":
    """Start a worker from one long-lived thread per process.

    Workers ask the kernel to kill them when their parent dies (PR_SET_PDEATHSIG), and Linux counts the
    *thread* that started a child as its parent: a worker started from a short-lived caller thread would be
    killed when that thread ends. Starting them all from this thread ties their life to the process.
    """
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or _SPAWNER[0] != os.getpid():
            _SPAWNER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="trm-worker-spawner"))
        executor = _SPAWNER[1]
    return executor.submit(_Worker, function).result()


class _Worker:
    def __init__(self, function: str):
        parent_sock, child_sock = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trm.rewards.worker_pool", "--fd", str(child_sock.fileno()), "--function", function],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=_worker_env(),
            start_new_session=True,  # its own process group: kill() also takes the helpers it forks
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.ready = False
        self.started_at = time.monotonic()

    def poll_ready(self) -> bool | None:
        """Non-blocking: has the worker finished importing? None if a signal killed it while it started;
        raises WorkerStartError if it failed by itself (a broken install, which no restart fixes)."""
        if self.ready:
            return True
        if not self.conn.poll():
            return False
        try:
            message = json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            code = self.proc.wait()
            if code < 0:
                return None
            raise WorkerStartError(f"worker exited with code {code} before it was ready (see its stderr above)")
        if message[0] != READY:
            raise WorkerStartError(f"rule-check worker failed to start: {message[1]}")
        self.ready = True
        return True

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker leads its group (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.conn.close()


class WorkerPool:
    """``workers`` processes that each import ``function`` ("module:name") once and reuse it for every item."""

    # Workers killed by a signal while starting are replaced; this many such deaths in a row (times the pool size)
    # with none becoming ready mean something kills every new worker: raise instead of replacing forever.
    MAX_START_DEATHS_PER_WORKER = 3

    def __init__(self, function: str, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.function = function
        self.size = workers
        self._lock = threading.Condition()
        self._idle: list[_Worker] = []
        self._starting: list[_Worker] = []
        self._closed = False
        self.replaced = 0  # workers killed after a timeout or crash (for diagnostics and tests)
        self.start_deaths: list[str] = []  # how workers died while starting, since one last became ready
        self._pid = os.getpid()
        for _ in range(workers):
            self._starting.append(_spawn(function))

    # -- worker bookkeeping (all under self._lock) ------------------------------------------------------
    def _take_idle(self) -> _Worker | None:
        with self._lock:
            if self._closed:
                raise RuntimeError("worker pool is shut down")
            for worker in list(self._starting):
                ready = worker.poll_ready()
                if ready:
                    self._starting.remove(worker)
                    self._idle.append(worker)
                    self.start_deaths.clear()
                elif ready is None:  # killed from outside while starting: start another, unless that keeps happening
                    self._starting.remove(worker)
                    worker.kill()
                    self.replaced += 1
                    self.start_deaths.append(f"killed by signal {-worker.proc.returncode}")
                    if len(self.start_deaths) >= self.MAX_START_DEATHS_PER_WORKER * self.size:
                        raise WorkerStartError(
                            f"{len(self.start_deaths)} workers for {self.function} died while starting and none "
                            f"became ready ({', '.join(sorted(set(self.start_deaths)))}): out of memory, or killed "
                            "from outside?")
                    self._starting.append(_spawn(self.function))
            return self._idle.pop() if self._idle else None

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
            self._lock.notify_all()

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self.replaced += 1
            if not self._closed:
                self._starting.append(_spawn(self.function))
            self._lock.notify_all()

    def _wait_for_any_worker(self) -> None:
        """Block until a worker may be free: one is given back, or a starting one may have become ready."""
        with self._lock:
            if self._idle:
                return
            self._lock.wait(timeout=0.05)  # short condition wait; starting workers are polled on wake-up

    # -- public API -----------------------------------------------------------------------------------
    def _stall_cause(self, done: int, total: int, running: int) -> str:
        with self._lock:
            starting = [time.monotonic() - worker.started_at for worker in self._starting]
            idle = len(self._idle)
        parts = [f"{done} of {total} items done, {running} running, {idle} workers idle"]
        if starting:
            parts.append(f"{len(starting)} workers still starting (the oldest for {max(starting):.0f}s: hung while "
                         f"importing {self.function}?)")
        if self.start_deaths:
            parts.append(f"{len(self.start_deaths)} died while starting ({', '.join(sorted(set(self.start_deaths)))})")
        return "; ".join(parts)

    def map(self, items: list, timeout_s: float, deadline: float | None = None) -> list[Outcome]:
        """Run every item, each bounded by ``timeout_s`` seconds of worker time; results keep input order.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole call: past it, raises :class:`PoolStalled`
        naming the cause (workers that never became ready, deaths while starting).
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        results: list[Outcome | None] = [None] * len(items)
        pending = deque(range(len(items)))
        running: dict[_Worker, tuple[int, float]] = {}
        try:
            while pending or running:
                if deadline is not None and time.monotonic() >= deadline:
                    done = sum(result is not None for result in results)
                    raise PoolStalled(self._stall_cause(done, len(items), len(running)))
                while pending:
                    worker = self._take_idle()
                    if worker is None:
                        break
                    index = pending.popleft()
                    try:
                        worker.conn.send_bytes(json.dumps(items[index]).encode())
                    except OSError:  # died while idle: replace it and hand the item to another worker
                        pending.appendleft(index)
                        self._replace(worker)
                        continue
                    running[worker] = (index, time.monotonic() + timeout_s)
                if not running:
                    self._wait_for_any_worker()
                    continue
                next_deadline = min(item_deadline for _, item_deadline in running.values())
                by_conn = {worker.conn: worker for worker in running}
                wait_s = max(0.0, (next_deadline if deadline is None else min(next_deadline, deadline)) - time.monotonic())
                if pending:  # look again soon for workers that became ready or were given back meanwhile
                    wait_s = min(wait_s, 0.05)
                for conn in wait(list(by_conn), timeout=wait_s):
                    worker = by_conn[conn]
                    index, _ = running.pop(worker)
                    try:
                        status, payload = json.loads(conn.recv_bytes())
                    except (EOFError, OSError, ValueError):
                        try:
                            code = worker.proc.wait(timeout=2)  # it closed its end: it is exiting
                        except subprocess.TimeoutExpired:
                            code = None
                        results[index] = Outcome("crash", detail=f"worker died while checking this item (exit code {code})")
                        self._replace(worker)
                        continue
                    results[index] = Outcome("ok", value=payload) if status == "ok" else Outcome("error", detail=payload)
                    self._give_back(worker)
                now = time.monotonic()
                for worker, (index, item_deadline) in list(running.items()):
                    if now >= item_deadline:
                        del running[worker]
                        results[index] = Outcome("timeout", detail=f"no result within {timeout_s:g}s; worker replaced")
                        self._replace(worker)
        except BaseException:
            for worker in running:  # their results would go to nobody; never hand back a busy worker
                self._replace(worker)
            raise
        return results  # type: ignore[return-value]

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._idle, self._starting = self._idle + self._starting, [], []
            self._lock.notify_all()
        for worker in workers:
            worker.kill()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def owned_by_this_process(self) -> bool:
        return self._pid == os.getpid()


# -- explicit per-process cache -------------------------------------------------------------------------
_POOLS: dict[tuple[str, int], WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def default_workers() -> int:
    """Workers for this machine: the CPUs this process may use, at most 32; TRM_RULE_CHECK_WORKERS overrides."""
    configured = os.environ.get("TRM_RULE_CHECK_WORKERS")
    if configured:
        return max(1, int(configured))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 32))


def get_pool(function: str, workers: int | None = None) -> WorkerPool:
    """The process-wide pool for ``function``, created on first use and reused; a forked child gets its own."""
    workers = workers or default_workers()
    key = (function, workers)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed or not pool.owned_by_this_process:
            pool = _POOLS[key] = WorkerPool(function, workers)
        return pool


def shutdown_pools() -> None:
    """Stop every cached pool of this process (also run at interpreter exit)."""
    with _POOLS_LOCK:
        pools = [pool for pool in _POOLS.values() if pool.owned_by_this_process]
        _POOLS.clear()
    for pool in pools:
        pool.shutdown()


atexit.register(shutdown_pools)


# -- worker process ---------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker if its parent dies, even while it is stuck in a computation."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _worker_main(fd: int, function: str) -> int:
    _die_with_parent()
    conn = Connection(fd)
    try:
        module_name, _, attr = function.partition(":")
        module = importlib.import_module(module_name)
        func = getattr(module, attr)
        if callable(getattr(module, "warm_up", None)):
            module.warm_up()  # heavy imports happen before "ready", never inside an item's time bound
    except Exception as exc:
        _send(conn, ["error", f"cannot import {function}: {type(exc).__name__}: {exc}"])
        return 1
    if not _send(conn, [READY, None]):
        return 0
    while True:
        try:
            item = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return 0  # parent closed the pool
        try:
            reply = ["ok", func(item)]
        except Exception as exc:
            reply = ["error", f"{type(exc).__name__}: {exc}"[:500]]
        if not _send(conn, reply):
            return 0


def _send(conn: Connection, message: list) -> bool:
    """Send one message; False when the parent has gone (the worker then exits quietly)."""
    try:
        conn.send_bytes(json.dumps(message).encode())
        return True
    except OSError:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="internal: one worker of trm.rewards.worker_pool")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--function", required=True)
    args = parser.parse_args()
    sys.exit(_worker_main(args.fd, args.function))
