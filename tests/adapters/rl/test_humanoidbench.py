"""HumanoidBench for real: every supported id, the compatibility layer, the install, trials.

HumanoidBench is not on PyPI. ``scripts/test.sh`` puts an unmodified copy on ``PYTHONPATH`` where
one sits beside the project (CI); on a machine without one these tests skip, except those that
check the errors a user without it gets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from adapters.rl.protocol import EnvProtocol

ROOT = Path(__file__).resolve().parents[3]
HB_SPEC = importlib.util.find_spec("humanoid_bench")
HB_DIR = Path(list(HB_SPEC.submodule_search_locations)[0]) if HB_SPEC else None
needs_hb = pytest.mark.skipif(
    HB_SPEC is None,
    reason="HumanoidBench is not installed: bash scripts/install_humanoidbench.sh (or put a copy on PYTHONPATH)",
)
ERA = [sys.executable, "-m", "harness.cli"]


def _without_humanoidbench_env() -> dict[str, str]:
    """This process's environment with every PYTHONPATH entry that holds ``humanoid_bench`` removed."""
    env = dict(os.environ)
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and not (Path(p) / "humanoid_bench").exists()]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *kept])
    return env


def _run(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: int = 600):
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------------------------
# Without HumanoidBench: one clear error with commands that work, exit 2, nothing written
# --------------------------------------------------------------------------------------------


def test_missing_humanoidbench_is_one_error_with_the_install_commands(tmp_path):
    env = _without_humanoidbench_env()
    probe = _run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('humanoid_bench'))"], env)
    if probe.stdout.strip() != "None":
        pytest.skip("HumanoidBench is pip-installed in this environment, so it cannot be hidden by PYTHONPATH")
    out = tmp_path / "hb"
    result = _run([*ERA, "trial", "--algo", "sac-era", "--task", "hb:h1hand-walk-v0", "--seed", "0",
                   "--steps", "500", "--out", str(out)], env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert "HumanoidBench is not installed" in message
    assert "git clone https://github.com/carlosferrazza/humanoid-bench.git" in message
    assert "git -C humanoid-bench checkout 791405f" in message
    assert "pip install --no-deps -e ./humanoid-bench" in message
    assert "scripts/install_humanoidbench.sh" in message
    assert not out.exists()
    suite = _run([*ERA, "list", "suites/humanoidbench-sac.yaml"], env)
    assert suite.returncode == 2 and "pip install --no-deps -e" in suite.stderr


@needs_hb
def test_a_wheel_without_assets_is_refused_with_the_install_commands(tmp_path):
    """Upstream's wheel (``pip install git+...``) lacks assets/, envs/ and dmc_deps/: rebuild that
    layout from the real package and check the error."""
    broken = tmp_path / "site" / "humanoid_bench"
    shutil.copytree(HB_DIR, broken, ignore=shutil.ignore_patterns("assets", "envs", "dmc_deps", "__pycache__"))
    env = _without_humanoidbench_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env["PYTHONPATH"]])
    out = tmp_path / "hb"
    result = _run([*ERA, "trial", "--algo", "sac", "--task", "hb:h1-walk-v0", "--steps", "100", "--out", str(out)], env)
    assert result.returncode == 2, result.stderr
    assert "has no assets/ folder" in result.stderr and "pip install --no-deps -e" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# The compatibility layer and every supported id
# --------------------------------------------------------------------------------------------


@needs_hb
def test_compatibility_layer_is_applied_only_when_humanoidbench_is_imported():
    code = (
        "import sys, adapters, adapters.rl.envs, adapters.rl;"
        "assert 'humanoid_bench' not in sys.modules, 'imported too early';"
        "from adapters.rl.humanoidbench import import_humanoidbench; import_humanoidbench();"
        "import humanoid_bench.env as e, dm_control.mujoco.index as i;"
        "assert e.index is i, e.index;"
        "import importlib.util;"
        "jax = importlib.util.find_spec('jax') is not None;"
        "stub = sys.modules['humanoid_bench.mjx.flax_to_torch'];"
        "assert jax or 'jax-free' in (stub.__doc__ or ''), stub;"
        "print('ok', jax)"
    )
    result = _run([sys.executable, "-c", code])
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stderr


