"""Embedded OpenAI-compatible servers for the TRM (embeddings API) and for chat models (chat completions API).

On GPU clusters the launchers (`trm.sh`, `server/general-verifier.sh`) prefer sglang / vLLM; these servers
speak the same wire format so clients never need to know which one answers.

- `scorer.RewardScorer`: in-process raw reward scores (the server's forward path, usable without HTTP).
- `batching.DynamicBatcher`: coalesces concurrent requests into shared forward passes.
- `reward_server` / `chat_server`: the two HTTP apps; `http` holds what they share (errors, auth, body limits).
- `cli`: `trm serve reward|chat`; `score`: `trm score`.
"""
