"""A results folder of the cpu-repro shape, written through the real store: the trials of
``suites/cpu-repro.yaml`` (PPO and PPO-ERA on three MuJoCo tasks, ResNet and ResNet-ERA on digits,
5 seeds), each with synthetic evaluations, the tables written by ``harness.store.write_tables`` as
``era run`` writes them.

The scores are chosen before any report reads them: on the MuJoCo tasks every PPO-ERA seed ends
0.08 normalized points above the same PPO seed (ERA better); on digits every ResNet-ERA seed ends
0.8 top-1 points below the same ResNet seed (ERA worse).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CPU_REPRO = ROOT / "suites" / "cpu-repro.yaml"


def _final_score(task: str, algo: str, seed: int) -> float:
    """The last evaluation's raw score of one trial."""
    from harness.stats.normalize import reference

    noise = np.random.default_rng([seed, sum(map(ord, task))]).normal(0.0, 0.02)
    if task == "digits":
        return 98.6 + 0.3 * noise / 0.02 - (0.8 if algo == "resnet-era" else 0.0)
    ref = reference(None, task)
    normalized = 0.15 + noise + (0.08 if algo == "ppo-era" else 0.0)
    return float(ref.low + normalized * (ref.high - ref.low))


def write_cpu_repro_shape(out: str | Path, seeds: int | None = None) -> Path:
    """The results folder (``out``) of ``suites/cpu-repro.yaml``'s trials, with ``seeds`` of its 5."""
    from harness.store import TrialState, write_tables
    from harness.suite import load_and_expand

    suite, trials = load_and_expand(CPU_REPRO, check=False)
    trials = [t for t in trials if seeds is None or t.spec.seed < seeds]
    states = {}
    for i, trial in enumerate(trials):
        algo, task, seed = trial.variant, trial.spec.task, trial.spec.seed
        last = _final_score(task, algo, seed)
        steps = (trial.spec.budget // 2, trial.spec.budget)
        records = [{"step": step, "score": last * (k + 1) / len(steps), "entropy": 0.9 if "era" in algo else 1.0,
                    "wall_time_s": 10.0 * (k + 1)} for k, step in enumerate(steps)]
        states[trial.trial_id] = TrialState(trial.trial_id, status="done", records=records, code_version="test",
                                            started_at=1.7e9 + i, finished_at=1.7e9 + 100 + i)
    write_tables(out, suite, trials, states)
    return Path(out)
