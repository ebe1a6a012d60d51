"""Test-only observation hook for `trm serve chat`: what token ids did the model get for a chat request?

Python imports ``sitecustomize`` at start-up from the path, so a server started with this folder on PYTHONPATH
and TRM_TEST_PROMPT_LOG naming a file appends, per chat request, the prompt token ids the chat route produced
(JSON, one line each). The server itself is unchanged: this only wraps ``ChatGenerator.encode_chat``.
"""

import json
import os

_LOG = os.environ.get("TRM_TEST_PROMPT_LOG")

if _LOG:
    from trm.serving import generator as _generator

    _encode_chat = _generator.ChatGenerator.encode_chat

    def _recording_encode_chat(self, messages):
        ids = _encode_chat(self, messages)
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(ids) + "\n")
        return ids

    _generator.ChatGenerator.encode_chat = _recording_encode_chat
