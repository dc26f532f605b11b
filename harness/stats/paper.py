"""The paper's reported numbers (``harness/data/paper_results.yaml``), looked up by dotted entry,
and the claims they make (``harness/data/claims.yaml``).

Suites name an entry (``paper: continuous_control.sac``) and reports set it beside their own
numbers; both walk the table with :func:`paper_entry`. :func:`claim_of` says which claim an entry
belongs to, and so which algorithm pair its rows compare.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["claim_of", "claims", "paper_results", "paper_entry"]


def _data(name: str) -> Any:
    from importlib import resources

    import yaml

    return yaml.safe_load((resources.files("harness") / "data" / name).read_text())


@lru_cache(maxsize=1)
def paper_results() -> dict[str, Any]:
    """The whole table (package data, read once)."""
    return _data("paper_results.yaml")


@lru_cache(maxsize=1)
def claims() -> tuple[dict[str, Any], ...]:
    """The claims of the reference table, in the board's order (package data, read once)."""
    return tuple(_data("claims.yaml")["claims"])


def claim_of(entry: str | None) -> dict[str, Any] | None:
    """The claim a dotted paper entry belongs to: the one whose entry is it or lies above it
    (``classification.cifar10.no_augmentation`` -> the CIFAR-10 claim); None for none."""
    if not entry:
        return None
    for claim in claims():
        if entry == claim["entry"] or entry.startswith(claim["entry"] + "."):
            return claim
    return None


def paper_entry(key: str) -> tuple[Any | None, list[str]]:
    """The node at dotted ``key`` and ``[]``; or ``None`` and the entries at the level where the
    walk stopped (for an error message that lists them)."""
    node: Any = paper_results()
    walked: list[str] = []
    for part in str(key).split("."):
        if not isinstance(node, dict) or part not in node:
            known = [".".join([*walked, k]) for k in node] if isinstance(node, dict) else []
            return None, known
        node = node[part]
        walked.append(part)
    return node, []
