"""An atomically replaced, directory-backed checkpoint of one trial: the one owner of its format.

Layout: ``DIR/current/`` holds the family's state files and ``progress.json`` (the records so far
and free-form counters). A save writes a fresh ``DIR/tmp-<pid>/`` and swaps it in with renames,
so a crash leaves either the old or the new checkpoint, never a half-written one (a crash between
the two renames leaves ``DIR/previous/``, which is read instead).

The reading side serves readers that see a checkpoint as files on some filesystem (the harness
reads Tune's copies from local disk or object storage): :data:`PROGRESS_PATHS` and
:func:`parse_progress`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.trial.spec import EvalRecord

__all__ = ["TrialCheckpoint", "Restored", "Progress", "PROGRESS_PATHS", "parse_progress"]

_PROGRESS = "progress.json"
#: where a checkpoint folder keeps its records, in the order a reader should try them
PROGRESS_PATHS = (f"current/{_PROGRESS}", f"previous/{_PROGRESS}")


class Progress:
    """What ``progress.json`` holds: the records so far (as plain rows) and the family's counters."""

    def __init__(self, rows: list[dict[str, float]], counters: dict[str, Any]) -> None:
        self.rows = rows
        self.counters = counters

    def records(self) -> list[EvalRecord]:
        return [EvalRecord.from_row(row) for row in self.rows]


def parse_progress(text: str | bytes) -> Progress:
    """Read a ``progress.json``; raises ``ValueError`` if it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ValueError("not a trial checkpoint's progress.json: it has no list of records")
    return Progress(data["records"], data.get("counters", {}))


class Restored:
    """What a trial resumes from: the state directory, the records so far and the counters."""

    def __init__(self, state_dir: Path, records: list[EvalRecord], counters: dict[str, Any]):
        self.state_dir = state_dir
        self.records = records
        self.counters = counters


class TrialCheckpoint:
    """Save and restore one trial's state; a ``None`` directory disables checkpointing."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _current(self) -> Path | None:
        if self.directory is None:
            return None
        current, previous = self.directory / "current", self.directory / "previous"
        if (current / _PROGRESS).exists():
            return current
        if (previous / _PROGRESS).exists():  # a crash between the two renames of a save
            return previous
        return None

    def load(self) -> Restored | None:
        """The last saved checkpoint, or ``None`` if there is none."""
        current = self._current()
        if current is None:
            return None
        progress = parse_progress((current / _PROGRESS).read_text())
        return Restored(current, progress.records(), progress.counters)

    def records(self) -> list[EvalRecord]:
        restored = self.load()
        return restored.records if restored else []

    def save(
        self,
        write_state: Callable[[Path], None],
        records: list[EvalRecord],
        counters: dict[str, Any] | None = None,
    ) -> None:
        """Write a new checkpoint: ``write_state(dir)`` writes the family's files into ``dir``."""
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = self.directory / f"tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        write_state(staging)
        progress = {"records": [r.as_row() for r in records], "counters": counters or {}}
        with open(staging / _PROGRESS, "w") as handle:
            json.dump(progress, handle)
            handle.flush()
            os.fsync(handle.fileno())
        current, previous = self.directory / "current", self.directory / "previous"
        shutil.rmtree(previous, ignore_errors=True)
        if current.exists():
            os.replace(current, previous)
        os.replace(staging, current)
        shutil.rmtree(previous, ignore_errors=True)
