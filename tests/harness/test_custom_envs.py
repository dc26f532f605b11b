"""Suites naming an environment of one's own in Gymnasium's ``module:id`` form (``gym:pkg.mod:Id-v0``).

The environment module is written into a temporary folder, which goes on ``sys.path`` (for this
process: ``era list``, validation) and on ``PYTHONPATH`` (for the processes `era run` starts: its
Ray workers import the module where they make the environment).
"""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import pandas as pd
import pytest

from conftest import ray_env
from harness.cli import main
from test_runner import ERA, TINY_PPO, write_suite

MODULE = "era_test_point_env"
ENV_ID = "EraPoint-v0"
TASK = f"gym:{MODULE}:{ENV_ID}"

POINT_ENV = '''\
"""A 1-D point that must reach 0: continuous actions, registers itself on import."""
import gymnasium as gym
import numpy as np


class Point(gym.Env):
    observation_space = gym.spaces.Box(-10.0, 10.0, (1,), dtype=np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), dtype=np.float32)  # rescaled to [-1, 1] by the harness

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-5.0, 5.0, size=1).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        self.x = np.clip(self.x + 0.5 * np.asarray(action, dtype=np.float32), -10.0, 10.0).astype(np.float32)
        reached = bool(abs(self.x[0]) < 0.1)
        return self.x.copy(), -float(abs(self.x[0])), reached, False, {}


gym.register(id="EraPoint-v0", entry_point=__name__ + ":Point", max_episode_steps=32)
'''


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory):
    """A folder holding the environment module, on this process's ``sys.path`` and ``PYTHONPATH``."""
    folder = tmp_path_factory.mktemp("envs")
    (folder / f"{MODULE}.py").write_text(POINT_ENV)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), saved) if p)
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        sys.modules.pop(MODULE, None)
        gym.envs.registry.pop(ENV_ID, None)


def _suite(tmp_path, task: str = TASK, budget: int = 64):
    return write_suite(tmp_path, f"""\
        name: custom
        algorithms:
          ppo: {{settings: {TINY_PPO}}}
          ppo-era: {{settings: {TINY_PPO}}}
        tasks: [{task}]
        seeds: 1
        budget: {budget}
        eval: {{every: {budget}, episodes: 1}}
        """)


def test_list_imports_the_module_and_lists_its_trials(env_dir, tmp_path, capsys):
    assert main(["list", str(_suite(tmp_path))]) == 0
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if TASK in line.split()]
    assert sorted(row[1] for row in rows) == ["ppo", "ppo-era"]
    assert "2 trials = 2 algorithms x 1 tasks x 1 seeds" in printed
    assert ENV_ID in gym.envs.registry  # the module's own gymnasium.register ran


@pytest.mark.parametrize(("task", "expected"), [
    (f"gym:era_no_such_pkg.envs:{ENV_ID}",
     "cannot import module 'era_no_such_pkg.envs' (No module named 'era_no_such_pkg'): "
     "install it or put it on PYTHONPATH"),
    (f"gym:{MODULE}:EraNoSuchId-v0",
     f"module '{MODULE}' registers no Gymnasium id 'EraNoSuchId-v0' (it registers {ENV_ID}): fix the id"),
])
def test_a_missing_module_or_id_is_one_line_and_exit_2(env_dir, tmp_path, capsys, task, expected):
    path = _suite(tmp_path, task)
    assert main(["list", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"era list: error: {path}:5: tasks[0]: ") and f"{task}: {expected}" in err
    assert not captured.out


def test_a_module_that_fails_on_import_is_one_line_naming_its_error(env_dir):
    import importlib

    from adapters.errors import ConfigError
    from adapters.rl.envs import validate_task

    (env_dir / "era_test_broken_env.py").write_text("raise RuntimeError('no simulator here')\n")
    importlib.invalidate_caches()  # the folder's listing may be cached from an earlier import
    with pytest.raises(ConfigError) as info:
        validate_task("gym:era_test_broken_env:X-v0")
    assert str(info.value) == ("gym:era_test_broken_env:X-v0: importing module 'era_test_broken_env' failed "
                               "(RuntimeError: no simulator here): fix the module so that it imports")


def test_era_run_trains_ppo_and_ppo_era_on_it_in_ray_workers(env_dir, tmp_path, ray_temp_dir):
    """A real `era run` (its own local Ray): each worker imports the module from PYTHONPATH."""
    path, out = _suite(tmp_path), tmp_path / "results"
    run = subprocess.run([*ERA, "run", str(path), "--out", str(out), "--no-report"],
                         env={**os.environ, **ray_env(ray_temp_dir)}, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results.algo) == ["ppo", "ppo-era"] and (results.task == TASK).all()
    assert (results.step == 64).all() and results.score.notna().all()
    # the episode is 32 steps of reward -|x| <= 0 (or fewer when the point reaches 0)
    assert ((results.score <= 0) & (results.score >= -32 * 10)).all()
