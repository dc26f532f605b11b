"""Suites: schema checks with file/field/line messages, expansion, sweeps, stable trial ids, `era list`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import SuiteError
from harness.suite import expand, load_and_expand, load_suite

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted((ROOT / "suites").glob("*.yaml"))

BASE = """\
name: tiny
algorithms:
  ppo: {settings: {n_steps: 64, batch_size: 32}}
  ppo-era:
    settings: {n_steps: 64, batch_size: 32}
tasks: [gym:Pendulum-v1]
seeds: 2
budget: 128
eval: {every: 64, episodes: 1}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------------ expansion
def test_expansion_is_variants_x_tasks_x_seeds_with_sweeps_named(tmp_path):
    path = write(tmp_path, """\
        name: sweep
        algorithms:
          ppo: {settings: {n_steps: 64}}
          ppo-era:
            settings: {n_steps: 64, entropy_per_dim: 0.25}
            sweep: {entropy_per_dim: [-0.5, 0.5]}
        tasks: [gym:Pendulum-v1, gym:MountainCarContinuous-v0]
        seeds: [3, 7]
        budget: 256
        """)
    suite = load_suite(path)
    trials = expand(suite)
    assert len(trials) == 3 * 2 * 2
    assert {t.variant for t in trials} == {"ppo", "ppo-era[entropy_per_dim=-0.5]", "ppo-era[entropy_per_dim=0.5]"}
    assert {t.spec.seed for t in trials} == {3, 7}
    swept = [t for t in trials if t.variant == "ppo-era[entropy_per_dim=0.5]"]
    assert all(t.spec.settings["entropy_per_dim"] == 0.5 and t.base_algo == "ppo-era" for t in swept)
    assert all(t.sweep == {"entropy_per_dim": 0.5} for t in swept)
    # seed-major: the first trials cover every variant and task once
    assert {(t.variant, t.spec.task) for t in trials[:6]} == {(t.variant, t.spec.task) for t in trials}
    assert len({t.trial_id for t in trials}) == len(trials)


def test_settings_merge_suite_then_task_then_algorithm_then_sweep(tmp_path):
    path = write(tmp_path, """\
        name: merge
        settings: {learning_rate: 0.1, gamma: 0.9, n_steps: 16}
        algorithms:
          ppo-era:
            settings: {gamma: 0.95, entropy_per_dim: 0.0}
            sweep: {entropy_per_dim: [0.5]}
        tasks:
          gym:Pendulum-v1: {settings: {learning_rate: 0.01, gamma: 0.5}, budget: 512, eval: {every: 128}}
          gym:MountainCarContinuous-v0:
        seeds: 1
        budget: 256
        eval: {every: 64, episodes: 2}
        resources: {cpus: 0.5}
        """)
    by_task = {t.spec.task: t for t in expand(load_suite(path))}
    pendulum = by_task["gym:Pendulum-v1"]
    assert dict(pendulum.spec.settings) == {"learning_rate": 0.01, "gamma": 0.95, "n_steps": 16, "entropy_per_dim": 0.5}
    assert (pendulum.spec.budget, pendulum.spec.eval_every, pendulum.spec.eval_episodes) == (512, 128, 2)
    car = by_task["gym:MountainCarContinuous-v0"]
    assert car.spec.settings["learning_rate"] == 0.1 and (car.spec.budget, car.spec.eval_every) == (256, 64)
    assert car.resources.cpus == 0.5 and car.resources.gpus == 0


def test_trial_ids_are_a_hash_of_the_config_alone(tmp_path):
    a = expand(load_suite(write(tmp_path, BASE, "a.yaml")))
    reordered = BASE.replace("name: tiny", "name: other").replace(
        "ppo: {settings: {n_steps: 64, batch_size: 32}}", "ppo: {settings: {batch_size: 32, n_steps: 64}}")
    b = expand(load_suite(write(tmp_path, reordered, "b.yaml")))
    key = lambda t: (t.variant, t.spec.task, t.spec.seed)  # noqa: E731
    assert {key(t): t.trial_id for t in a} == {key(t): t.trial_id for t in b}
    changed = expand(load_suite(write(tmp_path, BASE.replace("budget: 128", "budget: 192"), "c.yaml")))
    assert not {t.trial_id for t in a} & {t.trial_id for t in changed}
    assert all(t.config_hash.startswith(t.trial_id) and len(t.config_hash) == 64 for t in a)


