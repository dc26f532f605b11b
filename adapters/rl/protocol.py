"""How an agent meets its environment: termination, action repeat and evaluation seeding.

Benchmarks are run under protocols that change results as much as hyperparameters do. The ERA
authors' HumanoidBench protocol (their ``sac-era`` code, ``jaxrl/envs/hb.py`` and
``train_parallel.py``) ignores termination (episodes end only at the time limit), repeats every
action twice (rewards summed; the budget counts agent steps, so 1M agent steps are 2M simulator
steps), evaluates every 25,000 agent steps with 10 deterministic episodes, and seeds the separate
evaluation environment once with ``seed + 42``. HumanoidBench's own paper keeps termination.

Each part is a setting of the continuous-control algorithms, with the benchmark's protocol as the
default for its tasks (``hb:`` tasks: the authors'; every other task: termination kept, no repeat,
one derived seed per evaluation episode):

- ``ignore_termination`` (bool): report ``terminated=False`` on every step;
- ``action_repeat`` (int >= 1): apply each action this many times, summing rewards;
- ``eval_seed_offset`` (int or null): seed the evaluation environment once with
  ``seed + eval_seed_offset`` at its first reset and let its own generator run from there
  (the authors'); null gives every evaluation episode its own seed derived from the trial's.

Actions are always rescaled to [-1, 1] (ERA's σ bounds assume it); HumanoidBench's own action
space already is.

This module is pure Python (no gymnasium or torch): ``era list`` and reports read a trial's
protocol through the family's hooks without importing a simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.errors import ConfigError

__all__ = [
    "PROTOCOL_SETTINGS",
    "EnvProtocol",
    "env_protocol",
    "default_eval_every",
    "default_eval_episodes",
]

#: the settings this module reads
PROTOCOL_SETTINGS = ("ignore_termination", "action_repeat", "eval_seed_offset")


@dataclass(frozen=True)
class EnvProtocol:
    """One trial's environment protocol (see the module docstring for each field)."""

    ignore_termination: bool = False
    action_repeat: int = 1
    eval_seed_offset: int | None = None

    def describe(self) -> str:
        """One line a report or ``era list`` can print."""
        parts = [
            "termination ignored" if self.ignore_termination else "termination kept",
            f"action repeat {self.action_repeat}" + (" (budget in agent steps)" if self.action_repeat > 1 else ""),
            (f"eval env seeded once with seed + {self.eval_seed_offset}" if self.eval_seed_offset is not None
             else "one derived seed per eval episode"),
        ]
        return ", ".join(parts)

    @property
    def is_plain(self) -> bool:
        """Termination kept, no action repeat, per-episode eval seeds: what most benchmarks use."""
        return self == EnvProtocol()

    def plain(self) -> dict[str, Any]:
        return {"ignore_termination": self.ignore_termination, "action_repeat": self.action_repeat,
                "eval_seed_offset": self.eval_seed_offset}


#: the ERA authors' HumanoidBench protocol
AUTHORS_HUMANOIDBENCH = EnvProtocol(ignore_termination=True, action_repeat=2, eval_seed_offset=42)

#: task-id prefix -> its benchmark's default protocol (others: ``EnvProtocol()``)
_DEFAULTS: dict[str, EnvProtocol] = {"hb": AUTHORS_HUMANOIDBENCH}
#: task-id prefix -> (evaluate every N agent steps, episodes per evaluation, at least N agent steps
#: between evaluations). A HumanoidBench evaluation is 10 episodes of 1000 simulator steps, so a
#: short trial evaluates less often than a tenth of its budget.
_EVAL_DEFAULTS: dict[str, tuple[int, int, int]] = {"hb": (25_000, 10, 2_500)}
_EVAL_DEFAULT = (10_000, 5, 1)


def _prefix(task: str) -> str:
    return str(task).partition(":")[0]


def env_protocol(task: str, settings: Mapping[str, Any]) -> EnvProtocol:
    """The protocol of a trial on ``task`` with ``settings``; raises ``ConfigError`` on bad values."""
    default = _DEFAULTS.get(_prefix(task), EnvProtocol())
    ignore = settings.get("ignore_termination", default.ignore_termination)
    repeat = settings.get("action_repeat", default.action_repeat)
    offset = settings.get("eval_seed_offset", default.eval_seed_offset)
    if not isinstance(ignore, bool):
        raise ConfigError(f"setting ignore_termination must be true or false, got {ignore!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"setting action_repeat must be an integer >= 1, got {repeat!r}")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ConfigError(
            f"setting eval_seed_offset must be an integer >= 0 (the eval env is seeded with seed + offset) "
            f"or null (one derived seed per eval episode), got {offset!r}"
        )
    return EnvProtocol(ignore, repeat, offset)


def default_eval_every(task: str, budget: int) -> int:
    """Agent steps between evaluations when a trial gives none: the benchmark's cadence, or a
    tenth of the budget when that is shorter, but never less than the benchmark's minimum (a
    trial always evaluates at the end of its budget)."""
    every, _, least = _EVAL_DEFAULTS.get(_prefix(task), _EVAL_DEFAULT)
    return max(least, min(every, budget // 10))


def default_eval_episodes(task: str) -> int:
    """Episodes per evaluation when a suite or ``era trial`` gives none."""
    return _EVAL_DEFAULTS.get(_prefix(task), _EVAL_DEFAULT)[1]
