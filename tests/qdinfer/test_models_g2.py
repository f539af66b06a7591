"""Bayesian g2 histogram model against qdsim and the pulsed g2(0) estimator."""

from __future__ import annotations

import numpy as np
import pytest

import qdinfer

pytest.importorskip("qdinfer.models")
from qdinfer.models import SamplerSettings, fit_g2_bayes
from qdinfer.models.g2 import ratio_from_g2


def _g2_reduced(n, r):
    p1 = -np.expm1(-n)
    p2 = p1 - n * np.exp(-n)
    return 2 * r * p2 / (p1 + r * p2) ** 2


@pytest.mark.parametrize("n", [1e-3, 0.06, 1.06, 3.0])
def test_ratio_inverts_reduced_g2(n):
    """eta_BX / eta_X from g2(0) inverts MODEL.md's reduced formula."""
    g = _g2_reduced(n, 0.21)
    assert float(ratio_from_g2(g, n)) == pytest.approx(0.21, rel=1e-4)
    assert float(ratio_from_g2(0.3, 0.0)) == pytest.approx(0.3, rel=1e-3)


@pytest.fixture(scope="module")
def sim_g2():
    import qdsim

    sim = qdsim.simulate(qdsim.presets.paper_qd(), power_w=0.17e-6, duration_s=10.0, rng=7)
    hist = qdinfer.g2_histogram(sim.stream, channels=(0, 1), max_lag_s=1000e-9, bin_width_s=2e-9)
    pulsed = qdinfer.pulsed_g2_zero(sim.stream, side_peaks=[-2, -1, 1, 2])
    # 2 x 1000 draws: r_hat of 2 x 500 draws scatters by ~0.01 around 1
    settings = SamplerSettings(num_samples=1000)
    res = fit_g2_bayes(hist, period_s=400e-9, n_abs=1.06, seed=0, settings=settings)
    return hist, pulsed, res


def test_g2_posterior_matches_estimator_and_truth(sim_g2):
    """Posterior g2(0) agrees with the peak-area estimator; the ratio covers eta_BX = 0.21."""
    _, pulsed, res = sim_g2
    d = res.diagnostics
    assert d["r_hat"] < 1.01
    assert d["divergences"] == 0
    # same data: the model separates the flat background (dark counts, afterpulses) that
    # the peak-area estimator counts in both areas, so it is lower, within 2 stderr
    assert -2 * pulsed.stderr < res.mean("g2_zero") - pulsed.value < 0.5 * pulsed.stderr
    # truth: raw g2(0) of the reduced model at n = 1.06 (0.27) plus background dilution;
    # sigma = posterior sd, 4 sd bound
    assert abs(res.mean("g2_zero") - _g2_reduced(1.06, 0.21)) < 4 * res.sd("g2_zero")
    lo, hi = res.interval("eta_bx_over_eta_x", 0.9)
    assert lo < 0.21 < hi
    # the side peaks' width is the X lifetime (60 ns)
    assert abs(res.mean("tau_x_s") - 60e-9) < 4 * res.sd("tau_x_s")
