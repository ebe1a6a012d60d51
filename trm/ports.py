"""Is a TCP port free to listen on, and if not, which process holds it?

A server that finds its port taken must say so before it spends minutes loading a model, and name the holder:
otherwise scripts that start it in the background talk to whatever already listens there. Standard library only,
so the launchers can run this file with any Python (``python trm/ports.py HOST PORT``, exit 1 when taken),
including a GPU environment without the trm package.
"""

from __future__ import annotations

import os
import socket
import sys


class PortInUse(OSError):
    """The port cannot be bound; the message names the port and, when visible, the process listening on it."""


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any address), from /proc/net/tcp{,6}; empty where there is no /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_owner(port: int) -> str | None:
    """``"pid 123 (python -m trm serve reward ...)"`` for the process listening on ``port``, None if not visible
    (no /proc, or the process belongs to another user)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in targets for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or not ours to read
            continue
        return f"pid {pid} ({command[:200]})"
    return None


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``host:port`` cannot be bound (with SO_REUSEADDR, as uvicorn binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            owner = port_owner(port)
            holder = f"held by {owner}" if owner else f"{exc.strerror or exc}; the process holding it is not visible"
            raise PortInUse(f"port {port} on {host} is already in use ({holder}); stop that server or choose "
                            f"another port") from None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python trm/ports.py HOST PORT", file=sys.stderr)
        return 2
    try:
        check_port_free(argv[0], int(argv[1]))
    except PortInUse as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
