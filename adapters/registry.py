"""Every algorithm name, one row each: its family, what its budget counts, whether it is an ERA
variant and, if so, the baseline it is compared with. Reports, suites and the CLI read this table;
adding an algorithm is one row here plus its family's code.

A family is a package with two functions (``adapters/rl``, ``adapters/vision``, ``adapters/llm``,
``adapters/tdmpc2``):

- ``validate(spec: TrialSpec) -> None``: raise ``ConfigError`` for an unknown task or bad
  settings, cheaply and without training (the harness calls it before starting anything);
- ``run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]``;

and optionally (:func:`family_hook`) ``describe(spec) -> str``, one line on what the trial runs
(``era list``); environment families also ``default_eval_episodes(task) -> int`` and
``environment_protocol(spec)`` (how the environment is run; reports state it). A family whose rows
name ``settings_sources`` implements ``published_settings(source, algo, task)`` (a suite's
``settings_from:``), returning :class:`adapters.published.PublishedSettings`.
Families are imported lazily, so asking for ``sac`` never imports torchvision or TRL.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from adapters.errors import unknown_name

__all__ = [
    "Algorithm", "ALGORITHMS", "algorithm", "family_for", "family_hook", "budget_unit", "baseline_of", "is_era",
    "default_eval_episodes",
]

#: episodes per evaluation where neither the trial nor its family says otherwise
EVAL_EPISODES = 5


@dataclass(frozen=True)
class Algorithm:
    """One algorithm name.

    Attributes:
        name: what suites and ``era trial --algo`` call it.
        family: the package that runs it.
        unit: what its budget counts (``steps``: env or GRPO steps; ``epochs``).
        library: what the family builds it on (for the SB3 family, the SB3 class it instantiates).
        era: whether it is an ERA variant.
        baseline: for an ERA variant, the algorithm it is compared with (reports pair them).
        settings_sources: the published hyperparameters a suite may take for it (``settings_from:``).
    """

    name: str
    family: str
    unit: str
    library: str
    era: bool = False
    baseline: str | None = None
    settings_sources: tuple[str, ...] = ()


#: rl-baselines3-zoo's published hyperparameters (adapters/rl/zoo.py)
_ZOO = ("rl-zoo3",)
_RL, _VISION, _LLM, _TDMPC2 = "adapters.rl", "adapters.vision", "adapters.llm", "adapters.tdmpc2"

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("sac", _RL, "steps", "stable_baselines3.SAC", settings_sources=_ZOO),
    Algorithm("sac-era", _RL, "steps", "stable_baselines3.SAC", era=True, baseline="sac", settings_sources=_ZOO),
    Algorithm("ppo", _RL, "steps", "stable_baselines3.PPO", settings_sources=_ZOO),
    Algorithm("ppo-era", _RL, "steps", "stable_baselines3.PPO", era=True, baseline="ppo", settings_sources=_ZOO),
    Algorithm("resnet", _VISION, "epochs", "torchvision"),
    Algorithm("resnet-era", _VISION, "epochs", "torchvision", era=True, baseline="resnet"),
    Algorithm("resnet-ls", _VISION, "epochs", "torchvision"),  # label smoothing
    Algorithm("resnet-dropout", _VISION, "epochs", "torchvision"),
    Algorithm("grpo", _LLM, "steps", "trl.GRPOTrainer"),
    Algorithm("grpo-era", _LLM, "steps", "trl.GRPOTrainer", era=True, baseline="grpo"),
    Algorithm("tdmpc2", _TDMPC2, "steps", "tdmpc2.TDMPC2"),
    Algorithm("tdmpc2-era", _TDMPC2, "steps", "tdmpc2.TDMPC2", era=True, baseline="tdmpc2"),
)}


def algorithm(name: str) -> Algorithm:
    """The row of ``name``; an unknown name lists the known ones."""
    if name not in ALGORITHMS:
        raise unknown_name("algorithm", name, ALGORITHMS)
    return ALGORITHMS[name]


def family_for(algo: str) -> ModuleType:
    """The family package that runs ``algo``."""
    return importlib.import_module(algorithm(algo).family)


def family_hook(algo: str, name: str) -> Callable[..., Any] | None:
    """``algo``'s family's optional function ``name``, or ``None`` if the family has none."""
    return getattr(family_for(algo), name, None)


def default_eval_episodes(algo: str, task: str) -> int:
    """Episodes per evaluation of ``algo`` on ``task`` when a suite or ``era trial`` gives none."""
    hook = family_hook(algo, "default_eval_episodes")
    return int(hook(task)) if hook is not None else EVAL_EPISODES


def budget_unit(algo: str) -> str:
    """``steps`` or ``epochs``: what the budget of ``algo``'s trials counts."""
    return algorithm(algo).unit


def baseline_of(algo: str) -> str | None:
    """The algorithm an ERA variant is compared with; ``None`` for any other (or unknown) name."""
    row = ALGORITHMS.get(algo)
    return row.baseline if row is not None else None


def is_era(algo: str) -> bool:
    """Whether ``algo`` is an ERA variant (``False`` for an unknown name)."""
    row = ALGORITHMS.get(algo)
    return bool(row and row.era)
