"""pass@k at the end of training, for reports of suites whose trials record it (the LLM family
records ``pass@1``, ``pass@2``, ... up to its ``eval_samples``).

pass@k is the chance that at least one of k sampled answers is correct (unbiased estimator, Chen et
al. 2021; computed per prompt by the trial). The paper's LLM claim is about its shape: an entropy
floor keeps exploration alive, which shows at large k more than at k = 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["pass_at_k_columns", "pass_at_k_rows", "pass_at_k_curves"]

_PASS_AT = re.compile(r"^pass@(\d+)$")


def pass_at_k_columns(results: pd.DataFrame) -> list[str]:
    """The ``pass@k`` columns of ``results``, by increasing k."""
    found = [(int(m.group(1)), c) for c in results.columns if (m := _PASS_AT.match(str(c)))]
    return [c for _, c in sorted(found)]


def pass_at_k_rows(finals: pd.DataFrame, columns: Sequence[str], algos: Sequence[str]) -> list[dict]:
    """Per task and algorithm: the k values and the mean and standard deviation over seeds of the
    final pass@k (in %), for the k every run of that algorithm recorded."""
    rows = []
    order = {a: i for i, a in enumerate(algos)}
    for (task, algo), group in sorted(finals.groupby(["task", "algo"]), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        recorded = [c for c in columns if c in group and group[c].notna().all()]
        if not recorded:
            continue
        values = group[recorded].to_numpy(dtype=float)
        n = values.shape[0]
        rows.append({
            "task": task, "algo": algo, "n": n,
            "k": [int(_PASS_AT.match(c).group(1)) for c in recorded],
            "mean": [float(v) for v in values.mean(axis=0)],
            "std": [float(v) for v in values.std(axis=0, ddof=1)] if n > 1 else [None] * len(recorded),
        })
    return rows


def pass_at_k_curves(rows: Sequence[dict], task: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{algo: (k, mean, std)}`` of one task, for the figure (std 0 where one seed ran)."""
    return {r["algo"]: (np.array(r["k"], dtype=float), np.array(r["mean"], dtype=float),
                        np.array([s or 0.0 for s in r["std"]], dtype=float))
            for r in rows if r["task"] == task}
