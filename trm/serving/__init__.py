"""Embedded OpenAI-compatible servers for the TRM (embeddings API) and for chat models (chat completions and
plain completions APIs).

On GPU clusters the launchers (`trm.sh`, `server/general-verifier.sh`) prefer sglang / vLLM; these servers
speak the same wire format so clients never need to know which one answers.

- `scorer.RewardScorer`: in-process raw reward scores (the server's forward path, usable without HTTP).
- `batching.DynamicBatcher`: coalesces concurrent requests into shared forward passes.
- `reward_server` / `chat_server`: the two servers' API routes; `http` holds what they share (the app around its
  routes, errors, auth, body limits, cancelling a disconnected client's work, the uvicorn runner and its
  connection limits); `bodyparse` parses request bodies (large ones in a helper process). `generator.ChatGenerator`:
  batched generation for the chat server's routes.
- `cli`: `trm serve reward|chat`; `score`: `trm score`.
"""
