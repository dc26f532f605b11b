"""ERA policies in real stable-baselines3 on a real MuJoCo task, used as plain SB3 code.

Every entropy below is measured on the policy's outputs for real HalfCheetah observations
(D = 6), before and after a short training run.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from gymnasium.wrappers import RescaleAction
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution

from adapters.era import HALF_LOG_2PI_E, gaussian_entropy
from adapters.rl.envs import make_env
from adapters.errors import ConfigError
from adapters.rl.callbacks import DeltaTuningCallback, policy_entropy
from adapters.rl.policies import (
    TRUNCATED_NORMAL_FLOOR_DELTA,
    CriticNormSACPolicy,
    EraActorCriticPolicy,
    EraSACPolicy,
    LayerNormCritic,
    TruncatedNormalDistribution,
    era_of,
)

D = 6  # HalfCheetah's action dimension
TINY_SAC = dict(learning_starts=100, batch_size=64, buffer_size=2_000, seed=0, device="cpu")
TINY_NET = dict(net_arch=[64, 64])  # pass copies: SB3 adds use_sde to the dict it is given


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny MLPs: intra-op threads only contend with the other tests for the CPUs."""
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)


@pytest.fixture(scope="module")
def cheetah():
    return make_env("gym:HalfCheetah-v5")


@pytest.fixture(scope="module")
def observations(cheetah):
    """300 real HalfCheetah states under random actions."""
    cheetah.action_space.seed(0)
    obs, _ = cheetah.reset(seed=0)
    states = []
    for _ in range(300):
        states.append(obs)
        obs, *_ = cheetah.step(cheetah.action_space.sample())
    return np.stack(states)


def _visited(model) -> np.ndarray:
    buffer = model.replay_buffer
    return buffer.observations[: buffer.pos, 0]


def _sac_gaussian_and_truncated_entropy(model, obs: np.ndarray) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    tensor, _ = model.policy.obs_to_tensor(obs)
    with th.no_grad():
        _, log_std, _ = model.actor.get_action_dist_params(tensor)
        return gaussian_entropy(log_std), policy_entropy(model.actor, tensor), log_std


@pytest.mark.parametrize("delta", ["constant", "none"])
def test_sac_era_pins_the_gaussian_and_constant_delta_keeps_the_floor(cheetah, observations, delta):
    model = SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(TINY_NET, delta=delta), **TINY_SAC)
    era = era_of(model.policy)
    h0 = 0.25 * D
    expected_delta = TRUNCATED_NORMAL_FLOOR_DELTA * D if delta == "constant" else 0.0
    assert float(era.target_entropy) == pytest.approx(h0) and float(era.delta) == pytest.approx(expected_delta)
    for stage in ("before", "after"):
        if stage == "after":
            model.learn(500)
        states = observations if stage == "before" else np.concatenate([observations, _visited(model)])
        gaussian, truncated, log_std = _sac_gaussian_and_truncated_entropy(model, states)
        assert (log_std <= era.log_std_max).all() and (log_std >= era.log_std_min).all()
        unclipped = (log_std > era.log_std_min).all(-1)
        assert unclipped.float().mean() > 0.9
        th.testing.assert_close(gaussian[unclipped], th.full_like(gaussian[unclipped], h0 + expected_delta), atol=1e-4, rtol=0)
        assert (gaussian >= h0 + expected_delta - 1e-4).all()
        if delta == "constant":
            assert (truncated >= h0 - 1e-5).all(), f"{stage}: min truncated entropy {truncated.min():.4f} < H0 {h0}"
        else:  # δ = 0 (the authors' code): truncation lowers the entropy below H0 in every state
            assert (truncated < h0).all()


class _DeltaRecorder(BaseCallback):
    """Reads δ and the measured entropy right after each δ step (runs after the tuner)."""

    def __init__(self, tuner: DeltaTuningCallback) -> None:
        super().__init__()
        self.tuner, self.trace = tuner, []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.tuner.tuner is not None and np.isfinite(self.tuner.last_entropy):
            self.trace.append((self.tuner.last_entropy, float(era_of(self.model.policy).delta)))
            self.tuner.last_entropy = float("nan")


