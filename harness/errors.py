"""The harness's errors, on top of :mod:`adapters.errors`.

Each takes a single string (so it survives pickling when Ray ships it between processes) that names
the problem and the fix. ``ConfigError`` subclasses mean bad input: the CLI exits 2 and nothing was
started or written.
"""

from __future__ import annotations

import sys

from adapters.errors import ConfigError, EraError

__all__ = [
    "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED",
    "SuiteError", "ResultsDirError", "ClusterError", "TrialFailedError", "command_error",
]

#: the ``era`` command's exit codes
EXIT_OK = 0
#: it ran, and a trial (or the job, or the report) failed; the others still finished
EXIT_FAILED = 1
#: bad input: nothing was started or written
EXIT_BAD_INPUT = 2
#: Ctrl-C while following a job (the shell's convention, 128 + SIGINT)
EXIT_INTERRUPTED = 130


def command_error(command: str, message: object, code: int = EXIT_BAD_INPUT) -> int:
    """Print ``era COMMAND: error: MESSAGE`` on stderr (one line per problem) and return ``code``,
    the command's exit status."""
    print(f"era {command}: error: {message}", file=sys.stderr)
    return code


class SuiteError(ConfigError):
    """A suite file that does not parse or validate; the message names the file, field and line."""


class ResultsDirError(ConfigError):
    """An output folder that holds another suite's results, or nothing to resume."""


class ClusterError(ConfigError):
    """Ray could not be started or reached, or it lacks the resources a trial asks for."""


class TrialFailedError(EraError, RuntimeError):
    """A trial raised inside a Ray worker; the message carries the original error and traceback."""
