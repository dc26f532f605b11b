"""The paper's reported numbers (``harness/data/paper_results.yaml``), looked up by dotted entry.

Suites name an entry (``paper: continuous_control.sac``) and reports set it beside their own
numbers; both walk the table with :func:`paper_entry`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["paper_results", "paper_entry"]


@lru_cache(maxsize=1)
def paper_results() -> dict[str, Any]:
    """The whole table (package data, read once)."""
    from importlib import resources

    import yaml

    return yaml.safe_load((resources.files("harness") / "data" / "paper_results.yaml").read_text())


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