def _tune(cheetah, entropy_per_dim: float, lr: float, steps: int):
    model = SAC(EraSACPolicy, cheetah, ent_coef=0.0,
                policy_kwargs=dict(TINY_NET, delta="auto", entropy_per_dim=entropy_per_dim),
                **dict(TINY_SAC, learning_starts=50))
    tuner = DeltaTuningCallback(lr=lr, per_dim=False)  # δ itself: these lrs are in nats per step
    recorder = _DeltaRecorder(tuner)
    model.learn(steps, callback=CallbackList([tuner, recorder]))
    return model, np.array(recorder.trace)


def test_auto_delta_rises_while_entropy_is_below_target_and_stays_clamped(cheetah, observations):
    model, trace = _tune(cheetah, entropy_per_dim=0.25, lr=0.01, steps=200)
    era = era_of(model.policy)
    h0, entropy, delta = 0.25 * D, trace[:, 0], trace[:, 1]
    assert len(trace) > 100
    below = np.flatnonzero(entropy >= h0)
    first_above = below[0] if len(below) else len(trace)
    assert first_above > 10, "the truncated entropy starts below H0 with δ = 0"
    assert np.all(np.diff(np.concatenate([[0.0], delta[:first_above]])) > 0), "δ rises while H < H0"
    assert np.all(delta >= 0) and np.all(delta <= era.delta_max + 1e-6)
    # the Gaussian is pinned at H0 + δ for the tuned δ
    gaussian, _, _ = _sac_gaussian_and_truncated_entropy(model, observations)
    th.testing.assert_close(gaussian, th.full_like(gaussian, h0 + float(era.delta)), atol=1e-4, rtol=0)
    assert float(era.delta) == pytest.approx(float(model.actor.era.delta))

    # An infeasible target (1.2 nats/dim > what truncating to [-1, 1] allows): δ winds up to δ_max, no further.
    model, trace = _tune(cheetah, entropy_per_dim=1.2, lr=0.5, steps=120)
    era = era_of(model.policy)
    assert era.delta_max == pytest.approx(D * (HALF_LOG_2PI_E + 0.0) - 1.2 * D)
    assert trace[:, 1].max() == pytest.approx(era.delta_max, abs=1e-6)
    assert np.all(trace[:, 1] <= era.delta_max + 1e-6) and np.all(trace[:, 1] >= 0)


def test_delta_is_not_in_the_actor_optimizer(cheetah):
    model = SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(TINY_NET, delta="auto"), **TINY_SAC)
    tuner = DeltaTuningCallback()
    model.learn(120, callback=tuner)
    era = era_of(model.policy)
    optimised = [p for group in model.actor.optimizer.param_groups for p in group["params"]]
    optimised += [p for group in model.critic.optimizer.param_groups for p in group["params"]]
    assert all(p is not era.delta and p is not tuner.tuner.param for p in optimised)
    assert all(p.data_ptr() != era.delta.data_ptr() for p in optimised)
    assert "era.delta" in dict(model.actor.named_buffers())
    assert [p for group in tuner.tuner.optimizer.param_groups for p in group["params"]] == [tuner.tuner.param]


def _one_update_recomputed(model, alphas: tuple[float, ...], batch_size: int = 32):
    """SB3's logged (actor, critic) losses of one ``train()`` step, and the same two recomputed
    independently, for each entropy coefficient in ``alphas``, from the formulas of docs/era.md, section 1
    (actor loss = −mean min Q(s, a∼π); target = r + γ·mask·min Q̄(s', a'∼π), no log-prob), with the
    entropy terms of SAC added back as ``α·log π``."""
    before = {name: copy.deepcopy(getattr(model, name).state_dict()) for name in ("actor", "critic", "critic_target")}
    np_state, torch_state = np.random.get_state(), th.get_rng_state()
    model.train(gradient_steps=1, batch_size=batch_size)
    logged = (model.logger.name_to_value["train/actor_loss"], model.logger.name_to_value["train/critic_loss"])
    after = {name: copy.deepcopy(getattr(model, name).state_dict()) for name in ("actor", "critic", "critic_target")}

    recomputed = {}
    for alpha in alphas:
        np.random.set_state(np_state)
        th.set_rng_state(torch_state)
        for name, state in before.items():
            getattr(model, name).load_state_dict(state)
        batch = model.replay_buffer.sample(batch_size)
        with th.no_grad():
            actions_pi, log_prob = model.actor.action_log_prob(batch.observations)
            next_actions, next_log_prob = model.actor.action_log_prob(batch.next_observations)
            next_q = th.cat(model.critic_target(batch.next_observations, next_actions), dim=1).min(dim=1, keepdim=True).values
            next_q = next_q - alpha * next_log_prob.reshape(-1, 1)
            discounts = batch.discounts if batch.discounts is not None else model.gamma
            target = batch.rewards + (1 - batch.dones) * discounts * next_q
            critic = 0.5 * sum(F.mse_loss(q, target) for q in model.critic(batch.observations, batch.actions))
            model.critic.load_state_dict(after["critic"])  # SB3 updates the critic before the actor loss
            q_pi = th.cat(model.critic(batch.observations, actions_pi), dim=1).min(dim=1, keepdim=True).values
            actor = (alpha * log_prob.reshape(-1, 1) - q_pi).mean()
        assert log_prob.abs().mean() > 0.1  # a log-prob term, were there one, would show
        recomputed[alpha] = (float(actor), float(critic))
    for name, state in after.items():
        getattr(model, name).load_state_dict(state)
    return logged, recomputed


