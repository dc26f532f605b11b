"""`settings_from: rl-zoo3` in a suite: the zoo's hyperparameters under the suite's own settings,
listed by `era list` with what was dropped, in each trial's settings (its hash, its results).

Expected values come from the zoo's own ppo.yml, read here with yaml.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.errors import SuiteError
from harness.suite import load_and_expand
from test_suite import write

ZOO_SUITE = """\
name: zoo
algorithms:
  ppo:
    settings_from: rl-zoo3
    settings: {n_steps: 64, batch_size: 32}
  ppo-era:
    settings_from: rl-zoo3
    settings: {n_steps: 64, batch_size: 32}
tasks: [gym:Pendulum-v1]
seeds: 1
budget: 64
eval: {every: 64, episodes: 1}
"""


def zoo_pendulum() -> dict:
    folder = Path(list(importlib.util.find_spec("rl_zoo3").submodule_search_locations)[0])
    return yaml.safe_load((folder / "hyperparams" / "ppo.yml").read_text())["Pendulum-v1"]


def test_trials_take_the_zoo_values_under_the_suite_own_and_list_shows_both(tmp_path, capsys):
    zoo = zoo_pendulum()
    assert zoo["n_steps"] != 64 and zoo.get("use_sde") is True  # the entry this test relies on
    path = write(tmp_path, ZOO_SUITE)
    _, trials = load_and_expand(path)
    by_algo = {t.variant: t.spec.settings for t in trials}
    for settings in by_algo.values():
        assert settings["n_steps"] == 64 and settings["batch_size"] == 32  # the suite's own win
        assert settings["gamma"] == zoo["gamma"] and settings["gae_lambda"] == zoo["gae_lambda"]
    assert by_algo["ppo"]["use_sde"] is True and by_algo["ppo"]["sde_sample_freq"] == zoo["sde_sample_freq"]
    assert "use_sde" not in by_algo["ppo-era"] and "ent_coef" not in by_algo["ppo-era"]
    _, plain = load_and_expand(write(tmp_path, ZOO_SUITE.replace("    settings_from: rl-zoo3\n", ""), "plain.yaml"))
    assert {t.trial_id for t in trials}.isdisjoint(t.trial_id for t in plain)  # the zoo's values are hashed

    assert main(["list", str(path)]) == 0
    printed = capsys.readouterr().out
    section = printed[printed.index("settings from rl-zoo3 for ppo-era"):]
    assert "on gym:Pendulum-v1: rl_zoo3/hyperparams/ppo.yml, entry Pendulum-v1" in section
    took = next(line for line in section.splitlines() if line.strip().startswith("took:"))
    assert f"gamma={zoo['gamma']}" in took and "n_steps=1024 (the suite's value wins)" in took
    assert "dropped use_sde=true: ppo-era refuses it: gSDE bypasses ERA's log-std" in section
    assert f"dropped n_envs={zoo['n_envs']}: the SB3 family trains on one environment" in section
    assert "use_sde=true" in printed[:printed.index(section)]  # the baseline took it


@pytest.mark.parametrize(("algorithms", "tasks", "line", "fragment"), [
    ("resnet: {settings_from: rl-zoo3}", "[digits]", 3,
     "algorithms.resnet.settings_from: resnet (adapters.vision) has no published settings to take from 'rl-zoo3': "
     "only ppo, ppo-era, sac, sac-era do"),
    ("ppo: {settings_from: rl-zoo3}", "[gym:Pusher-v5]", 3,
     "algorithms.ppo.settings_from: ppo on gym:Pusher-v5: rl-zoo3 has no entry for Pusher-v5 in ppo.yml"),
    ("ppo: {settings_from: zoo}", "[gym:Pendulum-v1]", 3,
     "algorithms.ppo.settings_from: ppo takes settings from rl-zoo3 only, not 'zoo'"),
])
def test_settings_from_that_cannot_be_met_is_one_line_at_its_line(tmp_path, capsys, algorithms, tasks, line, fragment):
    path = write(tmp_path, f"""\
        name: bad
        algorithms:
          {algorithms}
        tasks: {tasks}
        seeds: 1
        budget: 64
        """)
    with pytest.raises(SuiteError):
        load_and_expand(path, check=False)
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}:{line}: {fragment}" in err, err


def test_without_rl_zoo3_list_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rl_zoo3", None)  # Python's own way to make a package unimportable
    assert main(["list", str(write(tmp_path, ZOO_SUITE))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ":4: algorithms.ppo.settings_from:" in err
    assert "pip install --no-deps rl-zoo3==2.9.2" in err


def test_a_zoo_value_the_budget_cannot_take_points_at_settings_from(tmp_path, capsys):
    path = write(tmp_path, ZOO_SUITE.replace("settings: {n_steps: 64, batch_size: 32}", "settings: {batch_size: 32}"))
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}:4: algorithms.ppo.settings_from: ppo on gym:Pendulum-v1:" in err
    assert f"= {zoo_pendulum()['n_steps']} x 1" in err and "set n_steps in the suite's settings to override it" in err


def test_a_zoo_suite_runs_and_records_the_zoo_settings(local_ray, tmp_path, capsys):
    zoo = zoo_pendulum()
    out = tmp_path / "results"
    assert main(["run", str(write(tmp_path, ZOO_SUITE)), "--out", str(out), "--no-report",
                 "--progress-every", "600"]) == 0
    results = pd.read_parquet(out / "results.parquet").set_index("algo")
    assert (results.step == 64).all() and (results["setting.n_steps"] == 64).all()
    assert (results["setting.gamma"] == zoo["gamma"]).all() and (results["setting.n_epochs"] == zoo["n_epochs"]).all()
    assert results.loc["ppo", "setting.use_sde"] == True  # noqa: E712 - a numpy or a Python bool
    assert pd.isna(results.loc["ppo-era", "setting.use_sde"])
    assert results.loc["ppo-era", "entropy"] == pytest.approx(0.25, abs=1e-4)  # ERA ran (Pendulum: 1 action dim)
