"""``python -m trm.rl.train [hydra overrides]``: verl 0.6.0's ``main_ppo``, logging the thinking reward's per-step
metrics (:mod:`trm.rl.metrics`). ``train.sh`` starts this; the config, overrides and behaviour are main_ppo's.

Why a wrapper and not a setting: in verl 0.6.0 no config option or registry adds a training metric. ``fit()``
stores the reward manager's ``reward_extra_info`` in the batch but only its validation path and the rollout dump
read it, and the reward manager (a separate Ray task with ``launch_reward_fn_async``) cannot reach ``fit()``'s
``metrics`` dict or its logger. What ``fit()`` does do on every step, right before ``logger.log(metrics, step)``,
is call ``compute_data_metrics(batch=...)``, looked up in ``verl.trainer.ppo.ray_trainer``'s namespace. So the
thin part is: a TaskRunner (verl's own class, subclassed) that installs the extended metric function in its own
process, where ``fit()`` runs, before doing exactly what verl's does; and main_ppo's ``run_ppo`` started with it.
Nothing of verl is copied; if a verl upgrade renames the seam, :func:`trm.rl.metrics.install` fails loudly.
"""

from __future__ import annotations

import hydra
import ray
from verl.trainer import main_ppo

from trm.rl.config import PPO_CONFIG_NAME, verl_config_dir


class MetricsTaskRunner(main_ppo.TaskRunner.__ray_actor_class__):
    """verl's TaskRunner, with the thinking reward's metrics installed in the process that runs ``fit()``."""

    def run(self, config):
        from trm.rl import metrics

        metrics.install()
        return super().run(config)


TaskRunner = ray.remote(num_cpus=1)(MetricsTaskRunner)  # the resources verl's TaskRunner asks for


@hydra.main(config_path=verl_config_dir(), config_name=PPO_CONFIG_NAME, version_base=None)
def main(config) -> None:
    main_ppo.TaskRunner = TaskRunner  # run_ppo starts the runner by this module-level name
    main_ppo.run_ppo(config)


if __name__ == "__main__":
    main()
