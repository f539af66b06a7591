"""Blinking: the emitter's state trajectory in continuous time.

The emitter switches between the states of ``Emitter.states`` following
``Blinking.transitions``.  At a given excitation (n absorbed photons per
pulse) each transition has the rate ``k0 + k1 n^a``.  A state without a
:class:`~qdsim.params.PowerLawDwell` stays an exponential time of rate
``sum_j k_ij`` and then jumps to j with probability ``k_ij / sum_j k_ij``
(a continuous-time Markov chain).  A state with one stays a truncated
power-law time and jumps with the same probabilities (a semi-Markov chain).

The trajectory starts in ``Blinking.initial`` or, for "stationary", in a
state drawn from the stationary distribution (each state's share of time:
``nu_i E[dwell_i] / sum_j nu_j E[dwell_j]`` with ``nu`` the stationary
distribution of the jump chain).  The first dwell is a fresh draw (for
exponential dwells that is the stationary law too).  The last dwell is cut
at the end of the acquisition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate

from ._numba import trajectory_kernel
from .params import PowerLawDwell, Setup

__all__ = [
    "SwitchingLaw",
    "Trajectory",
    "power_law_mean_s",
    "switching_law",
    "trajectory",
]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Blink states over an acquisition: state ``state[i]`` from ``start_s[i]`` on.

    Attributes
    ----------
    start_s : ndarray of float64, shape (K,)
        Switch times, in seconds; ``start_s[0] == 0``.
    state : ndarray of uint8, shape (K,)
        State index from each switch time to the next (or to the end).
    duration_s : float
        End of the acquisition, in seconds.
    state_names : tuple of str
        Names of the state indices.
    """

    start_s: np.ndarray
    state: np.ndarray
    duration_s: float
    state_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.start_s.shape[0])

    @property
    def end_s(self) -> np.ndarray:
        """End time of each dwell (the last one is the end of the acquisition)."""
        return np.append(self.start_s[1:], self.duration_s)

    def dwell_times_s(self, state: int | str | None = None, *, complete: bool = True) -> np.ndarray:
        """Dwell times (s), of one state if given; ``complete`` drops the last, cut one."""
        dwell = self.end_s - self.start_s
        sel = np.ones(len(self), bool)
        if complete:
            sel[-1] = False
        if state is not None:
            code = self.state_names.index(state) if isinstance(state, str) else int(state)
            sel &= self.state == code
        return dwell[sel]

    def state_at(self, time_s: np.ndarray) -> np.ndarray:
        """State index (uint8) at each time (s)."""
        idx = np.searchsorted(self.start_s, np.asarray(time_s, float), side="right") - 1
        return self.state[np.clip(idx, 0, len(self) - 1)]

    def time_in_state_s(self) -> dict[str, float]:
        """Total time spent in each state, in seconds."""
        dwell = self.end_s - self.start_s
        totals = np.bincount(self.state, weights=dwell, minlength=len(self.state_names))
        return {name: float(totals[i]) for i, name in enumerate(self.state_names)}


@dataclass(frozen=True, eq=False)
class SwitchingLaw:
    """Switching law at one excitation: out rates, jump probabilities, dwell laws."""

    out_rate_hz: np.ndarray  # (S,) total rate out of each state (exponential states)
    jump: np.ndarray  # (S, S) jump probabilities
    kind: np.ndarray  # (S,) 0 exponential, 1 power law
    alpha: np.ndarray
    min_dwell_s: np.ndarray
    cutoff_s: np.ndarray

    def mean_dwell_s(self) -> np.ndarray:
        """Mean dwell time of each state (inf for a state that is never left)."""
        out = np.empty(len(self.kind))
        for s in range(len(self.kind)):
            if self.kind[s] == 1:
                out[s] = power_law_mean_s(self.alpha[s], self.min_dwell_s[s], self.cutoff_s[s])
            else:
                out[s] = 1.0 / self.out_rate_hz[s] if self.out_rate_hz[s] > 0 else math.inf
        return out

    def stationary(self) -> np.ndarray:
        """Share of time spent in each state in the long run."""
        n_states = len(self.kind)
        if n_states == 1:
            return np.ones(1)
        mean = self.mean_dwell_s()
        if not np.all(np.isfinite(mean)):
            raise ValueError(
                "blinking.initial = 'stationary' needs every state to be left after a "
                "finite mean time; name the initial state instead"
            )
        a = np.vstack([self.jump.T - np.eye(n_states), np.ones(n_states)])
        b = np.zeros(n_states + 1)
        b[-1] = 1.0
        nu = np.linalg.lstsq(a, b, rcond=None)[0]
        nu = np.clip(nu, 0.0, None)
        share = nu * mean
        return share / share.sum()


