"""Detected photon rates against phi_1 and phi_2 [paper] and the per-process means.

Counts over a pulse train are sums of independent per-pulse counts d, so
Var(N) = n_pulses Var(d) <= n_pulses (E[d] + E[d (d - 1)]); sigma is taken
from that bound.  Tolerance 5 sigma.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import qdsim
from qdsim import Process
from qdsim import closed_forms as cf


def _sigma(n_pulses: int, mean_per_pulse: float, fact2_per_pulse: float) -> float:
    return math.sqrt(n_pulses * (mean_per_pulse + fact2_per_pulse))


@pytest.mark.parametrize("n", [0.05, 0.5, 2.0, 8.0, 25.0])
def test_detected_rate_phi1_phi2(n, h):
    setup = h.ideal_setup(eta_c=0.01)
    duration = 2.0
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=duration, rng=21)
    f = 2.5e6
    phi1 = cf.phi_1(n, eta_x=1.0, eta_bx=0.21, eta_c=0.01, rep_rate_hz=f)
    phi2 = cf.phi_2(n, eta_h=0.07, eta_c=0.01, rep_rate_hz=f, t_max=80)
    n_pulses = res.truth.n_pulses
    assert n_pulses == round(duration * f)
    _, fact2 = cf.photon_moments(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    sigma = _sigma(n_pulses, (phi1 + phi2) / f, 0.01**2 * fact2)
    assert abs(len(res.stream) - (phi1 + phi2) * n_pulses / f) < 5 * sigma
    core = np.isin(res.truth.process, [Process.X, Process.BX]).sum()
    shell = (res.truth.process == Process.SHELL).sum()
    assert abs(core - phi1 * n_pulses / f) < 5 * _sigma(n_pulses, phi1 / f, 1e-4 * fact2)
    assert abs(shell - phi2 * n_pulses / f) < 5 * _sigma(n_pulses, phi2 / f, 1e-4 * fact2)
    # the two channels of the 50/50 splitter share the photons (binomial)
    n0 = int((res.stream.channel == 0).sum())
    assert abs(n0 - len(res.stream) / 2) < 5 * math.sqrt(len(res.stream) / 4) + 5 * sigma / 2


@pytest.mark.parametrize("n", [0.3, 3.0])
def test_per_process_means(n, h):
    """X, BX and shell counts match the mean emitted photons per pulse x eta_C."""
    setup = h.ideal_setup(eta_c=0.02)
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=1.0, rng=22)
    expect = cf.emitted_per_pulse(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    counts = res.truth.counts_by_process()
    for proc, key in ((Process.X, "x"), (Process.BX, "bx"), (Process.SHELL, "shell")):
        mu = 0.02 * expect[key] * res.truth.n_pulses
        assert abs(counts[proc.name] - mu) < 5 * math.sqrt(mu) + 1, proc
    assert counts["MX"] == counts["DARK"] == counts["AFTERPULSE"] == counts["BACKGROUND"] == 0
    # absorbed photon numbers of detected X photons: P(m | X detected) ~ P(m) (m >= 1)
    x = res.truth.absorbed[res.truth.process == Process.X]
    assert x.min() >= 1
    mean_m = np.arange(1, 60) @ (p := cf.absorbed_pmf(n, 59)[1:]) / p.sum()
    assert abs(x.mean() - mean_m) < 5 * math.sqrt(n + 1) / math.sqrt(len(x))


def test_rate_per_blink_state(h):
    """In each blink state the detected core rate is phi_1 with that state's yields."""
    setup = h.ideal_setup(qdsim.presets.blinking_qd(), eta_c=0.01)
    n = 1.0
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=20.0, rng=23)
    traj = res.truth.trajectory
    time_in = traj.time_in_state_s()
    assert min(time_in.values()) > 0.5
    for code, state in enumerate(setup.emitter.states):
        sel = (res.truth.state == code) & np.isin(res.truth.process, [Process.X, Process.BX])
        phi1 = cf.phi_1(n, eta_x=state.eta_x, eta_bx=state.eta_bx, eta_c=0.01, rep_rate_hz=2.5e6)
        mu = phi1 * time_in[state.name]
        # blinking makes the count's variance larger only through time_in, which is given
        assert abs(sel.sum() - mu) < 5 * math.sqrt(mu) + 5, state.name


def test_blinking_preset_power_regions():
    """blinking_qd: the mean core rate rises (R1), falls (R2) and levels off (R3) with power
    as the dot spends more time grey and dark (the paper's Figure 4)."""
    from qdsim.blinking import switching_law

    setup = qdsim.presets.blinking_qd()
    states = setup.emitter.states

    def core_rate(n):
        share = switching_law(setup, n).stationary()
        return sum(
            p * cf.phi_1(n, eta_x=s.eta_x, eta_bx=s.eta_bx, eta_c=0.01, rep_rate_hz=2.5e6)
            for p, s in zip(share, states, strict=True)
        )

    r = {n: core_rate(n) for n in (0.1, 0.5, 2.0, 12.0, 25.0)}
    assert r[0.1] < r[0.5] < r[2.0]  # R1
    assert r[12.0] < 0.7 * r[2.0]  # R2
    assert abs(r[25.0] - r[12.0]) < 0.3 * r[12.0]  # R3
    bright = [switching_law(setup, n).stationary()[0] for n in (0.1, 2.0, 25.0)]
    assert bright[0] > 0.9 > bright[1] > bright[2]
