"""Rewards for RL with thinking rewards.

- :mod:`trm.rewards.correctness`: is the answer right (rule check, length rule, LLM verifier gate);
- :mod:`trm.rewards.math_rules`, :mod:`trm.rewards.worker_pool`: the time-bounded math-verify check;
- :mod:`trm.rewards.llm_verifier`: client for the general-verifier chat model;
- :mod:`trm.rewards.thinking`: raw TRM scores from reward servers;
- :mod:`trm.rewards.blend`: the reward formula;
- :mod:`trm.rewards.compute`, :mod:`trm.rewards.verl_manager`: the batch pipeline and verl's ``verify`` manager.

Importing this package is cheap: nothing heavy is imported until a function runs.
"""
