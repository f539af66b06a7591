"""Bayesian HMM of blinking (jax forward algorithm): telegraph traces, per-state decays.

The per-state decay tests use tests/blink_sim.py (a telegraph emitter with
one exact mono-exponential lifetime per state, a Gaussian IRF and a flat
background; ground truth known exactly).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import qdinfer
import qdio

pytest.importorskip("qdinfer.models")
import jax.numpy as jnp

from blink_sim import telegraph
from qdinfer.models import (
    SamplerSettings,
    fit_states_bayes,
    fit_states_photons,
    plot_states,
    states_inputs,
    states_trajectory,
)
from qdinfer.models.states import (
    SUB_BINS,
    _decay_data,
    _micro_probs,
    _sub_bins,
    hmm_log_likelihood,
)

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


# -- per-state decays ---------------------------------------------------------
PERIOD = 50e-9
TICK = 100e-12
IRF_AT = 5e-9
TAU_2 = np.array([1.5e-9, 5e-9])
RATE_2 = np.array([2e3, 20e3])
# switches per second each way: the chain lives on 10 ms bins, and a bin holding a
# switch mixes two states (seen: bright intensity -1 to -1.5 % at 3 switches/s); at
# 0.75/s that bias stays under ~1 posterior sd
SWITCH_2 = 0.75
BG_HZ = 100.0
# 2 chains x 400 draws: r_hat scatters by ~0.01-0.015 around 1 (checked at 1.02)
FAST = SamplerSettings(num_warmup=300, num_samples=400)


def _true_irf():
    # the simulator's IRF: Gaussian, sigma 50 ps, at 5 ns
    return qdinfer.gaussian_irf(IRF_AT, 50e-12 * 2.3548, np.arange(501) * TICK)


def _photons_of(stream, mask):
    s = stream
    return qdio.PhotonStream(
        s.channel[mask],
        s.macrotime[mask],
        s.microtime[mask],
        s.macrotime_resolution_s,
        s.microtime_resolution_s,
        s.n_microtime_bins,
    )


@pytest.mark.parametrize("irf_bins", [1 / SUB_BINS, 4.0])
def test_state_decay_shape_matches_closed_form(irf_bins):
    """p_k of the model = periodic exponential integrated over each bin, for a box IRF.

    A box IRF of ``irf_bins`` microtime bins on the sub-bin grid: an eighth of a
    bin (SUB_BINS sub-bins) or four bins (no sub-bins); both exact in the model.
    """
    m, tau, bg = 62, 2.3e-9, 0.05
    w = PERIOD / 62.5  # 0.8 ns, the period is not a whole number of bins
    decay = qdinfer.DecayHistogram(np.full(m, 100), np.arange(m + 1) * w, PERIOD)
    c0 = 6 * w + (3 * w / SUB_BINS if irf_bins < 1 else 0.0)  # on the (sub-)bin grid
    n_irf = max(1, round(irf_bins))  # bins of the Irf histogram (equal weights)
    irf = qdinfer.Irf(np.ones(n_irf), c0 + np.linspace(0.0, irf_bins * w, n_irf + 1))
    wf = w / _sub_bins(w, irf)
    assert _sub_bins(w, irf) == (SUB_BINS if irf_bins < 1 else 1)
    hist = np.tile(decay.counts, (10, 1))
    data, _, _ = _decay_data(hist, decay, irf, 1, hist.sum(axis=1), 1e-3, np.array([1e5]))
    data = {k: jnp.asarray(v, jnp.float32) for k, v in data.items()}
    p = np.asarray(_micro_probs(data, jnp.array([tau / wf]), jnp.array([bg]), 0.0))[0]

    def cdf(x):  # photons of one pulse's periodic exponential before x, per period
        r = np.mod(x, PERIOD)
        return np.floor(x / PERIOD) + (-np.expm1(-r / tau)) / (-np.expm1(-PERIOD / tau))

    v = c0 + (np.arange(4000) + 0.5) / 4000 * irf_bins * w  # IRF photon uniform in the box
    a = np.arange(m)[:, None] * w - v[None, :]
    sig = (cdf(a + w) - cdf(a)).mean(axis=1)
    expect = (1 - bg) * sig + bg * w / PERIOD
    expect /= expect.sum()
    np.testing.assert_allclose(p, expect, rtol=2e-4, atol=1e-7)


def test_states_inputs_match_brute_force():
    rng = np.random.default_rng(5)
    n = 3000
    macro = np.sort(rng.integers(0, 2_000_000, n))  # 50 ns periods: 0.1 s
    micro = rng.integers(0, 500, n)
    s = qdio.PhotonStream(np.zeros(n, np.uint8), macro, micro, PERIOD, TICK, 512)
    d = states_inputs(s, 5e-3, n_micro_bins=64, irf=_true_irf())
    width = math.ceil(500 / 64)  # TCSPC bins per microtime bin
    m = d.decay.n_full_bins
    assert d.micro_hist.shape == (len(d.counts), m) and m == 500 // width
    expect = np.zeros_like(d.micro_hist)
    for t, mu in zip(macro, micro, strict=True):
        tb, mb = int(t * PERIOD / 5e-3), int(mu) // width
        if tb < len(d.counts) and mb < m:
            expect[tb, mb] += 1
    np.testing.assert_array_equal(d.micro_hist, expect)
    np.testing.assert_array_equal(d.counts, qdinfer.intensity_trace(s, bin_width_s=5e-3).counts)
    t2 = qdio.PhotonStream(np.zeros(n, np.uint8), macro, None, 1e-9)
    with pytest.raises(ValueError, match="T3"):
        states_inputs(t2, 5e-3)
    with pytest.raises(ValueError, match="n_micro_bins"):
        states_inputs(s, 5e-3, n_micro_bins=2)


@pytest.fixture(scope="module")
def two_states():
    q = np.array([[0.0, SWITCH_2], [SWITCH_2, 0.0]])
    b = telegraph(
        RATE_2, q, 8.0, 7, tau_s=TAU_2, period_s=PERIOD, micro_res_s=TICK, background_hz=BG_HZ
    )
    res = fit_states_photons(
        b.stream, 10e-3, n_states=2, irf=_true_irf(), settings=FAST, warn=False
    )
    return b, res


def test_state_lifetimes_recovered(two_states):
    """Lifetimes, intensities (emitter + background), background fractions, rates vs truth."""
    _, res = two_states
    assert res.diagnostics["r_hat"] < 1.02 and res.diagnostics["divergences"] == 0
    # sigma = posterior sd; 4 sd.  The truth of a bin's intensity includes the background;
    # one photon per 50 ns period drops ~0.1 % of the bright photons (0.3 sd)
    for k in range(2):
        truths = {f"tau_{k + 1}_s": TAU_2[k], f"intensity_{k + 1}_hz": RATE_2[k] + BG_HZ}
        for name, truth in truths.items():
            assert abs(res.mean(name) - truth) < 4 * res.sd(name), name
        frac = f"background_fraction_{k + 1}"
        assert abs(res.mean(frac) - BG_HZ / (RATE_2[k] + BG_HZ)) < 4 * res.sd(frac)
    # ~6 switches each way: the posterior of a rate is ~Gamma(n), sd ~ rate / sqrt(n)
    for name in ("rate_12_hz", "rate_21_hz"):
        assert abs(res.mean(name) - SWITCH_2) < 4 * res.sd(name), name
    assert abs(res.mean("shift_s")) < 4 * res.sd("shift_s") + 10e-12  # IRF given exactly


def test_state_lifetimes_agree_with_fit_decay_on_true_states(two_states):
    """Brute force: fit_decay (TCSPC bins, the true IRF) on the photons of each true state."""
    b, res = two_states
    for k in range(2):
        sub = _photons_of(b.stream, b.photon_state == k)
        mle = qdinfer.fit_decay(qdinfer.decay_histogram(sub), irf=_true_irf())
        # same photons (but for ~1 % in bins holding a switch, and the background):
        # the two estimates differ by much less than either error; 1.5 sd allows for
        # the coarser microtime bins of the HMM (seen 0.2-0.7 sd)
        name = f"tau_{k + 1}_s"
        assert abs(res.mean(name) - mle.tau_s[0]) < 1.5 * res.sd(name)
        assert res.sd(name) == pytest.approx(mle.tau_stderr_s[0], rel=0.3)


def test_state_probabilities_follow_true_states(two_states):
    b, res = two_states
    prob = res.info["state_probability"]
    assert prob.shape == (len(res.info["counts"]), 2)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-9)
    s = b.stream
    traj = states_trajectory(res, photon_times_s=s.macrotime * s.macrotime_resolution_s)
    assert traj.labels == ("dark", "bright")
    # at most the bins holding a switch disagree (each switch: one 10 ms bin of 8 s)
    assert qdinfer.time_agreement(traj, b.truth) >= 1 - (b.n_switches.sum() + 1) * 0.01 / 8.0


def test_plot_states(two_states):
    _, res = two_states
    fig = plot_states(res)
    assert len(fig.axes) == 2
    assert fig.axes[1].get_yscale() == "log"
    assert "tau" in fig.axes[1].get_legend().get_texts()[0].get_text()


@pytest.mark.slow
def test_three_state_lifetimes_recovered():
    rate = np.array([1e3, 6e3, 20e3])
    tau = np.array([1e-9, 3e-9, 6e-9])
    q = np.array([[0, 1.0, 0.25], [1.0, 0, 1.0], [0.25, 1.0, 0]])
    b = telegraph(rate, q, 30.0, 11, tau_s=tau, period_s=PERIOD, micro_res_s=TICK)
    res = fit_states_photons(
        b.stream, 10e-3, n_states=3, irf=_true_irf(), settings=SamplerSettings(num_samples=1000)
    )
    assert res.diagnostics["r_hat"] < 1.01
    for k in range(3):
        for name, truth in ((f"tau_{k + 1}_s", tau[k]), (f"intensity_{k + 1}_hz", rate[k])):
            assert abs(res.mean(name) - truth) < 4 * res.sd(name), name
    realised = b.n_switches / b.truth.time_in_state_s()[:, None]
    for i in range(3):
        for j in range(3):
            if i != j:
                name = f"rate_{i + 1}{j + 1}_hz"
                assert abs(res.mean(name) - q[i, j]) < 4 * res.sd(name), (name, realised[i, j])


def test_decay_inputs_checked():
    decay = qdinfer.DecayHistogram(np.full(62, 100), np.arange(63) * 0.8e-9, PERIOD)
    y = np.full(20, 400)
    hist = np.full((20, 62), 5)
    with pytest.raises(ValueError, match="needs decay="):
        fit_states_bayes(y, DT, micro_hist=hist)
    with pytest.raises(ValueError, match=r"shape \(len\(counts\), decay.n_full_bins\)"):
        fit_states_bayes(y, DT, micro_hist=hist[:, :10], decay=decay, irf=_true_irf())
    with pytest.raises(ValueError, match="row sums <= counts"):
        fit_states_bayes(y // 4, DT, micro_hist=hist, decay=decay, irf=_true_irf())


@pytest.mark.parametrize("bad", [float("nan"), -1.0, 2.5])
def test_counts_must_be_whole_and_nonnegative(bad):
    counts = np.r_[np.full(20, 5.0), bad]
    with pytest.raises(ValueError, match=r"counts\[20\] = .*whole numbers >= 0"):
        fit_states_bayes(counts, 0.01)