@pytest.mark.parametrize("algo", ["sac-era", "sac"])
def test_actor_loss_and_critic_target_have_no_entropy_terms(cheetah, algo):
    if algo == "sac-era":
        model = SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(net_arch=[32, 32], delta="constant"), **TINY_SAC)
    else:  # the baseline, to show the recomputation detects an entropy term when there is one
        model = SAC("MlpPolicy", cheetah, policy_kwargs=dict(net_arch=[32, 32]), **TINY_SAC)
    model.learn(150)
    alpha = 0.0 if algo == "sac-era" else float(th.exp(model.log_ent_coef.detach()))
    (logged_actor, logged_critic), recomputed = _one_update_recomputed(model, (alpha, 0.0, 0.1))
    actor, critic = recomputed[alpha]
    assert logged_actor == pytest.approx(actor, rel=1e-5, abs=1e-6)
    assert logged_critic == pytest.approx(critic, rel=1e-5, abs=1e-6)
    for other in {0.0, 0.1} - {alpha}:  # any other coefficient is told apart
        assert logged_actor != pytest.approx(recomputed[other][0], rel=1e-3)
        assert logged_critic != pytest.approx(recomputed[other][1], rel=1e-3)


def test_ppo_era_entropy_is_h0_in_every_state(cheetah, observations):
    model = PPO(EraActorCriticPolicy, cheetah, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu",
                policy_kwargs=dict(TINY_NET, entropy_per_dim=-0.5))
    h0 = -0.5 * D
    raw_before = model.policy.raw_log_std.detach().clone()
    for stage in ("before", "after"):
        if stage == "after":
            model.learn(256)
        obs, _ = model.policy.obs_to_tensor(observations)
        with th.no_grad():
            entropy = model.policy.get_distribution(obs).entropy()
            actions = model.policy.get_distribution(obs).sample()
            _, _, evaluated = model.policy.evaluate_actions(obs, actions)
        th.testing.assert_close(entropy, th.full_like(entropy, h0), atol=1e-5, rtol=0)
        th.testing.assert_close(evaluated, entropy)
    assert not th.equal(model.policy.raw_log_std.detach(), raw_before), "PPO trained the raw log-std"
    # the no-grad fast path (log σ cached between parameter updates) agrees with the autograd path
    with th.enable_grad():
        live = model.policy.era_log_std().detach()
    with th.no_grad():
        th.testing.assert_close(model.policy.era_log_std(), live)
        era_of(model.policy).set_delta(0.5)
        assert gaussian_entropy(model.policy.era_log_std()).item() == pytest.approx(h0 + 0.5, abs=1e-5)


def test_save_and_load_keep_target_and_delta(cheetah, observations, tmp_path):
    sac = SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(TINY_NET, entropy_per_dim=0.4, delta="auto"), **TINY_SAC)
    era_of(sac.policy).set_delta(0.7)
    sac.save(tmp_path / "sac")
    loaded = SAC.load(tmp_path / "sac", device="cpu")
    era = era_of(loaded.policy)
    assert float(era.target_entropy) == pytest.approx(0.4 * D) and float(era.delta) == pytest.approx(0.7)
    assert era.learn_delta and loaded.policy.era_kwargs == sac.policy.era_kwargs
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0], sac.predict(observations, deterministic=True)[0]
    )

    ppo = PPO(EraActorCriticPolicy, cheetah, n_steps=64, batch_size=32, seed=0, device="cpu",
              policy_kwargs=dict(TINY_NET, entropy_per_dim=-0.5))
    ppo.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", device="cpu")
    assert float(era_of(loaded.policy).target_entropy) == pytest.approx(-3.0)
    obs, _ = loaded.policy.obs_to_tensor(observations[:10])
    with th.no_grad():
        th.testing.assert_close(loaded.policy.get_distribution(obs).entropy(), th.full((10,), -3.0), atol=1e-5, rtol=0)


