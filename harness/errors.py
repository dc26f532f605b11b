"""The harness's errors, on top of :mod:`adapters.errors`.

Each takes a single string (so it survives pickling when Ray ships it between processes) that names
the problem and the fix. ``ConfigError`` subclasses mean bad input: the CLI exits 2 and nothing was
started or written.
"""

from __future__ import annotations

import re
import sys

from adapters.errors import ConfigError, EraError

__all__ = [
    "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED",
    "SuiteError", "ResultsDirError", "ClusterError", "TrackerError", "TrialFailedError", "command_error", "error_line",
    "strip_ansi",
]

#: the ``era`` command's exit codes
EXIT_OK = 0
#: it ran, and a trial (or the job, or the report) failed; the others still finished
EXIT_FAILED = 1
#: bad input: nothing was started or written
EXIT_BAD_INPUT = 2
#: Ctrl-C (the shell's convention, 128 + SIGINT): ``era run`` stopped with nothing failed (resume
#: it with ``--resume``), or ``era submit --wait`` stopped following its job
EXIT_INTERRUPTED = 130

#: the longest error line shown (report.md, the console); the traceback keeps everything
ERROR_LINE_CHARS = 300
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the remote traceback's header
_FRAME = re.compile(r'^\s+File "[^"]*", line \d+')
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:\([\w.]+\))?)(?::\s?(.*))?$")


def command_error(command: str, message: object, code: int = EXIT_BAD_INPUT) -> int:
    """Print ``era COMMAND: error: MESSAGE`` on stderr (one line per problem) and return ``code``,
    the command's exit status."""
    print(f"era {command}: error: {message}", file=sys.stderr)
    return code


def strip_ansi(text: str) -> str:
    """``text`` without the terminal colour codes Ray puts in a remote traceback."""
    return _ANSI.sub("", text)


def _cut(line: str) -> str:
    return line if len(line) <= ERROR_LINE_CHARS else line[: ERROR_LINE_CHARS - 1] + "…"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _unwrap(error: BaseException) -> BaseException:
    """The exception a trial raised, not Ray's wrapper around it (``RayTaskError.cause``)."""
    from_ray = type(error).__module__.startswith("ray.")
    cause = getattr(error, "cause", None) if from_ray else None
    return _unwrap(cause) if isinstance(cause, BaseException) else error


def _final_exception(text: str) -> str | None:
    """``Type: first line`` of the exception a traceback ends with: the first line after its last
    frame (the frame's indented source and ``^^^`` lines skipped), the type without its module."""
    lines = strip_ansi(text).splitlines()
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    if not frames:
        return None
    for line in lines[frames[-1] + 1:]:
        if not line.strip() or line[:1].isspace():
            continue
        match = _EXCEPTION.match(line.strip())
        if match is None:
            return line.strip()
        kind = match.group(1).rstrip(")").split("(")[-1]  # RayTaskError(ValueError): the cause's type
        kind, message = kind.rsplit(".", 1)[-1], (match.group(2) or "").strip()
        return f"{kind}: {message}" if message else kind
    return None


def error_line(error: BaseException | str | None) -> str:
    """One line for an error: ``Type: the first line of its message``, at most 300 characters.

    ``error`` is an exception (Ray's ``RayTaskError`` stands for the trial's own, its ``cause``) or
    the text of one, such as a traceback, whose final exception is used: a message of many lines
    (torch's ``Expected parameter ...`` ends with a tensor dump) gives its first line, not its last.
    Text without a traceback gives its first line.
    """
    if isinstance(error, BaseException):
        error = _unwrap(error)
        message = _first_line(str(error))
        return _cut(f"{type(error).__name__}: {message}" if message else type(error).__name__)
    text = strip_ansi(error or "")
    return _cut(_final_exception(text) or _first_line(text) or "the trial failed without an error message")


class SuiteError(ConfigError):
    """A suite file that does not parse or validate; the message names the file, field and line."""


class ResultsDirError(ConfigError):
    """An output folder that holds another suite's results, or nothing to resume."""


class ClusterError(ConfigError):
    """Ray could not be started or reached, or it lacks the resources a trial asks for."""


class TrackerError(ConfigError):
    """An experiment tracker (``--wandb``, ``--mlflow``) that cannot be set up: not logged in, a store
    or server that cannot be opened."""


class TrialFailedError(EraError, RuntimeError):
    """A trial raised inside a Ray worker; the message carries the original error and traceback."""
