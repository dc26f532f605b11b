"""The project's error hierarchy.

Every error carries one message that names the problem and the fix. They take a single string
argument so that they survive pickling (Ray ships errors between processes). The harness adds its
own subclasses in ``harness.errors``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "EraError",
    "ConfigError",
    "SettingError",
    "UnknownNameError",
    "MissingDependencyError",
    "TrainingDivergedError",
    "unknown_name",
    "unknown_among_many",
    "close_names",
    "check_known_settings",
]


class EraError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(EraError, ValueError):
    """Bad user input (a setting, a suite, a task id): nothing was started."""


class SettingError(ConfigError):
    """A bad value of one named setting; ``setting`` lets the harness point at the suite line that
    gave it."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self):  # keep ``setting`` through pickling (the base class pickles args only)
        return type(self), (str(self.args[0]), self.setting)


class UnknownNameError(ConfigError, KeyError):
    """An algorithm, task or benchmark name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(EraError, ImportError):
    """An optional package is not installed; the message says how to install it."""


class TrainingDivergedError(EraError, RuntimeError):
    """Training produced NaN or infinite values."""


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build the error for an unknown ``kind`` (e.g. 'algorithm') that lists the known names."""
    listed = ", ".join(sorted(known))
    extra = f"; {hint}" if hint else ""
    return UnknownNameError(f"unknown {kind} {name!r}: known {kind}s are {listed}{extra}")


def close_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``known`` closest to ``name`` (``difflib``, ignoring case), best first."""
    by_lower: dict[str, str] = {}
    for candidate in known:
        by_lower.setdefault(candidate.lower(), candidate)
    return [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=n)]


def unknown_among_many(kind: str, name: str, suggestions: Sequence[str], listing: str) -> UnknownNameError:
    """The error for an unknown ``kind`` whose known names are too many to list in one line:
    the ``suggestions`` (close matches, spelled as the user would write them) and ``listing``,
    how to list them all."""
    if suggestions:
        *rest, last = suggestions
        names = f"{', '.join(rest)} or {last}" if rest else last
        return UnknownNameError(f"unknown {kind} {name!r}: did you mean {names}? (list them all: {listing})")
    return UnknownNameError(f"unknown {kind} {name!r}, and none is close to it: list them all with {listing}")


def check_known_settings(algo: str, settings: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise ``ConfigError`` naming every setting of ``algo`` that is not in ``allowed``."""
    allowed = set(allowed)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} for {algo}: allowed settings are "
            f"{', '.join(sorted(allowed))}"
        )