def test_trials_asking_for_no_gpu_run_on_the_cpu_and_the_others_choose(tmp_path):
    """Ray hides no GPU from a trial that asked for none, so its spec names the CPU; a trial given a
    GPU fraction picks CUDA where Ray shows it one. The device does not change the trial's id."""
    path = write(tmp_path, """\
        name: devices
        algorithms: {ppo: {settings: {n_steps: 64}}}
        tasks:
          gym:Pendulum-v1: {resources: {cpus: 1, gpus: 0.25}}
          gym:MountainCarContinuous-v0:
        seeds: 1
        budget: 128
        resources: {cpus: 1, gpus: 0}
        """)
    devices = {t.spec.task: t.spec.device for t in expand(load_suite(path))}
    assert devices == {"gym:Pendulum-v1": "auto", "gym:MountainCarContinuous-v0": "cpu"}
    gpu_less = path.read_text().replace("gpus: 0.25", "gpus: 0")
    same = {t.spec.task: t.trial_id for t in expand(load_suite(write(tmp_path, gpu_less, "b.yaml")))}
    assert same == {t.spec.task: t.trial_id for t in expand(load_suite(path))}


def test_budget_per_unit_and_algorithm_task_restriction(tmp_path):
    path = write(tmp_path, """\
        name: mixed
        algorithms:
          ppo: {tasks: [gym:Pendulum-v1]}
          resnet: {tasks: [digits]}
        tasks: [gym:Pendulum-v1, digits]
        seeds: 1
        budget: {steps: 1000, epochs: 2}
        """)
    trials = expand(load_suite(path))
    assert {(t.variant, t.spec.task, t.spec.budget, t.unit) for t in trials} == {
        ("ppo", "gym:Pendulum-v1", 1000, "steps"), ("resnet", "digits", 2, "epochs")}


def test_suite_plain_data_has_what_reports_read(tmp_path):
    suite = load_suite(write(tmp_path, BASE.replace("ppo-era:\n", "ppo-era:\n    sweep: {entropy_per_dim: [0.1, 0.2]}\n")))
    plain = suite.plain()
    for key in ("name", "benchmark", "paper", "algorithms", "variants", "tasks", "seeds", "budget"):
        assert key in plain
    era = next(a for a in plain["algorithms"] if a["label"] == "ppo-era")
    assert era["sweep"] == {"entropy_per_dim": [0.1, 0.2]}
    assert [v["algo"] for v in plain["variants"]] == [
        "ppo", "ppo-era[entropy_per_dim=0.1]", "ppo-era[entropy_per_dim=0.2]"]


# ------------------------------------------------------------------ malformed suites
MALFORMED = [
    # (id, text, message fragment, line or None)
    ("unknown-field", BASE + "bugdet: 5\n", "unknown field 'bugdet' (did you mean 'budget'?)", 10),
    ("wrong-type", BASE.replace("seeds: 2", "seeds: three"), "seeds: expected a count", 7),
    ("unknown-algorithm", BASE.replace("  ppo: {", "  sac_era: {"), "unknown algorithm 'sac_era' (did you mean 'sac-era'?)", 3),
    ("unknown-task", BASE.replace("gym:Pendulum-v1", "gym:NoSuchEnv-v0"), "NoSuchEnv-v0", None),
    ("unknown-setting", BASE.replace("batch_size: 32}}", "batch_sise: 32}}", 1), "unknown setting 'batch_sise' for ppo", 3),
    ("empty-tasks", BASE.replace("[gym:Pendulum-v1]", "[]"), "tasks: empty matrix", 6),
    ("zero-seeds", BASE.replace("seeds: 2", "seeds: 0"), "empty matrix: 0 seeds", 7),
    ("empty-sweep", BASE.replace("ppo-era:\n", "ppo-era:\n    sweep: {entropy_per_dim: []}\n"), "sweep.entropy_per_dim: empty matrix", 5),
    ("empty-algorithms", BASE.split("algorithms:")[0] + "algorithms: {}\ntasks: [gym:Pendulum-v1]\nseeds: 1\nbudget: 5\n",
     "algorithms: empty matrix", 2),
    ("duplicate-key", BASE + "seeds: 3\n", "duplicate key 'seeds' (first given at line 7)", 10),
    ("bad-yaml", BASE.replace("seeds: 2", "seeds: [2"), "not valid YAML", None),
    ("missing-name", BASE.replace("name: tiny\n", ""), "missing required field 'name'", None),
    ("budget-unit", BASE.replace("budget: 128", "budget: {epochs: 2}"), "ppo counts its budget in steps", 8),
    ("fractional-cpus", BASE + "resources: {cpus: 1.5}\n", "whole numbers above 1", 10),
    ("unknown-benchmark", BASE + "benchmark: atari\n", "unknown benchmark 'atari'", 10),
    ("eval-after-budget", BASE.replace("every: 64", "every: 500"), "exceeds the budget of 128", 9),
    ("algorithm-task-not-in-suite", BASE.replace("ppo-era:\n", "ppo-era:\n    tasks: [gym:Hopper-v5]\n"),
     "'gym:Hopper-v5' is not one of the suite's tasks", 5),
    ("sb3-type", BASE.replace("ppo-era:\n", "ppo-era:\n    sweep: {gamma: [0.9, x]}\n"),
     "algorithms.ppo-era.sweep.gamma[1]: ppo-era[gamma=x] on gym:Pendulum-v1", 5),
    ("ppo-rollouts", BASE.replace("every: 64", "every: 100"), "does not divide eval.every 100", 3),
]


