"""Detection chain: dead times, dark counts, afterpulsing, background, leakage, IRF."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

import qdsim
from qdsim import Irf, Process
from qdsim import closed_forms as cf


def _noise_only(h, n_det=2, **det_kw):
    """No emitter light (power 0 is used), only detector noise."""
    dets = [h.ideal_detector(**det_kw) for _ in range(n_det)]
    return h.ideal_setup(eta_c=0.01, detectors=dets)


def _min_spacing_s(stream, channel: int) -> float:
    t = stream.arrival_time_s()[stream.channel == channel]
    return float(np.diff(t).min())


@pytest.mark.parametrize("block_duration_s", [1.0, 1e-4])
def test_dead_time_on_poisson_source(h, block_duration_s):
    """Non-paralysable dead time on a Poisson source: r_out = r_in / (1 + r_in tau_d).

    No two detections on a detector are closer than tau_d (up to one TCSPC
    bin of digitisation), also across the simulator's blocks.
    """
    r_in, tau_d = 4e6, 77e-9
    setup = _noise_only(h, n_det=1, background_rate_hz=r_in, dead_time_s=tau_d, split=1.0)
    setup = dataclasses.replace(setup, block_duration_s=block_duration_s)
    res = qdsim.simulate(setup, power_w=0.0, duration_s=0.05, rng=41)
    s = res.stream
    assert _min_spacing_s(s, 0) > tau_d - s.microtime_resolution_s
    expected = cf.nonparalysable_rate(r_in, tau_d) * 0.05
    # renewal process: Var(N) = N / (1 + r tau)^2 < N; Poisson sigma is conservative
    assert abs(len(s) - expected) < 5 * math.sqrt(expected), (len(s), expected)


def test_tcspc_dead_time_and_signal(h):
    """Pulsed emitter photons: each detector keeps tau_d, the TCSPC its longer dead time."""
    setup = h.with_detectors(h.ideal_setup(eta_c=0.5), dead_time_s=77e-9)
    tcspc = dataclasses.replace(setup.detection.tcspc, dead_time_s=95e-9)
    setup = dataclasses.replace(setup, detection=dataclasses.replace(setup.detection, tcspc=tcspc))
    res = qdsim.simulate(setup, power_w=setup.power_for(20.0), duration_s=0.02, rng=42)
    s = res.stream
    for c in (0, 1):
        assert _min_spacing_s(s, c) > 95e-9 - s.microtime_resolution_s
    # shared TDC: no two records of any channel closer than 95 ns
    shared = dataclasses.replace(
        setup,
        detection=dataclasses.replace(
            setup.detection, tcspc=dataclasses.replace(tcspc, shared_dead_time=True)
        ),
    )
    s2 = qdsim.simulate(shared, power_w=setup.power_for(20.0), duration_s=0.02, rng=42).stream
    assert np.diff(s2.arrival_time_s()).min() > 95e-9 - s2.microtime_resolution_s
    assert len(s2) < 0.9 * len(s)  # pairs within 95 ns across channels are lost


def test_dark_counts_and_afterpulses(h):
    r_dark, p_ap, tau_ap, tau_d = 1e4, 0.05, 200e-9, 77e-9
    setup = _noise_only(
        h,
        dark_rate_hz=r_dark,
        afterpulse_probability=p_ap,
        afterpulse_delay_s=tau_ap,
        dead_time_s=tau_d,
    )
    duration = 5.0
    res = qdsim.simulate(setup, power_w=0.0, duration_s=duration, rng=43)
    t, s = res.truth, res.stream
    for c in (0, 1):
        on_c = s.channel == c
        dark = int((on_c & (t.process == Process.DARK)).sum())
        ap = int((on_c & (t.process == Process.AFTERPULSE)).sum())
        # dark counts lost in dead time after dark counts and afterpulses: ~ r (tau_d) (1 + p)
        mu = r_dark * duration * (1 - r_dark * tau_d * (1 + p_ap))
        assert abs(dark - mu) < 5 * math.sqrt(mu), (dark, mu)
        # afterpulses afterpulse too: p + p^2 + ... = p / (1 - p) per dark count; one is
        # lost when another registered event precedes it within tau_d
        p_keep = 1 - r_dark * tau_d
        ratio = ap / dark
        expected = p_ap / (1 - p_ap) * p_keep
        assert abs(ratio - expected) < 5 * math.sqrt(p_ap / dark), (ratio, expected)
        # delay after the previous detection on the channel: tau_d + Exp(tau_ap)
        times = s.arrival_time_s()[on_c]
        is_ap = (t.process == Process.AFTERPULSE)[on_c]
        delay = (times[1:] - times[:-1])[is_ap[1:]] - tau_d
        # digitisation: +-1 bin of 128 ps, small against tau_ap = 200 ns
        p = stats.kstest(delay, stats.expon(scale=tau_ap).cdf).pvalue
        assert p > 1e-4, p
    # dark counts and afterpulses have no wavelength and no pulse
    noise = t.process != Process.X
    assert np.isnan(t.wavelength_m[noise]).all() and (t.pulse[noise] == -1).all()


def test_dark_counts_are_uniform(h):
    setup = _noise_only(h, dark_rate_hz=2e4)
    s = qdsim.simulate(setup, power_w=0.0, duration_s=1.0, rng=44).stream
    u = s.arrival_time_s() / 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    micro = s.microtime * s.microtime_resolution_s / s.macrotime_resolution_s
    assert stats.kstest(micro, "uniform").pvalue > 1e-4


def test_laser_leakage(h):
    """Leakage grows with power and sits at the detector delay with the IRF's shape."""
    irf = Irf(fwhm_s=200e-12, tail_fraction=0.2, tail_tau_s=500e-12)
    setup = _noise_only(h, leakage_rate_hz=5e4, delay_s=3e-9, irf=irf)
    setup = h.with_state(setup, eta_x=0.0, eta_bx=0.0)
    setup = h.with_emitter(setup, eta_h=0.0)
    for power, scale in ((1e-6, 1.0), (3e-6, 3.0)):
        res = qdsim.simulate(setup, power_w=power, duration_s=1.0, rng=45)
        s, t = res.stream, res.truth
        assert (t.process == Process.BACKGROUND).all()
        mu = 2 * 5e4 * scale
        assert abs(len(s) - mu) < 5 * math.sqrt(mu)
    assert np.all(t.wavelength_m == 405e-9)
    # jitter: Gaussian (sigma = FWHM / 2.355) plus 20 % Exp(500 ps); mean and variance
    jit = (s.microtime + 0.5) * s.microtime_resolution_s - 3e-9
    sigma = 200e-12 / 2.3548
    mean = 0.2 * 500e-12
    var = sigma**2 + 0.2 * 2 * (500e-12) ** 2 - mean**2 + s.microtime_resolution_s**2 / 12
    assert abs(jit.mean() - mean) < 5 * math.sqrt(var / len(jit))
    assert abs(jit.var() / var - 1) < 0.05
    # the laser pulse of each leaked photon is its sync period
    assert np.array_equal(t.pulse, s.macrotime)


