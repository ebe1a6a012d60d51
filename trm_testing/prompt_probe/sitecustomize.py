"""Test-only observation hook for `trm serve chat`: what token ids did the model get for a request?

Python imports ``sitecustomize`` at start-up from the path, so a server started with this folder on PYTHONPATH
and TRM_TEST_PROMPT_LOG naming a file appends the prompt token ids of each chat request, and of each prompt of a
/v1/completions request (JSON ``{"route", "ids"}``, one line each). The server itself is unchanged: this only
wraps ``ChatGenerator.encode_chat`` and ``ChatGenerator.encode_text``.
"""

import json
import os

_LOG = os.environ.get("TRM_TEST_PROMPT_LOG")

if _LOG:
    from trm.serving import generator as _generator

    _encode_chat = _generator.ChatGenerator.encode_chat
    _encode_text = _generator.ChatGenerator.encode_text

    def _record(route, all_ids):
        with open(_LOG, "a", encoding="utf-8") as log:
            for ids in all_ids:
                log.write(json.dumps({"route": route, "ids": ids}) + "\n")

    def _recording_encode_chat(self, messages):
        ids = _encode_chat(self, messages)
        _record("chat", [ids])
        return ids

    def _recording_encode_text(self, texts):
        all_ids = _encode_text(self, texts)
        _record("completions", all_ids)
        return all_ids

    _generator.ChatGenerator.encode_chat = _recording_encode_chat
    _generator.ChatGenerator.encode_text = _recording_encode_text
