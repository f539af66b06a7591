"""Simulation-based calibration of the rate-versus-power and g2 histogram models.

The rate model is calibrated against qdsim: each prior draw (sigma_abs,
spot, eta_C, eta_BX, eta_H, background) becomes a qdsim setup whose counts
at the paper's five powers are fitted.  The g2 model is calibrated on its
own generative process (Poisson histograms from the prior predictive): a
qdsim stream per dataset would add seconds per draw and the histogram
model's likelihood is exactly that Poisson process.
"""

from __future__ import annotations

import dataclasses as dc
import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

pytest.importorskip("qdinfer.models")
from qdinfer.g2 import G2Histogram
from qdinfer.models import SamplerSettings, plot_ranks, sbc
from qdinfer.models import g2 as mg
from qdinfer.models import power as pw

qdsim = pytest.importorskip("qdsim")

POWERS = np.array([0.01e-6, 0.02e-6, 0.17e-6, 1.8e-6, 4e-6])
DURATIONS = np.array([1.0, 1.0, 0.5, 0.2, 0.2])
# the small runs: one short chain per fit (SBC needs no r_hat, only draws from the posterior)
FAST = SamplerSettings(num_warmup=150, num_samples=150, num_chains=1)
# the full runs: the rate model's eta_C, eta_BX and eta_H are correlated (r_hat of
# 2 x 400 draws scattered to 1.02), hence 2 x 1000 draws and a higher acceptance target
FULL = SamplerSettings(num_warmup=500, num_samples=1000, target_accept_prob=0.9)
RATE_PARAMS = ["sigma_abs_m2", "eta_c", "eta_bx", "eta_h", "background_hz"]
# narrower than fit_power_series' defaults so that every draw stays within
# qdsim's range (n <= 100 at 4 uW): median n = 14 at 4 uW
RATE_DATA = {
    "power_w": POWERS,
    "duration_s": DURATIONS,
    "rep_rate_hz": 2.5e6,
    "photons_per_pulse": POWERS * 405e-9 / (pw.H_C * 2.5e6),
    "spot_area_m2": math.pi * (0.61 * 405e-9 / 0.8) ** 2,
    "spot_log_sd": 0.3,
    "afterpulse": 0.0,
    "background_scale_hz": 200.0,
    "eta_x": 1.0,
    "log10_sigma_prior": np.array([-17.9, 0.2]),
    "log_eta_c_prior": np.array([math.log(0.01), 0.5]),
}
RATE_STATIC = {"one_per_pulse": 2}


def _setup_for(truth):
    """The paper's setup with the drawn parameters, and detection the model describes.

    No afterpulses, leakage or filter; dark counts carry the background;
    detector and TCSPC dead times of 300 ns (< the 400 ns period), so each
    detector records the first photon of a pulse only, as the model's
    ``one_per_pulse`` says.
    """
    base = qdsim.presets.paper_qd()
    dets = tuple(
        dc.replace(
            d,
            dark_rate_hz=float(truth["background_hz"]) / 2,
            background_rate_hz=0.0,
            leakage_rate_hz=0.0,
            afterpulse_probability=0.0,
            dead_time_s=300e-9,
        )
        for d in base.detection.detectors
    )
    state = dc.replace(base.emitter.states[0], eta_x=1.0, eta_bx=float(truth["eta_bx"]))
    return dc.replace(
        base,
        excitation=dc.replace(base.excitation, spot_area_m2=float(truth["spot_area_m2"])),
        emitter=dc.replace(
            base.emitter,
            sigma_abs_m2=float(truth["sigma_abs_m2"]),
            eta_h=float(truth["eta_h"]),
            states=(state,),
        ),
        detection=dc.replace(
            base.detection,
            eta_c=float(truth["eta_c"]),
            detectors=dets,
            collection_filter=None,
            tcspc=dc.replace(base.detection.tcspc, dead_time_s=300e-9),
        ),
    )


def _qdsim_counts(truth, seed):
    setup = _setup_for(truth)
    counts = [
        len(
            qdsim.simulate(
                setup, power_w=p, duration_s=d, rng=np.random.default_rng((seed, i))
            ).stream
        )
        for i, (p, d) in enumerate(zip(POWERS, DURATIONS, strict=True))
    ]
    return {"counts": np.asarray(counts, np.float64)}


