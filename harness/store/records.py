"""One trial's evaluations kept column by column: a read-only sequence of dicts in a tenth of the memory.

The driver holds the records of every trial of a suite (a million evaluations at 10,000 trials x
100); as Python dicts that is about half a kilobyte each. :class:`Records` keeps the numbers of
all of a trial's records in one float64 array (an int is exact there up to 2**53 and reads back
as an int) and each record's keys as one of a few layouts, so a record reads back as the dict it
was: the same keys in the same order, the same values and types. Values that are not numbers
(text, booleans, ``None``) are kept as they are.

A ``Records`` never changes: giving a trial new records (``state.records = rows``) makes a new
one, which is how the table cache (:mod:`harness.store.tables`) knows which trials changed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any, overload

import numpy as np

__all__ = ["Records"]

#: an int of at most this size is exact as a float64
_EXACT_INT = 2**53
#: shared tuples of keys and layouts: most trials of a suite have the same ones
_SHARED: dict[tuple, tuple] = {}


def _shared(value: tuple) -> tuple:
    return _SHARED.setdefault(value, value) if len(_SHARED) < 10_000 else value


def _is_number(value: Any) -> bool:
    """A float, or an int that is exact as a float64 (a bool is not a number here)."""
    kind = type(value)
    return kind is float or (kind is int and -_EXACT_INT <= value <= _EXACT_INT)


class Records(Sequence):
    """A trial's evaluations, in the order they were reported (a step re-run after a restore
    appears twice, as in the checkpoint); reads like the list of dicts it was made from."""

    __slots__ = ("_n", "_keys", "_numbers", "_ints", "_objects", "_layouts", "_layout_of")

    def __init__(self, rows: Iterable[Mapping[str, Any]] = ()) -> None:
        if isinstance(rows, Records):
            for name in Records.__slots__:
                setattr(self, name, getattr(rows, name))
            return
        rows = rows if isinstance(rows, list) else list(rows)
        self._n = len(rows)
        if not self._uniform(rows):
            self._general(rows)

    @classmethod
    def uniform(cls, rows: list) -> "Records | None":
        """``Records(rows)`` when every record is a dict with the same keys in the same order and
        the same type (int or float) under each key (or there are none); else ``None``."""
        records = cls.__new__(cls)
        records._n = len(rows)
        return records if records._uniform(rows) else None

    # -- building
    def _uniform(self, rows: list) -> bool:
        """The usual case, with no Python loop over the values: every record a dict with the same
        keys in the same order and the same type (int or float) under each key."""
        if not rows or set(map(type, rows)) != {dict}:
            return not rows and self._empty()
        layouts = set(map(tuple, rows))
        if len(layouts) != 1:
            return False
        (keys,) = layouts
        values = list(chain.from_iterable(map(dict.values, rows)))
        kind = tuple(map(type, values[:len(keys)]))
        if tuple(map(type, values)) != kind * len(rows) or not set(kind) <= {int, float}:
            return False
        try:
            flat = np.array(values, dtype=np.float64)
        except OverflowError:
            return False
        numbers = flat.reshape(len(rows), len(keys)).T.copy()  # one contiguous row per key
        ints = tuple(t is int for t in kind)
        if any(ints) and np.abs(numbers[np.array(ints)]).max() > _EXACT_INT:
            return False
        self._keys = _shared(tuple(map(sys.intern, keys)))
        self._numbers, self._ints, self._objects = numbers, _shared(ints), None
        self._layouts, self._layout_of = _shared((tuple(range(len(keys))),)), None
        return True

    def _empty(self) -> bool:
        self._keys, self._numbers, self._ints, self._objects = (), np.empty((0, 0)), (), None
        self._layouts, self._layout_of = ((),), None
        return True

    def _general(self, rows: list) -> None:
        """Any list of mappings: keys may differ between records, values may be of any type."""
        index: dict[str, int] = {}
        layouts: dict[tuple[int, ...], int] = {}
        layout_of = np.empty(len(rows), dtype=np.int32)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"a record must be a mapping of names to numbers, not {type(row).__name__}")
            layout = tuple(index.setdefault(k, len(index)) for k in row)
            layout_of[i] = layouts.setdefault(layout, len(layouts))
        keys = list(index)
        numbers = np.full((len(keys), len(rows)), np.nan)
        ints: list[bool | np.ndarray] = []
        objects: dict[int, list] = {}
        for j, key in enumerate(keys):
            column = [row.get(key) for row in rows]
            present = [key in row for row in rows]
            if all(_is_number(v) for v, p in zip(column, present) if p):
                numbers[j] = [v if p else np.nan for v, p in zip(column, present)]
                mask = np.array([type(v) is int for v in column])
                ints.append(True if mask.all() else (False if not mask.any() else mask))
            else:
                objects[j] = column
                ints.append(False)
        self._keys = _shared(tuple(sys.intern(k) if type(k) is str else k for k in keys))
        self._numbers, self._ints, self._objects = numbers, tuple(ints), objects or None
        self._layouts = tuple(layouts)
        self._layout_of = layout_of if len(layouts) > 1 else None

    # -- reading as a list of dicts
    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("record index out of range")
        layout = self._layouts[0 if self._layout_of is None else self._layout_of[i]]
        return {self._keys[j]: self._value(j, i) for j in layout}

    def value(self, i: int, key: str) -> Any:
        """``self[i][key]`` without making the whole dict."""
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("record index out of range")
        try:
            j = self._keys.index(key)
        except ValueError:
            raise KeyError(key) from None
        if j not in self._layouts[0 if self._layout_of is None else self._layout_of[i]]:
            raise KeyError(key)
        return self._value(j, i)

    def _value(self, j: int, i: int) -> Any:
        if self._objects is not None and j in self._objects:
            return self._objects[j][i]
        value = float(self._numbers[j, i])
        ints = self._ints[j]
        return int(value) if ints is True or (ints is not False and ints[i]) else value

    def to_list(self) -> list[dict[str, Any]]:
        """The records as the list of dicts they were made from (what a state file holds)."""
        if self._layout_of is not None or self._objects is not None:
            return [self[i] for i in range(self._n)]
        columns = [self._column_values(j) for j in range(len(self._keys))]
        return [dict(zip(self._keys, values)) for values in zip(*columns)]

    def _column_values(self, j: int) -> list:
        values = self._numbers[j].tolist()
        ints = self._ints[j]
        if ints is True:
            return [int(v) for v in values]
        if ints is not False:
            return [int(v) if is_int else v for v, is_int in zip(values, ints)]
        return values

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records):
            return self is other or self.to_list() == other.to_list()
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return self.to_list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Records({self.to_list()!r})"

    # -- reading by column (the tables)
    @property
    def keys(self) -> tuple[str, ...]:
        """Every key of any record, in the order they first appear."""
        return self._keys

    def key_order(self, rows: np.ndarray | None = None) -> tuple[str, ...]:
        """The keys of the records ``rows`` (all by default), in the order they first appear there."""
        if self._layout_of is None:  # one layout: every key, in order
            return self._keys
        used = self._layout_of if rows is None else self._layout_of[rows]
        _, first = np.unique(used, return_index=True)
        seen: dict[int, None] = {}
        for layout in used[np.sort(first)]:
            seen.update(dict.fromkeys(self._layouts[layout]))
        return tuple(self._keys[j] for j in seen)

    def present(self, key: str) -> np.ndarray | None:
        """Which records have ``key`` (a bool per record), or ``None`` when all of them do."""
        if self._layout_of is None:  # one layout: it has every key
            if key not in self._keys:
                raise ValueError(f"no record has {key!r}")
            return None
        j = self._keys.index(key)
        has = np.array([j in layout for layout in self._layouts])
        mask = has[self._layout_of]
        return None if mask.all() else mask

    def uniform_columns(self) -> tuple[dict[str, np.ndarray], frozenset[str]] | None:
        """When every record has the same keys and only numbers (the usual case): each key's
        values as float64 (views: do not write to them) and the keys whose values are all ints;
        else ``None``."""
        if self._layout_of is not None or self._objects is not None:
            return None
        columns = dict(zip(self._keys, self._numbers))
        return columns, frozenset(k for k, ints in zip(self._keys, self._ints) if ints is True)

    def matrix(self) -> tuple[tuple[str, ...], np.ndarray, tuple[bool, ...]] | None:
        """When every record has the same keys and only numbers (the usual case): the keys, their
        values as float64 with a row per key (a view: do not write to it), and whether each key's
        values are all ints; else ``None``."""
        if self._layout_of is not None or self._objects is not None:
            return None
        ints = self._ints if set(map(type, self._ints)) <= {bool} else tuple(i is True for i in self._ints)
        return self._keys, self._numbers, ints

    def numbers(self, key: str) -> np.ndarray | None:
        """The values under ``key`` as float64 (NaN where a record lacks it), or ``None`` if some
        value there is not a number; a view: do not write to it."""
        j = self._keys.index(key)
        if self._objects is not None and j in self._objects:
            return None
        return self._numbers[j]

    def all_ints(self, key: str, rows: np.ndarray | None = None) -> bool:
        """Whether every value under ``key`` (of the records ``rows``) was an int."""
        ints = self._ints[self._keys.index(key)]
        if ints is True or ints is False:
            return ints
        return bool(ints.all() if rows is None else ints[rows].all())

    def values(self, key: str) -> list:
        """The values under ``key`` as they were (``None`` where a record lacks it)."""
        j = self._keys.index(key)
        if self._objects is not None and j in self._objects:
            return list(self._objects[j])
        present = self.present(key)
        values = self._column_values(j)
        return values if present is None else [v if p else None for v, p in zip(values, present)]

    def steps(self) -> np.ndarray:
        """``int(record["step"])`` of every record, as int64; ``KeyError`` if one has no step."""
        if not self._n:
            return np.empty(0, dtype=np.int64)
        if "step" not in self._keys or self.present("step") is not None:
            raise KeyError("step")
        numbers = self.numbers("step")
        if numbers is None:
            return np.array([int(v) for v in self.values("step")], dtype=np.int64)
        if not np.isfinite(numbers).all():
            raise ValueError(f"a record's step is not a finite number: {numbers[~np.isfinite(numbers)][0]}")
        return numbers.astype(np.int64)  # truncates toward zero, as int() does