def test_irf_histogram(h):
    """A measured IRF histogram is sampled bin by bin, relative to its highest bin."""
    counts = np.array([0, 1, 5, 20, 60, 100, 40, 25, 15, 10, 6, 4, 2, 1, 0], float)
    irf = Irf(histogram=tuple(counts), histogram_bin_s=64e-12)
    setup = _noise_only(h, leakage_rate_hz=1e5, delay_s=2e-9, irf=irf)
    setup = h.with_emitter(h.with_state(setup, eta_x=0.0, eta_bx=0.0), eta_h=0.0)
    res = qdsim.simulate(setup, power_w=1e-6, duration_s=0.5, rng=46)
    s = res.stream
    # with 128 ps TCSPC bins compare the histogram integrated over the TCSPC bins
    t = s.microtime * s.microtime_resolution_s
    edges = 2e-9 - 5.5 * 64e-12 + np.arange(len(counts) + 1) * 64e-12
    cdf_edges = np.concatenate([[0], np.cumsum(counts)]) / counts.sum()
    tcspc_edges = np.arange(10, 30) * s.microtime_resolution_s
    expected = np.diff(np.interp(tcspc_edges, edges, cdf_edges)) * len(t)
    observed = np.histogram(t, tcspc_edges)[0]
    keep = expected > 5
    chi2 = (((observed - expected) ** 2)[keep] / expected[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4
    assert observed.sum() == len(t)
