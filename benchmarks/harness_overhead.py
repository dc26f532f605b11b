"""What running a suite through Ray Tune costs, measured side by side on this machine.

The same N CPU-bound trials (PPO on Pendulum, each sized to about ``--trial-seconds``) run

  (a) one after another in a plain loop over ``adapters.trial.run_trial`` (a fresh Python process,
      so that both sides pay for starting Python and importing torch and SB3),
  (b) through ``era run`` (a subprocess: validation, a local Ray, Tune, results tables), and
  (c) split between as many plain loops as cores (a process each, 1 torch thread, no Ray) run
      side by side: the machine's own ceiling for running these trials in parallel, which
      tells how much of (b)'s gap to the ideal speed-up is the harness and how much the machine
      (on a VM whose cores are shared with the host's other guests, two processes side by side
      may each run slower per CPU-second than one alone),

then M tiny trials run both ways to isolate Tune's per-trial scheduling cost. Prints, side by
side from one run: the parallel speed-up, the machine's ceiling and era run against it, Ray's
start-up, the per-trial start (in a reused worker, from one trial's end to the next one's start),
the scheduling cost per trial, the CPU the harness adds, and how long ``era list
suites/smoke.yaml`` takes on a warm machine. It says when the
machine was not quiet enough for the wall-clock numbers to count (load average above
``--quiet-load``).

Goals: speed-up >= 1.9x on 2 cores for eight ~30 s trials, per-trial start < 0.5 s,
``era list suites/smoke.yaml`` < 1 s.

    python benchmarks/harness_overhead.py                  # 8 trials of ~30 s: ~9 minutes on 2 cores
    python benchmarks/harness_overhead.py --trials 4 --trial-seconds 10   # a quick look
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "gym:Pendulum-v1"
N_STEPS = 512  # PPO rollout length: budgets are multiples of it


def _spec(seed: int, budget: int):
    from adapters.trial import TrialSpec

    return TrialSpec("ppo", TASK, seed, budget, eval_every=budget, eval_episodes=1,
                     settings={"n_steps": N_STEPS, "batch_size": 64}, device="cpu")


def _sequential(budget: int, seeds: range) -> list[float]:
    """(a): a plain loop calling the trial function; seconds per trial."""
    from adapters.trial import run_trial

    times = []
    for seed in seeds:
        began = time.perf_counter()
        records = list(run_trial(_spec(seed, budget)))
        times.append(time.perf_counter() - began)
        assert records and records[-1].step == budget
    return times


class _TreeCpu:
    """CPU seconds used by a process's descendants, sampled from /proc while it runs.

    On a machine shared with other work, wall-clock ratios mostly measure the neighbours; CPU
    seconds do not: they show what the harness itself adds (Ray's daemons, Tune's driver, worker
    start-up, checkpoint copies). Each descendant counts its own CPU once, whoever reaps it (its
    parent, or init once Ray leaves it behind: it is followed after it is reparented); the
    process itself is counted by :func:`_timed` when it ends. A process that ends between two
    samples loses < 0.2 s.
    """

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self._stop = pid, threading.Event()
        self.seen: dict[tuple[int, int], float] = {}  # (pid, start time) -> CPU seconds as last seen
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        stats: dict[tuple[int, int], tuple[int, float]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            key = (int(stat.parent.name), int(fields[19]))  # pid, start time: a reused pid is another process
            stats[key] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
        children: dict[int, list[tuple[int, int]]] = {}
        for key, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(key)
        tree = set(self.seen) & stats.keys()  # those seen before, wherever they are now
        todo = [self.pid, *(pid for pid, _ in tree)]
        while todo:
            for key in children.get(todo.pop(), ()):
                if key not in tree and key[0] != self.pid:
                    tree.add(key)
                    todo.append(key[0])
        for key in tree:
            self.seen[key] = max(self.seen.get(key, 0.0), stats[key][1])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.2)

    def stop(self) -> float:
        """The descendants' CPU seconds, each process's own once."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(self.seen.values())


