"""Emission lifetimes: maximum-likelihood estimates from the truth and from microtimes.

For an exponential the MLE of tau is the sample mean, with standard error
tau / sqrt(N); tolerance 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

import qdsim
from qdsim import Process


def _check_mle(delays: np.ndarray, tau: float, what: str) -> None:
    n = len(delays)
    assert n > 200, what
    tau_hat = float(delays.mean())
    assert abs(tau_hat - tau) < 5 * tau / math.sqrt(n), (what, tau_hat, tau, n)


def test_lifetimes_per_process(h):
    """X after a lone exciton ~ Exp(tau_X); BX of a biexciton ~ Exp(tau_BX); shell ~ Exp(tau_H);
    X after a biexciton is the sum of the two waits."""
    setup = h.ideal_setup(eta_c=0.05)
    n = 1.0
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=0.5, rng=31)
    t = res.truth
    _check_mle(t.emission_delay_s[(t.process == Process.X) & (t.absorbed == 1)], 60e-9, "X")
    _check_mle(t.emission_delay_s[(t.process == Process.BX) & (t.absorbed == 2)], 3.15e-9, "BX")
    _check_mle(t.emission_delay_s[t.process == Process.SHELL], 0.5e-9, "shell")
    x2 = t.emission_delay_s[(t.process == Process.X) & (t.absorbed >= 2)]
    _check_mle(x2, 60e-9 + 3.15e-9, "X after BX")


def test_lifetimes_per_blink_state(h):
    setup = h.ideal_setup(qdsim.presets.blinking_qd(), eta_c=0.05)
    res = qdsim.simulate(setup, power_w=setup.power_for(0.5), duration_s=20.0, rng=32)
    t = res.truth
    for code, state in enumerate(setup.emitter.states):
        sel = (t.state == code) & (t.process == Process.X) & (t.absorbed == 1)
        _check_mle(t.emission_delay_s[sel], state.tau_x_s, state.name)


def test_ladder_level_lifetimes(h):
    """Ladder: the BX photon of a triexciton pulse comes after the level-3 wait plus the BX wait."""
    setup = h.with_emitter(h.ideal_setup(eta_c=0.3), model="ladder", eta_h=0.0)
    _, tau = setup.emitter.levels(setup.emitter.states[0], 3)
    res = qdsim.simulate(setup, power_w=setup.power_for(3.0), duration_s=0.2, rng=33)
    t = res.truth
    sel = (t.process == Process.MX) & (t.absorbed == 3)
    _check_mle(t.emission_delay_s[sel], tau[2], "level 3")
    sel = (t.process == Process.BX) & (t.absorbed == 3)
    _check_mle(t.emission_delay_s[sel], tau[2] + tau[1], "BX after level 3")


def _truncated_exp_mle(t: np.ndarray, period: float) -> float:
    """MLE of tau for an exponential folded into [0, period) (a pulse train)."""
    mean = t.mean()
    f = lambda tau: tau - period / math.expm1(period / tau) - mean  # noqa: E731
    return optimize.brentq(f, period / 500, 10 * period)


def test_microtime_lifetime(h):
    """The microtime histogram of a pulse train is the exponential folded into one period
    (late photons wrap into the next sync period); its MLE gives tau_X back."""
    setup = h.with_emitter(h.ideal_setup(eta_c=0.05), eta_h=0.0)
    setup = h.with_state(setup, eta_bx=0.0)
    res = qdsim.simulate(setup, power_w=setup.power_for(0.1), duration_s=1.0, rng=34)
    s = res.stream
    t = (s.microtime + 0.5) * s.microtime_resolution_s
    tau_hat = _truncated_exp_mle(t, s.macrotime_resolution_s)
    # folded exponential: Var(mean) ~ tau^2 / N (the fold only shortens the tail)
    assert abs(tau_hat - 60e-9) < 5 * 60e-9 / math.sqrt(len(t)), tau_hat
    # wrapped photons sit in the sync period after their pulse
    lag = s.macrotime - res.truth.pulse
    assert set(np.unique(lag).tolist()) <= {0, 1, 2}
    late = res.truth.emission_delay_s >= s.macrotime_resolution_s
    assert np.array_equal(lag >= 1, late)
    frac = late.mean()
    expected = math.exp(-400 / 60)
    assert abs(frac - expected) < 5 * math.sqrt(expected / len(t))
