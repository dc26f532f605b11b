"""ERA adapters: the activations, and the algorithms and tasks that use them.

Heavy families (stable-baselines3, torchvision, TRL) are imported only when a trial needs them.
"""

from adapters.era import (
    DeltaTuner,
    GaussianERA,
    SoftmaxERA,
    gaussian_entropy,
    response_entropy,
    softmax_entropy,
    token_entropy,
    token_era,
)
from adapters.errors import (
    ConfigError,
    EraError,
    MissingDependencyError,
    TrainingDivergedError,
    UnknownNameError,
)
from adapters.registry import ALGORITHMS, budget_unit
from adapters.trial import EvalRecord, TrialSpec, run_trial, validate_trial

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "ConfigError",
    "DeltaTuner",
    "EraError",
    "EvalRecord",
    "GaussianERA",
    "MissingDependencyError",
    "SoftmaxERA",
    "TrainingDivergedError",
    "TrialSpec",
    "UnknownNameError",
    "budget_unit",
    "gaussian_entropy",
    "response_entropy",
    "run_trial",
    "softmax_entropy",
    "token_entropy",
    "token_era",
    "validate_trial",
]
