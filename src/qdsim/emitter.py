"""The per-pulse law of the emitter, in closed form, for the fast path.

In a given blink state and at a given power, every pulse follows the same
law: ``m ~ Poisson(n_s)`` absorbed photons give ``N = min(m, K)`` core
excitons (K = 2 in the reduced model) that cascade down the ladder
(level k emits with ``eta_k`` after an exponential wait ``tau_k``), and
``max(m - K, 0)`` shell carriers that each emit with ``eta_H`` after
``Exp(tau_H)``.  Each emitted photon of process p is then detected with a
probability ``D_p`` (collection, split and filters; see
:mod:`qdsim.spectra`), independently.

A slot (a ladder step or a shell carrier) therefore gives a detection with
probability ``r = eta D``, and a pulse with m absorbed photons gives none
with ``q(m) = prod_slots (1 - r)``.  :class:`PulseLaw` holds, per state,
``P(>= 1 detection) = sum_m P(m; n_s) (1 - q(m))`` and ``P(m | >= 1
detection)``: the simulator jumps from one detecting pulse to the next with
geometric gaps and never visits the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import closed_forms as cf
from ._numba import guide_table
from .params import Setup

__all__ = ["PulseLaw", "pulse_law"]


@dataclass(frozen=True, eq=False)
class PulseLaw:
    """Per-state tables of the per-pulse law at one power (kernel inputs).

    Level arrays are indexed by ladder level k = 1..core (index 0 unused).
    """

    n_state: np.ndarray  # (S,) mean absorbed photons per pulse in each state
    core: int  # number of ladder levels K
    p_detect: np.ndarray  # (S,) P(pulse gives >= 1 detection)
    m_cdf: np.ndarray  # (S, M + 1) cumulative P(m | >= 1 detection)
    m_guide: np.ndarray  # (S, 4 (M + 1)) guide table of m_cdf
    log_q_detect: np.ndarray  # (S,) log P(pulse gives no detection)
    mean_detected: np.ndarray  # (S,) mean detected emitter photons per pulse
    r_level: np.ndarray  # (S, K + 1) P(level k emits a detected photon)
    eta_level: np.ndarray  # (S, K + 1)
    tau_level: np.ndarray  # (S, K + 1) level lifetimes, s
    q_core: np.ndarray  # (S, K + 1) prod_{k <= N} (1 - r_level[k])
    r_shell: np.ndarray  # (S,) P(a shell carrier gives a detected photon)
    tau_shell: float

    @property
    def m_max(self) -> int:
        """Largest absorbed photon number drawn (Poisson tail < 1e-15 beyond)."""
        return self.m_cdf.shape[1] - 1


def _proc_of_level(k: int) -> int:
    return 0 if k == 1 else (1 if k == 2 else 2)


def pulse_law(setup: Setup, n: float, d_total: np.ndarray) -> PulseLaw:
    """Build the :class:`PulseLaw` of ``setup`` at ``n`` absorbed photons per pulse.

    Parameters
    ----------
    setup : Setup
        The setup.
    n : float
        Mean absorbed photons per pulse (each state multiplies it by its
        ``excitation_efficiency``).
    d_total : ndarray, shape (S, 4)
        Probability that an emitted photon of process (X, BX, MX, shell) in
        each state is detected on any channel.
    """
    em = setup.emitter
    states = em.states
    n_states = len(states)
    n_state = np.array([n * s.excitation_efficiency for s in states])
    m_max = max(cf.poisson_cutoff(float(v)) for v in n_state)
    core = em.core_capacity(m_max)
    r_level = np.zeros((n_states, core + 1))
    eta_level = np.zeros((n_states, core + 1))
    tau_level = np.ones((n_states, core + 1))
    q_core = np.ones((n_states, core + 1))
    r_shell = np.zeros(n_states)
    p_detect = np.zeros(n_states)
    mean_detected = np.zeros(n_states)
    m_cdf = np.zeros((n_states, m_max + 1))
    m = np.arange(m_max + 1)
    for s, state in enumerate(states):
        eta, tau = em.levels(state, core)
        eta_level[s, 1:] = eta
        tau_level[s, 1:] = tau
        procs = [_proc_of_level(k) for k in range(1, core + 1)]
        r_level[s, 1:] = eta * d_total[s, procs]
        with np.errstate(divide="ignore"):
            log_q = np.concatenate([[0.0], np.cumsum(np.log1p(-np.minimum(r_level[s, 1:], 1.0)))])
        q_core[s] = np.exp(log_q)
        r_shell[s] = em.eta_h * d_total[s, 3]
        # P(no detection | m) for m = 0..m_max, via logs for accuracy
        n_core = np.minimum(m, core)
        n_shell = m - n_core
        with np.errstate(divide="ignore"):
            log_qs = (
                n_shell * np.log1p(-r_shell[s])
                if r_shell[s] < 1
                else np.where(n_shell > 0, -np.inf, 0.0)
            )
        one_minus_q = -np.expm1(log_q[n_core] + log_qs)
        pmf = cf.absorbed_pmf(float(n_state[s]), m_max)
        weight = pmf * one_minus_q
        r_cum = np.concatenate([[0.0], np.cumsum(r_level[s, 1:])])
        mean_detected[s] = float(pmf @ (r_cum[n_core] + n_shell * r_shell[s]))
        total = float(weight.sum())
        p_detect[s] = min(total, 1.0)
        if total > 0:
            cdf = np.cumsum(weight) / total
            cdf[-1] = 1.0
            m_cdf[s] = cdf
        else:
            m_cdf[s] = 1.0
    return PulseLaw(
        n_state=n_state,
        core=core,
        p_detect=p_detect,
        m_cdf=m_cdf,
        m_guide=guide_table(m_cdf, 4 * (m_max + 1)),
        log_q_detect=np.log1p(-p_detect),
        mean_detected=mean_detected,
        r_level=r_level,
        eta_level=eta_level,
        tau_level=tau_level,
        q_core=q_core,
        r_shell=r_shell,
        tau_shell=float(em.tau_h_s),
    )
