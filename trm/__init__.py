"""Thinking Reward Model toolkit."""

__version__ = "0.1.0"
