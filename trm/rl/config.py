"""Compose verl's ppo_trainer config the way `python -m verl.trainer.main_ppo` does, and validate it without GPUs.

Validation calls verl's own checks (``validate_config`` and the config dataclasses that verl's workers build at
start-up), so a dry run fails for the same reasons, with the same messages, as the real launch would.
"""

from __future__ import annotations

import contextlib
import io
import os
import typing
from dataclasses import is_dataclass, make_dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

PPO_CONFIG_NAME = "ppo_trainer"


def verl_config_dir() -> str:
    """The folder holding verl's Hydra configs (the one main_ppo's @hydra.main points at)."""
    import verl

    return str(Path(verl.__file__).parent / "trainer" / "config")


def compose_ppo_config(overrides: Sequence[str], config_name: str = PPO_CONFIG_NAME) -> DictConfig:
    """verl's trainer config with Hydra command-line overrides applied (misspelled keys raise Hydra's error)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


def uses_reference_policy(config: DictConfig) -> bool:
    """main_ppo adds a reference worker exactly when a KL term needs one."""
    return bool(config.algorithm.use_kl_in_reward or config.actor_rollout_ref.actor.use_kl_loss)


def local_path(path: str | None) -> Path | None:
    """The path as an existing local file or folder, else None (hub ids and cluster paths stay unresolved)."""
    if not path:
        return None
    candidate = Path(os.path.expanduser(str(path)))
    return candidate if candidate.exists() else None


def _typed_nodes(node: Any, path: str) -> Iterator[tuple[str, DictConfig]]:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node.keys():
            yield from _typed_nodes(node[key], f"{path}.{key}" if path else str(key))


def check_value_types(config: DictConfig) -> int:
    """Type-check every scalar of each config section that names its dataclass (``_target_``).

    verl instantiates these sections with hydra without type conversion, so ``rollout.n=abc`` would only fail
    deep inside a GPU worker; assigning each value to the dataclass's typed schema catches it here, with
    OmegaConf's message. Returns the number of sections checked.
    """
    from hydra.utils import get_class
    from omegaconf.errors import ValidationError

    checked = 0
    for path, node in _typed_nodes(config, ""):
        try:
            cls = get_class(node._target_)
            hints = typing.get_type_hints(cls) if is_dataclass(cls) else {}
        except Exception:  # not importable here (optional backends): verl checks it at launch
            continue
        for key in node.keys():
            if key == "_target_" or key not in hints:
                continue
            value = node[key]
            if isinstance(value, (DictConfig, ListConfig)) or value is None:
                continue
            try:
                schema = OmegaConf.structured(make_dataclass("FieldCheck", [(str(key), hints[key])]))
            except Exception:  # a type OmegaConf cannot express (Any, unions): nothing to check
                continue
            try:
                schema[key] = value
            except ValidationError as error:
                raise ValueError(f"{path}.{key}={value!r}: {str(error).splitlines()[0]} ({cls.__name__})") from None
        checked += 1
    return checked


def _scalars(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _scalars(value, f"{path}.{key}" if path else str(key))
    elif not isinstance(node, list):
        yield path, node


def check_against_defaults(config: DictConfig, defaults: DictConfig) -> None:
    """Sections without a dataclass (data, trainer, ...) are typed only by their defaults: a number or boolean
    setting given a value of another kind (``trainer.total_epochs=two``) raises naming the key."""
    plain_defaults = OmegaConf.to_container(defaults, resolve=False, throw_on_missing=False)
    expected = {path: value for path, value in _scalars(plain_defaults) if isinstance(value, (bool, int, float))}
    for path, value in _scalars(OmegaConf.to_container(config, resolve=True)):
        default = expected.get(path)
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        else:  # YAML writes float defaults as 0 or 1 too, so any number fits a numeric default
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ValueError(f"{path}={value!r}: expected {'true/false' if isinstance(default, bool) else 'a number'} (default {default!r})")


def validate_ppo_config(config: DictConfig) -> list[str]:
    """Run verl's start-up config checks that need no GPU; return the checks that ran. Raises on invalid config.

    The config is resolved in place, as main_ppo's TaskRunner does before validating.
    """
    from verl.trainer.ppo.utils import need_critic
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.workers.config import HFModelConfig

    OmegaConf.resolve(config)
    check_against_defaults(config, compose_ppo_config([]))
    ran = [f"value types (defaults and {check_value_types(config)} typed sections)"]
    use_critic = need_critic(config)
    # verl prints progress lines while validating; keep the dry run's output to its own summary.
    with contextlib.redirect_stdout(io.StringIO()):
        validate_config(config=config, use_reference_policy=uses_reference_policy(config), use_critic=use_critic)
        ran.append("verl validate_config")
        omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
        ran.append("rollout config")
        omega_conf_to_dataclass(config.algorithm)
        ran.append("algorithm config")
        if uses_reference_policy(config):
            omega_conf_to_dataclass(config.actor_rollout_ref.ref.fsdp_config)
            ran.append("reference policy config")
        if local_path(config.actor_rollout_ref.model.path) is not None:
            omega_conf_to_dataclass(config.actor_rollout_ref.model, dataclass_type=HFModelConfig)
            ran.append("policy model config")
    return ran
