"""Plumbing for LLM calls shared by the DAG builder and the judge: an OpenAI-compatible chat client with retries
and usage accounting, and an ordered, resumable batch runner. It sits below ``trm.dag`` and ``trm.preference`` so that
``trm.preference`` builds on ``trm.dag`` and never the other way round."""