@needs_hb
def test_hierarchical_policies_without_jax_fail_clearly():
    from adapters.errors import MissingDependencyError
    from adapters.rl.humanoidbench import import_humanoidbench

    import_humanoidbench()
    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax is installed: upstream's own module is used")
    from humanoid_bench.mjx.flax_to_torch import TorchModel

    with pytest.raises(MissingDependencyError, match="need jax"):
        TorchModel(10)


def _rollout(task: str, seed: int, steps: int = 15) -> np.ndarray:
    from adapters.rl.envs import make_env

    env = make_env(task, protocol=EnvProtocol())
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(steps, *env.action_space.shape)).astype(np.float32)
    trajectory = [obs]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        trajectory.append(np.append(obs, reward))
        if terminated or truncated:
            break
    env.close()
    return np.concatenate([np.ravel(t) for t in trajectory])


@needs_hb
@pytest.mark.parametrize("env_id", [pytest.param(i, id=i) for i in (
    __import__("adapters.rl.humanoidbench", fromlist=["SUPPORTED_IDS"]).SUPPORTED_IDS)])
def test_every_supported_id_builds_and_seeded_rollouts_repeat(env_id):
    from adapters.rl.envs import make_env

    task = f"hb:{env_id}"
    env = make_env(task)
    robot_dims = {"h1": 19, "h1hand": 61}[env_id.split("-")[0]]
    assert env.action_space.shape == (robot_dims,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.close()
    outer = np.random.get_state()[1].copy()
    first, again, other = _rollout(task, 3), _rollout(task, 3), _rollout(task, 4)
    assert np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)
    # reach and sit_hard draw their resets from NumPy's global generator: the wrapper gives them
    # their own stream, so other users of the global generator are undisturbed
    np.testing.assert_array_equal(np.random.get_state()[1], outer)


@needs_hb
def test_render_works_where_a_gl_backend_exists():
    code = (
        "from adapters.rl.humanoidbench import make;"
        "env = make('h1-walk-v0', render_mode='rgb_array'); env.reset(seed=0);"
        "image = env.render(); print(image.shape, float(image.std()))"
    )
    result = _run([sys.executable, "-c", code], env={**os.environ, "MUJOCO_GL": "egl"}, timeout=120)
    if result.returncode != 0:
        pytest.skip(f"no EGL rendering here: {result.stderr.strip().splitlines()[-1:]}")
    shape, std = result.stdout.split(")")
    assert shape == "(256, 256, 3" and float(std) > 1.0  # a picture, not a blank frame


@needs_hb
def test_authors_protocol_on_humanoidbench():
    from adapters.rl.envs import make_env, sim_steps

    protocol = EnvProtocol(ignore_termination=True, action_repeat=2)
    env = make_env("hb:h1-walk-v0", protocol=protocol)
    plain = make_env("hb:h1-walk-v0", protocol=EnvProtocol())
    env.reset(seed=0)
    plain.reset(seed=0)
    zero = np.zeros(19, dtype=np.float32)
    steps, fell, truncated = 0, False, False
    while not truncated:
        _, reward, terminated, truncated, info = env.step(zero)
        expected = plain.step(zero)[1] + plain.step(zero)[1] if not fell else None
        if expected is not None:
            assert reward == pytest.approx(expected, rel=1e-12)
        fell = fell or bool(info.get("terminated_ignored"))
        assert not terminated
        steps += 1
    assert fell  # an unpowered humanoid falls, and the episode goes on
    assert steps == 500 and sim_steps(env, steps) == 1000  # 1000 simulator steps, 2 per agent step


# --------------------------------------------------------------------------------------------
# Trials, normalization, provenance, era list
# --------------------------------------------------------------------------------------------

