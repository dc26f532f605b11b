"""What one trial is (:class:`TrialSpec`) and what each of its evaluations records (:class:`EvalRecord`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from adapters.errors import TrainingDivergedError

__all__ = ["TrialSpec", "EvalRecord"]


@dataclass(frozen=True)
class TrialSpec:
    """Everything that determines one trial.

    Attributes:
        algo: algorithm name from the registry (``sac``, ``sac-era``, ``resnet-era``, ...).
        task: task id (``gym:Pendulum-v1``, ``dmc:cartpole-swingup``, ``digits``, ...).
        seed: the trial's seed; the same spec gives the same evaluations.
        budget: training budget in the family's unit (env steps for RL, epochs for vision, GRPO
            steps for LLMs).
        eval_every: evaluate every this many budget units (``None``: the family's default).
        eval_episodes: episodes (RL) per evaluation.
        settings: algorithm settings (ERA targets, library hyperparameters, architecture, ...).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """

    algo: str
    task: str
    seed: int
    budget: int
    eval_every: int | None = None
    eval_episodes: int = 5
    settings: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """Plain, picklable data (``settings`` as a plain dict); :meth:`from_dict` reads it back."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialSpec":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class EvalRecord:
    """One evaluation of a trial.

    ``score`` is the family's headline number (mean deterministic return; top-1 accuracy in %);
    ``entropy`` is the mean entropy of the distribution outputs are actually sampled from;
    ``wall_time_s`` counts training time since the trial started, across resumes. Family-specific
    numbers (``gaussian_entropy``, ``delta``, ``top5``, ``ece``, ...) go in ``metrics``.
    """

    step: int
    score: float
    entropy: float
    wall_time_s: float
    metrics: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, float]:
        """A flat dict: the four fields, then the metrics."""
        row = {k: v for k, v in asdict(self).items() if k != "metrics"}
        row.update(self.metrics)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "EvalRecord":
        core = {"step", "score", "entropy", "wall_time_s"}
        return cls(
            step=int(row["step"]),
            score=float(row["score"]),
            entropy=float(row["entropy"]),
            wall_time_s=float(row["wall_time_s"]),
            metrics={k: float(v) for k, v in row.items() if k not in core},
        )

    def check_finite(self, spec: TrialSpec) -> None:
        """Raise :class:`TrainingDivergedError` if any number is NaN or infinite."""
        bad = [k for k, v in self.as_row().items() if not math.isfinite(float(v))]
        if bad:
            raise TrainingDivergedError(
                f"trial {spec.algo} on {spec.task} (seed {spec.seed}) produced non-finite "
                f"{', '.join(bad)} at step {self.step}: lower the learning rate or check the task's "
                f"rewards and observations"
            )
