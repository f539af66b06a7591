"""Decays: histograms by hand, the periodic IRF model against brute force, lifetime
fits against known lifetimes within their (checked) uncertainties, IRFs, bad input."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

import qdinfer
import qdio
from qdinfer import decay_histogram, fit_decay, gaussian_irf
from qdinfer.decay import DecayHistogram, _Model, decay_from_ticks
from qdio import PhotonStream

from conftest import shared_file


def _load_sources():
    path = Path(__file__).with_name("qdinfer_sources.py")
    spec = importlib.util.spec_from_file_location("qdinfer_sources", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


src = _load_sources()


def test_histogram_by_hand():
    # sync 10 ns, 1 ns bins, 16-bin TCSPC range: bins 10..15 lie past the period
    s = qdio.PhotonStream(
        np.zeros(6, np.uint8), np.arange(6), np.array([0, 1, 1, 9, 3, 12]), 10e-9, 1e-9, 16
    )
    d = decay_histogram(s)
    assert d.counts.tolist() == [1, 2, 0, 1, 0, 0, 0, 0, 0, 1]
    assert d.n_outside == 1 and d.n_photons == 5 and d.n_full_bins == 10
    d3 = decay_histogram(s, bin_width_s=3e-9)  # 4 bins, the last one partial
    assert d3.counts.tolist() == [3, 1, 0, 1] and d3.n_full_bins == 3
    assert d3.edges_s.tolist() == pytest.approx([0, 3e-9, 6e-9, 9e-9, 12e-9])
    sel = decay_histogram(s, selection=qdinfer.gate(min_s=2e-9))
    assert sel.counts.sum() == 2
    with pytest.raises(ValueError, match="whole multiple"):
        decay_histogram(s, bin_width_s=1.5e-9)
    t2 = qdio.PhotonStream(np.zeros(2, np.uint8), np.arange(2), None, 1e-12)
    with pytest.raises(ValueError, match="T3"):
        decay_histogram(t2)


def test_periodic_model_against_numerical_integration():
    # IRF photon uniform in its bin, delay with the periodic exponential density;
    # period 47.3 bins (not a whole number), shift 0.37 bin
    n, period, tau, shift = 50, 47.3, 6.0, 0.37
    w = np.zeros(n)
    w[10], w[11] = 0.7, 0.3
    model = _Model(w, period)
    got, dlogtau, dshift = model.component_derivs(tau, shift)

    def density(x):
        x = x % period
        return math.exp(-x / tau) / (tau * -math.expm1(-period / tau))

    expected = np.zeros(n)
    for j in (10, 11):
        for i in range(n):
            # int_0^1 du int density over the detection bin, split at period edges
            def inner(u, i=i, j=j):
                lo, hi = i - j - u - shift, i - j + 1 - u - shift
                cuts = [lo, *[k * period for k in range(-2, 3) if lo < k * period < hi], hi]
                return sum(integrate.quad(density, a, b)[0] for a, b in itertools.pairwise(cuts))

            expected[i] += w[j] * integrate.quad(inner, 0, 1, epsabs=1e-13)[0]
    np.testing.assert_allclose(got, expected, atol=1e-10)
    h = 1e-5
    num = model.component(tau * math.exp(h), shift) - model.component(tau * math.exp(-h), shift)
    np.testing.assert_allclose(dlogtau, num / (2 * h), atol=1e-8)
    num = model.component(tau, shift + h) - model.component(tau, shift - h)
    np.testing.assert_allclose(dshift, num / (2 * h), atol=1e-8)


def _decay(rng, **kw):
    s = src.decay_stream(rng, **kw)
    return decay_histogram(s)


def _irf_for(d, t0=3e-9, sigma=80e-12):
    return gaussian_irf(t0, sigma * 2 * math.sqrt(2 * math.log(2)), d.edges_s)


def test_mono_exponential_lifetime_and_error():
    rng = np.random.default_rng(1)
    n = 200_000
    d = _decay(rng, n_photons=n, taus_s=(5e-9,), bg_fraction=0.05)
    fit = fit_decay(d, irf=_irf_for(d))
    assert fit.success, fit.message
    # sigma: the fit's own error; it must be close to the Cramer-Rao bound tau/sqrt(N)
    # (a little larger: background and shift are fitted too)
    assert abs(fit.tau_s[0] - 5e-9) < 5 * fit.tau_stderr_s[0]
    assert 0.95 < fit.tau_stderr_s[0] / (5e-9 / math.sqrt(n)) < 1.3
    bg_true = 0.05 * n / d.n_full_bins
    assert abs(fit.background_per_bin - bg_true) < 5 * fit.background_stderr + 3 * math.sqrt(
        bg_true / d.n_full_bins
    )
    assert abs(fit.counts[0] - n) < 5 * math.sqrt(n) + 5 * fit.counts_stderr[0]
    # goodness of fit: chi2/dof = 1 +- sqrt(2/dof)
    assert abs(fit.reduced_chi2 - 1) < 5 * math.sqrt(2 / fit.dof)
    assert abs(fit.shift_s) < 5 * fit.shift_stderr_s + 1e-12


def test_lifetime_estimates_are_calibrated():
    # 40 independent decays: the standardised errors (tau_hat - tau) / stderr
    # should be N(0, 1): mean within 5/sqrt(40), sd within [0.6, 1.5] (~4 sigma)
    rng = np.random.default_rng(12)
    z = []
    for _ in range(40):
        d = _decay(rng, n_photons=20_000, taus_s=(2e-9,), bg_fraction=0.02, period_s=50e-9)
        fit = fit_decay(d, irf=_irf_for(d))
        z.append((fit.tau_s[0] - 2e-9) / fit.tau_stderr_s[0])
    z = np.asarray(z)
    assert abs(z.mean()) < 5 / math.sqrt(len(z))
    assert 0.6 < z.std(ddof=1) < 1.5


def test_tail_from_earlier_pulses():
    # tau = 0.5 P: a quarter of the photons of a pulse arrive after the next one
    rng = np.random.default_rng(2)
    d = _decay(rng, n_photons=100_000, taus_s=(10e-9,), period_s=20e-9, res_s=16e-12)
    fit = fit_decay(d, irf=_irf_for(d))
    assert abs(fit.tau_s[0] - 10e-9) < 5 * fit.tau_stderr_s[0]
    assert abs(fit.reduced_chi2 - 1) < 5 * math.sqrt(2 / fit.dof)
    # the background is not confused with the tail
    assert fit.background_per_bin < 5 * fit.background_stderr + 1e-9


def test_sync_period_not_a_whole_number_of_bins():
    P = 1.3167472340407602e-08
    d = decay_histogram(
        src.decay_stream(
            np.random.default_rng(3),
            n_photons=100_000,
            taus_s=(3e-9,),
            period_s=P,
            res_s=4e-12,
            n_bins=4096,
            t0_s=1.5e-9,
        ),
        bin_width_s=16e-12,
    )
    assert d.n_full_bins == 822 and len(d.counts) == 823
    fit = fit_decay(d, irf=_irf_for(d, t0=1.5e-9))
    assert abs(fit.tau_s[0] - 3e-9) < 5 * fit.tau_stderr_s[0]
    assert abs(fit.reduced_chi2 - 1) < 5 * math.sqrt(2 / fit.dof)


def test_bi_exponential():
    rng = np.random.default_rng(4)
    d = _decay(
        rng,
        n_photons=300_000,
        taus_s=(0.8e-9, 6e-9),
        fractions=(0.4, 0.6),
        bg_fraction=0.01,
        period_s=50e-9,
    )
    fit = fit_decay(d, irf=_irf_for(d), n_exp=2)
    assert fit.success, fit.message
    for got, err, true in zip(fit.tau_s, fit.tau_stderr_s, (0.8e-9, 6e-9), strict=True):
        assert abs(got - true) < 5 * err
    frac_err = math.sqrt(fit.covariance[2, 2]) / fit.counts.sum()
    assert abs(fit.intensity_fractions[0] - 0.4) < 5 * frac_err + 0.005
    mono = fit_decay(d, irf=_irf_for(d), n_exp=1)
    assert mono.reduced_chi2 > fit.reduced_chi2 + 1  # one exponential does not fit
    tri = fit_decay(d, irf=_irf_for(d), n_exp=3)
    assert tri.deviance <= fit.deviance + 1e-6 * fit.deviance
    # amplitude fractions alpha_k = (counts_k / tau_k) / sum(counts / tau)
    alpha = np.array([0.4 / 0.8, 0.6 / 6.0])
    np.testing.assert_allclose(fit.amplitude_fractions, alpha / alpha.sum(), atol=0.03)


def test_irf_estimated_from_the_rising_edge():
    rng = np.random.default_rng(5)
    d = _decay(rng, n_photons=200_000, taus_s=(5e-9,), bg_fraction=0.02)
    irf = qdinfer.estimate_irf(d)
    assert irf.source == "rising edge"
    assert abs(irf.mean_s - 3e-9) < 30e-12  # centre within ~2 bins
    assert 100e-12 < irf.fwhm_s < 350e-12  # true FWHM 188 ps
    fit = fit_decay(d)  # IRF estimated inside
    # a Gaussian IRF of the wrong width biases tau by << its error at this N
    assert abs(fit.tau_s[0] - 5e-9) < 5 * fit.tau_stderr_s[0] + 5e-12


def test_irf_from_a_reference_file(tmp_path):
    rng = np.random.default_rng(6)
    # reference: scattered laser light on the same clock: only the IRF
    irf_stream = src.decay_stream(
        rng, n_photons=50_000, taus_s=(1e-15,), t0_s=3e-9, bg_fraction=0.01
    )
    path = qdio.write_ptu(tmp_path / "irf.ptu", irf_stream, record_type="hydraharp_v2_t3")
    irf = qdinfer.irf_from_file(path)
    assert irf.source.startswith("file") and abs(irf.mean_s - 3e-9) < 5e-12
    d = _decay(rng, n_photons=100_000, taus_s=(4e-9,))
    fit = fit_decay(d, irf=path)
    assert abs(fit.tau_s[0] - 4e-9) < 5 * fit.tau_stderr_s[0]
    fit2 = fit_decay(d, irf=irf)
    assert fit2.tau_s[0] == pytest.approx(fit.tau_s[0], rel=1e-6)


def test_mean_arrival_time():
    rng = np.random.default_rng(7)
    n = 100_000
    d = _decay(rng, n_photons=n, taus_s=(5e-9,), bg_fraction=0.02)
    m = qdinfer.mean_arrival_time(d, irf=_irf_for(d))
    # the error holds the background's spread: 2000 photons uniform over 100 ns
    # add sum((t - 5 ns)^2) = 2000 * 2858 ns^2 to the signal's 1e5 * 25 ns^2
    assert abs(m.mean_delay_s - 5e-9) < 5 * m.stderr_s
    expected_sd = math.sqrt(n * 25 + 0.02 * n * 2858) / n * 1e-9
    assert 0.9 < m.stderr_s / expected_sd < 1.1
    clean = _decay(rng, n_photons=n, taus_s=(5e-9,))
    m0 = qdinfer.mean_arrival_time(clean, irf=_irf_for(clean))
    # no background: sd of an exponential equals its mean, so sigma = tau / sqrt(N)
    assert 0.95 < m0.stderr_s / (5e-9 / math.sqrt(n)) < 1.05
    assert abs(m0.mean_delay_s - 5e-9) < 5 * m0.stderr_s
    # long lifetime: the periodic formula recovers tau from the wrapped mean
    d2 = _decay(rng, n_photons=n, taus_s=(30e-9,), period_s=50e-9)
    # no background here: the level before the rise is the tail of earlier pulses
    m2 = qdinfer.mean_arrival_time(d2, irf=_irf_for(d2), subtract_background=False)
    assert m2.mean_delay_s < 0.8 * 30e-9
    assert abs(m2.tau_s - 30e-9) < 0.05 * 30e-9


def test_fit_from_stream_with_selection():
    rng = np.random.default_rng(8)
    a = src.decay_stream(rng, n_photons=50_000, taus_s=(2e-9,), channel=0)
    b = src.decay_stream(rng, n_photons=50_000, taus_s=(8e-9,), channel=1)
    # merge the two channels in time order
    mac = np.concatenate([a.macrotime, b.macrotime])
    order = np.argsort(mac, kind="stable")
    both = qdio.PhotonStream(
        np.concatenate([a.channel, b.channel])[order],
        mac[order],
        np.concatenate([a.microtime, b.microtime])[order],
        a.macrotime_resolution_s,
        a.microtime_resolution_s,
        a.n_microtime_bins,
    )
    for c, tau in ((0, 2e-9), (1, 8e-9)):
        fit = fit_decay(both, selection=qdinfer.channels(c), n_exp=1)
        assert abs(fit.tau_s[0] - tau) < 5 * fit.tau_stderr_s[0]
        assert fit.decay.channels == (c,)


def test_bad_input():
    d = DecayHistogram(np.array([0, 5, 3, 1, 0, 0, 0, 0]), np.arange(9) * 1e-9, 8e-9)
    with pytest.raises(ValueError, match="too few"):
        fit_decay(d)
    with pytest.raises(ValueError, match="n_exp"):
        fit_decay(d, n_exp=4)
    rng = np.random.default_rng(0)
    big = _decay(rng, n_photons=5000, taus_s=(5e-9,))
    with pytest.raises(ValueError, match="fit_range_s"):
        fit_decay(big, irf=_irf_for(big), fit_range_s=(5e-9, 1e-9))
    with pytest.raises(ValueError, match="does not overlap"):
        fit_decay(big, irf=qdinfer.Irf([1.0], [1.0, 2.0]))
    with pytest.raises(TypeError, match="irf="):
        fit_decay(big, irf=3)
    with pytest.raises(ValueError, match="selection="):
        fit_decay(big, selection=qdinfer.channels(0))
    with pytest.raises(ValueError, match="not all zero"):
        qdinfer.Irf([0.0, 0.0], [0.0, 1.0, 2.0])


def test_unresolved_components_are_flagged():
    rng = np.random.default_rng(9)
    d = _decay(rng, n_photons=50_000, taus_s=(5e-9,))
    fit = fit_decay(d, irf=_irf_for(d), n_exp=2)
    # one component suffices: the other gets no photons, or both share one lifetime
    assert (
        (not fit.success)
        or np.any(~np.isfinite(fit.tau_stderr_s))
        or (fit.tau_stderr_s.max() > 0.2 * fit.tau_s.max())
    )
    assert np.all(np.isfinite(fit.tau_s))


def test_decay_from_ticks_matches_histogram():
    rng = np.random.default_rng(10)
    s = src.decay_stream(rng, n_photons=1000, taus_s=(5e-9,))
    ticks = np.bincount(s.microtime, minlength=s.n_microtime_bins)
    a = decay_from_ticks(
        ticks,
        tick_s=s.microtime_resolution_s,
        period_s=s.macrotime_resolution_s,
        bin_width_s=64e-12,
    )
    b = decay_histogram(s, bin_width_s=64e-12)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert qdinfer.estimate_background(b) >= 0


def test_mean_arrival_time_separates_background_from_the_periodic_tail():
    # review finding: the pre-edge level of a 60 ns decay at 400 ns holds the tail of
    # earlier pulses, not background; removing it as background biased tau by -5 %
    rng = np.random.default_rng(5)
    n, period, res, tau = 200_000, 400e-9, 128e-12, 60e-9
    t = (1e-9 + rng.normal(0, 20e-12, n) + rng.exponential(tau, n)) % period
    s = PhotonStream(np.zeros(n, np.uint8), np.arange(n) * 3,
                     np.floor(t / res).astype(np.int64), period, res, 4096)  # fmt: skip
    est = qdinfer.mean_arrival_time(s)
    # sigma of the mean delay is ~tau / sqrt(n)
    assert abs(est.tau_s - tau) < 5 * tau / math.sqrt(n)


def test_decay_of_a_t3r_file_uses_the_laser_period():
    # TimeHarp 200 T3R: the macrotime is a 100 ns clock, the laser ran at 5 MHz
    s = qdio.read(shared_file("libpicoquant/timeharp_v50.t3r"))
    d = qdinfer.decay_histogram(s)
    assert d.period_s == pytest.approx(1 / s.attrs["sync_rate_hz"])
    # with the 100 ns clock as period, 73,140 of 85,571 photons fell outside; the
    # TimeHarp's microtimes span 14-213 ns (one period, offset), so 23,063 still do
    assert d.n_outside == 23_063
