"""`trm serve wait`: block until servers answer GET /health with 200 (for scripts that start servers).

With --expect-model, a healthy server must also list that name in GET /v1/models: a script that started its own
server under a unique extra name (--served-model-name) so learns at once when another server holds the port.
With --pid, waiting stops as soon as the process that should become the server has exited.
"""

from __future__ import annotations

import argparse
import os

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
    from trm.client import API_KEY_ENV

    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("endpoints", help="host:port or URLs, comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait in all")
    parser.add_argument("--expect-model", metavar="NAME",
                        help="fail unless every server lists NAME in GET /v1/models (proves it is the one you started)")
    parser.add_argument("--pid", type=int, action="append", default=[],
                        help="fail as soon as this process (the server being started) has exited; repeatable")
    parser.add_argument("--api-key", default=None,
                        help=f"key for GET /v1/models on servers started with --api-key (default: "
                             f"${API_KEY_ENV['reward'][0]})")
    args = parser.parse_args(argv)

    from trm.client import parse_backends, resolve_api_key, wait_healthy
    from trm.errors import BadInput

    try:
        parse_backends(args.endpoints)
    except ValueError as exc:  # trm.client's own error type for a malformed list
        raise BadInput(str(exc)) from None

    def exited() -> str | None:
        dead = [pid for pid in args.pid if not _alive(pid)]
        return f"process {', '.join(map(str, dead))} exited" if dead else None

    urls = wait_healthy(args.endpoints, args.timeout, args.expect_model, resolve_api_key(args.api_key, "reward"),
                        abort=exited)
    for url in urls:
        print(f"{prog}: {url} is healthy", flush=True)
    return 0
