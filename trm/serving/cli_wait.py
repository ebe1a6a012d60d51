"""`trm serve wait`: block until servers answer GET /health with 200 (for scripts that start servers).

With --expect-model, a healthy server must also list that name in GET /v1/models: a script that started its own
server under a unique extra name (--served-model-name) so learns at once when another server holds the port.
With --pid, waiting stops as soon as the process that should become the server has exited.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from trm.cli import HelpFormatter


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child of ours stays a zombie until its parent (the script) reaps it
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main(argv: list[str], prog: str = "trm serve wait") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("endpoints", help="host:port or URLs, comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait in all")
    parser.add_argument("--expect-model", metavar="NAME",
                        help="fail unless every server lists NAME in GET /v1/models (proves it is the one you started)")
    parser.add_argument("--pid", type=int, action="append", default=[],
                        help="fail as soon as this process (the server being started) has exited; repeatable")
    args = parser.parse_args(argv)

    import httpx

    from trm.client import parse_backends

    try:
        urls = parse_backends(args.endpoints)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.timeout
    waiting = list(urls)
    last_error: dict[str, str] = {}
    while waiting:
        for url in list(waiting):
            try:
                response = httpx.get(f"{url}/health", timeout=5.0, trust_env=False)
                if response.status_code == 200:
                    if args.expect_model and not _serves(httpx, url, args.expect_model, prog):
                        return 1
                    waiting.remove(url)
                    print(f"{prog}: {url} is healthy", flush=True)
                    continue
                last_error[url] = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error[url] = f"{type(exc).__name__}: {exc}"
        dead = [pid for pid in args.pid if not _alive(pid)]
        if waiting and dead:
            print(f"{prog}: error: process {', '.join(map(str, dead))} exited before {', '.join(waiting)} became "
                  "healthy; see its log", file=sys.stderr)
            return 1
        if waiting and time.monotonic() > deadline:
            for url in waiting:
                print(f"{prog}: error: {url} not healthy after {args.timeout:g}s ({last_error.get(url)})",
                      file=sys.stderr)
            return 1
        if waiting:
            time.sleep(0.5)  # polling with a deadline
    return 0


def _serves(httpx, url: str, name: str, prog: str) -> bool:
    """Whether the server at ``url`` lists ``name`` in /v1/models; says what it serves instead when not."""
    try:
        response = httpx.get(f"{url}/v1/models", timeout=5.0, trust_env=False)
        names = [entry.get("id") for entry in response.json().get("data", [])] if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        names, response = None, exc
    if names is not None and name in names:
        return True
    found = f"it serves {', '.join(map(str, names))}" if names is not None else f"GET /v1/models gave {response}"
    print(f"{prog}: error: {url} is healthy but is not the server that was started ({found}, not {name}); "
          "another server holds that port", file=sys.stderr)
    return False
