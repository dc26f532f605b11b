"""The two tables of a results folder, built from the trials' states fast enough for a cluster's suites.

``results.parquet`` is assembled column by column with pyarrow from one part per trial
(:class:`TrialRows`: its steps, scores and metrics as arrays); a :class:`TableCache` keeps each
part and rebuilds only those of trials whose records changed since the last write, so the driver's
table writes while trials report cost little more than writing the file. The columns that are the
same on every row of a trial (trial_id, suite, algo, ..., the settings) are built once per trial
or per variant and repeated by index, in pyarrow, not per row in Python; their text goes to the
parquet writer as dictionary arrays, which it writes without hashing each row's text again (what
was most of the encoding cost), with the footer the plain table would have.

The tables are exactly what pandas makes of the rows as dicts, the way they were first built (one
dict per (trial, step), ``pd.DataFrame(rows).to_parquet``): the same columns in the same order,
the same types and the same parquet schema, pandas metadata included. A metric column is int64
where every row has an int there, float64 where all are numbers (NaN where a trial has none),
and otherwise goes through pandas' own inference. ``trials.parquet`` is what pandas makes of one
dict per trial, built column by column with pyarrow (pandas itself where a column holds values of
unusual types), with the cells that depend only on the trial made once.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.store.records import Records

if TYPE_CHECKING:
    from harness.store import TrialState
    from harness.suite import Trial

__all__ = ["RESULT_COLUMNS", "STATUSES", "TableCache", "TrialRows", "trial_rows", "results_groups",
           "results_table", "write_results", "TRIAL_COLUMNS", "trials_table", "trials_frame"]

#: the leading columns of results.parquet, in order
RESULT_COLUMNS = [
    "trial_id", "suite", "algo", "base_algo", "task", "seed", "step", "score", "normalized_score",
    "entropy", "wall_time_s",
]
STATUSES = ("done", "failed", "pending")
_FLOATS = ("score", "entropy", "wall_time_s")
#: names a record's own keys cannot take over: the table's own columns
_RESERVED = frozenset(RESULT_COLUMNS) | {"unit", "budget"}
#: the columns that are the same on every row of the trials of one variant on one task (and the settings)
_VARIANT_COLUMNS = ("suite", "algo", "base_algo", "task", "unit", "budget")


def _setting_value(value: Any) -> Any:
    """Scalars stay; lists and mappings become JSON text, so a parquet column has one type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _settings_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Settings columns whose values mix types (1 and "auto") become text throughout."""
    def missing(value: Any) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    for column in [c for c in frame.columns if c.startswith("setting.")]:
        kinds = {type(v) for v in frame[column] if not missing(v)}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = [None if missing(v) else (v if isinstance(v, str) else json.dumps(v))
                             for v in frame[column]]
    return frame


# ------------------------------------------------------------------ one trial's rows
@dataclass(frozen=True)
class Metric:
    """One extra metric of one trial's rows: ``int`` (an int on every row), ``float`` (numbers,
    NaN where a row has none) or ``object`` (anything else, left to pandas' inference)."""

    kind: str
    numbers: np.ndarray | None  # float64 (NaN where a row has none), for int and float
    present: np.ndarray | None  # which rows have it; None: all


@dataclass(frozen=True, eq=False)
class TrialRows:
    """One trial's rows of results.parquet (a step re-run after a restore keeps its last values),
    without the columns that are the same on every row; made from ``records``, whose identity
    tells :class:`TableCache` whether it is still current. Records with the same keys and only
    numbers (the usual case) are kept as they are, a row of values per key (``block``); others
    as their floats and metrics (``columns``)."""

    trial: "Trial"
    records: Records
    selected: np.ndarray | None  # the records behind the rows, in step order; None: all, as they are
    n: int  # rows
    steps: np.ndarray
    last_step: int  # the step of the last record (not the highest): ``TrialState.last_step``
    kinds: tuple[tuple[str, str], ...]  # (name, kind) of the metrics: equal for most trials of a suite
    block: tuple[tuple[str, ...], np.ndarray] | None = None  # the keys, and a row of values per key
    columns: tuple[dict[str, np.ndarray], dict[str, "Metric"]] | None = None

    @property
    def floats(self) -> dict[str, np.ndarray]:
        """score, entropy, wall_time_s."""
        if self.columns is not None:
            return self.columns[0]
        keys, numbers = self.block
        return {name: numbers[keys.index(name)] for name in _FLOATS}

    @property
    def metrics(self) -> dict[str, "Metric"]:
        """The metrics, in the order their names first appear in the rows."""
        if self.columns is not None:
            return self.columns[1]
        keys, numbers = self.block
        return {name: Metric(kind, numbers[keys.index(name)], None) for name, kind in self.kinds}

    def python_values(self, name: str) -> list:
        """The metric's values as the records hold them, one per row (``None`` where absent)."""
        values = self.records.values(name)
        return values if self.selected is None else [values[i] for i in self.selected]


def _last_of_each_step(steps: np.ndarray) -> np.ndarray | None:
    """The records to keep, in step order: the last one of each step; ``None`` when the steps
    already rise strictly (the usual case: nothing re-run)."""
    if len(steps) < 2 or bool((steps[1:] > steps[:-1]).all()):
        return None
    _, last_in_reverse = np.unique(steps[::-1], return_index=True)
    return len(steps) - 1 - last_in_reverse


def _floats(records: Records, name: str, selected: np.ndarray | None) -> np.ndarray:
    """``float(record[name])`` of every kept record; ``KeyError`` if one has no ``name``."""
    if name not in records.keys:
        raise KeyError(name)
    present = records.present(name)
    if present is not None and not (present if selected is None else present[selected]).all():
        raise KeyError(name)
    numbers = records.numbers(name)
    if numbers is None:
        values = records.values(name)
        kept = values if selected is None else [values[i] for i in selected]
        return np.array([float(v) for v in kept], dtype=np.float64)
    return numbers if selected is None else numbers[selected]


def _metric(records: Records, name: str, selected: np.ndarray | None) -> Metric:
    present = records.present(name)
    if present is not None and selected is not None:
        present = present[selected]
    if present is not None and present.all():
        present = None
    numbers = records.numbers(name)
    if numbers is None:
        return Metric("object", None, present)
    numbers = numbers if selected is None else numbers[selected]
    kind = "int" if present is None and records.all_ints(name, selected) else "float"
    return Metric(kind, numbers, present)


def _metric_name(key: str) -> bool:
    """Whether a record's key is a metric column: a record's own names never take over the
    table's columns (the trial's identity, unit, budget and settings)."""
    return key not in _RESERVED and not key.startswith("setting.")


#: the metrics' kinds of uniform records, by their keys and which are all ints
_UNIFORM_KINDS: dict[tuple, tuple[tuple[str, str], ...]] = {}


def _uniform_kinds(keys: tuple[str, ...], ints: tuple[bool, ...]) -> tuple[tuple[str, str], ...]:
    kinds = _UNIFORM_KINDS.get((keys, ints))
    if kinds is None:
        kinds = tuple((k, "int" if i else "float") for k, i in zip(keys, ints) if _metric_name(k))
        if len(_UNIFORM_KINDS) < 10_000:
            _UNIFORM_KINDS[keys, ints] = kinds
    return kinds


def trial_rows(trial: "Trial", records: Records) -> TrialRows:
    """The rows of one trial with at least one record."""
    all_steps = records.steps()
    selected = _last_of_each_step(all_steps)
    steps = all_steps if selected is None else all_steps[selected]
    matrix = records.matrix()
    if matrix is not None:  # the usual case: every record has the same numbers
        keys, numbers, ints = matrix
        for name in _FLOATS:
            if name not in keys:
                raise KeyError(name)
        block = (keys, numbers if selected is None else numbers[:, selected])
        return TrialRows(trial, records, selected, len(steps), steps, int(all_steps[-1]), _uniform_kinds(keys, ints),
                         block=block)
    floats = {name: _floats(records, name, selected) for name in _FLOATS}
    names = [k for k in records.key_order(selected) if _metric_name(k)]
    metrics = {name: _metric(records, name, selected) for name in names}
    kinds = tuple((name, metric.kind) for name, metric in metrics.items())
    return TrialRows(trial, records, selected, len(steps), steps, int(all_steps[-1]), kinds, columns=(floats, metrics))


# ------------------------------------------------------------------ the cache
class TableCache:
    """What earlier table writes built, so the next one rebuilds only what changed: each trial's
    rows (current while the trial object and its records object are the same), and each trial's
    variant columns and text (current while the trial object is the same)."""

    def __init__(self) -> None:
        self._rows: dict[str, TrialRows] = {}
        self._variant: dict[str, tuple["Trial", tuple, dict[str, Any]]] = {}
        self._texts: dict[str, tuple["Trial", dict[str, str]]] = {}
        self._cells: dict[str, tuple["Trial", tuple]] = {}
        self._packages: dict[str, tuple[dict, str, bool]] = {}
        self._package_texts: dict[tuple, str] = {}
        self._times: dict[float, str] = {}
        #: the texts of trials with the same settings, sweep and resources, by their repr (which,
        #: unlike ==, tells 1, 1.0 and True apart)
        self._shared_texts: dict[str, dict[str, str]] = {}

    def __reduce__(self):  # Tune pickles its callbacks with the experiment: a cache need not go along
        return (TableCache, ())

    def rows(self, trial: "Trial", records: Records) -> TrialRows:
        cached = self._rows.get(trial.trial_id)
        if cached is None or cached.trial is not trial or cached.records is not records:
            cached = self._rows[trial.trial_id] = trial_rows(trial, records)
        return cached

    def last_step(self, state: "TrialState") -> int | None:
        """``state.last_step``, from the trial's rows when they are current."""
        cached = self._rows.get(state.trial_id)
        return cached.last_step if cached is not None and cached.records is state.records else state.last_step

    def variant(self, trial: "Trial") -> tuple[tuple, dict[str, Any]]:
        """(a key equal for trials whose variant columns are equal, those columns as a dict)."""
        cached = self._variant.get(trial.trial_id)
        if cached is None or cached[0] is not trial:
            row = {"suite": trial.suite, "algo": trial.variant, "base_algo": trial.base_algo,
                   "task": trial.spec.task, "unit": trial.unit, "budget": trial.spec.budget}
            row.update({f"setting.{k}": _setting_value(v) for k, v in trial.spec.settings.items()})
            values = tuple(row.values())
            key = (tuple(row), values, tuple(map(type, values)))  # 1, 1.0 and True stay apart
            cached = self._variant[trial.trial_id] = (trial, key, row)
        return cached[1], cached[2]

    def trial_cells(self, trial: "Trial") -> tuple:
        """The cells of trials.parquet that depend only on the trial (``_TRIAL_OWN``)."""
        cached = self._cells.get(trial.trial_id)
        if cached is None or cached[0] is not trial:
            texts = self.texts(trial)
            cells = (trial.trial_id, trial.suite, trial.variant, trial.base_algo, trial.spec.task, trial.spec.seed,
                     trial.spec.budget, trial.unit, trial.config_hash, texts["settings"], texts["sweep"],
                     texts["resources"])
            cached = self._cells[trial.trial_id] = (trial, cells)
        return cached[1]

    def texts(self, trial: "Trial") -> dict[str, str]:
        """The JSON text columns of trials.parquet that depend only on the trial."""
        cached = self._texts.get(trial.trial_id)
        if cached is None or cached[0] is not trial:
            made = (dict(trial.spec.settings), dict(trial.sweep), trial.resources.plain())
            key = repr(made)
            texts = self._shared_texts.get(key)
            if texts is None:
                texts = {"settings": json.dumps(made[0], sort_keys=True), "sweep": json.dumps(made[1], sort_keys=True),
                         "resources": json.dumps(made[2])}
                if len(self._shared_texts) < 10_000:
                    self._shared_texts[key] = texts
            cached = self._texts[trial.trial_id] = (trial, texts)
        return cached[1]

    def iso(self, stamp: float | None) -> str | None:
        """:func:`_iso` of ``stamp``, remembered (each trial has two: started and finished)."""
        if stamp is None:
            return None
        text = self._times.get(stamp)
        if text is None:
            if len(self._times) > 1_000_000:
                self._times.clear()
            text = self._times[stamp] = _iso(stamp)
        return text

    def packages(self, trial_id: str, packages: Mapping[str, Any]) -> str:
        """``json.dumps(packages, sort_keys=True)``; remembered for packages that name versions as
        text (then equal means the same text), and shared by the trials that ran with the same."""
        cached = self._packages.get(trial_id)
        if cached is not None and cached[2] and cached[0] == packages:
            return cached[1]
        plain = set(map(type, packages)) <= {str} and set(map(type, packages.values())) <= {str}
        key = tuple(packages.items()) if plain else None
        text = self._package_texts.get(key) if plain else None
        if text is None:
            text = json.dumps(packages, sort_keys=True)
            if plain and len(self._package_texts) < 10_000:
                self._package_texts[key] = text
        self._packages[trial_id] = (dict(packages), text, plain)
        return text


# ------------------------------------------------------------------ results.parquet
#: rows per parquet row group: the table is built and written a group at a time, so the driver
#: never holds all of it in memory
ROWS_PER_GROUP = 1 << 17


def _arrow(name: str, data: pd.Series | np.ndarray) -> tuple[pa.ChunkedArray, pa.Field, dict]:
    """One column as ``pa.Table.from_pandas`` makes it in a frame (NaN becomes null, an object
    column's type is inferred from its values), with its field and its entry in the pandas metadata."""
    frame = pd.DataFrame({name: data}, copy=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.column(0), table.schema.field(0), table.schema.pandas_metadata["columns"][0]


def _empty_results() -> pa.Table:
    frame = pd.DataFrame({c: pd.Series(dtype="float64" if c in ("score", "normalized_score", "entropy",
                                                              "wall_time_s") else "object")
                          for c in RESULT_COLUMNS})
    return pa.Table.from_pandas(frame, preserve_index=False)


def _metric_kinds(parts: Sequence[TrialRows]) -> dict[str, str]:
    """Each metric's column type, in the order the metrics first appear (trial by trial): ``int``
    where every row has an int, ``float`` where all are numbers or missing, else ``object``."""
    seen: dict[str, set[str]] = {}
    trials_with: dict[str, int] = {}
    for kinds, count in Counter(part.kinds for part in parts).items():  # in first-seen order
        for name, kind in kinds:
            seen.setdefault(name, set()).add(kind)
            trials_with[name] = trials_with.get(name, 0) + count
    return {name: ("int" if kinds == {"int"} and trials_with[name] == len(parts)
                   else "object" if "object" in kinds else "float")
            for name, kinds in seen.items()}


def _object_column(name: str, parts: Sequence[TrialRows]) -> pd.Series:
    """A metric that is not all numbers, over all rows: pandas infers its type from the rows as
    dicts (``{}`` where a row has none), as it always has."""
    cells: list[dict] = []
    for part in parts:
        metric = part.metrics.get(name)
        if metric is None:
            cells.extend({} for _ in range(part.n))
            continue
        present = metric.present if metric.present is not None else np.ones(part.n, dtype=bool)
        cells.extend({name: v} if p else {} for v, p in zip(part.python_values(name), present))
    return pd.DataFrame(cells, columns=[name])[name]


@dataclass(frozen=True)
class _Repeated:
    """A column that is the same on every row of a part (trial_id, seed) or of a variant (suite,
    ..., the settings): one value per part or variant. A text column also keeps its values as
    codes (``-1``: null) into its distinct values, so its rows become a dictionary array: the
    parquet writer takes that as it is instead of hashing every row's text again (the most
    expensive part of encoding the table), and writes the same values."""

    values: pa.Array
    codes: np.ndarray | None  # text columns only
    distinct: pa.Array | None

    @classmethod
    def of(cls, values: pa.ChunkedArray) -> "_Repeated":
        values = values.combine_chunks()
        if not pa.types.is_string(values.type):
            return cls(values, None, None)
        encoded = values.dictionary_encode()
        return cls(values, encoded.indices.fill_null(-1).to_numpy().astype(np.int32), encoded.dictionary)

    def rows(self, units: np.ndarray, counts: Sequence[int], encoded: bool) -> pa.Array:
        """The rows of the parts whose values are ``units`` (``counts`` rows each); text as a
        dictionary array if ``encoded``, its entries in the order they first appear, as the
        writer's own dictionary would have them."""
        if self.codes is None:
            return self.values.take(pa.array(np.repeat(units, counts)))
        codes = self.codes[units]
        used, first = np.unique(codes[codes >= 0], return_index=True)
        order = used[np.argsort(first)]
        local = np.full(len(self.distinct) + 1, -1, dtype=np.int32)  # the last one: code -1, null
        local[order] = np.arange(len(order), dtype=np.int32)
        indices = np.repeat(local[codes], counts)
        mask = indices < 0 if (codes < 0).any() else None
        array = pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), self.distinct.take(pa.array(order)))
        return array if encoded else array.dictionary_decode()


