"""The closed forms of MODEL.md section 3, checked against its worked numbers and each other."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from qdsim import closed_forms as cf


def test_model_md_numbers():
    g2 = cf.g2_zero_reduced(np.array([0.1, 1.0, 3.0]), eta_x=0.95, eta_bx=0.30)
    assert np.round(g2, 4).tolist() == [0.3164, 0.3259, 0.3494]
    kw = dict(eta_x=1.0, eta_bx=0.3, tau_x_s=60e-9, tau_bx_s=2e-9)
    assert round(cf.g2_zero_gated(1.0, gate_s=0.0, **kw), 3) == 0.313
    assert round(cf.g2_zero_gated(1.0, gate_s=2.5e-9, **kw), 3) == 0.113


def test_g2_limits():
    assert cf.g2_zero_reduced(1e-9, eta_x=0.9, eta_bx=0.2) == pytest.approx(0.2 / 0.9)
    assert cf.g2_zero_reduced(0.0, eta_x=0.9, eta_bx=0.2) == pytest.approx(0.2 / 0.9)
    strong = cf.g2_zero_reduced(60.0, eta_x=0.9, eta_bx=0.2)
    assert strong == pytest.approx(2 * 0.9 * 0.2 / 1.1**2)


@pytest.mark.parametrize("n", [0.01, 0.5, 2.0, 20.0])
def test_ladder_reduces_to_reduced(n):
    assert cf.g2_zero_ladder(n, [0.9, 0.25]) == pytest.approx(
        cf.g2_zero_reduced(n, eta_x=0.9, eta_bx=0.25), rel=1e-10
    )
    # gate 0 is ungated
    kw = dict(eta_x=0.9, eta_bx=0.25, tau_x_s=50e-9, tau_bx_s=3e-9)
    assert cf.g2_zero_gated(n, gate_s=0.0, **kw) == pytest.approx(
        cf.g2_zero_reduced(n, eta_x=0.9, eta_bx=0.25), rel=1e-10
    )


def test_moments_by_enumeration():
    """E[m] and E[m(m-1)] of the ladder with shell against brute-force enumeration."""
    n, eta, eta_h, core = 2.5, np.array([0.9, 0.3]), 0.1, 2
    mean = fact2 = 0.0
    for big_n in range(60):
        p = stats.poisson.pmf(big_n, n)
        slots = list(eta[: min(big_n, core)]) + [eta_h] * max(big_n - core, 0)
        # photons = sum of independent Bernoullis
        dist = np.array([1.0])
        for q in slots:
            dist = np.convolve(dist, [1 - q, q])
        k = np.arange(len(dist))
        mean += p * (k @ dist)
        fact2 += p * ((k * (k - 1)) @ dist)
    m1, m2 = cf.photon_moments(n, eta, eta_h=eta_h, core_capacity=core)
    assert m1 == pytest.approx(mean, rel=1e-10) and m2 == pytest.approx(fact2, rel=1e-10)


def test_rates_agree_with_emitted_photons():
    f, ec = 2.5e6, 0.01
    for n in (0.1, 1.0, 10.0):
        e = cf.emitted_per_pulse(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
        phi1 = cf.phi_1(n, eta_x=1.0, eta_bx=0.21, eta_c=ec, rep_rate_hz=f)
        phi2 = cf.phi_2(n, eta_h=0.07, eta_c=ec, rep_rate_hz=f)
        assert phi1 == pytest.approx(ec * f * (e["x"] + e["bx"]), rel=1e-12)
        assert phi2 == pytest.approx(ec * f * e["shell"], rel=1e-9)


def test_background_formulas_are_inverse():
    g2s, mu_s, mu_b = 0.2, 3e-3, 1e-3
    raw = cf.g2_zero_with_background(g2s, mu_s, mu_b)
    rho = mu_s / (mu_s + mu_b)
    assert cf.g2_background_corrected(raw, rho, rho) == pytest.approx(g2s)


def test_ladder_levels_scaling():
    eta, tau = cf.ladder_levels(
        eta_x=1.0, tau_x_s=60e-9, eta_bx=0.2, tau_bx_s=3e-9, n_levels=4, auger_scaling="statistical"
    )
    k_a = (1 - eta) / tau
    assert k_a[2] / k_a[1] == pytest.approx(4.5)  # tau_A,3 = tau_A,2 / 4.5
    k_r = eta / tau
    assert k_r[3] / k_r[1] == pytest.approx(4.0)  # N^2: 16 / 4
    eta, tau = cf.ladder_levels(
        eta_x=1.0,
        tau_x_s=60e-9,
        eta_bx=0.2,
        tau_bx_s=3e-9,
        n_levels=3,
        radiative_scaling="linear",
        auger_scaling="quadratic",
    )
    assert (eta[2] / tau[2]) / (eta[1] / tau[1]) == pytest.approx(1.5)
    assert ((1 - eta[2]) / tau[2]) / ((1 - eta[1]) / tau[1]) == pytest.approx(2.25)


def test_poisson_cutoff_tail():
    for n in (0.01, 1.0, 25.0, 100.0):
        m = cf.poisson_cutoff(n)
        assert stats.poisson.sf(m, n) < cf.POISSON_TAIL
        assert stats.poisson.sf(m - 1, n) >= cf.POISSON_TAIL or m == 2
