"""The trial contract: what one (algorithm, task, seed) run takes and what it yields.

A trial is a plain function, ``run_trial(spec, checkpoint_dir)``, that yields one
:class:`EvalRecord` per evaluation. The harness runs it in-process (``era trial``) or under Ray
Tune; the adapters know nothing of either. ``spec`` defines the two records, ``checkpoint`` the
one on-disk format of a trial's state (both its writing and its reading side).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.trial.spec import EvalRecord, TrialSpec

__all__ = ["TrialSpec", "EvalRecord", "TrialCheckpoint", "run_trial", "validate_trial"]


def validate_trial(spec: TrialSpec) -> None:
    """Check the algorithm, task and settings without training; raises ``ConfigError``."""
    from adapters.registry import family_for

    family_for(spec.algo).validate(spec)


def run_trial(spec: TrialSpec, checkpoint_dir: str | Path | None = None, *,
              validate: bool = True) -> Iterator[EvalRecord]:
    """Run one trial, yielding a record per evaluation.

    With ``checkpoint_dir``, the trial saves its full state (and the records so far) there after
    every evaluation and, if a checkpoint is already there, resumes from it: only evaluations after
    the checkpointed one are yielded. ``TrialCheckpoint(checkpoint_dir).records()`` returns them all.
    """
    from adapters.registry import family_for

    family = family_for(spec.algo)
    if validate:  # False where the caller has validated this spec already (era trial, era run's driver)
        family.validate(spec)
    for record in family.run(spec, TrialCheckpoint(checkpoint_dir)):
        record.check_finite(spec)
        yield record
