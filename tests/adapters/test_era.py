"""Property and regression tests of the three ERA activations against the facts of docs/era.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import lambertw

from adapters.era import (
    HALF_LOG_2PI_E,
    DeltaTuner,
    GaussianERA,
    SoftmaxERA,
    gaussian_entropy,
    response_entropy,
    softmax_entropy,
    token_entropy,
    token_era,
)

L = HALF_LOG_2PI_E
PROPERTY = settings(max_examples=60, deadline=None)


def _raw(seed: int, shape: tuple[int, ...], scale: float, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


# ----------------------------------------------------------------------------------------------
# Gaussian
# ----------------------------------------------------------------------------------------------


def test_half_log_2pi_e_constant():
    assert L == pytest.approx(1.418939, abs=1e-6)


@PROPERTY
@given(
    dim=st.integers(1, 64),
    per_dim=st.floats(-6.0, 1.4),
    scale=st.sampled_from([0.1, 1.0, 10.0, 50.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_gaussian_entropy_is_at_least_target_and_log_std_in_bounds(dim, per_dim, scale, seed):
    era = GaussianERA(dim, per_dim * dim)
    raw = _raw(seed, (32, dim), scale)
    mean = _raw(seed + 1, (32, dim), 1.0)
    mean_out, log_std = era(mean, raw)
    assert torch.equal(mean_out, mean)
    assert log_std.dtype == torch.float32
    assert (log_std >= -8.0).all() and (log_std <= 0.0).all()
    entropy = gaussian_entropy(log_std).double()
    tol = 1e-6 * (abs(per_dim * dim - dim * L) + 1) + 1e-5
    assert (entropy >= per_dim * dim - tol).all()


@PROPERTY
@given(dim=st.integers(2, 64), per_dim=st.floats(-2.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_gaussian_entropy_pinned_exactly_when_unclipped_fp64(dim, per_dim, seed):
    era = GaussianERA(dim, per_dim * dim).double()
    raw = _raw(seed, (16, dim), 0.3, torch.float64)
    _, log_std = era.double()(torch.zeros(16, dim, dtype=torch.float64), raw)
    # forward computes in fp32; redo in fp64 to check the algebra at 1e-12
    budget = per_dim * dim - dim * L
    log_std64 = torch.clamp(budget * torch.softmax(raw, -1), -8.0, 0.0)
    unclipped = (log_std64 > -8.0).all(-1)
    err = (gaussian_entropy(log_std64.float()).double() - per_dim * dim).abs()
    assert torch.allclose(log_std.double(), log_std64, atol=1e-5)
    exact = ((log_std64 + L).sum(-1) - per_dim * dim).abs()
    assert (exact[unclipped] <= 1e-12 * (abs(budget) + 1)).all()
    assert (err[unclipped] <= 1e-6 * (abs(budget) + 1) + 1e-5).all()


def test_gaussian_zero_raw_gives_equal_log_std():
    era = GaussianERA(6, 0.25 * 6)
    _, log_std = era(torch.zeros(3, 6), torch.zeros(3, 6))
    assert torch.allclose(log_std, torch.full((3, 6), 0.25 - L), atol=1e-6)
    assert log_std[0, 0].item() == pytest.approx(-1.1689, abs=1e-4)


def test_gaussian_sum_of_log_std_has_zero_gradient_when_unclipped():
    era = GaussianERA(5, 0.0)
    raw = torch.randn(8, 5, requires_grad=True) * 0.5
    raw.retain_grad()
    _, log_std = era(torch.zeros(8, 5), raw)
    log_std.sum().backward()
    assert raw.grad.abs().max().item() < 1e-6


def test_gaussian_shift_invariant_and_permutation_equivariant():
    era = GaussianERA(7, 0.3 * 7)
    raw = torch.randn(4, 7)
    _, base = era(torch.zeros(4, 7), raw)
    _, shifted = era(torch.zeros(4, 7), raw + 3.7)
    perm = torch.randperm(7)
    _, permuted = era(torch.zeros(4, 7), raw[:, perm])
    assert torch.allclose(base, shifted, atol=1e-6)
    assert torch.allclose(base[:, perm], permuted, atol=1e-6)


def test_gaussian_dim_one_gives_constant_std():
    era = GaussianERA(1, -0.5)
    _, log_std = era(torch.zeros(5, 1), torch.randn(5, 1) * 10)
    assert torch.allclose(log_std, torch.full((5, 1), -0.5 - L), atol=1e-6)


def test_gaussian_delta_raises_entropy_by_exactly_delta():
    dim, target = 6, 1.5
    raw = torch.randn(10, dim) * 0.2
    _, base = GaussianERA(dim, target)(torch.zeros(10, dim), raw)
    _, raised = GaussianERA(dim, target, delta=2.0)(torch.zeros(10, dim), raw)
    diff = gaussian_entropy(raised) - gaussian_entropy(base)
    assert torch.allclose(diff, torch.full((10,), 2.0), atol=1e-5)


def test_gaussian_extreme_raw_inputs_give_finite_outputs_and_gradients():
    era = GaussianERA(17, 0.25 * 17)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        raw = torch.tensor([[1e4, -1e4] + [0.0] * 15, [-1e4] * 17], dtype=dtype, requires_grad=True)
        mean = torch.ones(2, 17, dtype=dtype, requires_grad=True)
        mean_out, log_std = era(mean, raw)
        assert torch.isfinite(log_std).all()
        (log_std.sum() + mean_out.float().sum()).backward()
        assert torch.isfinite(raw.grad).all() and torch.isfinite(mean.grad).all()
        assert (gaussian_entropy(log_std) >= 0.25 * 17 - 1e-4).all()


@pytest.mark.parametrize("dim,per_dim", [(6, 1.5), (6, 2.0), (3, -6.7)])
def test_gaussian_unreachable_target_raises_with_range(dim, per_dim):
    with pytest.raises(ValueError, match=r"not reachable.*choose a total target in \["):
        GaussianERA(dim, per_dim * dim)


def test_gaussian_rejects_bad_delta():
    with pytest.raises(ValueError, match="delta"):
        GaussianERA(4, 0.0, delta="sometimes")
    with pytest.raises(ValueError, match="delta must be >= 0"):
        GaussianERA(4, 0.0, delta=-1.0)


def test_gaussian_delta_is_a_buffer_not_a_parameter_and_round_trips():
    era = GaussianERA(4, 1.0, delta=0.5)
    assert list(era.parameters()) == []
    state = era.state_dict()
    restored = GaussianERA(4, 0.0)
    restored.load_state_dict(state)
    assert float(restored.delta) == 0.5 and float(restored.target_entropy) == 1.0


def test_delta_tuner_rises_below_target_falls_above_and_stays_clamped():
    era = GaussianERA(3, 0.25 * 3, delta="auto")
    tuner = DeltaTuner(era, lr=0.5)
    history = [tuner.step(torch.full((64,), -5.0)) for _ in range(50)]
    assert history[0] > 0.0 and all(b >= a for a, b in zip(history, history[1:]))
    assert max(history) <= era.delta_max + 1e-6  # δ is stored in fp32
    assert history[-1] == pytest.approx(era.delta_max)  # winds up to the clamp, not beyond
    falling = [tuner.step(torch.full((64,), 10.0)) for _ in range(200)]
    assert falling[-1] < history[-1] and min(falling) >= 0.0
    assert falling[-1] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("dim", [1, 19, 61])
def test_delta_tuner_moves_delta_per_dimension(dim):
    """Adam's first step is lr·sign(grad) whatever the gradient's size: tuning δ / D moves δ by lr·D,
    tuning δ itself by lr, so a 61-dimensional floor takes 61 times as many steps."""
    per_dim = DeltaTuner(GaussianERA(dim, 0.25 * dim, delta="auto"), lr=3e-3)
    total = DeltaTuner(GaussianERA(dim, 0.25 * dim, delta="auto"), lr=3e-3, per_dim=False)
    below = torch.full((8,), -10.0)
    assert per_dim.step(below) == pytest.approx(3e-3 * dim, rel=1e-4)
    assert total.step(below) == pytest.approx(3e-3, rel=1e-4)
    for _ in range(99):
        per_dim.step(below)
        total.step(below)
    assert float(per_dim.era.delta) == pytest.approx(dim * float(total.era.delta), rel=1e-3)
    if dim > 1:  # the scales differ: a checkpoint of one cannot resume the other
        with pytest.raises(ValueError, match="delta_lr_scale"):
            total.load_state_dict(per_dim.state_dict())


def test_delta_loss_matches_formula():
    era = GaussianERA(2, 0.5, delta=1.25)
    entropy = torch.tensor([0.0, 1.0, 2.0])
    assert era.delta_loss(entropy).item() == pytest.approx(1.25 * float((entropy - 0.5).mean()))


def test_delta_tuner_state_round_trip():
    era = GaussianERA(3, 0.0, delta="auto")
    tuner = DeltaTuner(era, lr=0.1)
    for _ in range(3):
        tuner.step(torch.full((4,), -2.0))
    era2 = GaussianERA(3, 0.0, delta="auto")
    tuner2 = DeltaTuner(era2, lr=0.1)
    tuner2.load_state_dict(tuner.state_dict())
    assert float(era2.delta) == pytest.approx(float(era.delta))
    assert tuner.step(torch.full((4,), -2.0)) == pytest.approx(tuner2.step(torch.full((4,), -2.0)))


# ----------------------------------------------------------------------------------------------
# Softmax
# ----------------------------------------------------------------------------------------------


def test_softmax_constants_match_spec():
    n, h_min = 10, 0.6
    era = SoftmaxERA(n, h_min)
    u_b = math.log(4) / 4
    c = math.exp(h_min - 1)
    assert u_b == pytest.approx(0.346574, abs=1e-6)
    assert era.slope == pytest.approx((n * u_b - c) / (n - 1), abs=1e-12)
    assert era.offset == pytest.approx((c - u_b) / (n - 1), abs=1e-12)
    p = np.random.default_rng(0).dirichlet(np.ones(n))
    assert float(np.sum(era.slope * p + era.offset)) == pytest.approx(c, abs=1e-12)
    assert era.slope + era.offset == pytest.approx(u_b, abs=1e-12)  # h(p=1) = u_b


@pytest.mark.parametrize(
    "n,threshold", [(2, 0.6335), (10, 2.2429), (100, 4.5455), (1000, 6.8481)]
)
def test_softmax_domain_thresholds(n, threshold):
    low, high = SoftmaxERA.allowed_range(n)
    assert low == pytest.approx(-0.0597, abs=1e-4)
    assert high == pytest.approx(threshold, abs=1e-4)
    SoftmaxERA(n, threshold - 0.01)
    with pytest.raises(ValueError, match=r"outside the allowed range \(-0\.0597, "):
        SoftmaxERA(n, threshold + 0.01)
    with pytest.raises(ValueError, match="allowed range"):
        SoftmaxERA(n, -0.07)


def _logit_batch(seed: int, n: int, scale: float) -> torch.Tensor:
    z = _raw(seed, (64, n), scale)
    onehot = torch.full((2, n), -50.0)
    onehot[0, 0] = 50.0
    onehot[1, n - 1] = 1e4
    return torch.cat([z, onehot, torch.zeros(1, n)])


@PROPERTY
@given(
    n=st.sampled_from([2, 3, 5, 10, 100, 1000]),
    frac=st.floats(0.0, 0.98),
    scale=st.sampled_from([0.1, 1.0, 10.0, 50.0, 1e4]),
    seed=st.integers(0, 2**31 - 1),
)
def test_softmax_series_floor_holds_within_spec_tolerance(n, frac, scale, seed):
    low, high = SoftmaxERA.allowed_range(n)
    h_min = max(low + 1e-3, 0.0) + frac * (high - max(low + 1e-3, 0.0))
    era = SoftmaxERA(n, h_min)
    z = _logit_batch(seed, n, scale)
    out = era(z)
    assert torch.isfinite(out).all()
    assert (softmax_entropy(out) >= h_min - 0.01).all()
    assert torch.equal(out.argmax(-1)[:-1], z.argmax(-1)[:-1])  # last row is uniform (ties)


@PROPERTY
@given(
    n=st.sampled_from([2, 3, 5, 10, 100, 1000]),
    frac=st.floats(0.0, 0.98),
    scale=st.sampled_from([0.1, 1.0, 10.0, 50.0, 1e4]),
    seed=st.integers(0, 2**31 - 1),
)
def test_softmax_exact_floor_holds(n, frac, scale, seed):
    low, high = SoftmaxERA.allowed_range(n)
    h_min = max(low + 1e-3, 0.0) + frac * (high - max(low + 1e-3, 0.0))
    out = SoftmaxERA(n, h_min, inverse="exact")(_logit_batch(seed, n, scale).double()).double()
    log_p = torch.log_softmax(out, -1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    assert (entropy >= h_min - 1e-6).all()  # fp32 output cast bounds the margin, not the maths


def test_softmax_exact_inverse_matches_scipy_lambert_w():
    from adapters.era import _lambert_w_minus1_of_neg

    h = torch.tensor([1e-30, 1e-6, 0.01, 0.1, 0.3, 0.3466])
    ours = _lambert_w_minus1_of_neg(h).double().numpy()
    ref = lambertw(-h.double().numpy(), -1).real
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


@pytest.mark.parametrize(
    "n,inverse,p_max,entropy",
    [(10, "series", 0.7880, 0.9825), (1000, "series", 0.8494, 1.4639), (1000, "exact", 0.889, 1.115)],
)
def test_softmax_one_hot_regression_values(n, inverse, p_max, entropy):
    z = torch.zeros(1, n)
    z[0, 0] = 50.0
    out = SoftmaxERA(n, 0.6, inverse=inverse)(z)
    assert out.softmax(-1).max().item() == pytest.approx(p_max, abs=1e-3)
    assert softmax_entropy(out).item() == pytest.approx(entropy, abs=1e-3)


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_softmax_uniform_input_stays_uniform(n):
    out = SoftmaxERA(n, 0.5)(torch.zeros(3, n))
    assert softmax_entropy(out) == pytest.approx(torch.full((3,), math.log(n)), abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("inverse", ["series", "exact"])
def test_softmax_half_precision_finite_values_and_gradients(dtype, inverse):
    era = SoftmaxERA(1000, 0.6, inverse=inverse)
    z = (torch.randn(8, 1000) * 50).to(dtype)
    z[0, 3] = 1e4 if dtype == torch.bfloat16 else 6e4
    z.requires_grad_(True)
    out = era(z)
    assert out.dtype == dtype and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out.float(), torch.arange(8)).backward()
    assert torch.isfinite(z.grad).all()
    assert (softmax_entropy(out) >= 0.6 - 0.01).all()


def test_softmax_gradients_finite_at_extremes():
    era = SoftmaxERA(10, 0.6)
    z = torch.tensor([[50.0] + [-50.0] * 9, [1e4] + [-1e4] * 9], requires_grad=True)
    era(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_softmax_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes >= 2"):
        SoftmaxERA(1)
    with pytest.raises(ValueError, match="inverse"):
        SoftmaxERA(10, inverse="taylor")
    with pytest.raises(ValueError, match="last dim 10"):
        SoftmaxERA(10)(torch.zeros(2, 5))


# ----------------------------------------------------------------------------------------------
# Token-level
# ----------------------------------------------------------------------------------------------


def test_token_entropy_matches_independent_computation():
    logits = torch.randn(2, 3, 7)
    p = torch.softmax(logits.double(), -1)
    expected = -(p * p.log()).sum(-1)
    assert torch.allclose(token_entropy(logits).double(), expected, atol=1e-6)


def test_response_entropy_is_top_fifth_mean_without_padding():
    torch.manual_seed(2)
    mask = torch.tensor([[1] * 10 + [0] * 2, [1] * 3 + [0] * 9, [1] * 5 + [0] * 7])
    logits = torch.randn(3, 12, 11) * 3
    logits[~mask.bool()] = 0.0  # padding is uniform: the highest entropy there is
    h = token_entropy(logits)
    got = response_entropy(logits, mask)
    for b in range(3):
        valid = h[b][mask[b].bool()]
        k = max(1, int(math.floor(0.2 * len(valid))))
        expected = valid.sort(descending=True).values[:k].mean().item()
        assert got[b].item() == pytest.approx(expected, abs=1e-6)
        assert got[b].item() < math.log(11) - 1e-3


def test_response_entropy_ignores_padding_values_and_empty_responses():
    logits = torch.zeros(2, 6, 5)
    logits[:, :3] = torch.tensor([10.0, 0, 0, 0, 0])  # near-zero entropy tokens
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    got = response_entropy(logits, mask)  # padded positions are uniform (entropy log 5)
    assert got[0].item() < 0.01 and got[1].item() == 0.0


def test_response_entropy_top_fraction_one_is_plain_mean():
    logits = torch.randn(3, 8, 9)
    mask = torch.ones(3, 8)
    assert torch.allclose(response_entropy(logits, mask, 1.0), token_entropy(logits).mean(-1), atol=1e-6)


def test_token_era_three_cases_and_advantage_rescaling():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6)
    adv = torch.tensor([[0.7, 1.3, -0.4, 0.0]] * 3)
    h_resp = torch.tensor([0.1, 1.0, 5.0])  # low, mid-band, high
    new_logits, new_adv = token_era(logits, adv, h_resp, k=2.0, omega_low=0.45, omega_high=3.0)
    pos = adv[0] > 0
    # low-entropy response: positive-advantage tokens scaled by k, advantages by 1/k
    assert torch.equal(new_logits[0, pos], logits[0, pos] * 2.0)
    assert torch.equal(new_adv[0, pos], adv[0, pos] / 2.0)
    # high-entropy response: the reverse
    assert torch.equal(new_logits[2, pos], logits[2, pos] * 0.5)
    assert torch.equal(new_adv[2, pos], adv[2, pos] * 2.0)
    # everything else bit-identical
    assert torch.equal(new_logits[1], logits[1]) and torch.equal(new_adv[1], adv[1])
    for b in (0, 2):
        assert torch.equal(new_logits[b, ~pos], logits[b, ~pos])
        assert torch.equal(new_adv[b, ~pos], adv[b, ~pos])


def test_token_era_without_advantage_scaling_keeps_advantages():
    logits = torch.randn(1, 2, 4)
    adv = torch.tensor([[1.0, 2.0]])
    new_logits, new_adv = token_era(logits, adv, torch.tensor([0.0]), scale_advantages=False)
    assert torch.equal(new_adv, adv) and torch.equal(new_logits, logits * 2.0)


def test_token_era_authors_code_truncates_advantages_for_logits_only():
    logits = torch.randn(1, 4, 5)
    adv = torch.tensor([[0.7, 1.3, -0.4, 2.9]])
    new_logits, new_adv = token_era(logits, adv, torch.tensor([0.0]), authors_code=True)
    # logits scaled only where int(A) > 0, i.e. A >= 1
    assert torch.equal(new_logits[0, 0], logits[0, 0])
    assert torch.equal(new_logits[0, 1], logits[0, 1] * 2) and torch.equal(new_logits[0, 3], logits[0, 3] * 2)
    assert torch.equal(new_logits[0, 2], logits[0, 2])
    # advantages rescaled on the response-level sign of A[:, 0] (> 0 here): every token
    assert torch.allclose(new_adv, adv / 2)


def test_token_era_gradient_identity_factor_cancels():
    """With A' = A/s: ∇_z [A' log softmax(s z)_a] = A (e_a − softmax(s z)) (spec §3)."""
    torch.manual_seed(1)
    v = 9
    z = torch.randn(1, 1, v, dtype=torch.float64, requires_grad=True)
    a = 4
    for h_resp, s in ((0.1, 2.0), (5.0, 0.5)):
        adv = torch.tensor([[0.8]], dtype=torch.float64)
        new_z, new_adv = token_era(z, adv, torch.tensor([h_resp], dtype=torch.float64))
        objective = new_adv[0, 0] * torch.log_softmax(new_z[0, 0], -1)[a]
        (grad,) = torch.autograd.grad(objective, z)
        onehot = torch.zeros(v, dtype=torch.float64)
        onehot[a] = 1
        expected = 0.8 * (onehot - torch.softmax(s * z[0, 0].detach(), -1))
        assert torch.allclose(grad[0, 0], expected, atol=1e-12)


def test_token_era_positive_advantage_raises_entropy_of_collapsed_responses():
    """First-order entropy change of the expected update is > 0 for s = k, < 0 for s = 1/k."""
    gen = torch.Generator().manual_seed(3)
    ups = downs = 0
    draws = 200
    for _ in range(draws):
        z = (torch.randn(12, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
        pi = torch.softmax(z, -1)
        entropy = -(pi * torch.log(pi)).sum()
        (grad_h,) = torch.autograd.grad(entropy, z)
        for s, sign in ((2.0, 1), (0.5, -1)):
            update = pi.detach() - torch.softmax(s * z.detach(), -1)  # E_a[A (e_a - softmax(sz))], A=1
            change = float((grad_h * update).sum())
            if sign > 0:
                ups += change > 0
            else:
                downs += change < 0
    assert ups == draws and downs == draws


def test_token_era_rejects_bad_band():
    with pytest.raises(ValueError, match="omega_low <= omega_high"):
        token_era(torch.zeros(1, 1, 2), torch.zeros(1, 1), torch.zeros(1), omega_low=3, omega_high=1)
