"""The truncated normal SAC-ERA samples from, checked against scipy.stats.truncnorm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from adapters.era import HALF_LOG_2PI_E
from adapters.rl.truncated_normal import TruncatedNormal, truncated_normal_entropy

LOW, HIGH = -1.0 + 1e-6, 1.0 - 1e-6


def _grid(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Locations across the support (edges included) x scales from e^-8 to e^0.5."""
    loc = torch.tensor([-1.0 + 1e-6, -0.999, -0.9, -0.5, -0.1, 0.0, 0.3, 0.77, 0.99, 1.0 - 1e-6], dtype=dtype)
    scale = torch.exp(torch.tensor([-8.0, -5.0, -3.0, -1.169, -0.5, 0.0, 0.5], dtype=dtype))
    return torch.meshgrid(loc, scale, indexing="ij")


def _scipy(loc: np.ndarray, scale: np.ndarray):
    return stats.truncnorm((LOW - loc) / scale, (HIGH - loc) / scale, loc=loc, scale=scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_entropy_matches_scipy(dtype):
    loc, scale = _grid(dtype)
    ours = TruncatedNormal(loc, scale, LOW, HIGH).entropy().double().numpy()
    reference = _scipy(loc.double().numpy(), scale.double().numpy()).entropy()
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_prob_matches_scipy(dtype):
    loc, scale = _grid(dtype)
    # points spread over the support, where the density is not negligible (|z| <= 6)
    rng = np.random.default_rng(0)
    z = torch.as_tensor(rng.uniform(-6, 6, size=loc.shape), dtype=dtype)
    x = torch.clamp(loc + scale * z, LOW, HIGH)
    ours = TruncatedNormal(loc, scale, LOW, HIGH).log_prob(x).double().numpy()
    reference = _scipy(loc.double().numpy(), scale.double().numpy()).logpdf(x.double().numpy())
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


def test_samples_follow_scipy_distribution():
    torch.manual_seed(0)
    for loc, scale in [(0.0, 0.311), (0.95, 0.311), (-0.999, 0.05), (0.5, 1.0)]:
        dist = TruncatedNormal(torch.full((20_000,), loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64), LOW, HIGH)
        samples = dist.rsample().numpy()
        assert samples.min() >= LOW and samples.max() <= HIGH
        result = stats.kstest(samples, _scipy(np.array(loc), np.array(scale)).cdf)
        assert result.pvalue > 1e-3, (loc, scale, result)


def test_entropy_is_minus_mean_log_prob():
    """Monte-Carlo identity H = −E[log p(X)] (SB3's test_distributions does the same check)."""
    torch.manual_seed(1)
    loc = torch.tensor([0.0, 0.6, -0.98, 0.999]).repeat(50_000, 1)
    scale = torch.tensor([0.3, 0.8, 0.1, 1.0]).repeat(50_000, 1)
    dist = TruncatedNormal(loc, scale, LOW, HIGH)
    estimate = -dist.log_prob(dist.rsample()).mean(0)
    torch.testing.assert_close(estimate, dist.entropy()[0], atol=0.02, rtol=0)


def test_truncation_loses_at_most_0853_nats_per_dim():
    """Spec section 1: for σ ≤ 1 the truncated entropy is at most 0.8528 below the Gaussian's."""
    loc = torch.linspace(LOW, HIGH, 401, dtype=torch.float64)[:, None]
    log_std = torch.linspace(-8.0, 0.0, 401, dtype=torch.float64)[None, :]
    loss = (log_std + HALF_LOG_2PI_E) - TruncatedNormal(loc, log_std.exp(), LOW, HIGH).entropy()
    assert loss.max().item() <= 0.8528 + 1e-4
    assert loss.max().item() > 0.85  # the bound is tight (near loc = ±1, σ = 1)
    assert loss.min().item() >= -1e-9  # truncation never adds entropy here


def test_rsample_is_reparameterised():
    loc = torch.tensor([0.2, -0.7], requires_grad=True)
    log_std = torch.tensor([-1.0, -0.3], requires_grad=True)
    torch.manual_seed(0)
    TruncatedNormal(loc, log_std.exp(), LOW, HIGH).rsample().sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(log_std.grad).all()
    assert (loc.grad.abs() > 0).all() and (log_std.grad.abs() > 0).all()


def test_summed_entropy_helper_and_bad_support():
    loc = torch.zeros(3, 2)
    log_std = torch.full((3, 2), math.log(0.5))
    torch.testing.assert_close(
        truncated_normal_entropy(loc, log_std), TruncatedNormal(loc, log_std.exp(), -1.0, 1.0).entropy().sum(-1)
    )
    with pytest.raises(ValueError, match="low < high"):
        TruncatedNormal(loc, log_std.exp(), 1.0, -1.0)