def _run_rate(n_datasets, settings, seed, thin=2):
    return sbc(
        pw.power_series_model,
        RATE_DATA,
        params=RATE_PARAMS,
        n_datasets=n_datasets,
        static=RATE_STATIC,
        settings=settings,
        thin=thin,
        seed=seed,
        simulate=_qdsim_counts,
        progress=False,
    )


def test_sbc_setup_reproduces_the_model_mean():
    """The qdsim setup of a prior draw gives the model's expected counts (within 5 sigma)."""
    truth = {
        "sigma_abs_m2": 1.3e-18,
        "spot_area_m2": RATE_DATA["spot_area_m2"] * 1.2,
        "eta_c": 0.02,
        "eta_bx": 0.4,
        "eta_h": 0.5,
        "background_hz": 150.0,
    }
    counts = _qdsim_counts(truth, 3)["counts"]
    n = truth["sigma_abs_m2"] / truth["spot_area_m2"] * RATE_DATA["photons_per_pulse"]
    eta = np.array([1.0, truth["eta_bx"]])
    rate = pw.detected_rate_one_per_pulse(n, truth["eta_c"], eta, truth["eta_h"], 2.5e6, 2)
    mean = DURATIONS * (np.asarray(rate) + truth["background_hz"])
    np.testing.assert_array_less(np.abs(counts - mean), 5 * np.sqrt(mean))


def test_rate_model_sbc_small(tmp_path):
    """SBC of the rate model against qdsim, 20 datasets: ranks uniform (chi2 p > 1e-3)."""
    r = _run_rate(20, FAST, seed=0)
    assert r.divergences.sum() <= 2
    for name, p in r.pvalues(n_bins=4).items():
        assert p > 1e-3, (name, p, r.ranks[name])
    fig = plot_ranks(r)
    fig.savefig(tmp_path / "ranks.png")
    assert (tmp_path / "ranks.png").stat().st_size > 0


@pytest.mark.slow
def test_rate_model_sbc_full():
    """SBC of the rate model against qdsim, 150 datasets (docs/bayes.md records the run)."""
    r = _run_rate(150, FULL, seed=1, thin=4)
    assert np.median(r.max_r_hat) < 1.01
    for name, p in r.pvalues(n_bins=6).items():
        assert p > 1e-3, (name, p)


def _g2_data():
    edges = np.arange(-500e-9, 500e-9 + 1e-12, 5e-9)
    ones = np.ones(len(edges) - 1)
    hist = G2Histogram(ones.astype(np.int64), edges, (0, 1), 1, 1, 1.0, ones)
    data, n_peaks = mg.g2_inputs(hist, period_s=400e-9, tau_prior_s=20e-9)
    data["scale"] = 300.0  # typical side-peak area, counts
    return data, n_peaks


G2_PARAMS = ["g2_zero", "tau_x_s", "tau_c_s", "side_peak_area", "background_per_bin"]


def _run_g2(n_datasets, settings, seed, thin=2):
    data, n_peaks = _g2_data()
    return sbc(
        mg.g2_model,
        data,
        params=G2_PARAMS,
        n_datasets=n_datasets,
        static={"n_peaks": n_peaks, "smooth": False},
        settings=settings,
        thin=thin,
        seed=seed,
        progress=False,
    )


def test_g2_model_sbc_small():
    """SBC of the g2 histogram model on its own generative process, 20 datasets."""
    r = _run_g2(20, FAST, seed=0)
    assert r.divergences.sum() <= 2
    for name, p in r.pvalues(n_bins=4).items():
        assert p > 1e-3, (name, p, r.ranks[name])


@pytest.mark.slow
def test_g2_model_sbc_full():
    """SBC of the g2 histogram model, 150 datasets."""
    r = _run_g2(150, FULL, seed=1, thin=4)
    assert np.median(r.max_r_hat) < 1.01
    for name, p in r.pvalues(n_bins=6).items():
        assert p > 1e-3, (name, p)
