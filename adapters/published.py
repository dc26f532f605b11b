"""Settings taken from a published source (``settings_from:`` in a suite): what a family returns.

A family that can read published hyperparameters (the SB3 family: rl-baselines3-zoo) implements
the optional hook ``published_settings(source, algo, task) -> PublishedSettings``
(:mod:`adapters.registry`). What it took becomes part of each trial's settings; what it dropped is
listed with the reason, never silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Dropped", "PublishedSettings"]


@dataclass(frozen=True)
class Dropped:
    """A published hyperparameter that was not taken, and why."""

    key: str
    value: Any
    reason: str


@dataclass(frozen=True)
class PublishedSettings:
    """The settings a source publishes for one algorithm on one task.

    Attributes:
        source: the source's name (``rl-zoo3``).
        file: where in the source they come from (``rl_zoo3/hyperparams/ppo.yml``).
        entry: the entry used (``HalfCheetah-v4``).
        note: how the entry was chosen where it is not the task's own id ("" otherwise).
        taken: the settings taken, as plain data (what a suite could have written).
        dropped: the hyperparameters not taken, each with its reason.
    """

    source: str
    file: str
    entry: str
    note: str = ""
    taken: Mapping[str, Any] = field(default_factory=dict)
    dropped: tuple[Dropped, ...] = ()

    def plain(self) -> dict[str, Any]:
        """As plain data (``suite.json``)."""
        return {
            "source": self.source, "file": self.file, "entry": self.entry, "note": self.note,
            "taken": dict(self.taken),
            "dropped": [{"key": d.key, "value": d.value, "reason": d.reason} for d in self.dropped],
        }
