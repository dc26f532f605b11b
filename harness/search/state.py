"""``DIR/search.json``: the samples a search has asked for, in order, with their settings.

Each sample is written here, atomically, before any of its trials starts, so that a search killed
at any moment resumes with the same samples: those fully evaluated are told to a new searcher, the
others run (again) first. ``best`` is set once every sample is evaluated; the comparison on the
held-out seeds then runs with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ResultsDirError
from harness.store import corrupt_file, read_json_file, write_json_atomic
from harness.suite.search import SearchSpec

__all__ = ["Sample", "SearchState", "read_search_state", "write_search_state", "FILE"]

FILE = "search.json"
_FORMAT = 1


@dataclass
class Sample:
    """One sample: its position in the search and the settings the searcher gave it."""

    index: int
    settings: dict[str, Any]


@dataclass
class SearchState:
    spec: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    best: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "search": self.spec, "best": self.best,
                "samples": [{"index": s.index, "settings": s.settings} for s in self.samples]}


def _problem(data: Any) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("search"), dict):
        return "not a JSON object with the search it belongs to"
    samples = data.get("samples")
    if not isinstance(samples, list) or not all(
            isinstance(s, dict) and isinstance(s.get("index"), int) and isinstance(s.get("settings"), dict)
            for s in samples):
        return "its samples are not a list of {index, settings}"
    if [s["index"] for s in samples] != list(range(len(samples))):
        return "its samples are not numbered 0, 1, 2, ..."
    best = data.get("best")
    if best is not None and not (isinstance(best, int) and 0 <= best < len(samples)):
        return f"its best sample {best!r} is not one of its samples"
    return None


def _drawing(plain: dict[str, Any]) -> dict[str, Any]:
    """What decides which samples are drawn and how they are scored: not how many, nor how many at once
    (so raising ``samples`` continues a finished search)."""
    return {k: v for k, v in plain.items() if k not in ("samples", "concurrent")}


def read_search_state(out: Path, spec: SearchSpec) -> SearchState:
    """The search recorded in ``out`` (an empty one if there is none). Raises ``ResultsDirError``
    for a corrupt file, or one written for another search."""
    path = Path(out) / FILE
    if not path.exists():
        return SearchState(spec.plain())
    fix = ("delete it to start the search over (finished trials are kept and not run again), or "
           "choose another --out")
    data = read_json_file(path, fix)
    problem = _problem(data)
    if problem is not None:
        raise corrupt_file(path, problem, fix)
    if _drawing(data["search"]) != _drawing(spec.plain()):
        raise ResultsDirError(
            f"{path} holds a search with other settings than the suite's `search:` block (its samples were "
            f"drawn for that one): restore the block, or choose another --out"
        )
    samples = [Sample(s["index"], dict(s["settings"])) for s in data["samples"]]
    if len(samples) > spec.samples:
        raise ResultsDirError(f"{path} holds {len(samples)} samples, more than the suite's "
                              f"search.samples {spec.samples}: choose another --out")
    best = data.get("best") if len(samples) == spec.samples else None  # more samples: choose again
    return SearchState(spec.plain(), samples, best)


def write_search_state(out: Path, state: SearchState) -> None:
    write_json_atomic(state.to_json(), Path(out) / FILE)