@dataclass
class _Layout:
    """What every row group of results.parquet shares: the column order, the schema (with the
    pandas metadata a ``to_parquet`` of the whole frame writes), the per-trial and per-variant
    values to repeat, and the metrics' types."""

    order: list[str]
    schema: pa.Schema
    per_trial: dict[str, _Repeated]  # trial_id, seed: one value per part
    per_variant: dict[str, _Repeated]  # suite, algo, ..., settings: one value per variant
    trial_variant: np.ndarray  # the variant of each part
    tasks: list[str]
    task_of_variant: np.ndarray  # the index in ``tasks`` of each variant's task
    metrics: dict[str, str]  # name -> int | float | object
    objects: dict[str, pa.ChunkedArray]  # the object metrics over all rows
    encoded_schema: pa.Schema | None = None  # :attr:`schema` with the repeated text as dictionaries, no metadata

    def __post_init__(self) -> None:
        repeated = {**self.per_trial, **self.per_variant}
        self.encoded_schema = pa.schema([
            pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in repeated and repeated[f.name].codes
            is not None else f for f in self.schema.remove_metadata()])


def _layout(parts: Sequence[TrialRows], cache: TableCache) -> _Layout:
    """The columns and types of the whole table, from the parts and their trials' variants."""
    variants: dict[tuple, int] = {}
    variant_rows: list[dict[str, Any]] = []
    trial_variant = np.empty(len(parts), dtype=np.int64)
    for i, part in enumerate(parts):
        key, row = cache.variant(part.trial)
        index = variants.get(key)
        if index is None:
            index = variants[key] = len(variant_rows)
            variant_rows.append(row)
        trial_variant[i] = index
    # one row per variant: pandas infers the same types from them as from every row
    variant_frame = _settings_columns(pd.DataFrame(variant_rows))
    settings = [c for c in variant_frame.columns if c.startswith("setting.")]
    metrics = _metric_kinds(parts)
    order = RESULT_COLUMNS + list(metrics) + ["unit", "budget"] + settings

    fields: dict[str, tuple[pa.Field, dict]] = {}
    per_trial, per_variant, objects = {}, {}, {}
    for name, data in (("trial_id", pd.Series([p.trial.trial_id for p in parts], dtype=object)),
                       ("seed", pd.Series([p.trial.spec.seed for p in parts]).astype("int64"))):
        values, *fields[name] = _arrow(name, data)
        per_trial[name] = _Repeated.of(values)
    for name in (*_VARIANT_COLUMNS, *settings):
        values, *fields[name] = _arrow(name, variant_frame[name])
        per_variant[name] = _Repeated.of(values)
    for name in ("step", *(m for m, kind in metrics.items() if kind == "int")):
        fields[name] = _arrow(name, np.zeros(0, dtype=np.int64))[1:]
    floats = ("score", "normalized_score", "entropy", "wall_time_s", *(m for m, k in metrics.items() if k == "float"))
    for name in floats:
        fields[name] = _arrow(name, np.zeros(0, dtype=np.float64))[1:]
    for name in (m for m, kind in metrics.items() if kind == "object"):
        objects[name], *fields[name] = _arrow(name, _object_column(name, parts))

    schema = pa.schema([fields[name][0] for name in order], metadata=_pandas_metadata([fields[n][1] for n in order]))
    tasks = list(dict.fromkeys(variant_frame["task"]))
    task_of_variant = np.array([tasks.index(t) for t in variant_frame["task"]], dtype=np.int64)
    return _Layout(order, schema, per_trial, per_variant, trial_variant, tasks, task_of_variant, metrics, objects)


