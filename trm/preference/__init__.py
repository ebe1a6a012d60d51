"""TRM-Preference data (`trm preference build`): trace views, ME² pairwise judging with an LLM judge, and the
pipeline that pairs correct traces per prompt and keeps consistently judged pairs."""
