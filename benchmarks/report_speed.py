"""Interval estimates on a paper-size table: our vectorized bootstrap vs rliable's, side by side.

(1) Four aggregates (median, IQM, mean, optimality gap) with 95% stratified-bootstrap intervals for
    4 algorithms x 20 tasks x 10 seeds, at 50,000 repetitions, by rliable 1.2.0 and by
    ``harness.stats.bootstrap``; prints both times, the ratio and the largest interval difference.
(2) A 50-point sample-efficiency curve (IQM per step with intervals) for 4 algorithms at 50,000
    repetitions with ours (rliable would take roughly 50x the time of (1)'s IQM alone).
(3) ``era report``'s whole job (aggregates, probability of improvement, profiles, curves, entropy,
    figures) with default settings on a synthetic paper-size results directory: 4 algorithms x 20
    DMC tasks x 10 seeds x 50 evaluations.

    python benchmarks/report_speed.py [--reps 50000] [--skip-rliable] [--skip-report]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from harness.stats.bootstrap import (
    batched_aggregates,
    batched_iqm_curve,
    percentile_intervals,
    stratified_bootstrap,
)

METRICS = ["median", "iqm", "mean", "optimality_gap"]


def _table(rng: np.random.Generator, algos: int, runs: int, tasks: int, steps: int | None = None):
    shape = (runs, tasks) if steps is None else (runs, tasks, steps)
    return {f"algo{i}": rng.beta(2.0 + 0.3 * i, 3.0, size=shape) for i in range(algos)}


def _paper_size_results(path: Path) -> Path:
    """A results directory in ``era run``'s layout with 4 x 20 x 10 runs of 50 evaluations each."""
    import json

    import pandas as pd

    rng = np.random.default_rng(0)
    algos = ["sac", "sac-era", "ppo", "ppo-era"]
    tasks = [f"dmc:domain{i}-task" for i in range(20)]
    rows, trials = [], []
    for algo in algos:
        skill = 0.55 if algo.endswith("-era") else 0.45
        for task in tasks:
            for seed in range(10):
                trial_id = f"{algo}-{task}-{seed}"
                trials.append({"trial_id": trial_id, "suite": "paper-size", "algo": algo, "base_algo": algo,
                               "task": task, "seed": seed, "status": "done", "error": None,
                               "config_hash": trial_id, "code_version": "bench", "packages": "{}",
                               "finished_at": "2026-01-01T00:00:00+0000"})
                final = 1000 * np.clip(rng.normal(skill, 0.15), 0, 1)
                for i in range(50):
                    score = final * (i + 1) / 50 + rng.normal(0, 20)
                    rows.append({"trial_id": trial_id, "suite": "paper-size", "algo": algo, "base_algo": algo,
                                 "task": task, "seed": seed, "step": 20_000 * (i + 1), "score": score,
                                 "normalized_score": score / 1000, "entropy": rng.normal(1.0, 0.1),
                                 "wall_time_s": 60.0 * (i + 1)})
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path / "results.parquet", index=False)
    pd.DataFrame(trials).to_parquet(path / "trials.parquet", index=False)
    variants = [{"algo": a, "base_algo": a, "label": a, "sweep": {}} for a in algos]
    (path / "suite.json").write_text(json.dumps({"name": "paper-size", "benchmark": "dmc", "paper": None,
                                                 "variants": variants, "tasks": tasks, "seeds": list(range(10))}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=50_000)
    parser.add_argument("--skip-rliable", action="store_true", help="time ours only")
    parser.add_argument("--skip-report", action="store_true", help="skip the whole-report timing")
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

    if not args.skip_report:
        import tempfile

        from harness.report import write_report

        with tempfile.TemporaryDirectory() as tmp:
            results = _paper_size_results(Path(tmp) / "results")
            start = time.perf_counter()
            write_report(results, Path(tmp) / "report", reps=args.reps)
            t_report = time.perf_counter() - start
        print(f"era report, paper-size results (4 x 20 x 10, 50 evaluations), {args.reps} reps: {t_report:.2f} s")


if __name__ == "__main__":
    main()