def _pandas_metadata(columns: list[dict]) -> dict[bytes, bytes]:
    """The schema metadata ``pa.Table.from_pandas(frame, preserve_index=False)`` writes for a frame
    with these columns (entries of its ``columns``) and a default index."""
    meta = pa.Table.from_pandas(pd.DataFrame({"x": [0.0]}), preserve_index=False).schema.pandas_metadata
    meta["columns"] = columns
    return {b"pandas": json.dumps(meta).encode("utf8")}


def _group(layout: _Layout, parts: Sequence[TrialRows], first: int, first_row: int, benchmark: str,
           encoded: bool = False) -> pa.Table:
    """The rows of ``parts`` (which start at part ``first`` and row ``first_row`` of the whole);
    with ``encoded``, in :meth:`_Layout.encoded_schema`."""
    from harness.stats.normalize import normalized_score

    counts = [part.n for part in parts]
    rows = sum(counts)
    part_index = np.arange(first, first + len(parts))
    part_variant = layout.trial_variant[first:first + len(parts)]
    columns: dict[str, Any] = {name: values.rows(part_index, counts, encoded)
                               for name, values in layout.per_trial.items()}
    columns.update({name: values.rows(part_variant, counts, encoded) for name, values in layout.per_variant.items()})
    numeric = {"step": "int", **dict.fromkeys(_FLOATS, "float"),
               **{name: kind for name, kind in layout.metrics.items() if kind != "object"}}
    columns.update(_numbers(parts, counts, numeric))
    tasks = np.unique(layout.task_of_variant[part_variant])
    if len(tasks) == 1:
        normalized = normalized_score(benchmark, layout.tasks[tasks[0]], columns["score"])
    else:
        normalized = np.full(rows, np.nan)
        row_task = np.repeat(layout.task_of_variant[part_variant], counts)
        for task in tasks:
            mask = row_task == task
            normalized[mask] = normalized_score(benchmark, layout.tasks[task], columns["score"][mask])
    columns["normalized_score"] = np.asarray(normalized, dtype=np.float64)
    for name, kind in layout.metrics.items():
        if kind == "object":
            columns[name] = layout.objects[name].slice(first_row, rows)
    schema = layout.encoded_schema if encoded else layout.schema
    arrays = [columns[name] if not isinstance(columns[name], np.ndarray)
              else pa.array(columns[name], type=layout.schema.field(name).type, from_pandas=True)
              for name in layout.order]
    return pa.Table.from_arrays(arrays, schema=schema)


