"""TD-MPC2 and TD-MPC2-ERA for real, at toy sizes: ERA on the prior, a trial's records, a kill and
an exact resume, and both algorithms under Ray Tune."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.errors import MissingDependencyError
from adapters.era import HALF_LOG_2PI_E, GaussianERA
from adapters.tdmpc2.upstream import check_available
from adapters.trial import TrialSpec, run_trial

try:
    check_available()
except MissingDependencyError as error:
    pytest.skip(f"TD-MPC2 is not installed ({error})", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[3]
#: a world model of a few thousand parameters, 16 planning samples, 50-step episodes
TINY = dict(model_size=1, mlp_dim=32, enc_dim=32, latent_dim=16, num_samples=16, num_elites=4, num_pi_trajs=2,
            iterations=1, batch_size=16, episode_length=50, seed_steps=50)
TASK = "dmc:cartpole-swingup"


def _spec(algo: str = "tdmpc2-era", budget: int = 150, **settings) -> TrialSpec:
    return TrialSpec(algo, TASK, 3, budget, eval_every=50, eval_episodes=1, settings={**TINY, **settings})


def _rows(records) -> list[dict]:
    return [{k: v for k, v in r.as_row().items() if k != "wall_time_s"} for r in records]


@pytest.fixture(scope="module")
def era_records():
    return list(run_trial(_spec()))


@pytest.fixture(scope="module")
def era_run():
    """A freshly built TD-MPC2-ERA agent on a 4-dimensional task, with one random episode in its buffer."""
    import torch

    from adapters.tdmpc2.agent import build_run
    from adapters.tdmpc2.settings import resolve_settings
    from adapters.tdmpc2.training import _episode

    spec = TrialSpec("tdmpc2-era", "dmc:walker-walk", 0, 100, eval_every=50, settings={**TINY, "delta": 0.3})
    run = build_run(spec, resolve_settings(spec), torch.device("cpu"))
    _episode(run, 0)
    return run


def _states(run, n: int = 64):
    import torch

    env, observations = run.env, []
    obs = env.reset()
    for _ in range(n):
        observations.append(obs)
        obs, *_ = env.step(env.rand_act())
    return torch.stack(observations)


def test_eras_prior_has_its_gaussian_entropy_pinned_on_real_states(era_run):
    """TD-MPC2's own ``pi`` returns ERA's log-std: its Gaussian entropy is H0 + δ in every state,
    and ``log σ`` is what GaussianERA makes of the prior network's raw output."""
    import torch

    model = era_run.agent.model
    z = model.encode(_states(era_run), None)
    with torch.no_grad():
        _, info = model.pi(z, None)
        mean, raw = model._pi.network(z).chunk(2, dim=-1)
        expected = GaussianERA(6, 0.25 * 6, -8.0, 0.0, delta=0.3)(mean, raw)[1]
    entropy = (info["log_std"] + HALF_LOG_2PI_E).sum(-1).numpy()
    assert entropy == pytest.approx(np.full(len(entropy), 0.25 * 6 + 0.3), abs=1e-4)
    assert info["log_std"].numpy() == pytest.approx(expected.numpy(), abs=1e-5)
    assert float(info["log_std"].std()) > 0  # the network still spreads σ over dimensions, state by state


def test_eras_prior_trains_through_tdmpc2s_own_update(era_run):
    """Upstream's update (with the entropy bonus off) moves the prior network's weights."""
    before = [p.detach().clone() for p in era_run.agent.model._pi.parameters()]
    assert era_run.cfg.entropy_coef == 0.0
    for _ in range(3):
        info = era_run.agent.update(era_run.buffer)
    after = list(era_run.agent.model._pi.parameters())
    assert all(np.isfinite(float(v)) for v in info.values())
    assert any(not bool((a == b).all()) for a, b in zip(after, before))