TRIAL_SETTINGS = ["--set", "learning_starts=100", "--set", "batch_size=64",
                  "--set", "policy_kwargs={net_arch: [64, 64]}", "--set", "critic_layer_norm=true"]


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """``era trial`` of sac and sac-era on h1-walk and h1hand-walk, 300 agent steps each."""
    if HB_SPEC is None:
        pytest.skip("HumanoidBench is not installed")
    out, running = {}, {}
    for algo in ("sac", "sac-era"):  # side by side: each trial uses one thread
        for env_id in ("h1-walk-v0", "h1hand-walk-v0"):
            folder = tmp_path_factory.mktemp(f"{algo}-{env_id}")
            argv = [*ERA, "trial", "--algo", algo, "--task", f"hb:{env_id}", "--seed", "0", "--steps", "300",
                    "--eval-every", "150", "--eval-episodes", "1", *TRIAL_SETTINGS, "--out", str(folder)]
            running[algo, env_id] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                     text=True, cwd=ROOT)
            out[algo, env_id] = folder
    for process in running.values():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    return out


@needs_hb
@pytest.mark.parametrize("algo", ["sac", "sac-era"])
@pytest.mark.parametrize("env_id", ["h1-walk-v0", "h1hand-walk-v0"])
def test_era_trial_writes_finite_scores_and_entropies(trials, algo, env_id):
    table = pd.read_parquet(trials[algo, env_id] / "results.parquet")
    assert list(table.step) == [150, 300]
    assert list(table.sim_steps) == [300, 600]  # action repeat 2
    for column in ("score", "entropy", "entropy_min", "wall_time_s"):
        assert np.all(np.isfinite(table[column])), column
    dims = 19 if env_id.startswith("h1-") else 61
    if algo == "sac-era":
        assert np.allclose(table.target_entropy, 0.25 * dims)
        assert np.allclose(table.gaussian_entropy, table.target_entropy + table.delta, atol=1e-4)
        assert np.all(table.delta > 0)  # below its floor at first, δ rises
    else:
        assert "ent_coef" in table


@needs_hb
def test_normalization_of_a_real_evaluation_matches_the_table(trials):
    from harness.stats.normalize import normalized_score
    from harness.report import load_results

    table = yaml.safe_load((ROOT / "harness" / "data" / "humanoidbench.yaml").read_text())
    for (algo, env_id), folder in trials.items():
        results = load_results(folder).results
        task = env_id.split("-")[1]
        low, high = table["random"][env_id], table["success"][task]
        expected = (results["score"].to_numpy() - low) / (high - low)
        np.testing.assert_allclose(results["normalized_score"].to_numpy(), expected, rtol=1e-12)
        np.testing.assert_allclose(normalized_score("humanoidbench", f"hb:{env_id}", results["score"].to_numpy()),
                                   expected, rtol=1e-12)


@needs_hb
def test_provenance_records_which_humanoidbench_ran(trials):
    [row] = pd.read_parquet(trials["sac", "h1-walk-v0"] / "trials.parquet").to_dict("records")
    assert row["status"] == "done" and row["code_version"]
    source = json.loads(row["packages"])["humanoid-bench"]
    assert f"path={HB_DIR}" in source and "sources_sha256=" in source
    from adapters.rl.humanoidbench import source_info

    assert len(source_info()["sources_sha256"]) == 16


@needs_hb
def test_report_states_the_protocol(trials, tmp_path):
    from harness.report import write_report

    folder = trials["sac-era", "h1-walk-v0"]
    write_report(folder, tmp_path / "report", reps=200)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    [row] = report["protocol"]
    assert (row["ignore_termination"], row["action_repeat"], row["eval_seed_offset"]) == (True, 2, 42)
    assert (row["final_agent_steps"], row["final_sim_steps"]) == (300, 600)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Environment protocol" in markdown and "ignored (episodes end at the time limit)" in markdown


