"""Blinking: dwell-time distributions (KS tests), jump probabilities, stationary shares."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import integrate, stats

import qdsim
from qdsim import Blinking, BlinkState, PowerLawDwell, Transition
from qdsim.blinking import switching_law, trajectory


def test_markov_dwell_times_depend_on_power():
    setup = qdsim.presets.blinking_qd()
    for n in (0.1, 5.0):
        law = switching_law(setup, n)
        traj = trajectory(setup, n, 2000.0, rng=51)
        for code, name in enumerate(setup.state_names):
            dwell = traj.dwell_times_s(name)
            assert len(dwell) > 300
            rate = sum(t.rate_at(n) for t in setup.blinking.transitions if t.source == name)
            assert rate == pytest.approx(law.out_rate_hz[code])
            p = stats.kstest(dwell, stats.expon(scale=1 / rate).cdf).pvalue
            assert p > 1e-4, (n, name, p)


def test_jump_probabilities_and_stationary_shares():
    setup = qdsim.presets.blinking_qd()
    n = 2.0
    law = switching_law(setup, n)
    traj = trajectory(setup, n, 3000.0, rng=52)
    nxt = traj.state[1:]
    prev = traj.state[:-1]
    for i in range(3):
        leaving = nxt[prev == i]
        for j in range(3):
            if i == j:
                assert not np.any(leaving == j)
                continue
            p = law.jump[i, j]
            k = int((leaving == j).sum())
            assert abs(k - p * len(leaving)) < 5 * math.sqrt(len(leaving) * p * (1 - p)) + 1
    # time shares against the stationary distribution of the rate matrix
    rates = np.zeros((3, 3))
    names = setup.state_names
    for t in setup.blinking.transitions:
        rates[names.index(t.source), names.index(t.target)] = t.rate_at(n)
    q = rates - np.diag(rates.sum(axis=1))
    pi = np.linalg.lstsq(np.vstack([q.T, np.ones(3)]), np.r_[0, 0, 0, 1.0], rcond=None)[0]
    assert np.allclose(law.stationary(), pi)
    shares = np.array(list(traj.time_in_state_s().values())) / 3000.0
    # each share averages ~ len(traj) / 3 dwells: relative error ~ sqrt(2 / visits)
    visits = np.bincount(traj.state, minlength=3)
    assert np.all(np.abs(shares - pi) < 5 * pi * np.sqrt(2.0 / visits) + 1e-3)


def _power_law_cdf(alpha, t_min, t_cut):
    grid = t_min * np.logspace(0, math.log10(200 * t_cut / t_min), 4000)
    dens = grid ** (-alpha) * np.exp(-grid / t_cut)
    cum = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
    cum /= cum[-1]
    return lambda t: np.interp(t, grid, cum)


@pytest.mark.parametrize("alpha,cutoff", [(1.5, 0.2), (0.7, 0.05), (2.2, math.inf)])
def test_power_law_dwell_times(alpha, cutoff):
    on = BlinkState("on", power_law=PowerLawDwell(alpha=alpha, min_dwell_s=1e-4, cutoff_s=cutoff))
    off = BlinkState("off", eta_x=0.0, eta_bx=0.0)
    setup = dataclasses.replace(
        qdsim.presets.paper_qd(),
        emitter=dataclasses.replace(qdsim.presets.paper_qd().emitter, states=(on, off)),
        blinking=Blinking(
            transitions=(
                Transition("on", "off", rate_hz=1.0),
                Transition("off", "on", rate_hz=1000.0),
            ),
            initial="on",
        ),
    ).validate()
    traj = trajectory(setup, 1.0, 200.0, rng=53)
    dwell = traj.dwell_times_s("on")
    assert len(dwell) > 2000 and dwell.min() >= 1e-4
    if math.isinf(cutoff):
        cdf = lambda t: 1 - (t / 1e-4) ** (1 - alpha)  # noqa: E731
    else:
        cdf = _power_law_cdf(alpha, 1e-4, cutoff)
    assert stats.kstest(dwell, cdf).pvalue > 1e-4
    assert stats.kstest(traj.dwell_times_s("off"), stats.expon(scale=1e-3).cdf).pvalue > 1e-4


def test_power_law_cutoff_shortens_with_power():
    pl = PowerLawDwell(alpha=1.5, min_dwell_s=1e-4, cutoff_s=1.0, cutoff_rate_slope_hz=9.0)
    assert pl.cutoff_at(0.0) == 1.0
    assert pl.cutoff_at(1.0) == pytest.approx(0.1)


def test_photon_states_follow_trajectory(h):
    setup = h.ideal_setup(qdsim.presets.blinking_qd(), eta_c=0.02)
    res = qdsim.simulate(setup, power_w=setup.power_for(1.0), duration_s=5.0, rng=54)
    t = res.truth
    emitter = t.is_emitter()
    pulse_time = t.pulse[emitter] / 2.5e6
    assert np.array_equal(t.state[emitter], t.trajectory.state_at(pulse_time))
    assert t.trajectory.start_s[0] == 0 and t.trajectory.duration_s == pytest.approx(5.0)
    assert len(t.trajectory) > 50
