"""Interval estimates on a paper-size table: our vectorized bootstrap vs rliable's, side by side.

(1) Four aggregates (median, IQM, mean, optimality gap) with 95% stratified-bootstrap intervals for
    4 algorithms x 20 tasks x 10 seeds, at 50,000 repetitions, by rliable 1.2.0 and by
    ``harness.bootstrap``; prints both times, the ratio and the largest interval difference.
(2) A 50-point sample-efficiency curve (IQM per step with intervals) for 4 algorithms at 50,000
    repetitions with ours (rliable would take roughly 50x the time of (1)'s IQM alone).

    python benchmarks/report_speed.py [--reps 50000] [--skip-rliable]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.bootstrap import (
    batched_aggregates,
    batched_iqm_curve,
    percentile_intervals,
    stratified_bootstrap,
)

METRICS = ["median", "iqm", "mean", "optimality_gap"]


def _table(rng: np.random.Generator, algos: int, runs: int, tasks: int, steps: int | None = None):
    shape = (runs, tasks) if steps is None else (runs, tasks, steps)
    return {f"algo{i}": rng.beta(2.0 + 0.3 * i, 3.0, size=shape) for i in range(algos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=50_000)
    parser.add_argument("--skip-rliable", action="store_true", help="time ours only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = _table(rng, algos=4, runs=10, tasks=20)

    start = time.perf_counter()
    ours = {
        name: percentile_intervals(
            stratified_bootstrap([scores], batched_aggregates(METRICS), args.reps, np.random.default_rng(i)))
        for i, (name, scores) in enumerate(table.items())
    }
    t_ours = time.perf_counter() - start
    print(f"table 4 algos x 20 tasks x 10 seeds, 4 aggregates, {args.reps} reps: ours {t_ours:.2f} s")

    if not args.skip_rliable:
        from rliable import library as rly
        from rliable import metrics

        funcs = [metrics.aggregate_median, metrics.aggregate_iqm, metrics.aggregate_mean,
                 metrics.aggregate_optimality_gap]
        np.random.seed(0)
        start = time.perf_counter()
        _, theirs = rly.get_interval_estimates(
            table, lambda s: np.array([f(s) for f in funcs]), reps=args.reps)
        t_rliable = time.perf_counter() - start
        worst = max(float(np.abs(ours[k] - theirs[k]).max()) for k in table)
        print(f"  rliable {t_rliable:.2f} s; speed-up rliable/ours {t_rliable / t_ours:.1f}x; "
              f"largest interval end-point difference {worst:.4f}")

    curves = _table(np.random.default_rng(1), algos=4, runs=10, tasks=20, steps=50)
    start = time.perf_counter()
    for i, scores in enumerate(curves.values()):
        percentile_intervals(stratified_bootstrap([scores], batched_iqm_curve, args.reps, np.random.default_rng(i)))
    t_curve = time.perf_counter() - start
    print(f"sample-efficiency curve, 4 algos x 50 points, {args.reps} reps: ours {t_curve:.2f} s")


if __name__ == "__main__":
    main()
