"""The SB3 family as trials: settings, learning, determinism, resume, tasks, and the CLI."""

from __future__ import annotations

import importlib.util
import math
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from adapters.rl.evaluation import eval_seeds, evaluate
from adapters.rl.model import build_model
from adapters.rl.settings import describe
from adapters.rl.state import restore
from adapters.trial.checkpoint import TrialCheckpoint
from adapters.rl.protocol import EnvProtocol
from adapters.errors import ConfigError, UnknownNameError
from adapters.rl.callbacks import DeltaTuningCallback
from adapters.trial import TrialSpec, run_trial, validate_trial
from harness.cli import main as era_main

TINY_SAC = {"learning_starts": 50, "batch_size": 32, "buffer_size": 2_000, "policy_kwargs": {"net_arch": [32, 32]}}
TINY_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [32, 32]}}
TINY = {"sac": TINY_SAC, "sac-era": TINY_SAC, "ppo": TINY_PPO, "ppo-era": TINY_PPO}


def _spec(algo="sac-era", task="gym:Pendulum-v1", budget=200, **kwargs) -> TrialSpec:
    kwargs.setdefault("settings", TINY[algo])
    kwargs.setdefault("eval_episodes", 1)
    return TrialSpec(algo=algo, task=task, seed=kwargs.pop("seed", 0), budget=budget, **kwargs)


# --------------------------------------------------------------------------------------------
# validate: cheap, named errors
# --------------------------------------------------------------------------------------------


def test_unknown_setting_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as info:
        validate_trial(_spec(settings={"entropy_per_dimension": 0.3}))
    message = str(info.value)
    assert "entropy_per_dimension" in message
    for allowed in ("entropy_per_dim", "delta", "delta_per_dim", "learning_rate", "buffer_size"):
        assert allowed in message


