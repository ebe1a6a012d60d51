"""Training a Thinking Reward Model: preference pairs -> TRM input text -> TRL RewardTrainer.

`pairs` turns TRM-Preference records into the exact text the servers score, `train_rm` is `trm train-rm`,
`eval_rm` is `trm eval rm` (pairwise accuracy with baselines).
"""