def _numbers(parts: Sequence[TrialRows], counts: list[int], kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """The number columns (``kinds``: name -> int | float) over the rows of ``parts``: int64, or
    float64 with NaN where a trial has no such metric."""
    if any(part.block is None for part in parts):
        gap = np.full(max(counts), np.nan)
        found = [(part.floats, part.metrics) for part in parts]
        columns = {"step": np.concatenate([part.steps for part in parts])}
        columns.update({name: np.concatenate([floats[name] for floats, _ in found]) for name in _FLOATS})
        for name in kinds.keys() - columns.keys():
            columns[name] = np.concatenate([gap[:part.n] if name not in metrics else metrics[name].numbers
                                            for part, (_, metrics) in zip(parts, found)])
    else:  # one array per kind of records (their keys), then their rows put back in the parts' order
        by_keys: dict[tuple[str, ...], list[int]] = {}
        for i, part in enumerate(parts):
            by_keys.setdefault(part.block[0], []).append(i)
        blocks = [(keys, np.concatenate([parts[i].block[1] for i in which], axis=1)) for keys, which in by_keys.items()]
        gather = None
        if len(blocks) > 1:
            part_kind = np.empty(len(parts), dtype=np.int64)
            for k, which in enumerate(by_keys.values()):
                part_kind[which] = k
            gather = np.empty(sum(counts), dtype=np.int64)
            gather[np.argsort(np.repeat(part_kind, counts), kind="stable")] = np.arange(len(gather))
        columns = {}
        for name in kinds:
            values = [block[keys.index(name)] if name in keys else np.full(block.shape[1], np.nan)
                      for keys, block in blocks]
            columns[name] = values[0] if gather is None else np.concatenate(values)[gather]
    return {name: columns[name].astype(np.int64) if kind == "int" else columns[name] for name, kind in kinds.items()}


def _parts(trials: Sequence["Trial"], states: Mapping[str, "TrialState"], cache: TableCache) -> list[TrialRows]:
    parts = []
    for trial in trials:
        records = states[trial.trial_id].records
        if len(records):
            parts.append(cache.rows(trial, records))
    return parts


def results_groups(trials: Sequence["Trial"], states: Mapping[str, "TrialState"], benchmark: str,
                   cache: TableCache | None = None, encoded: bool = False) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """results.parquet's schema and its rows as pyarrow tables of about :data:`ROWS_PER_GROUP`
    rows each (whole trials), made one at a time; with ``encoded``, the columns that repeat a
    trial's or a variant's text are dictionary arrays (the same values; what :func:`write_results`
    writes) and the groups' schema has no metadata."""
    cache = cache if cache is not None else TableCache()
    parts = _parts(trials, states, cache)
    if not parts:
        empty = _empty_results()
        return empty.schema, iter([empty.replace_schema_metadata(None) if encoded else empty])
    layout = _layout(parts, cache)

    def groups() -> Iterator[pa.Table]:
        start = first_row = rows = 0
        for stop, part in enumerate(parts, 1):
            rows += part.n
            if rows >= ROWS_PER_GROUP or stop == len(parts):
                yield _group(layout, parts[start:stop], start, first_row, benchmark, encoded)
                start, first_row, rows = stop, first_row + rows, 0

    return layout.schema, groups()


def results_table(trials: Sequence["Trial"], states: Mapping[str, "TrialState"], benchmark: str,
                  cache: TableCache | None = None) -> pa.Table:
    """results.parquet as one pyarrow table: one row per (trial, step) with the normalized score
    on ``benchmark``'s table (a suite's ``benchmark``: a table, ``auto`` or ``none``; NaN where the
    task has no reference there)."""
    _, groups = results_groups(trials, states, benchmark, cache)
    return pa.concat_tables(list(groups))


def write_results(path: Path, trials: Sequence["Trial"], states: Mapping[str, "TrialState"], benchmark: str,
                  cache: TableCache | None = None) -> None:
    """Write results.parquet a row group at a time into ``path`` (a temporary file: the caller
    renames it into place), as ``DataFrame.to_parquet`` would (snappy)."""
    import pyarrow.parquet as pq

    schema, groups = results_groups(trials, states, benchmark, cache, encoded=True)
    # the records' floats (scores, entropies, times) seldom repeat: dictionary-encoding them, as
    # parquet tries by default, only costs time (a third of the write); the rest repeat a lot
    measured = {"score", "normalized_score", "entropy", "wall_time_s"}
    measured.update(f.name for f in schema if _metric_name(f.name) and pa.types.is_floating(f.type))
    dictionary = [name for name in schema.names if name not in measured]
    first = next(groups)
    # the groups' text columns are dictionaries: the footer gets the metadata the writer would
    # store for ``schema`` itself (its pandas metadata, then the Arrow schema), so readers see
    # the plain types, as in a file ``to_parquet`` wrote
    with pq.ParquetWriter(path, first.schema, compression="snappy", use_dictionary=dictionary,
                          store_schema=False) as writer:
        writer.add_key_value_metadata({**schema.metadata, b"ARROW:schema": base64.b64encode(schema.serialize())})
        writer.write_table(first)
        for group in groups:
            writer.write_table(group)


# ------------------------------------------------------------------ trials.parquet
def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stamp))


