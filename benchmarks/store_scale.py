"""The driver's results store at cluster scale: synthetic trial states through the real store.

For each size, a suite of 2 algorithms (ppo, ppo-era) x gym:Hopper-v5 x N/2 seeds is expanded with
``harness.suite`` and every trial gets a state file (``harness.store.write_state``) holding
``--evals`` evaluations with the records an RL trial keeps (step, score, entropy, wall_time_s, and
entropy_min, sim_steps, plus target_entropy and delta for ppo-era). Then a fresh Python process,
the driver, does what ``era run --resume`` and its ``Recorder`` do, with no training and no Ray
cluster:

  plan          ``harness.run.runner.plan_run``: check the results folder, read every state file
  first write   ``Recorder.write_tables``: results.parquet and trials.parquet over all trials
  steady write  one trial reports a new evaluation (its records are replaced, as after a
                checkpoint), then ``Recorder.write_tables`` again: what the driver pays every
                few seconds while trials report (the median of three)
  peak memory   the driver process's peak resident memory (``ru_maxrss``), imports included

Each time is given as wall-clock seconds and as the CPU seconds of the driver process: on a
machine shared with other work, the wall clock mostly measures the neighbours, the CPU seconds
much less so. Creating the state files (one process per size too) is timed but is not a goal.

Goal: at 10,000 trials x 100 evaluations (1M rows), a table write under 1 s and a driver peak
memory under 600 MB; time and memory growing no worse than linearly with the number of trials.

    nice -n 10 python benchmarks/store_scale.py --trials 1000 10000 100000 --evals 100
    python benchmarks/store_scale.py --tiny          # 20 trials x 5 evaluations: a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "gym:Hopper-v5"
GOAL_TRIALS, GOAL_WRITE_S, GOAL_PEAK_MB = 10_000, 1.0, 600.0
QUIET_LOAD_PER_CPU = 0.25  # a 1-minute load average above this share of the CPUs: times are inflated


def _suite_yaml(trials: int) -> str:
    return textwrap.dedent(f"""\
        name: store-scale
        benchmark: gym_mujoco
        algorithms:
          ppo: {{settings: {{n_steps: 2048, batch_size: 64}}}}
          ppo-era: {{settings: {{n_steps: 2048, batch_size: 64, entropy_per_dim: 0.25, delta: auto}}}}
        tasks: [{TASK}]
        seeds: {trials // 2}
        budget: 1000000
        """)


def _suite(folder: Path, trials: int):
    from harness.suite import expand, load_suite

    path = folder / "store-scale.yaml"
    if not path.exists():
        path.write_text(_suite_yaml(trials))
    suite = load_suite(path)
    return suite, expand(suite)


def _records(index: int, evals: int, era: bool) -> list[dict[str, float]]:
    """What an RL trial's checkpoint holds after ``evals`` evaluations (deterministic per trial)."""
    records = []
    skill = 1000.0 + (index * 7919) % 2000
    for i in range(evals):
        step = 10_000 * (i + 1)
        record = {"step": step, "score": skill * (i + 1) / evals + (index % 13) * 0.37,
                  "entropy": 1.5 - 0.01 * i, "wall_time_s": 12.5 * (i + 1) + index % 7,
                  "entropy_min": 0.9 - 0.005 * i, "sim_steps": float(step)}
        if era:
            record.update(target_entropy=-0.75, delta=0.1 + 0.001 * i)
        records.append(record)
    return records


def _environment() -> dict:
    packages = {name: "1.0.0" for name in ("numpy", "torch", "gymnasium", "mujoco", "stable-baselines3",
                                             "ray", "pandas", "pyarrow", "scipy", "pyyaml")}
    return {"packages": packages, "hostname": "worker-01", "device": "cpu", "python": "3.11.7"}


def create(folder: Path, trials: int, evals: int) -> dict:
    """Write the suite's ``suite.json`` and one state file per trial (all done)."""
    from harness.store import TrialState, write_json_atomic, write_state

    suite, expanded = _suite(folder, trials)
    out = folder / "results"
    plain = suite.plain()
    plain["trials"] = len(expanded)
    write_json_atomic(plain, out / "suite.json")
    environment = _environment()
    began = time.perf_counter()

    def one(item):
        index, trial = item
        state = TrialState(trial.trial_id, status="done", records=_records(index, evals, trial.variant == "ppo-era"),
                           checkpoint=f"{out}/tune/run/{trial.trial_id}/checkpoint_000001", code_version="bench",
                           environment=environment, runs=["store-scale-run"], started_at=1.7e9,
                           finished_at=1.7e9 + 3600)
        write_state(out, state)

    with ThreadPoolExecutor(8) as pool:  # the fsync of each file waits on the disk, not the CPU
        for _ in pool.map(one, enumerate(expanded), chunksize=64):
            pass
    return {"create_s": time.perf_counter() - began}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def measure(folder: Path, trials: int, evals: int) -> dict:
    """The driver's side of a resumed run: plan, then the first and steady-state table writes."""
    import pyarrow.parquet as pq

    from harness.run.recorder import Recorder
    from harness.run.runner import RunOptions, plan_run

    suite, expanded = _suite(folder, trials)
    out = folder / "results"
    imports_mb = _peak_mb()
    (plan_s, plan_cpu), states = _timed(lambda: plan_run(suite, expanded, RunOptions(out=out, resume=True)))
    recorder = Recorder(out, suite, expanded, states, "store-scale-run", "bench", table_interval_s=0.0)
    (first_s, first_cpu), _ = _timed(recorder.write_tables)
    steady = []
    for round_ in range(3):  # one trial reports a new evaluation each time, as after a checkpoint
        trial = expanded[round_ * 7 % len(expanded)]
        state = recorder.states[trial.trial_id]
        records = list(state.records)
        last = dict(records[-1])
        last.update(step=int(last["step"]) + 10_000, score=float(last["score"]) + 1.0)
        state.records = records + [last]
        steady.append(_timed(recorder.write_tables)[0])
    rows = pq.read_metadata(out / "results.parquet").num_rows
    table_rows = pq.read_metadata(out / "trials.parquet").num_rows
    assert table_rows == len(expanded), (table_rows, len(expanded))
    return {"trials": len(expanded), "evals": evals, "rows": rows, "plan_s": plan_s, "plan_cpu_s": plan_cpu,
            "first_write_s": first_s, "first_write_cpu_s": first_cpu,
            "steady_write_s": statistics.median(s for s, _ in steady),
            "steady_write_cpu_s": statistics.median(c for _, c in steady),
            "imports_mb": imports_mb, "peak_mb": _peak_mb()}


def _timed(work):
    """((wall seconds, CPU seconds of this process), what ``work()`` returned)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def _child(stage: str, folder: Path, trials: int, evals: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--dir", str(folder),
               "--trials", str(trials), "--evals", str(evals)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"the {stage} step at {trials} trials failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())


#: the table's columns: (heading, key, format)
_COLUMNS = [("trials", "trials", ">8"), ("evals", "evals", ">5"), ("rows", "rows", ">9"),
            ("create s", "create_s", ">9.2f"), ("plan s", "plan_s", ">8.3f"), ("(cpu)", "plan_cpu_s", ">7.3f"),
            ("write s", "first_write_s", ">8.4f"), ("(cpu)", "first_write_cpu_s", ">7.4f"),
            ("steady s", "steady_write_s", ">9.4f"), ("(cpu)", "steady_write_cpu_s", ">7.4f"),
            ("peak MB", "peak_mb", ">8.0f"), ("imports MB", "imports_mb", ">10.0f")]


def _table(results: list[dict]) -> str:
    header = " ".join(f"{title:{fmt.split('.')[0]}}" for title, _, fmt in _COLUMNS)
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(" ".join(f"{r[key]:{fmt}}" for _, key, fmt in _COLUMNS))
    return "\n".join(lines)


def _growth(results: list[dict]) -> list[str]:
    """Per step between sizes: (time or memory ratio) / (trials ratio); <= 1 is linear or better.
    Memory is counted above what the imports take, which does not grow with the trials."""
    lines = []
    for small, big in zip(results, results[1:]):
        scale = big["trials"] / small["trials"]
        parts = []
        for key, label in (("plan_s", "plan"), ("first_write_s", "write"), ("steady_write_s", "steady")):
            cpu = key[:-2] + "_cpu_s"
            parts.append(f"{label} x{big[key] / max(small[key], 1e-9):.1f} "
                         f"(cpu x{big[cpu] / max(small[cpu], 1e-9):.1f})")
        grown = (big["peak_mb"] - big["imports_mb"]) / max(small["peak_mb"] - small["imports_mb"], 1e-9)
        parts.append(f"memory above imports x{grown:.1f}")
        lines.append(f"{small['trials']} -> {big['trials']} trials (x{scale:g}): " + ", ".join(parts))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10_000, 100_000],
                        help="suite sizes (even: 2 algorithms x N/2 seeds)")
    parser.add_argument("--evals", type=int, default=100, help="evaluations per trial")
    parser.add_argument("--tiny", action="store_true", help="20 trials x 5 evaluations (a quick check)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the synthetic folders go (a temp dir)")
    parser.add_argument("--stage", choices=["create", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        work = create if args.stage == "create" else measure
        print(json.dumps(work(args.dir, args.trials[0], args.evals)))
        return
    sizes, evals = ([20], 5) if args.tiny else (args.trials, args.evals)
    if any(n < 2 or n % 2 for n in sizes):
        parser.error("--trials must be even numbers >= 2 (2 algorithms x N/2 seeds)")
    cpus = os.cpu_count() or 1
    start_load = _load()
    print(f"store_scale: {', '.join(map(str, sizes))} trials x {evals} evaluations; {cpus} CPUs, "
          f"niceness {os.nice(0)}, load average (1, 5, 15 min) at start: {start_load}", flush=True)
    results = []
    for trials in sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"store-scale-{trials}-", dir=args.workdir))
        try:
            created = _child("create", folder, trials, evals)
            measured = _child("measure", folder, trials, evals)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        results.append({**created, **measured})
        print(f"  {trials} trials: plan {measured['plan_s']:.3f} s, write {measured['first_write_s']:.3f} s, "
              f"steady {measured['steady_write_s']:.3f} s, peak {measured['peak_mb']:.0f} MB (load "
              f"{_load()[0]})", flush=True)
    end_load = _load()
    print()
    print(_table(results))
    print()
    for line in _growth(results):
        print("growth " + line)
    goal = next((r for r in results if r["trials"] == GOAL_TRIALS), None)
    print(f"goal at {GOAL_TRIALS} trials: a table write < {GOAL_WRITE_S:g} s and driver peak memory < "
          f"{GOAL_PEAK_MB:g} MB; growth no worse than linear (ratios above <= the trials ratio)")
    if goal is not None:
        write_ok = max(goal["first_write_s"], goal["steady_write_s"]) < GOAL_WRITE_S
        memory_ok = goal["peak_mb"] < GOAL_PEAK_MB
        print(f"  write {goal['first_write_s']:.3f} s (steady {goal['steady_write_s']:.3f} s): "
              f"{'met' if write_ok else 'NOT met'}; peak memory {goal['peak_mb']:.0f} MB: "
              f"{'met' if memory_ok else 'NOT met'}")
        cpu_ok = max(goal["first_write_cpu_s"], goal["steady_write_cpu_s"]) < GOAL_WRITE_S
        print(f"  in CPU seconds of the driver: write {goal['first_write_cpu_s']:.3f} s (steady "
              f"{goal['steady_write_cpu_s']:.3f} s): {'under' if cpu_ok else 'NOT under'} {GOAL_WRITE_S:g} s")
    print(f"load average (1, 5, 15 min) at start {start_load}, at end {end_load}")
    busiest = max(start_load[0], end_load[0])
    if busiest > QUIET_LOAD_PER_CPU * cpus:
        print(f"note: the machine was not quiet (1-minute load {busiest} on {cpus} CPUs, above "
              f"{QUIET_LOAD_PER_CPU * cpus:g}): other work shared the CPUs, so the times are upper bounds "
              f"and do not count as this code's own; the memory figures are unaffected")


if __name__ == "__main__":
    main()
