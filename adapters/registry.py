"""Algorithm names -> the adapter family that runs them.

A family is a module with two functions:

- ``validate(spec: TrialSpec) -> None``: raise ``ConfigError`` for an unknown task or bad
  settings, cheaply and without training (the harness calls it before starting anything);
- ``run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]``.

Families are imported lazily, so asking for ``sac`` never imports torchvision or TRL.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from adapters.errors import unknown_name

__all__ = ["ALGORITHMS", "BASELINES", "BUDGET_UNITS", "family_for", "budget_unit"]

#: algorithm name -> module of its family
ALGORITHMS: dict[str, str] = {
    "sac": "adapters.rl",
    "sac-era": "adapters.rl",
    "ppo": "adapters.rl",
    "ppo-era": "adapters.rl",
    "resnet": "adapters.vision",
    "resnet-era": "adapters.vision",
    "resnet-ls": "adapters.vision",
    "resnet-dropout": "adapters.vision",
    "grpo": "adapters.llm",
    "grpo-era": "adapters.llm",
}

#: each ERA algorithm -> the baseline it is compared with (probability of improvement, reports)
BASELINES: dict[str, str] = {
    "sac-era": "sac",
    "ppo-era": "ppo",
    "resnet-era": "resnet",
    "grpo-era": "grpo",
}

#: family module -> what its budget counts
BUDGET_UNITS: dict[str, str] = {
    "adapters.rl": "steps",
    "adapters.vision": "epochs",
    "adapters.llm": "steps",
}


def family_for(algo: str) -> ModuleType:
    """The family module that runs ``algo``; an unknown name lists the known ones."""
    if algo not in ALGORITHMS:
        raise unknown_name("algorithm", algo, ALGORITHMS)
    return importlib.import_module(ALGORITHMS[algo])


def budget_unit(algo: str) -> str:
    """``steps`` or ``epochs``: what the budget of ``algo``'s trials counts."""
    if algo not in ALGORITHMS:
        raise unknown_name("algorithm", algo, ALGORITHMS)
    return BUDGET_UNITS[ALGORITHMS[algo]]