#: trials.parquet's columns, in order
TRIAL_COLUMNS = ("trial_id", "suite", "algo", "base_algo", "task", "seed", "status", "error", "traceback",
                 "evaluations", "last_step", "budget", "unit", "failures", "config_hash", "code_version",
                 "packages", "hostname", "device", "settings", "sweep", "resources", "checkpoint",
                 "started_at", "finished_at")
#: samples of the kinds of column trials.parquet has, for their field and pandas metadata
_TRIAL_KINDS = {"str": lambda: pd.Series(["x"], dtype=object), "null": lambda: pd.Series([None], dtype=object),
                "int": lambda: np.zeros(1, dtype=np.int64), "Int64": lambda: pd.Series([1], dtype="Int64")}
_TRIAL_FIELDS: dict[tuple[str, str], tuple[pa.Field, dict]] = {}
_INT64 = (-2**63, 2**63 - 1)


#: the columns of trials.parquet that depend only on the trial, and those that come from its state
_TRIAL_OWN = ("trial_id", "suite", "algo", "base_algo", "task", "seed", "budget", "unit", "config_hash", "settings",
              "sweep", "resources")
_TRIAL_STATE = ("status", "error", "traceback", "evaluations", "last_step", "failures", "code_version", "packages",
                "hostname", "device", "checkpoint", "started_at", "finished_at")


