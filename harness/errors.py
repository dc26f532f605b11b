"""The harness's errors, on top of :mod:`adapters.errors`.

Each takes a single string (so it survives pickling when Ray ships it between processes) that names
the problem and the fix. ``ConfigError`` subclasses mean bad input: the CLI exits 2 and nothing was
started or written.
"""

from __future__ import annotations

from adapters.errors import ConfigError, EraError

__all__ = ["SuiteError", "ResultsDirError", "ClusterError", "TrialFailedError"]


class SuiteError(ConfigError):
    """A suite file that does not parse or validate; the message names the file, field and line."""


class ResultsDirError(ConfigError):
    """An output folder that holds another suite's results, or nothing to resume."""


class ClusterError(ConfigError):
    """Ray could not be started or reached, or it lacks the resources a trial asks for."""


class TrialFailedError(EraError, RuntimeError):
    """A trial raised inside a Ray worker; the message carries the original error and traceback."""