@pytest.mark.parametrize("text, fragment, line", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_suite_exits_2_naming_file_field_and_line(tmp_path, capsys, text, fragment, line):
    path = write(tmp_path, text)
    out = tmp_path / "results"
    code = main(["run", str(path), "--out", str(out), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert str(path) in err
    if line is not None:
        assert f"{path}:{line}:" in err
    assert not out.exists()  # nothing written
    assert len(err.strip().splitlines()) == 1  # one clear message


def test_missing_suite_file_and_list_validation(tmp_path, capsys):
    assert main(["list", str(tmp_path / "nope.yaml")]) == 2
    assert "no such suite file" in capsys.readouterr().err
    bad = write(tmp_path, BASE.replace("seeds: 2", "seeds: []"))
    assert main(["list", str(bad)]) == 2
    assert "empty matrix: no seeds" in capsys.readouterr().err


def test_suite_error_survives_pickling(tmp_path):
    import pickle

    with pytest.raises(SuiteError) as caught:
        load_suite(write(tmp_path, BASE + "oops: 1\n"))
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value) and isinstance(again, SuiteError)


# ------------------------------------------------------------------ SB3 settings, checked at era list
TYPED = """\
name: typed
algorithms:
  ppo:
    settings:
      {key}: {value}
tasks: [gym:Pendulum-v1]
seeds: 1
budget: 2048
eval: {{every: 2048, episodes: 1}}
"""
# the issue's values: each listed with exit 0 before SB3's settings were checked
ISSUE_VALUES = [("learning_rate", '"fast"'), ("gamma", '"x"'), ("gamma", "7"), ("clip_range", '"wide"'),
                ("n_steps", '"abc"'), ("batch_size", "1.5"), ("learning_rate", "[1, 2]"), ("n_epochs", "-3")]


@pytest.mark.parametrize(("key", "value"), ISSUE_VALUES, ids=[f"{k}={v}" for k, v in ISSUE_VALUES])
def test_list_refuses_sb3_settings_of_the_wrong_type_at_their_line(tmp_path, capsys, key, value):
    path = write(tmp_path, TYPED.format(key=key, value=value))
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: algorithms.ppo.settings.{key}: ppo on gym:Pendulum-v1" in err
    assert f"setting {key} of ppo must be " in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "line"), [
    (TYPED.format(key="n_epochs", value=2).replace("seeds: 1", "settings: {gamma: 7}\nseeds: 1"), 7),
    (TYPED.format(key="n_epochs", value=2).replace(
        "tasks: [gym:Pendulum-v1]", "tasks:\n  gym:Pendulum-v1:\n    settings: {gamma: 7}"), 8),
], ids=["suite-settings", "task-settings"])
def test_a_bad_setting_is_pointed_at_where_the_trial_got_it(tmp_path, capsys, text, line):
    path = write(tmp_path, text)
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: " in err and "setting gamma of ppo must be a number in [0, 1], got 7" in err


def test_list_refuses_ppo_rollouts_that_do_not_fit_at_the_n_steps_line(tmp_path, capsys):
    text = TYPED.format(key="n_steps", value=2048).replace("budget: 2048", "budget: 10240")
    path = write(tmp_path, text.replace("every: 2048", "every: 1024"))
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: algorithms.ppo.settings.n_steps: ppo on gym:Pendulum-v1" in err
    assert "n_steps x n_envs = 2048 x 1 = 2048 does not divide eval.every 1024: use n_steps 1024 or 512, " \
           "or eval.every 2048" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ era list
def test_list_prints_every_trial_count_and_resources(tmp_path, capsys):
    path = write(tmp_path, BASE + "resources: {cpus: 0.5, gpus: 0}\nmax_concurrent: 3\n")
    assert main(["list", str(path)]) == 0
    printed = capsys.readouterr().out
    _, trials = load_and_expand(path)
    for trial in trials:
        assert trial.trial_id in printed
    assert "4 trials = 2 algorithms x 1 tasks x 2 seeds" in printed
    assert "0.5 CPU" in printed and "need 2 CPUs" in printed and "at most 3 at once" in printed
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ shipped suites
@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_shipped_suite_loads_and_expands(path):
    suite = load_suite(path)
    trials = expand(suite)
    if suite.search is not None:  # the searched entry's trials come from the search
        from harness.suite.expansion import sample_trials

        trials += sample_trials(suite, "sample", {}, suite.search.seeds)
    assert trials and suite.sources, f"{path.name} should cite where its settings come from"
    assert len({t.variant for t in trials}) >= 2  # ERA and its baseline


@pytest.mark.parametrize("name", ["smoke", "cpu-repro", "mujoco-ppo", "dmc-sac"])
def test_shipped_suite_validates_with_the_adapters(name):
    suite, trials = load_and_expand(ROOT / "suites" / f"{name}.yaml")
    assert suite.name == name and trials