def _ended(pid: int) -> tuple[float, float] | None:
    """(its own CPU seconds, those of the children it reaped) of a child that has ended, read
    before it is reaped; ``None`` while it runs."""
    if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _busy_cpu_seconds() -> float:
    """CPU seconds every process of the machine has used since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


#: CPU seconds of the processes the commands run through :func:`_timed` left unreaped (Ray's
#: daemons and workers): this process's rusage misses them
_UNREAPED_CPU = [0.0]


def _own_cpu_seconds() -> float:
    """CPU seconds of this process, of every child it has waited for, and of what the timed
    commands left unreaped: everything this benchmark ran."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _UNREAPED_CPU[0]


def _timed(commands: list[list[str]], env: dict | None = None
           ) -> list[tuple[float, float, subprocess.CompletedProcess]]:
    """Run ``commands`` side by side: for each, (wall seconds from the start to its end, CPU
    seconds of its process tree, the completed process)."""
    began = time.perf_counter()
    outputs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in commands]  # no pipe fills up
    processes = [subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=ROOT)
                 for command, (out, err) in zip(commands, outputs)]
    trees = [_TreeCpu(process.pid) for process in processes]
    ended: dict[int, tuple[float, tuple[float, float]]] = {}  # index -> (wall, (own CPU, reaped children's))
    while len(ended) < len(processes):
        for i, process in enumerate(processes):
            if i not in ended and (cpu := _ended(process.pid)) is not None:
                ended[i] = (time.perf_counter() - began, cpu)
                process.wait()
        time.sleep(0.05)
    results = []
    for i, (command, process, tree, (out, err)) in enumerate(zip(commands, processes, trees, outputs)):
        wall, (own, reaped) = ended[i]
        descendants = tree.stop()
        # this process's rusage has the command's own CPU and what it reaped, not what it left behind
        _UNREAPED_CPU[0] += max(0.0, descendants - reaped)
        out.seek(0), err.seek(0)
        results.append((wall, own + descendants,
                        subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())))
        out.close(), err.close()
    return results


def _plain_processes(budget: int, trials: int, processes: int = 1) -> tuple[float, float, list[float]]:
    """(a) in fresh processes, the trials' seeds split between ``processes`` plain loops side by
    side (1: the sequential loop): (wall to the last one's end, CPU seconds of all, seconds of
    each trial inside them)."""
    seeds = [range(trials)[k::processes] for k in range(processes)]
    commands = [[sys.executable, __file__, "--loop", str(budget), str(len(part)), "--first-seed", str(part.start),
                 "--seed-step", str(part.step)] for part in seeds if len(part)]
    done = _timed(commands)
    times = []
    for (_, _, process), command in zip(done, commands):
        if process.returncode != 0:
            sys.exit(f"the plain loop failed:\n{process.stderr}")
        times += [float(x) for x in process.stdout.split()[-int(command[4]):]]
    return max(wall for wall, _, _ in done), sum(cpu for _, cpu, _ in done), times


def _suite(path: Path, name: str, budget: int, seeds: int) -> Path:
    path.write_text(
        f"name: {name}\n"
        f"algorithms:\n  ppo: {{settings: {{n_steps: {N_STEPS}, batch_size: 64}}}}\n"
        f"tasks: [{TASK}]\nseeds: {seeds}\nbudget: {budget}\neval: {{every: {budget}, episodes: 1}}\n"
        f"resources: {{cpus: 1}}\n"
    )
    return path


def _trial_starts(out: Path) -> list[float]:
    """Seconds from one trial's end to the next one's start in the same worker process, from the
    driver's trial states (``started_at``, ``finished_at``, the worker's ``pid``)."""
    import json

    by_worker: dict[int, list[tuple[float, float]]] = {}
    for path in (out / "trials").glob("*.json"):
        state = json.loads(path.read_text())
        pid = state.get("environment", {}).get("pid")
        if pid is not None and state.get("started_at") and state.get("finished_at"):
            by_worker.setdefault(pid, []).append((state["started_at"], state["finished_at"]))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps += [start - previous_end for (_, previous_end), (start, _) in zip(spans, spans[1:])]
    return gaps


def _era_list_seconds(repeats: int = 3) -> float:
    """Wall seconds of ``era list suites/smoke.yaml`` on a warm machine: the best of ``repeats``
    after one run that warms the caches (the OS's file cache and the kept library answers)."""
    command = [sys.executable, "-m", "harness.cli", "list", str(ROOT / "suites" / "smoke.yaml")]
    times = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            sys.exit(f"era list failed:\n{done.stderr}")
    return min(times[1:])


