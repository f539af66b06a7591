"""Bayesian HMM of blinking (jax forward algorithm) on a simulated telegraph trace."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qdinfer.models")
from qdinfer.models import SamplerSettings, fit_states_bayes
from qdinfer.models.states import hmm_log_likelihood

DT = 10e-3
INTENSITY = np.array([1e3, 20e3])
RATE = 2.0  # switches per second each way


def _telegraph(n_bins: int, rng: np.random.Generator) -> np.ndarray:
    s = np.zeros(n_bins, int)
    state = 0
    p = 1 - np.exp(-RATE * DT)
    for t in range(n_bins):
        s[t] = state
        if rng.random() < p:
            state = 1 - state
    return rng.poisson(INTENSITY[s] * DT)


def test_forward_matches_brute_force():
    """The forward pass equals the sum over all 2^5 state paths."""
    import itertools

    from scipy.stats import poisson

    y = np.array([3, 0, 7, 2, 5])
    lam = np.array([1.0, 5.0])
    trans = np.array([[0.9, 0.1], [0.3, 0.7]])
    init = np.array([0.75, 0.25])
    total = 0.0
    for path in itertools.product([0, 1], repeat=len(y)):
        p = init[path[0]] * poisson.pmf(y[0], lam[path[0]])
        for t in range(1, len(y)):
            p *= trans[path[t - 1], path[t]] * poisson.pmf(y[t], lam[path[t]])
        total += p
    ll = hmm_log_likelihood(np.asarray(y, np.float32), np.log(lam), np.log(trans), np.log(init))
    assert float(ll) == pytest.approx(np.log(total), rel=1e-5)


def test_recovers_intensities_and_rates():
    y = _telegraph(1000, np.random.default_rng(3))
    # 2 x 1000 draws: r_hat of 2 x 500 draws scatters by ~0.01 around 1
    res = fit_states_bayes(y, DT, n_states=2, seed=0, settings=SamplerSettings(num_samples=1000))
    assert res.diagnostics["r_hat"] < 1.01
    # sigma = posterior sd; 4 sd
    for k in range(2):
        name = f"intensity_{k + 1}_hz"
        assert abs(res.mean(name) - INTENSITY[k]) < 4 * res.sd(name)
    for name in ("rate_12_hz", "rate_21_hz"):
        assert abs(res.mean(name) - RATE) < 4 * res.sd(name)
