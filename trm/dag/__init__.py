"""Reasoning trace -> DAG: step partition, LLM-guided structuring, merged view, rendering."""
