"""Workers start once: Tune reuses a trial's worker process for the next trial, and a trial run
second in a worker records exactly what it records run first in a fresh one (real Ray, real SB3).

Also: the driver of ``era run`` imports no torch (validation reads the kept library answers, and
Tune's TensorBoard logger gets tensorboardX without torch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
#: what differs between two runs of the same seeded trial: how long things took
TIMING = ("wall_time_s",)


def _suite(tmp_path: Path, name: str, algorithms: dict[str, str], seeds: list[int]) -> Path:
    path = tmp_path / f"{name}-{'-'.join(algorithms)}-{len(seeds)}.yaml"
    lines = [f"name: {name}", "algorithms:", *(f"  {algo}: {entry}" for algo, entry in algorithms.items()),
             "tasks: [gym:Pendulum-v1]", f"seeds: {seeds}", "budget: 256", "eval: {every: 128, episodes: 2}",
             "resources: {cpus: 1}", "max_concurrent: 1"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _states(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "trials").glob("*.json")}


def _rows(out: Path, trial_id: str) -> pd.DataFrame:
    frame = pd.read_parquet(out / "results.parquet")
    return frame[frame.trial_id == trial_id].drop(columns=list(TIMING)).reset_index(drop=True)


SETTINGS = "{settings: {n_steps: 64, batch_size: 32, n_epochs: 2, policy_kwargs: {net_arch: [16]}}}"


def test_a_trial_run_after_others_in_a_reused_worker_records_what_it_records_first_in_a_fresh_one(
        local_ray, tmp_path):
    out = tmp_path / "shared"
    shared = _suite(tmp_path, "reuse", {"ppo-era": SETTINGS, "ppo": SETTINGS}, [0, 1])
    assert main(["run", str(shared), "--out", str(out), "--no-report", "--progress-every", "600"]) == 0
    states = _states(out)
    assert len(states) == 4 and all(s["status"] == "done" for s in states.values())
    order = sorted(states.values(), key=lambda s: s["started_at"])
    pids = {s["environment"]["pid"] for s in order}
    assert len(pids) == 1, f"the four trials ran in {len(pids)} worker processes, not one: {pids}"
    last = order[-1]  # ran after three other trials (ERA and not) in the same process
    (trial,) = [t for t in _trials(shared) if t.trial_id == last["trial_id"]]

    solo_out = tmp_path / "alone"
    alone = _suite(tmp_path, "reuse", {trial.variant: SETTINGS}, [trial.spec.seed])
    assert main(["run", str(alone), "--out", str(solo_out), "--no-report", "--progress-every", "600"]) == 0
    (solo,) = _states(solo_out).values()
    assert solo["trial_id"] == last["trial_id"] and solo["environment"]["pid"] not in pids  # first, fresh worker

    reused, fresh = _rows(out, last["trial_id"]), _rows(solo_out, last["trial_id"])
    assert list(fresh.step) == [128, 256]
    others = sorted(set(reused.columns) - set(fresh.columns))  # the other algorithm's metrics and settings
    assert others and reused[others].isna().all().all()
    pd.testing.assert_frame_equal(reused[fresh.columns], fresh, check_exact=True)


def _trials(path: Path):
    from harness.suite import load_and_expand

    return load_and_expand(path)[1]


def test_the_driver_imports_no_torch_for_tensorboard():
    code = ("import sys; from harness.run.runner import _tensorboard_writer_without_torch as seam; seam(); "
            "import tensorboardX; print('torch' in sys.modules, 'tensorboardX' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
