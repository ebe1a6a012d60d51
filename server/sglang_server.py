"""Start sglang's server (``python -m sglang.launch_server``) with the API key taken from the environment.

sglang 0.5.2 takes its key only from the ``--api-key`` flag (no environment variable, no config file), and a
process's command line is readable by every user of the machine (``ps``). This wrapper adds the flag inside the
process, after start: ``ps`` shows the command without it, and sglang's worker processes receive their settings
through pipes, not command lines. trm.sh starts sglang through it.

    TRM_API_KEY=... python server/sglang_server.py --model-path ... [sglang.launch_server flags]
"""

import os
import runpy
import sys


def main() -> None:
    key = os.environ.pop("TRM_API_KEY", "")  # not inherited by the processes sglang starts
    sys.argv = [sys.argv[0], *sys.argv[1:], *(["--api-key", key] if key else [])]
    runpy.run_module("sglang.launch_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