def power_law_mean_s(alpha: float, min_dwell_s: float, cutoff_s: float) -> float:
    """Mean of the truncated power law ``t^-alpha exp(-t / T_c)``, ``t >= t_min`` (s)."""
    if math.isinf(cutoff_s):
        return min_dwell_s * (alpha - 1.0) / (alpha - 2.0) if alpha > 2.0 else math.inf

    def moment(k: int) -> float:
        # substitute t = t_min e^x
        f = lambda x: math.exp((k + 1 - alpha) * x - min_dwell_s * math.exp(x) / cutoff_s)  # noqa: E731
        upper = math.log(max(60.0 * cutoff_s / min_dwell_s, 2.0))
        return integrate.quad(f, 0.0, upper, limit=200)[0]

    return min_dwell_s * moment(1) / moment(0)


def switching_law(setup: Setup, n: float) -> SwitchingLaw:
    """Rates and dwell laws of ``setup``'s blinking at ``n`` absorbed photons per pulse."""
    names = setup.state_names
    n_states = len(names)
    rates = np.zeros((n_states, n_states))
    for t in setup.blinking.transitions:
        rates[names.index(t.source), names.index(t.target)] = t.rate_at(n)
    out_rate = rates.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        jump = np.where(out_rate[:, None] > 0, rates / out_rate[:, None], 0.0)
    kind = np.zeros(n_states, np.int64)
    alpha = np.ones(n_states)
    t_min = np.ones(n_states)
    t_cut = np.full(n_states, math.inf)
    for s, state in enumerate(setup.emitter.states):
        pl: PowerLawDwell | None = state.power_law
        if pl is not None and n_states > 1:
            kind[s] = 1
            alpha[s] = pl.alpha
            t_min[s] = pl.min_dwell_s
            t_cut[s] = pl.cutoff_at(n)
    return SwitchingLaw(out_rate, jump, kind, alpha, t_min, t_cut)


def trajectory(
    setup: Setup, n: float, duration_s: float, rng: np.random.Generator | int | None = None
) -> Trajectory:
    """Draw the blink trajectory of ``setup`` at ``n`` absorbed photons per pulse.

    Parameters
    ----------
    setup : Setup
        Emitter states and blinking dynamics.
    n : float
        Mean absorbed photons per pulse (switching rates may depend on it).
    duration_s : float
        Length of the acquisition, in seconds.
    rng : Generator, int or None
        Random source (SPEC 7).

    Examples
    --------
    >>> from qdsim import presets
    >>> traj = trajectory(presets.blinking_qd(), 1.0, 10.0, rng=1)
    >>> traj.start_s[0], traj.state_names
    (np.float64(0.0), ('bright', 'grey', 'dark'))
    """
    rng = np.random.default_rng(rng)
    law = switching_law(setup, n)
    names = setup.state_names
    initial = setup.blinking.initial
    if len(names) == 1:
        s0 = 0
    elif initial == "stationary":
        pi = law.stationary()
        s0 = int(np.searchsorted(np.cumsum(pi), rng.random() * pi.sum(), side="right"))
        s0 = min(s0, len(names) - 1)
    else:
        s0 = names.index(initial)
    jump_cdf = np.cumsum(law.jump, axis=1)
    jump_cdf[:, -1] = np.where(law.jump.sum(axis=1) > 0, 1.0, jump_cdf[:, -1])
    starts, states = trajectory_kernel(
        rng,
        float(duration_s),
        s0,
        law.kind,
        law.out_rate_hz,
        np.ascontiguousarray(jump_cdf),
        law.alpha,
        law.min_dwell_s,
        law.cutoff_s,
    )
    return Trajectory(starts, states.astype(np.uint8), float(duration_s), names)
