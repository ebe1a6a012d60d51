"""LLM-judge side of the ME² data pipeline: the judge client, trace views, pairwise judging, preference data."""
