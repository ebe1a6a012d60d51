"""`trm serve wait`: block until servers answer GET /health with 200 (for scripts that start servers)."""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str], prog: str = "trm serve wait") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("endpoints", help="host:port or URLs, comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait in all (default 300)")
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
                response = httpx.get(f"{url}/health", timeout=5.0)
                if response.status_code == 200:
                    waiting.remove(url)
                    print(f"{prog}: {url} is healthy", flush=True)
                    continue
                last_error[url] = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error[url] = f"{type(exc).__name__}: {exc}"
        if waiting and time.monotonic() > deadline:
            for url in waiting:
                print(f"{prog}: error: {url} not healthy after {args.timeout:g}s ({last_error.get(url)})",
                      file=sys.stderr)
            return 1
        if waiting:
            time.sleep(0.5)  # polling with a deadline
    return 0
