"""TD-MPC2's configuration for one trial: upstream's ``config.yaml`` with the trial's settings on top.

Upstream builds its config with Hydra and ``common.parser.parse_cfg``, which needs a running Hydra
app. This module does what ``parse_cfg`` and ``envs.make_env`` do for a single-task state-based
run, from the same sources: ``config.yaml``'s values, ``common.MODEL_SIZE``'s widths, and the
fields derived from the environment (observation shape, action dims, episode length, seed steps,
the two-hot bin size). ``tests/adapters/tdmpc2`` checks the result against the parameter count
upstream's model sizes name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.tdmpc2.settings import TDMPC2Settings
from adapters.trial import TrialSpec

__all__ = ["build_config"]

#: keys of ``config.yaml`` that only upstream's scripts read (logging, Hydra, multi-task sets)
_SCRIPT_ONLY = ("defaults",)


def build_config(spec: TrialSpec, settings: TDMPC2Settings, upstream: Any, *, obs_dim: int, action_dim: int,
                 device_type: str) -> Any:
    """A config object of the kind ``parse_cfg`` returns (a dataclass instance with ``get``)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(upstream.folder / "config.yaml")
    for key in _SCRIPT_ONLY:
        cfg.pop(key, None)
    domain_task = spec.task.partition(":")[2]
    model_size = settings.upstream.get("model_size", 5)
    cfg.update({
        "task": domain_task, "obs": "state", "episodic": False, "seed": int(spec.seed),
        "steps": int(spec.budget), "eval_episodes": int(spec.eval_episodes), "model_size": model_size,
        "multitask": False, "task_dim": 0, "tasks": [domain_task],
        "enable_wandb": False, "save_csv": False, "save_video": False, "save_agent": False,
        "work_dir": "", "data_dir": "", "checkpoint": "", "exp_name": "era-harness", "wandb_project": "",
        "wandb_entity": "", "task_title": domain_task.replace("-", " ").title(),
    })
    cfg.update(upstream.common.MODEL_SIZE[model_size])  # the widths the model size names ...
    cfg.update(settings.upstream)  # ... then what the trial sets, widths included
    cfg.compile = settings.compile if settings.compile is not None else device_type == "cuda"
    if settings.era is not None:
        cfg.entropy_coef = 0.0  # ERA replaces the entropy bonus of the prior's loss
    cfg.bin_size = (cfg.vmax - cfg.vmin) / (cfg.num_bins - 1)
    cfg.obs_shape = {"state": (int(obs_dim),)}
    cfg.action_dim = int(action_dim)
    cfg.episode_length = int(settings.episode_length)
    cfg.seed_steps = settings.seed_steps if settings.seed_steps is not None else max(1000, 5 * cfg.episode_length)
    for key in ("obs_shapes", "action_dims", "episode_lengths"):
        cfg[key] = None
    return _as_dataclass(OmegaConf.to_container(cfg))


def _as_dataclass(values: dict[str, Any]) -> Any:
    """The frozen-free dataclass ``parse_cfg`` makes (``torch.compile`` traces it without graph breaks)."""
    fields = [(key, Any, dataclasses.field(default_factory=lambda value=value: value)) for key, value in values.items()]
    config_class = dataclasses.make_dataclass("Config", fields)
    config_class.get = lambda self, key, default=None: getattr(self, key, default)
    return config_class()