def test_distribution_choice_and_misuse(cheetah, observations):
    truncated = SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(TINY_NET), **TINY_SAC)
    assert isinstance(truncated.actor.action_dist, TruncatedNormalDistribution)
    actions, _ = truncated.predict(observations, deterministic=False)
    assert np.abs(actions).max() < 1.0

    tanh = SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(TINY_NET, distribution="tanh"), **TINY_SAC)
    assert isinstance(tanh.actor.action_dist, SquashedDiagGaussianDistribution)
    gaussian, estimate, _ = _sac_gaussian_and_truncated_entropy(tanh, observations)
    th.testing.assert_close(gaussian, th.full_like(gaussian, 0.25 * D), atol=1e-4, rtol=0)
    assert estimate.mean() < 0.25 * D - 0.1  # the squash loses entropy (one-sample estimate, averaged)

    with pytest.raises(ConfigError, match="ent_coef=0.0"):
        SAC(EraSACPolicy, cheetah, policy_kwargs=dict(TINY_NET), **TINY_SAC).learn(10, callback=DeltaTuningCallback())
    with pytest.raises(ConfigError, match="not reachable|cannot pin"):
        SAC(EraSACPolicy, cheetah, ent_coef=0.0, policy_kwargs=dict(TINY_NET, entropy_per_dim=1.5), **TINY_SAC)
    with pytest.raises(ConfigError, match="use_sde"):
        SAC(EraSACPolicy, cheetah, ent_coef=0.0, use_sde=True, policy_kwargs=dict(TINY_NET), **TINY_SAC)


# --------------------------------------------------------------------------------------------
# Used from plain SB3: every trap refuses or is corrected (issue 15, items 6 and 7)
# --------------------------------------------------------------------------------------------

PENDULUM_SIGMA = float(np.exp(0.25 - HALF_LOG_2PI_E))  # D = 1: ERA's σ is exp(H0 − L) = 0.3107


@pytest.fixture(scope="module")
def pendulum():
    return gym.make("Pendulum-v1")


def _normalised(env: gym.Env) -> gym.Env:
    """``env`` with its actions rescaled to [-1, 1] (float32 bounds, as the env's own)."""
    one = np.ones(env.action_space.shape, np.float32)
    return RescaleAction(env, -one, one)


