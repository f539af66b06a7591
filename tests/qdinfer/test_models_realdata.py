"""Bayesian decay and blinking-state fits of real Full SMS traces (../shared/data/full_sms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import qdinfer
import qdio

from conftest import shared_file

pytest.importorskip("qdinfer.models")
from qdinfer.models import fit_decay_bayes, fit_states_photons, states_trajectory


@pytest.mark.realdata
def test_full_sms_decay_agrees_with_mle():
    """trace0.pt3, channel 1 (8e3 photons), IRF from the rising edge: NUTS vs scipy MLE."""
    s = qdio.read(shared_file("full_sms/trace0.pt3"))
    n_ticks = round(s.macrotime_resolution_s / s.microtime_resolution_s)
    k = max(1, math.ceil(n_ticks / 512))
    d = qdinfer.decay_histogram(
        s, selection=qdinfer.channels(1), bin_width_s=k * s.microtime_resolution_s
    )
    mle = qdinfer.fit_decay(d, n_exp=1)
    res = fit_decay_bayes(d, n_exp=1, seed=0)
    assert res.diagnostics["r_hat"] < 1.01
    # same data and model: posterior mean within half a posterior sd of the MLE,
    # posterior sd within 25 % of the Fisher standard error
    assert abs(res.mean("tau_1_s") - mle.tau_s[0]) < 0.5 * res.sd("tau_1_s")
    assert res.sd("tau_1_s") == pytest.approx(mle.tau_stderr_s[0], rel=0.25)


def _full_sms_irf(decay: qdinfer.DecayHistogram) -> qdinfer.Irf:
    """Full SMS's IRF_680nm.h5 (48,779 photons, delays in ns at 50 ns / 4096), background
    removed, its peak put at the steepest rise of ``decay`` (the file comes from a later
    set-up whose delay offset differs; the fits refine the shift)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_file("full_sms/IRF_680nm.h5"), "r") as f:
        delay_s = f["Particle 1/Micro Times (s)"][:] * 1e-9  # stored in ns despite the name
    step = 50e-9 / 4096
    edges = np.arange(np.floor(delay_s.min() / step), np.ceil(delay_s.max() / step) + 2) * step
    counts, _ = np.histogram(delay_s, edges)
    span = edges[-1] - edges[0]
    irf = qdinfer.irf_from_histogram(qdinfer.DecayHistogram(counts, edges - edges[0], span))
    n = decay.n_full_bins
    rise = decay.edges_s[int(np.argmax(np.diff(decay.counts[:n]))) + 1]
    return qdinfer.Irf(irf.counts, irf.edges_s - irf.peak_s + rise, "IRF_680nm.h5")


@pytest.mark.realdata
@pytest.mark.slow
def test_full_sms_state_lifetimes_agree_with_state_resolved_decays():
    """trace1.pt3 (signal channel 1, 120 s) with Full SMS's IRF: 2 states with decays.

    Seen: bright 4.1 kcounts/s, tau 3.13 +- 0.03 ns; dark 0.2 kcounts/s, tau ~0.1 ns (mostly
    prompt light: 44 % of its photons flat).  The model-free check: the state-resolved decay
    histograms of qdinfer.state_resolved on the most probable states, fitted by
    qdinfer.fit_decay with the same IRF at the fitted shift.
    """
    s = qdio.read(shared_file("full_sms/trace1.pt3"))
    sel = qdinfer.channels(1)
    decay = qdinfer.decay_histogram(s, selection=sel, bin_width_s=52 * s.microtime_resolution_s)
    irf = _full_sms_irf(decay)
    res = fit_states_photons(s, 50e-3, n_states=2, irf=irf, selection=sel, seed=0)
    assert res.diagnostics["r_hat"] < 1.01 and res.diagnostics["divergences"] == 0
    i1, i2 = res.mean("intensity_1_hz"), res.mean("intensity_2_hz")
    assert i2 > 10 * i1
    tau_dark, tau_bright = res.mean("tau_1_s"), res.mean("tau_2_s")
    assert 1e-9 < tau_bright < 10e-9 and tau_dark < tau_bright / 3
    traj = states_trajectory(res, photon_times_s=s.macrotime * s.macrotime_resolution_s)
    # most probable states vs the maximum-likelihood HMM on counts alone (seen 0.996)
    hmm = qdinfer.hmm_states(s, selection=sel, n_states=2, bin_width_s=50e-3)
    assert qdinfer.time_agreement(traj, hmm.trajectory) > 0.98
    shifted = qdinfer.Irf(irf.counts, irf.edges_s + res.mean("shift_s"), irf.source)
    sr = qdinfer.state_resolved(
        s, traj, selection=sel, g2_channels=None, decay_bin_width_s=decay.bin_width_s, irf=irf
    )
    for k, m in enumerate(sr.states):
        mle = qdinfer.fit_decay(m.decay, irf=shifted, fit_shift=False)
        name = f"tau_{k + 1}_s"
        # same photons, same IRF and shift: within the errors (2 sd of the difference)
        assert abs(res.mean(name) - mle.tau_s[0]) < 2 * math.hypot(
            res.sd(name), mle.tau_stderr_s[0]
        ), (m.label, res.mean(name), mle.tau_s[0])