@pytest.mark.parametrize(
    ("algo", "settings", "match"),
    [
        ("sac-era", {"ent_coef": 0.1}, "replaces the entropy term"),
        ("sac-era", {"target_entropy": -3}, "entropy_per_dim"),
        ("ppo-era", {"use_sde": True}, "gSDE"),
        ("sac-era", {"entropy_per_dim": 1.5}, r"cannot pin entropy_per_dim = 1.5"),
        ("sac-era", {"delta": "constant", "entropy_per_dim": 0.6}, "entropy_per_dim \\+ delta_per_dim"),
        ("sac-era", {"delta": "sometimes"}, "'auto', 'constant' or 'none'"),
        ("sac-era", {"distribution": "beta"}, "truncated"),
        ("sac-era", {"delta_lr": -1}, "delta_lr"),
        ("ppo-era", {"delta": "auto"}, "unknown setting 'delta'"),
        ("sac", {"entropy_per_dim": 0.25}, "unknown setting 'entropy_per_dim' for sac"),
        ("sac", {"policy_kwargs": {"activation_fn": "swish"}}, "activation_fn"),
        ("sac-era", {"policy_kwargs": {"delta": "auto"}}, "top-level"),
        ("ppo", {"torch_threads": 0}, "torch_threads"),
        ("ppo", {"critic_layer_norm": True}, "unknown setting 'critic_layer_norm' for ppo"),
        ("sac", {"critic_layer_norm": "yes"}, "critic_layer_norm must be true or false"),
        ("sac-era", {"delta_lr_scale": "fast"}, "'per_dim'"),
        ("sac", {"action_repeat": 0}, "action_repeat must be an integer >= 1"),
        ("ppo-era", {"ignore_termination": 1}, "ignore_termination must be true or false"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(algo, settings, match):
    with pytest.raises(ConfigError, match=match):
        validate_trial(_spec(algo, settings=settings))


# The values, and one per kind of check: each is refused naming the setting and what SB3 takes.
BAD_SB3 = [
    ("ppo", "learning_rate", "fast", "a positive number"),
    ("ppo", "gamma", "x", r"a number in \[0, 1\]"),
    ("ppo", "gamma", 7, r"a number in \[0, 1\], got 7"),
    ("ppo", "clip_range", "wide", "a positive number"),
    ("ppo", "n_steps", "abc", "an integer >= 2"),
    ("ppo", "batch_size", 1.5, "an integer >= 2"),
    ("ppo", "learning_rate", [1, 2], "a positive number"),
    ("ppo", "n_epochs", -3, "an integer >= 1, got -3"),
    ("ppo", "batch_size", 1, "an integer >= 2"),  # SB3 normalizes advantages over each mini-batch
    ("ppo-era", "target_kl", 0, "a positive number or null"),
    ("ppo", "normalize_advantage", "yes", "true or false"),
    ("sac", "tau", 1.5, r"a number in \[0, 1\]"),
    ("sac", "buffer_size", 0, "an integer >= 1"),
    ("sac", "train_freq", [4, "steps"], r"an integer >= 1 or \[an integer >= 1, 'step' or 'episode'\]"),
    ("sac", "train_freq", 0, "an integer >= 1 or"),
    ("sac", "ent_coef", "high", "a number >= 0, 'auto' or 'auto_<initial value>'"),
    ("sac-era", "learning_starts", -1, "an integer >= 0"),
    ("sac-era", "gradient_steps", 0.5, "an integer >= -1"),
]


@pytest.mark.parametrize(("algo", "key", "value", "wanted"), BAD_SB3,
                         ids=[f"{a}-{k}={v}" for a, k, v, _ in BAD_SB3])
def test_sb3_settings_are_type_and_range_checked(algo, key, value, wanted):
    with pytest.raises(ConfigError, match=f"setting {key} of {algo} must be {wanted}") as info:
        validate_trial(_spec(algo, settings={**TINY[algo], key: value}, budget=128, eval_every=64))
    assert info.value.setting == key and len(str(info.value).splitlines()) == 1
    again = pickle.loads(pickle.dumps(info.value))  # Ray ships errors between processes
    assert (str(again), again.setting) == (str(info.value), key) and isinstance(again, ConfigError)


def test_sb3_settings_of_every_annotated_kind_pass():
    ppo = {**TINY_PPO, "learning_rate": 1, "gamma": 1, "gae_lambda": 0.0, "clip_range_vf": None,
           "target_kl": 0.02, "normalize_advantage": False, "max_grad_norm": 10}
    validate_trial(_spec("ppo", settings=ppo, budget=128, eval_every=64))
    sac = {**TINY_SAC, "train_freq": [2, "episode"], "ent_coef": "auto_0.1", "target_entropy": -2,
           "gradient_steps": -1, "tau": 1.0}
    validate_trial(_spec("sac", settings=sac, budget=128, eval_every=64))
    validate_trial(_spec("sac", settings={**TINY_SAC, "ent_coef": 0.05, "target_entropy": "auto"}))


# PPO stops only at the end of a rollout (n_steps x 1 env): the budget and eval.every must be whole rollouts
PPO_FIT = [
    (64, 256, 100, "does not divide eval.every 100: use n_steps 4 or 2, or eval.every 64 or 128"),
    (64, 200, None, "does not divide the budget 200: use n_steps 50 or 40, or budget 192 or 256"),
    (2048, 1000, 500, "does not divide eval.every 500 or the budget 1000: use n_steps 500 or 250, "
                      "or budget 2048 and eval.every 2048"),
]


@pytest.mark.parametrize(("n_steps", "budget", "every", "message"), PPO_FIT)
def test_ppo_rollouts_must_fit_the_budget_and_evaluations(n_steps, budget, every, message):
    settings = {**TINY_PPO, "n_steps": n_steps}
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        validate_trial(_spec("ppo-era", settings=settings, budget=budget, eval_every=every))
    assert f"n_steps x n_envs = {n_steps} x 1 = {n_steps}" in str(info.value)
    assert info.value.setting == "n_steps"
    # what fits: whole rollouts, evaluations on rollout ends (and eval.every beyond the budget is the budget)
    validate_trial(_spec("ppo-era", settings=settings, budget=4 * n_steps, eval_every=2 * n_steps))
    validate_trial(_spec("ppo-era", settings=settings, budget=4 * n_steps, eval_every=8 * n_steps))


def test_ppo_default_evaluations_fall_on_rollout_ends():
    spec = _spec("ppo", budget=256)  # no eval_every: a tenth of the budget (25), rounded to whole rollouts (64)
    assert describe(spec).endswith("eval every 64 agent steps x 1 deterministic episode")
    assert [r.step for r in run_trial(spec)] == [64, 128, 192, 256]


def test_bad_task_and_budget():
    with pytest.raises(UnknownNameError, match="dmc:"):
        validate_trial(_spec(task="digits"))
    with pytest.raises(UnknownNameError, match="Hopper-v5"):
        validate_trial(_spec(task="gym:Hopper-v9"))
    with pytest.raises(ConfigError, match="positive"):
        validate_trial(_spec(budget=0))
    with pytest.raises(ConfigError, match="eval_episodes"):
        validate_trial(_spec(eval_episodes=0))


def test_settings_reach_sb3():
    spec = _spec("sac", settings={"learning_rate": 1e-3, "train_freq": [2, "step"], "gamma": 0.95,
                                  "policy_kwargs": {"net_arch": [16], "activation_fn": "elu"}})
    from adapters.rl.envs import make_env

    model = build_model(spec, make_env(spec.task))
    assert model.learning_rate == 1e-3 and model.gamma == 0.95 and model.train_freq.frequency == 2
    assert model.ent_coef == "auto" and model.target_entropy == -1.0  # SB3's SAC defaults otherwise
    assert model.policy.actor.latent_pi[1].__class__.__name__ == "ELU"


# --------------------------------------------------------------------------------------------
# run: records, learning, determinism, resume
# --------------------------------------------------------------------------------------------


class _RandomPolicy:
    """Uniform random actions, with SB3's ``predict`` signature (the baseline to beat)."""

    def __init__(self, space, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def predict(self, obs, deterministic=True):
        return self.space.sample(), None


def test_describe_names_networks_protocol_and_evaluation():
    spec = _spec("sac", settings={"critic_layer_norm": True, "action_repeat": 2,
                                  "policy_kwargs": {"net_arch": [64, 32], "activation_fn": "ELU"}},
                 budget=1000, eval_every=250, eval_episodes=3)
    assert describe(spec) == (
        "actor 64x32 ELU; critics 2 x 64x32 LayerNorm+ELU; termination kept, action repeat 2 (budget in agent "
        "steps), one derived seed per eval episode; eval every 250 agent steps x 3 deterministic episodes")
    era = describe(_spec("sac-era", settings={}, budget=1000))
    assert "critics 2 x 256x256 ReLU" in era and "delta auto (Adam 0.003 per dim)" in era
    assert describe(_spec("ppo", settings={}, budget=1000)).startswith("policy 64x64 Tanh; value 64x64 Tanh")


def test_sac_with_layernorm_critics_trains_through_the_trial():
    settings = {**TINY_SAC, "critic_layer_norm": True}
    [record] = list(run_trial(_spec("sac", settings=settings, budget=150, eval_every=150)))
    assert math.isfinite(record.score) and record.metrics["sim_steps"] == 150


def test_sac_era_learns_pendulum_beyond_a_random_policy():
    # Small but robust: seeds 0, 1, 2 all reach -202, -169, -99 after 3000 steps with these settings.
    settings = {"learning_starts": 500, "batch_size": 128, "buffer_size": 5_000, "learning_rate": 1e-3,
                "gamma": 0.98, "tau": 0.02, "policy_kwargs": {"net_arch": [64, 64]}}
    spec = _spec(budget=3_000, eval_every=3_000, eval_episodes=5, settings=settings)
    [record] = list(run_trial(spec))
    from adapters.rl.envs import make_env

    env = make_env(spec.task)
    random_returns, _ = evaluate(_RandomPolicy(env.action_space, 0), env, eval_seeds(spec, EnvProtocol(), 0))
    assert random_returns.mean() < -900
    assert record.score > random_returns.mean() + 500, (record.score, random_returns.mean())
    # the entropy the policy samples from, beside the pinned Gaussian entropy H0 + δ
    assert record.metrics["gaussian_entropy"] == pytest.approx(0.25 + record.metrics["delta"], abs=1e-6)
    assert 0 < record.metrics["delta"] <= math.log(math.sqrt(2 * math.pi * math.e)) - 0.25 + 1e-6


def test_same_seed_same_evaluations():
    spec = _spec(budget=240, eval_every=120)
    first = [r.as_row() for r in run_trial(spec)]
    second = [r.as_row() for r in run_trial(spec)]
    assert [r["step"] for r in first] == [120, 240]
    for a, b in zip(first, second):
        for key in ("step", "score", "entropy", "entropy_min", "gaussian_entropy", "delta"):
            assert a[key] == b[key], key
    other = [r.score for r in run_trial(_spec(budget=240, eval_every=120, seed=1))]
    assert other != [r["score"] for r in first]


def test_a_killed_trial_resumes_from_its_checkpoint(tmp_path):
    spec = _spec(budget=300, eval_every=100)
    trial = run_trial(spec, tmp_path)
    first = next(trial)
    trial.close()  # killed right after the first checkpoint
    assert first.step == 100
    state = tmp_path / "current"
    for name in ("model.zip", "replay.npz", "delta_tuner.pt", "rng.pt", "envs.pt", "episode.pt", "progress.json"):
        assert (state / name).exists(), name

    # what the restore brings back: counters, replay rows, δ and its optimiser
    from adapters.rl.envs import make_env
    from adapters.rl.episode_log import EpisodeLog

    callback = DeltaTuningCallback()
    envs = {"train": EpisodeLog(make_env(spec.task)), "eval": make_env(spec.task)}
    model = restore(spec, state, envs, "cpu", callback)
    assert model.num_timesteps == 100 and model.replay_buffer.pos == 100
    assert np.abs(model.replay_buffer.observations[:100]).sum() > 0
    assert float(model.actor.era.delta) == pytest.approx(first.metrics["delta"])
    assert callback._pending_state["optimizer"]["state"][0]["step"] > 0

    resumed = list(run_trial(spec, tmp_path))
    assert [r.step for r in resumed] == [200, 300]
    records = TrialCheckpoint(tmp_path).records()
    assert [r.step for r in records] == [100, 200, 300]
    assert records[0].wall_time_s < records[1].wall_time_s < records[2].wall_time_s
    assert list(run_trial(spec, tmp_path)) == []  # finished: nothing new
    changed = _spec(budget=300, eval_every=100, settings={**TINY_SAC, "learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="another trial"):
        next(run_trial(changed, tmp_path))


@pytest.mark.parametrize("algo", ["sac", "sac-era", "ppo", "ppo-era"])
@pytest.mark.parametrize("task", ["dmc:cartpole-swingup", "gym:Hopper-v5"])
def test_every_algorithm_runs_on_dmc_and_mujoco(algo, task):
    budget = 100 if algo.startswith("sac") else 64
    [record] = list(run_trial(_spec(algo, task=task, budget=budget, eval_every=budget)))
    assert record.step == budget and math.isfinite(record.score) and math.isfinite(record.entropy)
    if algo.endswith("era"):
        h0 = 0.25 * (1 if task.startswith("dmc") else 3)
        assert record.metrics["target_entropy"] == pytest.approx(h0)
        assert record.metrics["gaussian_entropy"] == pytest.approx(h0 + record.metrics["delta"])
        if algo == "ppo-era":
            assert record.entropy == pytest.approx(h0, abs=1e-5) and record.metrics["delta"] == 0.0
    else:
        assert "gaussian_entropy" not in record.metrics
    if algo == "sac":
        assert record.metrics["ent_coef"] > 0


# --------------------------------------------------------------------------------------------
# era trial
# --------------------------------------------------------------------------------------------


def test_era_trial_writes_the_results_table(tmp_path, capsys):
    out = tmp_path / "t"
    code = era_main(["trial", "--algo", "sac-era", "--task", "gym:Pendulum-v1", "--seed", "0", "--steps", "200",
                     "--eval-every", "100", "--eval-episodes", "1", "--set", "policy_kwargs={net_arch: [32, 32]}",
                     "--set", "learning_starts=50", "--out", str(out)])
    assert code == 0
    table = pd.read_parquet(out / "results.parquet")
    assert list(table.step) == [100, 200]
    for column in ("score", "entropy", "gaussian_entropy", "delta", "target_entropy", "wall_time_s"):
        assert table[column].notna().all(), column


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # with HumanoidBench: an id it does not have; without: the install commands (both before anything runs)
        (["--algo", "sac", "--task", "hb:h1-fly-v0"],
         "unknown HumanoidBench task" if importlib.util.find_spec("humanoid_bench") else "pip install --no-deps -e"),
        (["--algo", "sac-era", "--task", "gym:Pendulum-v1", "--set", "ent_coef=0.2"], "entropy term"),
        (["--algo", "ppo", "--task", "dmc:walker-fly"], "walker-walk"),
    ],
)
def test_era_trial_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    code = era_main(["trial", *argv, "--steps", "100", "--out", str(tmp_path / "t")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_era_trial_refuses_ppo_rollouts_that_overshoot_the_budget(tmp_path, capsys):
    """The issue's command: PPO's 2048-step rollout would train to step 2048 and evaluate once."""
    out = tmp_path / "t"
    code = era_main(["trial", "--algo", "ppo", "--task", "gym:Pendulum-v1", "--seed", "0", "--steps", "1000",
                     "--eval-every", "500", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "n_steps x n_envs = 2048 x 1 = 2048 does not divide eval.every 500 or the budget 1000" in err
    assert "use n_steps 500 or 250, or budget 2048 and eval.every 2048" in err
    assert not out.exists()


@pytest.mark.slow
def test_acceptance_command(tmp_path):
    """The issue's acceptance run: about a minute on a free 2-core CPU."""
    out = tmp_path / "t"
    assert era_main(["trial", "--algo", "sac-era", "--task", "gym:Pendulum-v1", "--seed", "0", "--steps", "3000",
                     "--out", str(out)]) == 0
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 10 and table.step.iloc[-1] == 3000
    assert table[["entropy", "gaussian_entropy", "delta"]].notna().all().all()
    assert table.score.iloc[-1] > -600