def test_era_trial_records_finite_scores_and_its_entropy_floor(era_records):
    rows = [r.as_row() for r in era_records]
    assert [r["step"] for r in rows] == [50, 100, 150]
    assert all(np.isfinite(list(r.values())).all() for r in rows)
    for row in rows:
        assert row["target_entropy"] == pytest.approx(0.25)  # 0.25 x 1 action dimension
        assert row["gaussian_entropy"] == pytest.approx(row["target_entropy"] + row["delta"], abs=1e-4)
        assert row["sim_steps"] == 2 * row["step"]
    # δ rises from 0 once updates start while the squashed prior sits below its floor
    assert rows[0]["delta"] == 0.0 and rows[-1]["delta"] > 0.0


def _era_trial(out: Path) -> list[str]:
    settings = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    return [sys.executable, "-m", "harness.cli", "trial", "--algo", "tdmpc2-era", "--task", TASK, "--seed", "3",
            "--steps", "150", "--eval-every", "50", "--eval-episodes", "1", "--device", "cpu", "--out", str(out),
            *settings]


def test_killed_trial_resumes_with_no_repeated_or_missing_evaluation(era_records, tmp_path):
    """SIGKILL right after the first checkpoint; the rerun's rows are the uninterrupted trial's, bit for bit."""
    out = tmp_path / "trial"
    progress = out / "checkpoint" / "current" / "progress.json"
    process = subprocess.Popen(_era_trial(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert progress.exists(), "the trial wrote no checkpoint"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    from adapters.trial import TrialCheckpoint

    assert [r.step for r in TrialCheckpoint(out / "checkpoint").records()] == [50]  # killed before the second
    from harness.cli import main

    assert main(_era_trial(out)[3:]) == 0
    results = pd.read_parquet(out / "results.parquet").sort_values("step")
    assert results["step"].tolist() == [50, 100, 150]
    columns = [c for c in _rows(era_records)[0]]
    resumed = results[columns].to_dict("records")
    assert resumed == _rows(era_records)


def test_tdmpc2_and_tdmpc2_era_run_under_ray_tune(local_ray, tmp_path, capsys):
    from harness.cli import main

    suite = tmp_path / "suite.yaml"
    settings = ", ".join(f"{k}: {v}" for k, v in TINY.items())
    suite.write_text(textwrap.dedent(f"""\
        name: tdmpc2-smoke
        algorithms:
          tdmpc2: {{}}
          tdmpc2-era: {{}}
        tasks: [{TASK}]
        settings: {{{settings}}}
        seeds: [0]
        budget: 100
        eval: {{every: 50, episodes: 1}}
        """))
    out = tmp_path / "results"
    assert main(["run", str(suite), "--out", str(out), "--report-dir", str(tmp_path / "report"),
                 "--progress-every", "600"]) == 0
    assert "2/2 done, 0 running, 0 failed" in capsys.readouterr().out
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(zip(results.algo, results.step)) == [("tdmpc2", 50), ("tdmpc2", 100), ("tdmpc2-era", 50),
                                                       ("tdmpc2-era", 100)]
    assert np.isfinite(results[["score", "entropy", "gaussian_entropy"]].to_numpy()).all()
    era, plain = results[results.algo == "tdmpc2-era"], results[results.algo == "tdmpc2"]
    assert (era.gaussian_entropy - era.delta).to_numpy() == pytest.approx([0.25, 0.25], abs=1e-4)
    assert plain["target_entropy"].isna().all()  # TD-MPC2's own prior: no ERA floor
    assert "tdmpc2-era" in (tmp_path / "report" / "report.md").read_text()


def test_throughput_benchmark_runs_and_prints_the_era_ratio(capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import tdmpc2_throughput
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert tdmpc2_throughput.main(["--tiny", "--task", TASK, "--episode-length", "50", "--repeats", "1",
                                   "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    rates = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in printed.splitlines()
             if line.startswith("| tdmpc2")}
    assert set(rates) == {"tdmpc2", "tdmpc2-era"} and all(rate > 0 for rate in rates.values())
    ratio = float(printed.split("takes ")[1].split("x")[0])
    assert ratio == pytest.approx(rates["tdmpc2"] / rates["tdmpc2-era"], rel=1e-2)