def _state_cells(state: "TrialState", cache: TableCache) -> tuple:
    env = state.environment or {}
    return (state.status if state.status in STATUSES else "pending", state.error, state.traceback,
            len(state.records), cache.last_step(state), state.failures, state.code_version,
            cache.packages(state.trial_id, env.get("packages", {})), env.get("hostname"), env.get("device"),
            state.checkpoint, cache.iso(state.started_at), cache.iso(state.finished_at))


def _trial_kind(name: str, values: Sequence) -> str | None:
    """The type pandas gives a column of trials.parquet (see :data:`_TRIAL_KINDS`), for the kinds
    of values found there; ``None`` for any other."""
    kinds = set(map(type, values))
    if name == "last_step":
        return "Int64" if kinds <= {int, type(None)} else None
    if kinds == {type(None)}:
        return "null"
    if kinds <= {str, type(None)}:
        return "str"
    if kinds == {int} and _INT64[0] <= min(values) and max(values) <= _INT64[1]:
        return "int"
    return None


def _trials_table_by_pandas(rows: list[tuple]) -> pa.Table:
    """The table as pandas makes it of one dict per trial (any kind of value)."""
    frame = pd.DataFrame([dict(zip(TRIAL_COLUMNS, row)) for row in rows])
    frame["last_step"] = frame["last_step"].astype("Int64")
    return pa.Table.from_pandas(frame, preserve_index=False)