def _era_run(suite: Path, out: Path, cores: int) -> tuple[float, float, float, float]:
    """(b): ``era run`` in a subprocess; (wall, CPU of its process tree, Ray start, Tune fit) seconds."""
    env = dict(os.environ)
    if "RAY_TMPDIR" not in env:  # Ray's files next to the results, removed with them
        env["RAY_TMPDIR"] = str(out.parent / "ray")
    command = [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out), "--no-report",
               "--num-cpus", str(cores), "--progress-every", "600"]
    ((wall, cpu, done),) = _timed([command], env)
    if done.returncode != 0:
        sys.exit(f"era run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    timing = re.search(r"Ray start ([\d.]+) s, trials under Tune ([\d.]+) s", done.stdout)
    if timing is None:
        sys.exit(f"no timing line in era run's output:\n{done.stdout}")
    return wall, cpu, float(timing.group(1)), float(timing.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="N CPU-bound trials (default 8)")
    parser.add_argument("--trial-seconds", type=float, default=30.0, help="target length of one trial")
    parser.add_argument("--tiny", type=int, default=16, help="M tiny trials for the scheduling cost")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    parser.add_argument("--quiet-load", type=float, default=0.5,
                        help="the load average at start above which the machine is not quiet enough, and "
                             "a fifth of it: the share of a core others may take meanwhile (default 0.5)")
    parser.add_argument("--loop", nargs=2, type=int, metavar=("BUDGET", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--first-seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seed-step", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.loop:  # the body of (a), in its own process: print each trial's seconds
        # one thread, as each trial has under Ray (cpus: 1): the two sides then do the same work
        # per process, and on a busy machine get comparable shares of it. For these small MLPs a
        # second intra-op thread does not lower the CPU time of a trial (measured: 3.3 s vs 3.4 s).
        torch.set_num_threads(1)
        seeds = range(args.first_seed, args.first_seed + args.seed_step * args.loop[1], args.seed_step)
        print(" ".join(f"{t:.3f}" for t in _sequential(args.loop[0], seeds)))
        return

    load_at_start = os.getloadavg()[0]
    busy_at_start, own_at_start, began = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
    print(f"machine: {os.cpu_count()} cores, load average {load_at_start:.2f} at start "
          f"(other processes share the cores: numbers are only clean on an idle machine); "
          f"1 torch thread per trial on both sides")
    list_s = _era_list_seconds()
    print(f"era list suites/smoke.yaml: {list_s:.2f} s (warm; best of 3)", flush=True)
    torch.set_num_threads(1)
    # calibrate: env steps per second of this trial on this machine
    _sequential(N_STEPS, range(1))  # warm up imports and caches
    probe = 8 * N_STEPS
    rate = probe / _sequential(probe, range(1))[0]
    budget = max(N_STEPS, round(rate * args.trial_seconds / N_STEPS) * N_STEPS)
    print(f"trial: ppo on {TASK}, {budget} env steps (~{budget / rate:.0f} s at {rate:.0f} steps/s); "
          f"N = {args.trials}, M = {args.tiny} tiny trials of {N_STEPS} steps")

    with tempfile.TemporaryDirectory(prefix="era-bench-", dir="/tmp") as tmp:  # short: Ray's socket paths
        tmp = Path(tmp)
        seq_wall, seq_cpu, seq = _plain_processes(budget, args.trials)
        t_seq = sum(seq)
        print(f"(a) sequential loop: {seq_wall:.1f} s = {t_seq:.1f} s of trials ({t_seq / args.trials:.1f} s "
              f"each) + {seq_wall - t_seq:.1f} s starting Python and importing; {seq_cpu:.1f} CPU-s", flush=True)
        wall, cpu, ray_start, fit = _era_run(_suite(tmp / "bench.yaml", "bench", budget, args.trials),
                                             tmp / "bench", args.cores)
        starts = _trial_starts(tmp / "bench")
        print(f"(b) era run: {wall:.1f} s = Ray start {ray_start:.1f} s + Tune {fit:.1f} s + "
              f"process start, validation and tables {wall - ray_start - fit:.1f} s; {cpu:.1f} CPU-s "
              f"in all its processes", flush=True)
        parallel = min(args.trials, args.cores)
        side_wall, side_cpu, side = _plain_processes(budget, args.trials, parallel)
        print(f"(c) {parallel} plain loops side by side (no Ray), the same trials split between them: "
              f"{side_wall:.1f} s ({sum(side) / args.trials:.1f} s a trial); {side_cpu:.1f} CPU-s", flush=True)
        _, _, tiny = _plain_processes(N_STEPS, args.tiny)
        tiny_seq = sum(tiny)
        _, _, tiny_start, tiny_fit = _era_run(_suite(tmp / "tiny.yaml", "tiny", N_STEPS, args.tiny),
                                              tmp / "tiny", args.cores)
        starts += _trial_starts(tmp / "tiny")

    overhead = (fit - t_seq / parallel) / args.trials
    tiny_overhead = (tiny_fit - tiny_seq / min(args.tiny, args.cores)) / args.tiny
    speedup, speedup_fit, ceiling = seq_wall / wall, t_seq / fit, seq_wall / side_wall
    extra_cpu = cpu - seq_cpu  # Ray's daemons, Tune's driver loop, each worker's imports, copies
    print()
    print(f"Ray start-up:              {ray_start:.1f} s (and {tiny_start:.1f} s in the second run)")
    print(f"per-trial overhead:        {overhead:.2f} s wall for ~{t_seq / args.trials:.0f} s trials (Tune time "
          f"minus perfect {parallel}-way sharing of the loop's time)")
    print(f"scheduling cost per trial: {tiny_overhead:.2f} s wall ({args.tiny} trials of {tiny_seq / args.tiny:.2f} s: "
          f"Tune {tiny_fit:.1f} s vs {tiny_seq:.1f} s sequential)")
    print(f"CPU the harness adds:      {extra_cpu:.1f} CPU-s over the run ({100 * extra_cpu / seq_cpu:.0f}% of the "
          f"loop's {seq_cpu:.0f} CPU-s): Ray's daemons, Tune's driver, each worker's imports")
    print(f"speed-up:                  {speedup:.2f}x command against command, {speedup_fit:.2f}x trials "
          f"against Tune's time (ideal {parallel:.0f}x)")
    print(f"the machine's ceiling:     {ceiling:.2f}x: the loop against {parallel} plain loops side by side, no Ray "
          f"(ideal {parallel:.0f}x; a trial took {sum(side) / sum(seq):.2f}x its time and "
          f"{side_cpu / seq_cpu:.2f}x the CPU-s there)")
    print(f"era run against it:        {wall / side_wall:.2f}x the plain loops' wall (era run wall / side by side "
          f"wall): era run reaches {100 * speedup / ceiling:.0f}% of the machine's ceiling, "
          f"{speedup:.2f}x of {ceiling:.2f}x")
    start = sorted(starts)[len(starts) // 2] if starts else float("nan")
    print(f"per-trial start:           {start:.2f} s median over {len(starts)} trials that followed another in "
          f"the same worker (from its end to the next one's start; max {max(starts, default=float('nan')):.2f} s)")
    print(f"era list smoke suite:      {list_s:.2f} s")
    elapsed = time.perf_counter() - began
    foreign = max(0.0, (_busy_cpu_seconds() - busy_at_start) - (_own_cpu_seconds() - own_at_start))
    print(f"other processes:           {foreign:.1f} CPU-s during the {elapsed:.0f} s of measurements "
          f"({100 * foreign / elapsed:.0f}% of one core)")
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"goals: speed-up >= 1.9x {verdict(speedup >= 1.9)}; per-trial start < 0.5 s {verdict(start < 0.5)}; "
          f"era list < 1 s {verdict(list_s < 1)}; scheduling cost < 1 s per trial {verdict(tiny_overhead < 1)}")
    if load_at_start > args.quiet_load or foreign / elapsed > args.quiet_load / 5:
        print(f"NOT QUIET: load average {load_at_start:.2f} at start, and other processes took "
              f"{100 * foreign / elapsed:.0f}% of a core meanwhile: the wall-clock ratios above do not count; "
              f"run again on an idle machine")
    else:
        print(f"quiet: load average {load_at_start:.2f} at start; other processes took "
              f"{100 * foreign / elapsed:.0f}% of a core meanwhile")


if __name__ == "__main__":
    main()
