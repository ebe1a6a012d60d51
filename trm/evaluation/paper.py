"""The paper's published numbers as data: the reference rows/lines for tables and figures.

Transcribed from the paper's Table 2, its best-of-N results and its win-rate figure (win rates are approximate
values read off a bar chart). Values are percentages except win rates (fractions).
"""

from __future__ import annotations

# Table 2: accuracy (%) per benchmark, keyed by registry name; AIME columns are avg@32.
TABLE2_COLUMNS = ["gpqa-diamond", "supergpqa", "mmlu-pro", "bbeh", "frontierscience",
                  "amc", "aime24", "aime25", "math500", "olympiadbench"]

_TABLE2_VALUES = {
    ("Qwen2.5-Math-1.5B", "base"):       [10.1, 13.2, 19.9, 1.3, 7.7, 22.2, 2.7, 0.6, 32.0, 15.4],
    ("Qwen2.5-Math-1.5B", "verifier"):   [21.7, 17.0, 31.4, 6.2, 10.4, 43.8, 7.9, 4.3, 69.0, 37.5],
    ("Qwen2.5-Math-1.5B", "ReasonFlux"): [23.7, 17.6, 32.0, 5.2, 9.1, 45.0, 10.0, 4.9, 71.4, 35.0],
    ("Qwen2.5-Math-1.5B", "TRM"):        [27.3, 17.3, 33.0, 6.8, 12.6, 48.8, 11.4, 7.0, 74.2, 37.3],
    ("Qwen2.5-Math-7B", "base"):         [22.7, 19.8, 38.6, 6.1, 14.4, 50.8, 12.8, 7.7, 69.0, 32.4],
    ("Qwen2.5-Math-7B", "verifier"):     [38.9, 25.4, 47.5, 8.6, 19.2, 62.0, 16.8, 13.7, 81.6, 46.1],
    ("Qwen2.5-Math-7B", "ReasonFlux"):   [41.9, 25.6, 49.4, 9.5, 23.9, 61.9, 17.1, 13.2, 83.6, 46.5],
    ("Qwen2.5-Math-7B", "TRM"):          [42.4, 26.7, 50.5, 9.2, 26.5, 63.4, 19.1, 17.1, 83.0, 47.4],
    ("Llama-3.1-8B-Instruct", "base"):       [16.2, 22.1, 43.6, 8.6, 20.3, 19.4, 3.9, 0.2, 47.6, 10.4],
    ("Llama-3.1-8B-Instruct", "verifier"):   [29.3, 24.9, 47.5, 12.8, 25.2, 24.7, 5.1, 1.2, 52.6, 18.4],
    ("Llama-3.1-8B-Instruct", "ReasonFlux"): [31.8, 27.3, 50.9, 13.2, 26.0, 29.3, 8.8, 1.4, 55.0, 21.5],
    ("Llama-3.1-8B-Instruct", "TRM"):        [36.4, 26.7, 52.6, 14.0, 29.1, 32.8, 8.1, 2.4, 53.8, 23.9],
}

# The averages as printed in the paper (they are recomputed from the columns in tables; tests check agreement).
TABLE2_AVERAGES = {
    ("Qwen2.5-Math-1.5B", "base"): (10.4, 14.6), ("Qwen2.5-Math-1.5B", "verifier"): (17.3, 32.5),
    ("Qwen2.5-Math-1.5B", "ReasonFlux"): (17.5, 33.3), ("Qwen2.5-Math-1.5B", "TRM"): (19.4, 35.7),
    ("Qwen2.5-Math-7B", "base"): (20.3, 34.5), ("Qwen2.5-Math-7B", "verifier"): (27.9, 44.0),
    ("Qwen2.5-Math-7B", "ReasonFlux"): (30.1, 44.5), ("Qwen2.5-Math-7B", "TRM"): (31.1, 46.0),
    ("Llama-3.1-8B-Instruct", "base"): (22.2, 16.3), ("Llama-3.1-8B-Instruct", "verifier"): (27.9, 20.4),
    ("Llama-3.1-8B-Instruct", "ReasonFlux"): (29.8, 23.2), ("Llama-3.1-8B-Instruct", "TRM"): (31.8, 24.2),
}


def table2_rows() -> list[dict]:
    """Table 2 as rows {"policy", "reward", "values": {benchmark: accuracy}} in the paper's order."""
    return [{"policy": p, "reward": r, "values": dict(zip(TABLE2_COLUMNS, v))} for (p, r), v in _TABLE2_VALUES.items()]


# Best-of-N with the TRM as selector (accuracy %, N = 1, 2, 4, 8, 16; T=0.6, top-p 0.95, 5 repetitions).
BON_N = [1, 2, 4, 8, 16]
BON_CURVES = {
    ("GPT-OSS-120B", "aime25"): [80.0, 81.3, 83.3, 84.7, 86.7],
    ("Qwen3-235B-A22B", "aime25"): [71.3, 72.7, 74.7, 76.0, 78.7],
}
# Only the end points are published for this one.
BON_ENDPOINTS = {("Qwen3-8B", "aime24"): {1: 44.7, 16: 64.0}}

# Reasoning win rates (fraction of non-tied pairs won by the TRM-trained policy), approximate, read off a figure.
WINRATES = {
    ("Qwen2.5-Math-7B", "verifier"): 0.60, ("Qwen2.5-Math-1.5B", "verifier"): 0.65,
    ("Llama-3.1-8B-Instruct", "verifier"): 0.73,
    ("Qwen2.5-Math-7B", "base"): 0.82, ("Qwen2.5-Math-1.5B", "base"): 0.81, ("Llama-3.1-8B-Instruct", "base"): 0.77,
}