def trials_table(trials: Sequence["Trial"], states: Mapping[str, "TrialState"],
                 cache: TableCache | None = None) -> pa.Table:
    """One row per trial: what it is, how it ended, and what ran it; the table pandas makes of one
    dict per trial (``last_step`` as ``Int64``), built column by column with pyarrow."""
    cache = cache if cache is not None else TableCache()
    own = [cache.trial_cells(trial) for trial in trials]
    of_states = [_state_cells(states[trial.trial_id], cache) for trial in trials]
    by_name = {**dict(zip(_TRIAL_OWN, zip(*own))), **dict(zip(_TRIAL_STATE, zip(*of_states)))}
    columns = [by_name.get(name, ()) for name in TRIAL_COLUMNS]
    kinds = [_trial_kind(name, values) for name, values in zip(TRIAL_COLUMNS, columns)]
    if not trials or None in kinds:
        return _trials_table_by_pandas(list(zip(*columns)))
    arrays, fields, metas = [], [], []
    for name, values, kind in zip(TRIAL_COLUMNS, columns, kinds):
        if (name, kind) not in _TRIAL_FIELDS:
            _TRIAL_FIELDS[name, kind] = _arrow(name, _TRIAL_KINDS[kind]())[1:]
        field, meta = _TRIAL_FIELDS[name, kind]
        arrays.append(pa.nulls(len(values)) if kind == "null" else pa.array(values, type=field.type))
        fields.append(field)
        metas.append(meta)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=_pandas_metadata(metas)))


def trials_frame(trials: Sequence["Trial"], states: Mapping[str, "TrialState"],
                 cache: TableCache | None = None) -> pd.DataFrame:
    """:func:`trials_table` as pandas reads it."""
    return trials_table(trials, states, cache).to_pandas()
