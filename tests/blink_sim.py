"""A tiny blinking emitter for the emission-state tests (ground truth known exactly).

A continuous-time Markov chain over ``K`` states with switching rates
``switch_hz[i, j]``; while in state ``k`` photons arrive as a Poisson
process at ``rate_hz[k]`` (at most one per laser period: a single emitter),
each with an exponential delay of lifetime ``tau_s[k]`` after its pulse
plus a Gaussian IRF (offset ``irf_offset_s``, sigma ``irf_sigma_s``),
folded into the period, on detector 0 or 1 with equal probability.
Independent of qdsim on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import qdio
from qdinfer import StateTrajectory


@dataclass
class Blinking:
    stream: qdio.PhotonStream
    truth: StateTrajectory  # true state intervals (macrotime clock)
    photon_state: np.ndarray  # true state of every photon
    n_switches: np.ndarray  # (K, K) number of i -> j switches


def telegraph(
    rate_hz,
    switch_hz,
    duration_s: float,
    rng,
    *,
    tau_s=None,
    period_s: float = 400e-9,
    micro_res_s: float = 100e-12,
    start_state: int | None = None,
    background_hz: float = 0.0,
    irf_offset_s: float = 5e-9,
    irf_sigma_s: float = 50e-12,
) -> Blinking:
    rng = np.random.default_rng(rng)
    rate_hz = np.asarray(rate_hz, float)
    q = np.asarray(switch_hz, float)
    k = rate_hz.size
    tau_s = np.full(k, 5e-9) if tau_s is None else np.asarray(tau_s, float)
    out_rate = q.sum(axis=1)
    state = int(rng.integers(k)) if start_state is None else start_state
    t = 0.0
    starts, stops, states = [], [], []
    n_sw = np.zeros((k, k), np.int64)
    while t < duration_s:
        dwell = rng.exponential(1.0 / out_rate[state])
        stop = min(t + dwell, duration_s)
        starts.append(t)
        stops.append(stop)
        states.append(state)
        t = stop
        if t < duration_s:
            nxt = int(rng.choice(k, p=q[state] / out_rate[state]))
            n_sw[state, nxt] += 1
            state = nxt
    starts, stops, states = map(np.asarray, (starts, stops, states))
    times, pst = [], []
    for a, b, s in zip(starts, stops, states, strict=True):
        n = rng.poisson(rate_hz[s] * (b - a))
        times.append(rng.uniform(a, b, n))
        pst.append(np.full(n, s))
    if background_hz > 0:
        nb = rng.poisson(background_hz * duration_s)
        times.append(rng.uniform(0, duration_s, nb))
        pst.append(np.full(nb, -1))
    t_all = np.concatenate(times)
    s_all = np.concatenate(pst)
    order = np.argsort(t_all, kind="stable")
    t_all, s_all = t_all[order], s_all[order]
    macro = np.floor(t_all / period_s).astype(np.int64)
    keep = np.r_[True, macro[1:] != macro[:-1]]  # one photon per period
    macro, s_all = macro[keep], s_all[keep]
    tau_ph = np.where(s_all >= 0, tau_s[np.maximum(s_all, 0)], np.inf)
    delay = np.where(
        np.isfinite(tau_ph),
        np.mod(rng.exponential(np.where(np.isfinite(tau_ph), tau_ph, 1.0)), period_s),
        rng.uniform(0, period_s, s_all.size),
    )
    delay = np.mod(delay + irf_offset_s + rng.normal(0, irf_sigma_s, delay.size), period_s)
    n_bins = round(period_s / micro_res_s)
    micro = np.minimum((delay / micro_res_s).astype(np.int64), n_bins - 1)
    chan = rng.integers(0, 2, macro.size).astype(np.uint8)
    stream = qdio.PhotonStream(chan, macro, micro, period_s, micro_res_s, n_bins)
    mt = macro * period_s
    truth = StateTrajectory.build(
        starts,
        stops,
        states,
        photon_times_s=mt,
        method="truth",
        labels={2: ("dark", "bright"), 3: ("dark", "grey", "bright")}.get(k),
    )
    return Blinking(stream, truth, s_all, n_sw)