class BoxEnv(gym.Env):
    """Random observations, zero reward, 50-step episodes, over a given Box action space."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def __init__(self, low: list[float], high: list[float]) -> None:
        self.action_space = spaces.Box(np.array(low, np.float32), np.array(high, np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), 0.0, False, self.t >= 50, {}


@pytest.mark.parametrize("ent_coef", ["auto", "auto_0.1", 0.1])
def test_sac_era_refuses_sacs_temperature(pendulum, ent_coef):
    # Before: SAC(EraSACPolicy, env) trained with SAC's temperature on top of ERA (α = 0.94 at 300 steps).
    kwargs = {} if ent_coef == "auto" else {"ent_coef": ent_coef}  # "auto" is SAC's default
    with pytest.raises(ConfigError, match=r"ent_coef=0\.0"):
        SAC(EraSACPolicy, pendulum, policy_kwargs=dict(TINY_NET), **kwargs, **TINY_SAC)
    model = SAC(EraSACPolicy, pendulum, ent_coef=0.0, policy_kwargs=dict(TINY_NET), **TINY_SAC)
    assert model.ent_coef_optimizer is None and float(model.ent_coef_tensor) == 0.0


def test_auto_delta_refuses_to_train_without_its_tuner(pendulum):
    # Before: learn() without DeltaTuningCallback trained 300 steps with δ = 0, silently.
    model = SAC(EraSACPolicy, pendulum, ent_coef=0.0, policy_kwargs=dict(TINY_NET, delta="auto"), **TINY_SAC)
    with pytest.raises(ConfigError, match="DeltaTuningCallback"):
        model.learn(300)
    assert model.num_timesteps <= TINY_SAC["learning_starts"] + 1  # refused at the first update
    tuner = DeltaTuningCallback()
    model.learn(300, callback=tuner)
    assert float(era_of(model.policy).delta) > 0.0  # the truncated entropy starts below H0: δ rose
    with pytest.raises(ConfigError, match="DeltaTuningCallback"):  # the tuner detaches at training end
        model.learn(200, reset_num_timesteps=False)
    model.learn(200, callback=tuner, reset_num_timesteps=False)
    for delta in ("constant", "none"):  # nothing to tune: no callback needed
        SAC(EraSACPolicy, pendulum, ent_coef=0.0, policy_kwargs=dict(TINY_NET, delta=delta), **TINY_SAC).learn(200)


def test_ppo_logs_eras_sigma_as_train_std(pendulum, cheetah):
    # Before: SB3 logged exp(raw log-std) = 1.0 as train/std while ERA's σ was 0.3107.
    ppo = dict(n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model = PPO(EraActorCriticPolicy, _normalised(pendulum), policy_kwargs=dict(TINY_NET), **ppo)
    model.learn(128)
    assert model.logger.name_to_value["train/std"] == pytest.approx(PENDULUM_SIGMA, abs=1e-5)
    model = PPO(EraActorCriticPolicy, cheetah, policy_kwargs=dict(TINY_NET), **ppo)
    model.learn(128)
    with th.no_grad():
        sigma = model.policy.get_distribution(model.policy.obs_to_tensor(cheetah.observation_space.sample())[0])
        sigma = sigma.distribution.stddev.mean().item()
    assert model.logger.name_to_value["train/std"] == pytest.approx(sigma, rel=1e-5)
    th.testing.assert_close(model.policy.log_std, model.policy.era_log_std())  # SB3's name: ERA's log σ


def test_ppo_era_sigma_follows_every_write_to_the_raw_log_std(cheetah, observations):
    # Before: a write through .data changed neither _version nor data_ptr, and the cached σ stayed.
    model = PPO(EraActorCriticPolicy, cheetah, n_steps=64, seed=0, device="cpu", policy_kwargs=dict(TINY_NET))
    policy, era = model.policy, era_of(model.policy)
    obs, _ = policy.obs_to_tensor(observations[:4])
    new = th.tensor([2.0, 0.0, 0.0, 0.0, 0.0, -2.0])
    writes = {
        "data.copy_": lambda: policy.raw_log_std.data.copy_(new),
        "data[i] =": lambda: policy.raw_log_std.data.__setitem__(0, -3.0),
        "data =": lambda: setattr(policy.raw_log_std, "data", new.flip(0).clone()),
        "no_grad copy_": lambda: policy.raw_log_std.copy_(new * 0.5),
        "load_state_dict": lambda: policy.load_state_dict({**policy.state_dict(), "raw_log_std": new * 2}),
        "set_delta": lambda: era.set_delta(1.5),
        "delta.data": lambda: era.delta.data.fill_(0.25),
        "target_entropy.data": lambda: era.target_entropy.data.fill_(-2.0),
    }
    for name, write in writes.items():
        with th.no_grad():
            before = policy.era_log_std().clone()  # primes any cache
            policy.get_distribution(obs)
            write()
            expected = era(policy.raw_log_std, policy.raw_log_std)[1]
            assert not th.equal(expected, before), f"{name}: the write should change σ"
            th.testing.assert_close(policy.era_log_std(), expected, rtol=0, atol=0, msg=f"stale σ after {name}")
            stddev = policy.get_distribution(obs).distribution.stddev
            th.testing.assert_close(stddev, expected.exp().expand_as(stddev), rtol=0, atol=0)


def test_ppo_era_refuses_an_action_space_other_than_minus_one_to_one():
    # Before: on this Box the sampled actions sat on a bound 100%, 49% and 100% of the time.
    for low, high in (([-3.0, 0.0, 10.0], [-1.0, 5.0, 20.0]), ([-2.0] * 3, [2.0] * 3)):
        with pytest.raises(ConfigError, match=r"RescaleAction\(env, -1, 1\)"):
            PPO(EraActorCriticPolicy, BoxEnv(low, high), n_steps=64, seed=0, device="cpu")
    env = _normalised(BoxEnv([-3.0, 0.0, 10.0], [-1.0, 5.0, 20.0]))
    model = PPO(EraActorCriticPolicy, env, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu",
                policy_kwargs=dict(TINY_NET))
    model.learn(128)
    obs = np.random.default_rng(0).uniform(-1, 1, (2000, 3)).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=False)
    on_bound = (np.abs(actions) >= 1.0).mean(0)
    assert (on_bound < 0.01).all(), f"fraction of actions on a bound per dimension: {on_bound}"


def test_ppo_era_loads_state_dicts_that_name_the_raw_log_std_log_std(cheetah, observations):
    """Checkpoints written before the rename store ERA's input as ``log_std``."""
    kwargs = dict(n_steps=64, seed=0, device="cpu", policy_kwargs=dict(TINY_NET))
    source = PPO(EraActorCriticPolicy, cheetah, **kwargs).policy
    with th.no_grad():
        source.raw_log_std.copy_(th.linspace(-1.0, 1.0, D))
    legacy = {("log_std" if k == "raw_log_std" else k): v for k, v in source.state_dict().items()}
    target = PPO(EraActorCriticPolicy, cheetah, **dict(kwargs, seed=1)).policy
    target.load_state_dict(legacy)
    th.testing.assert_close(target.raw_log_std, source.raw_log_std)
    with th.no_grad():
        th.testing.assert_close(target.era_log_std(), source.era_log_std())


