"""Embedded OpenAI-compatible servers for the TRM (embeddings API) and for chat models (chat completions API).

On GPU clusters the launchers (`trm.sh`, `server/general-verifier.sh`) prefer sglang / vLLM; these servers
speak the same wire format so clients never need to know which one answers.

- `scorer.RewardScorer`: in-process raw reward scores (the server's forward path, usable without HTTP).
- `batching.DynamicBatcher`: coalesces concurrent requests into shared forward passes.
- `reward_server` / `chat_server`: the two API routes; `http` holds what they share (the app around a route,
  errors, auth, body limits, the uvicorn runner). `generator.ChatGenerator`: batched generation for the chat route.
- `cli`: `trm serve reward|chat`; `score`: `trm score`.
"""
