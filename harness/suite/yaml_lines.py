"""Load YAML with the line of every value, and refuse duplicate keys.

PyYAML's ``safe_load`` silently keeps the last of two equal keys and forgets where values came
from; suite errors should point at a line. We compose the node tree once, check it, record
``path -> line`` (paths are tuples of keys and list indices) and construct plain data from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["Located", "load_located"]

Path_ = tuple[Any, ...]


class Located:
    """Parsed YAML data plus the 1-based line where each value starts."""

    def __init__(self, data: Any, lines: dict[Path_, int]) -> None:
        self.data = data
        self.lines = lines

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


class DuplicateKey(ValueError):
    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} (first given at line {first})")
        self.line = line


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen:
                raise DuplicateKey(key, key_node.start_mark.line + 1, seen[key])
            seen[key] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), lines)


def load_located(path: str | Path) -> Located:
    """Parse ``path``; raises ``yaml.YAMLError`` or ``DuplicateKey`` (both carry a line)."""
    text = Path(path).read_text()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        if node is None:
            return Located(None, lines)
        _walk(node, (), lines)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return Located(data, lines)