# --------------------------------------------------------------------------------------------
# The ERA authors' critic: LayerNorm after every hidden layer, through SB3's make_critic
# --------------------------------------------------------------------------------------------


def _q_by_hand(q_net: th.nn.Sequential, x: th.Tensor) -> th.Tensor:
    """Linear -> layer_norm -> ELU per hidden layer, then the output layer, from the weights."""
    linears = [m for m in q_net if isinstance(m, th.nn.Linear)]
    norms = [m for m in q_net if isinstance(m, th.nn.LayerNorm)]
    for linear, norm in zip(linears[:-1], norms):
        x = F.elu(F.layer_norm(F.linear(x, linear.weight, linear.bias), (linear.out_features,), norm.weight,
                               norm.bias, norm.eps))
    return F.linear(x, linears[-1].weight, linears[-1].bias)


@pytest.mark.parametrize("policy", [CriticNormSACPolicy, EraSACPolicy])
def test_layernorm_critics_compute_the_authors_network(cheetah, observations, policy, tmp_path):
    kwargs = dict(net_arch=[32, 16], activation_fn=th.nn.ELU, critic_layer_norm=True)
    sac = SAC(policy, cheetah, ent_coef=0.0 if policy is EraSACPolicy else "auto", policy_kwargs=kwargs, **TINY_SAC)
    for critic in (sac.critic, sac.critic_target):
        assert isinstance(critic, LayerNormCritic) and len(critic.q_networks) == 2
        kinds = [type(m).__name__ for m in critic.q_networks[0]]
        assert kinds == ["Linear", "LayerNorm", "ELU", "Linear", "LayerNorm", "ELU", "Linear"]
    assert not isinstance(sac.actor.latent_pi[1], th.nn.LayerNorm)  # the actor has none
    obs, _ = sac.policy.obs_to_tensor(observations[:20])
    actions = th.rand(20, D) * 2 - 1
    with th.no_grad():
        q1, q2 = sac.critic(obs, actions)
        x = th.cat([sac.critic.extract_features(obs, sac.critic.features_extractor), actions], dim=1)
        th.testing.assert_close(q1, _q_by_hand(sac.critic.q_networks[0], x))
        th.testing.assert_close(q2, _q_by_hand(sac.critic.q_networks[1], x))
    sac.learn(300, callback=DeltaTuningCallback() if policy is EraSACPolicy else None)  # SB3's SAC.train updates them
    assert all(th.isfinite(p).all() for p in sac.critic.parameters())
    sac.save(tmp_path / "sac")
    loaded = SAC.load(tmp_path / "sac", device="cpu")
    assert isinstance(loaded.critic, LayerNormCritic) and loaded.policy.critic_layer_norm
    with th.no_grad():
        th.testing.assert_close(loaded.critic(obs, actions)[0], sac.critic(obs, actions)[0])


def test_without_the_option_the_critics_are_sb3s(cheetah):
    plain = SAC("MlpPolicy", cheetah, policy_kwargs=dict(TINY_NET), **TINY_SAC)
    ours = SAC(CriticNormSACPolicy, cheetah, policy_kwargs=dict(TINY_NET), **TINY_SAC)
    assert type(ours.critic).__name__ == "ContinuousCritic"
    for a, b in zip(plain.policy.state_dict().values(), ours.policy.state_dict().values()):
        th.testing.assert_close(a, b)  # same seed, same networks, same initial weights
