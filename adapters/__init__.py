"""ERA adapters: the activations, and the algorithms and tasks that use them.

Heavy families (stable-baselines3, torchvision, TRL) are imported only when a trial needs them, and
torch itself only when one of the names below is first used (PEP 562), so that ``era list``,
``era report`` and ``era status`` start without it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ("DeltaTuner", "GaussianERA", "SoftmaxERA", "gaussian_entropy", "response_entropy", "softmax_entropy",
         "token_entropy", "token_era"),
        "adapters.era",
    ),
    **dict.fromkeys(
        ("ConfigError", "EraError", "MissingDependencyError", "TrainingDivergedError", "UnknownNameError"),
        "adapters.errors",
    ),
    **dict.fromkeys(("ALGORITHMS", "budget_unit"), "adapters.registry"),
    **dict.fromkeys(("EvalRecord", "TrialSpec", "run_trial", "validate_trial"), "adapters.trial"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