@needs_hb
def test_era_list_shows_the_authors_protocol_and_layernorm_critics():
    result = _run([*ERA, "list", "suites/humanoidbench-sac.yaml"])
    assert result.returncode == 0, result.stderr
    for line in [line for line in result.stdout.splitlines() if line.startswith("  sac")]:
        assert "critics 2 x 512x512 LayerNorm+ELU" in line and "actor 512x512 ELU" in line
        assert "termination ignored, action repeat 2" in line and "seed + 42" in line
        assert "eval every 25000 agent steps x 10 deterministic episodes" in line


@needs_hb
def test_eval_env_is_seeded_once_with_seed_plus_42():
    from adapters.rl.evaluation import eval_seeds
    from adapters.rl.envs import make_env
    from adapters.trial import TrialSpec

    spec = TrialSpec("sac", "hb:h1-walk-v0", seed=7, budget=100, eval_episodes=3)
    protocol = EnvProtocol(True, 2, 42)
    assert eval_seeds(spec, protocol, 0) == [49, None, None]
    assert eval_seeds(spec, protocol, 1) == [None, None, None]
    env = make_env(spec.task, protocol=protocol)
    reference = make_env(spec.task, protocol=protocol)
    starts = [env.reset(seed=s)[0] for s in eval_seeds(spec, protocol, 0)]
    np.testing.assert_array_equal(starts[0], reference.reset(seed=49)[0])
    np.testing.assert_array_equal(starts[1], reference.reset()[0])  # the generator runs on
    assert not np.array_equal(starts[1], starts[2])


# --------------------------------------------------------------------------------------------
# The install script, run for real against a local clone
# --------------------------------------------------------------------------------------------


@needs_hb
def test_install_script_makes_an_editable_no_deps_install(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    upstream = tmp_path / "upstream"
    shutil.copytree(HB_DIR.parent, upstream, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for path in [upstream, *upstream.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    git = ["git", "-C", str(upstream), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "--quiet"], ["add", "-A"], ["commit", "--quiet", "-m", "snapshot"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {**os.environ, "PYTHON": str(venv / "bin" / "python"), "HUMANOIDBENCH_REPO": str(upstream),
           "HUMANOIDBENCH_COMMIT": commit, "PYTHONPATH": ""}
    clone = tmp_path / "clone"
    result = _run(["bash", str(ROOT / "scripts" / "install_humanoidbench.sh"), str(clone)], env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"HumanoidBench installed from {clone.resolve()}" in result.stdout
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    assert head.stdout.strip() == commit
    shown = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], env)
    names = {p["name"].lower().replace("_", "-") for p in json.loads(shown.stdout)}
    assert "humanoid-bench" in names
    assert not names & {"gymnasium", "mujoco", "torch", "jax"}  # --no-deps: upstream's pins stay out


@needs_hb
def test_throughput_benchmark_runs_and_projects_the_suite():
    result = _run([sys.executable, "benchmarks/hb_throughput.py", "--train-steps", "5", "--repeats", "1",
                   "--sim-steps", "50", "--eval-steps", "20", "--warmup", "20"], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| hb:")]
    assert [r.split(" | ")[0] for r in rows] == ["| hb:h1-walk-v0", "| hb:h1hand-walk-v0"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(float(c.replace(",", "")) > 0 for c in cells[1:])
    assert "suites/humanoidbench-sac.yaml: 100 trials of 1,000,000 agent steps" in result.stdout


@needs_hb
@pytest.mark.parametrize("name", ["hb-cpu", "hb-delta", "humanoidbench-sac"])
def test_humanoidbench_suites_validate_with_the_adapters(name):
    from harness.suite import load_and_expand

    suite, trials = load_and_expand(ROOT / "suites" / f"{name}.yaml")
    assert suite.name == name and all(t.spec.task.startswith("hb:") for t in trials)
    assert all(t.spec.settings.get("critic_layer_norm") is True for t in trials)
