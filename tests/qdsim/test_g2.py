"""Pulsed g2(0) of simulated streams against the closed forms of MODEL.md section 3.

g2 is counted from the stream (sync periods) by the independent counter of
conftest.py.  Detection is ideal (no dead time, dark counts or background)
as the closed forms assume; eta_C is raised to 1 for statistics (g2 does
not depend on it).  tau_X = 25 ns keeps photons that arrive after the next
sync (counted in the wrong period; bias ~ 2 exp(-T / tau_X) (1 - g2)) below
1e-6.  Tolerance: 5 sigma, sigma from the delta method on the coincidence
counts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import qdsim
from qdsim import SpectralFilter
from qdsim import closed_forms as cf

ETA_C = 1.0


def _duration(n: float, mean_emitted: float, target_side: float = 30_000) -> float:
    """Acquisition time that gives ~target_side coincidences per side peak."""
    per_pulse = (ETA_C / 2 * mean_emitted) ** 2
    return min(60.0, target_side / per_pulse / 2.5e6)


def _reduced(h, eta_h: float = 0.0):
    s = h.with_state(h.ideal_setup(eta_c=ETA_C), tau_x_s=25e-9, eta_x=1.0, eta_bx=0.21)
    return h.with_emitter(s, eta_h=eta_h)


@pytest.mark.parametrize("n", [0.05, 0.3, 1.0, 3.0, 20.0])
def test_g2_reduced_model(n, h):
    setup = _reduced(h)
    mean, _ = cf.photon_moments(n, [1.0, 0.21])
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=_duration(n, mean), rng=11)
    g2, sigma, centre = h.pulsed_g2(res.stream)
    expected = cf.g2_zero_reduced(n, eta_x=1.0, eta_bx=0.21)
    assert centre > 1000
    assert abs(g2 - expected) < 5 * sigma, (g2, sigma, expected)


@pytest.mark.parametrize("n", [0.05, 1.0, 5.0, 20.0])
def test_g2_ladder(n, h):
    """Statistical scaling above the BX; all absorbed photons stay in the core."""
    setup = h.with_emitter(_reduced(h), model="ladder", max_excitons=0)
    # levels by hand: k_r(N) = k_r(2) N^2 / 4, k_A(N) = k_A(2) N^2 (N - 1) / 4
    big_n = np.arange(1, 80)
    k_r2, k_a2 = 0.21 / 3.15e-9, 0.79 / 3.15e-9
    eta = k_r2 * big_n**2 / (k_r2 * big_n**2 + k_a2 * big_n**2 * (big_n - 1))
    eta[0] = 1.0
    mean, fact2 = cf.photon_moments(n, eta)
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=_duration(n, mean), rng=12)
    g2, sigma, _ = h.pulsed_g2(res.stream)
    expected = fact2 / mean**2
    assert (
        abs(expected - cf.g2_zero_ladder(n, setup.emitter.levels(setup.emitter.states[0], 79)[0]))
        < 1e-12
    )
    assert abs(g2 - expected) < 5 * sigma, (g2, sigma, expected)
    if n >= 5:  # multi-exciton photons are there
        assert (res.truth.process == qdsim.Process.MX).sum() > 100


@pytest.mark.parametrize("n", [3.0, 20.0])
def test_g2_with_shell_and_filters(n, h):
    """Shell photons raise g2 (general formula); a 580 nm long pass on both
    detectors removes them and gives back the reduced model."""
    setup = _reduced(h, eta_h=0.07)
    mean, _ = cf.photon_moments(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    dur = _duration(n, mean)
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=dur, rng=13)
    g2, sigma, _ = h.pulsed_g2(res.stream)
    expected = cf.g2_zero_ladder(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    assert abs(g2 - expected) < 5 * sigma, (g2, sigma, expected)

    red = SpectralFilter(lo_m=580e-9)
    dets = tuple(dataclasses.replace(d, filter=red) for d in setup.detection.detectors)
    filtered = dataclasses.replace(
        setup, detection=dataclasses.replace(setup.detection, detectors=dets)
    )
    res = qdsim.simulate(filtered, power_w=setup.power_for(n), duration_s=dur, rng=14)
    # the filter also trims the far blue tail of X and BX: independent thinning, g2 unchanged
    shell_left = np.mean(res.truth.process == qdsim.Process.SHELL)
    assert shell_left < 1e-3  # 515 nm line, 40 nm FWHM: 580 nm is 3.8 sigma away
    g2, sigma, _ = h.pulsed_g2(res.stream)
    # the few shell photons that pass bias g2 by at most ~2 x their fraction
    expected = cf.g2_zero_reduced(n, eta_x=1.0, eta_bx=0.21)
    assert abs(g2 - expected) < 5 * sigma + 2 * shell_left, (g2, sigma, expected)


def test_g2_time_gated(h):
    """MODEL.md example: n = 1, eta_X = 1, eta_BX = 0.3, tau_X = 60 ns, tau_BX = 2 ns.

    0.313 ungated, 0.113 with a 2.5 ns gate.  The gate keeps microtime bins
    >= 10 (t >= 2.56 ns: 256 ps bins, no IRF).  A 1 MHz laser (1 us period)
    keeps X photons from spilling into the next sync period.
    """
    setup = h.with_state(
        h.ideal_setup(eta_c=ETA_C), eta_x=1.0, eta_bx=0.3, tau_x_s=60e-9, tau_bx_s=2e-9
    )
    setup = h.with_emitter(setup, eta_h=0.0)
    tcspc = dataclasses.replace(setup.detection.tcspc, resolution_s=256e-12)
    setup = dataclasses.replace(
        setup,
        excitation=dataclasses.replace(setup.excitation, rep_rate_hz=1e6),
        detection=dataclasses.replace(setup.detection, tcspc=tcspc),
    )
    res = qdsim.simulate(setup, power_w=setup.power_for(1.0), duration_s=2.5, rng=15)
    kw = dict(eta_x=1.0, eta_bx=0.3, tau_x_s=60e-9, tau_bx_s=2e-9)
    g2, sigma, _ = h.pulsed_g2(res.stream)
    expected = cf.g2_zero_gated(1.0, gate_s=0.0, **kw)
    assert round(expected, 3) == 0.313
    assert abs(g2 - expected) < 5 * sigma, (g2, sigma, expected)
    gate_bins = 10
    g2, sigma, _ = h.pulsed_g2(res.stream, mask=res.stream.microtime >= gate_bins)
    expected = cf.g2_zero_gated(1.0, gate_s=gate_bins * 256e-12, **kw)
    assert round(cf.g2_zero_gated(1.0, gate_s=2.5e-9, **kw), 3) == 0.113
    assert abs(g2 - expected) < 5 * sigma, (g2, sigma, expected)


def test_g2_with_background(h):
    """Dark counts and flat background: g2_meas = (M_s + 2 mu_s mu_b + mu_b^2) / (mu_s + mu_b)^2."""
    base = _reduced(h)
    n = 0.2
    dets = tuple(
        dataclasses.replace(d, dark_rate_hz=3000.0, background_rate_hz=5000.0)
        for d in base.detection.detectors
    )
    setup = dataclasses.replace(
        base, detection=dataclasses.replace(base.detection, eta_c=0.05, detectors=dets)
    )
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=40.0, rng=16)
    g2, sigma, _ = h.pulsed_g2(res.stream)
    mean, _ = cf.photon_moments(n, [1.0, 0.21])
    mu_s = 0.05 * 0.5 * mean
    mu_b = 8000.0 * 400e-9
    g2_signal = cf.g2_zero_reduced(n, eta_x=1.0, eta_bx=0.21)
    expected = cf.g2_zero_with_background(g2_signal, mu_s, mu_b)
    assert expected > g2_signal + 0.2  # the background matters here
    assert abs(g2 - expected) < 5 * sigma, (g2, sigma, expected)
    rho = mu_s / (mu_s + mu_b)
    corrected = cf.g2_background_corrected(g2, rho, rho)
    assert abs(corrected - g2_signal) < 5 * sigma / rho**2
