"""Evaluation: sample generations, grade them, best-of-N selection, benchmark tables, win rates, figures.

One file per job: `benchmarks` (which files and fields), `generate` (sampling backends), `grading`
(correctness through the reward path's verifier), `metrics` (accuracy, avg@k, pass@k), `selectors` and `bon`
(best-of-N), `tables` and `paper` (Table-2-shaped output and the published numbers), `winrate`
(ME² pairwise judge), `plotting` and `figures` (PNG output).
"""
