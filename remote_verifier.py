"""verl custom reward function for RL with thinking rewards (``custom_reward_function.path=remote_verifier.py``).

Edit the two constants below to point at your servers (or set TRM_VERIFIER_BACKENDS / TRM_RM_BACKENDS; keyword
arguments override both: ``reward_model.reward_kwargs`` for the manager, ``custom_reward_function.reward_kwargs`` here).
Backends are comma-separated ``host:port`` lists; load is spread over all of them.

Importing this file registers the verl reward manager ``verify`` (``reward_model.reward_manager=verify``),
which computes the same reward for a whole batch at once, and makes the constants below the defaults of this
process (verl imports the file before it builds the manager). All logic lives in the installed ``trm`` package.
"""

from __future__ import annotations

import trm.rewards.verl_manager  # noqa: F401  (registers the "verify" reward manager with verl)
from trm.rewards import compute

# general-verifier chat servers (server/general-verifier.sh) and TRM embedding servers (trm.sh)
DEFAULT_VERIFIER_BACKENDS = "127.0.0.1:23888"
DEFAULT_RM_BACKENDS = "127.0.0.1:39999"
compute.use_default_backends(verifier_backends=DEFAULT_VERIFIER_BACKENDS, rm_backends=DEFAULT_RM_BACKENDS)


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """Reward of one response: ``score`` plus its components (verify_score, verify_binary, rm_score_raw, ...)."""
    return compute.compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)


async def compute_score_async(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """:func:`compute_score` for callers that already run an event loop."""
    return await compute.compute_score_async(data_source, solution_str, ground_truth, extra_info, **kwargs)
