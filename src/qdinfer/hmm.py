"""Hidden Markov model of blinking over binned photon counts (maximum likelihood).

The emitter is in one of ``K`` states, a Markov chain from one bin to the
next with transition matrix ``A`` (``A[i, j]``: probability that a bin in
state ``i`` is followed by a bin in state ``j``); a bin in state ``k`` holds
``Poisson(lambda_k)`` photons.  :func:`hmm_states` fits ``(pi, A, lambda)``
by Baum-Welch (EM) with a log-space forward-backward pass, decodes the
most probable path by Viterbi, and converts ``A`` into switching rates
(per second) through the matrix logarithm.  numpy + numba; the Bayesian
version belongs to ``qdinfer.models``.

References
----------
L. R. Rabiner, "A tutorial on hidden Markov models and selected applications
in speech recognition", Proc. IEEE 77, 257 (1989), doi:10.1109/5.18626.
J. D. Hamilton, "Time Series Analysis", Princeton (1994), ch. 22.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy import linalg, special

from qdio import PhotonStream

from . import _levels
from .selection import Selection
from .states import StateTrajectory, binned_counts, state_labels

__all__ = ["HMMResult", "fit_poisson_hmm", "hmm_states", "viterbi"]


@numba.njit(cache=True, nogil=True)
def _lse(a):  # pragma: no cover - numba
    m = -np.inf
    for x in a:
        if x > m:
            m = x
    if m == -np.inf:
        return m
    s = 0.0
    for x in a:
        s += math.exp(x - m)
    return m + math.log(s)


@numba.njit(cache=True, nogil=True)
def _forward_backward(le, log_pi, log_a):  # pragma: no cover - numba
    """Log forward/backward variables, the log-likelihood and the expected counts.

    Returns ``(loglik, gamma (T, K), xi_sum (K, K))`` with ``gamma`` the
    posterior state probabilities and ``xi_sum[i, j]`` the expected number of
    ``i -> j`` transitions.
    """
    n, k = le.shape
    la = np.empty((n, k))
    lb = np.empty((n, k))
    tmp = np.empty(k)
    for j in range(k):
        la[0, j] = log_pi[j] + le[0, j]
    for t in range(1, n):
        for j in range(k):
            for i in range(k):
                tmp[i] = la[t - 1, i] + log_a[i, j]
            la[t, j] = _lse(tmp) + le[t, j]
    for j in range(k):
        lb[n - 1, j] = 0.0
    for t in range(n - 2, -1, -1):
        for i in range(k):
            for j in range(k):
                tmp[j] = log_a[i, j] + le[t + 1, j] + lb[t + 1, j]
            lb[t, i] = _lse(tmp)
    loglik = _lse(la[n - 1])
    gamma = np.empty((n, k))
    for t in range(n):
        for j in range(k):
            gamma[t, j] = math.exp(la[t, j] + lb[t, j] - loglik)
    xi = np.zeros((k, k))
    for t in range(n - 1):
        for i in range(k):
            for j in range(k):
                xi[i, j] += math.exp(la[t, i] + log_a[i, j] + le[t + 1, j] + lb[t + 1, j] - loglik)
    return loglik, gamma, xi


@numba.njit(cache=True, nogil=True)
def _viterbi_kernel(le, log_pi, log_a):  # pragma: no cover - numba
    n, k = le.shape
    delta = np.empty((n, k))
    back = np.zeros((n, k), np.int64)
    for j in range(k):
        delta[0, j] = log_pi[j] + le[0, j]
    for t in range(1, n):
        for j in range(k):
            best = -np.inf
            arg = 0
            for i in range(k):
                v = delta[t - 1, i] + log_a[i, j]
                if v > best:
                    best = v
                    arg = i
            delta[t, j] = best + le[t, j]
            back[t, j] = arg
    path = np.empty(n, np.int64)
    path[n - 1] = np.argmax(delta[n - 1])
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _log_emission(counts: np.ndarray, lam: np.ndarray) -> np.ndarray:
    lam = np.maximum(lam, 1e-12)
    c = counts.astype(np.float64)[:, None]
    return c * np.log(lam)[None, :] - lam[None, :] - special.gammaln(c + 1.0)


def _safe_log(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(a)


def viterbi(counts: np.ndarray, pi: np.ndarray, a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Most probable state sequence of a Poisson HMM (log-space Viterbi).

    >>> viterbi(np.array([0, 1, 20, 22, 0]), np.array([0.5, 0.5]),
    ...         np.array([[0.9, 0.1], [0.1, 0.9]]), np.array([0.5, 20.0])).tolist()
    [0, 0, 1, 1, 0]
    """
    le = _log_emission(np.asarray(counts), np.asarray(lam, np.float64))
    return _viterbi_kernel(le, _safe_log(np.asarray(pi, np.float64)), _safe_log(np.asarray(a)))


def fit_poisson_hmm(
    counts: np.ndarray,
    n_states: int,
    *,
    max_iter: int = 1000,
    tol: float = 1e-9,
    init_lambda: np.ndarray | None = None,
    init_stay: float = 0.95,
) -> dict[str, np.ndarray | float | int]:
    """Baum-Welch fit of a Poisson-emission HMM to counts per bin.

    Parameters
    ----------
    counts : ndarray of int, shape (T,)
    n_states : int
    max_iter : int
    tol : float
        Stop when the log-likelihood gains less than ``tol`` (relative).
    init_lambda : ndarray, optional
        Starting emission means (counts per bin); default: 1-D k-means
        centres of the counts.
    init_stay : float
        Starting probability of staying in a state for one bin.

    Returns
    -------
    dict
        ``pi``, ``a``, ``lam`` (counts per bin), ``loglik``, ``gamma``
        (T, K posteriors), ``xi`` (expected transitions), ``n_iter``,
        ``converged``; states sorted by ``lam``.
    """
    counts = np.asarray(counts, np.int64)
    k = int(n_states)
    if init_lambda is None:
        values, mult = np.unique(counts, return_counts=True)
        lam = _levels.kmeans_1d(values.astype(np.float64), mult.astype(np.float64), k)
    else:
        lam = np.sort(np.asarray(init_lambda, np.float64))
    lam = np.maximum(lam + 1e-3 * np.arange(k), 1e-6)  # distinct starts
    a = np.full((k, k), (1 - init_stay) / max(k - 1, 1))
    np.fill_diagonal(a, init_stay if k > 1 else 1.0)
    pi = np.full(k, 1.0 / k)
    last = -np.inf
    loglik = -np.inf
    converged = False
    it = 0
    gamma = np.empty((counts.size, k))
    xi = np.zeros((k, k))
    for it in range(1, max_iter + 1):  # noqa: B007 (it is returned)
        le = _log_emission(counts, lam)
        loglik, gamma, xi = _forward_backward(le, _safe_log(pi), _safe_log(a))
        pi = gamma[0] / gamma[0].sum()
        rows = xi.sum(axis=1, keepdims=True)
        a = np.where(rows > 0, xi / np.where(rows > 0, rows, 1.0), a)
        occ = gamma.sum(axis=0)
        lam = np.where(occ > 0, gamma.T @ counts / np.where(occ > 0, occ, 1.0), lam)
        if abs(loglik - last) <= tol * max(abs(loglik), 1.0):
            converged = True
            break
        last = loglik
    le = _log_emission(counts, lam)
    loglik, gamma, xi = _forward_backward(le, _safe_log(pi), _safe_log(a))
    order = np.argsort(lam)
    return {
        "pi": pi[order],
        "a": a[np.ix_(order, order)],
        "lam": lam[order],
        "loglik": float(loglik),
        "gamma": gamma[:, order],
        "xi": xi[np.ix_(order, order)],
        "n_iter": it,
        "converged": converged,
    }


def _initial_means(counts: np.ndarray, k: int) -> list[np.ndarray]:
    """Starting emission means: 1-D k-means centres, and log-spaced between the 2nd
    and 98th percentiles (states spanning decades, e.g. dark / grey / bright)."""
    values, mult = np.unique(counts, return_counts=True)
    starts = [_levels.kmeans_1d(values.astype(np.float64), mult.astype(np.float64), k)]
    if k > 1:
        lo, hi = np.percentile(counts, [2, 98])
        lo = max(float(lo), 0.5)
        if hi > lo:
            starts.append(np.geomspace(lo, float(hi), k))
    return starts


def _rates_from_transitions(a: np.ndarray, dt: float) -> tuple[np.ndarray, str]:
    """Switching rates ``k[i, j]`` (i != j, per second) from a one-bin transition matrix.

    ``Q = logm(A) / dt`` when that is a valid generator (real, off-diagonal
    >= 0); otherwise the first-order ``A[i, j] / dt``.
    """
    k = a.shape[0]
    if k == 1:
        return np.zeros((1, 1)), "none"
    try:
        q = linalg.logm(a)
        if np.iscomplexobj(q):
            if np.max(np.abs(q.imag)) > 1e-9:
                raise ValueError("complex logarithm")
            q = q.real
        off = q[~np.eye(k, dtype=bool)]
        if np.all(np.isfinite(off)) and off.min() >= -1e-9 * max(1.0, np.abs(off).max()):
            rates = np.maximum(q, 0.0) / dt
            np.fill_diagonal(rates, 0.0)
            return rates, "logm"
    except (ValueError, np.linalg.LinAlgError):
        pass
    rates = a / dt
    np.fill_diagonal(rates, 0.0)
    return rates, "first-order"


@dataclass(frozen=True, eq=False)
class HMMResult:
    """Result of :func:`hmm_states`.

    Attributes
    ----------
    trajectory : StateTrajectory
        The Viterbi path, bins merged into intervals.
    intensity_hz : ndarray of float64, shape (K,)
        Emission rate of each state, photons/s (``lambda / bin_width_s``).
    transition_matrix : ndarray of float64, shape (K, K)
        Per-bin transition probabilities.
    rates_hz : ndarray of float64, shape (K, K)
        Switching rates ``i -> j`` per second (zero diagonal).
    rates_stderr_hz : ndarray of float64, shape (K, K)
        Approximate standard errors, ``rate / sqrt(expected transitions)``.
    n_transitions : ndarray of float64, shape (K, K)
        Expected number of ``i -> j`` transitions (posterior).
    dwell_time_s : ndarray of float64, shape (K,)
        Mean dwell time in each state, ``1 / sum_j rates_hz[i, j]``
        (``inf`` for a state never left).
    rate_method : str
        ``"logm"`` (matrix logarithm) or ``"first-order"``.
    posterior : ndarray of float64, shape (B, K)
        Posterior state probabilities per bin.
    log_likelihood : float
    bic : dict
        ``{K: -2 ln L + p ln B}`` for each number of states fitted
        (``p = K^2 + K - 1``; smaller is better).
    counts : ndarray of int64, shape (B,)
    bin_edges_s : ndarray of float64, shape (B + 1,)
    bin_width_s : float
    converged : bool
    n_iter : int
    """

    trajectory: StateTrajectory
    intensity_hz: np.ndarray
    transition_matrix: np.ndarray
    rates_hz: np.ndarray
    rates_stderr_hz: np.ndarray
    n_transitions: np.ndarray
    dwell_time_s: np.ndarray
    rate_method: str
    posterior: np.ndarray
    log_likelihood: float
    bic: dict
    counts: np.ndarray
    bin_edges_s: np.ndarray
    bin_width_s: float
    converged: bool
    n_iter: int


def hmm_states(
    stream: PhotonStream,
    *,
    n_states: int | str = 2,
    bin_width_s: float = 10e-3,
    max_states: int = 4,
    selection: Selection | None = None,
    max_iter: int = 1000,
    tol: float = 1e-9,
) -> HMMResult:
    """Emission states from a hidden Markov model over binned counts.

    Parameters
    ----------
    stream : PhotonStream
    n_states : int or "auto"
        Number of hidden states (1 .. 6), or ``"auto"``: the number in
        ``1 .. max_states`` with the smallest BIC.
    bin_width_s : float
        Bin width, in seconds.
    max_states : int
        Largest number of states ``"auto"`` tries.
    selection : Selection, optional
        Photons to analyse.
    max_iter, tol : int, float
        Baum-Welch stopping rule (relative log-likelihood gain).  Two starts
        are tried (k-means centres of the counts, and means spaced
        geometrically between their 2nd and 98th percentiles) and the fit
        with the larger likelihood is kept.

    Returns
    -------
    HMMResult

    Raises
    ------
    ValueError
        Empty selection, fewer than 2 bins, too many states for the data.

    Notes
    -----
    The chain lives on bins: a switch inside a bin gives a bin of mixed
    counts, and the rates are only meaningful for dwell times well above
    the bin width.  Rates come from ``logm(A) / bin_width_s``, which undoes
    the several switches a bin may hide; their standard errors assume the
    number of observed switches is Poisson.
    """
    what = "hmm_states"
    counts, edges, t = binned_counts(stream, bin_width_s, selection, what=what)
    n_distinct = np.unique(counts).size
    if n_states == "auto":
        if not isinstance(max_states, int) or not 1 <= max_states <= 6:
            raise ValueError(f"{what}: max_states={max_states!r} must be an int in 1..6")
        ks = list(range(1, min(max_states, n_distinct) + 1))
    else:
        if not isinstance(n_states, (int, np.integer)) or isinstance(n_states, bool):
            raise ValueError(f"{what}: n_states={n_states!r} must be an int or 'auto'")
        if not 1 <= n_states <= 6:
            raise ValueError(f"{what}: n_states={n_states} must be in 1..6")
        if n_states > n_distinct:
            raise ValueError(
                f"{what}: n_states={n_states} but the counts take only {n_distinct} values"
            )
        ks = [int(n_states)]
    fits = {}
    bic = {}
    for k in ks:
        fit = None
        for init in _initial_means(counts, k):
            trial = fit_poisson_hmm(counts, k, max_iter=max_iter, tol=tol, init_lambda=init)
            if fit is None or trial["loglik"] > fit["loglik"]:
                fit = trial
        fits[k] = fit
        p = k * k + k - 1
        bic[k] = -2.0 * float(fit["loglik"]) + p * math.log(counts.size)
    k = min(bic, key=bic.get)
    fit = fits[k]
    lam = np.asarray(fit["lam"])
    a = np.asarray(fit["a"])
    path = viterbi(counts, np.asarray(fit["pi"]), a, lam)
    rates, how = _rates_from_transitions(a, bin_width_s)
    xi = np.asarray(fit["xi"])
    with np.errstate(divide="ignore", invalid="ignore"):
        stderr = np.where(xi > 0, rates / np.sqrt(np.where(xi > 0, xi, 1.0)), 0.0)
        out_rate = rates.sum(axis=1)
        dwell = np.where(out_rate > 0, 1.0 / np.where(out_rate > 0, out_rate, 1.0), np.inf)
    np.fill_diagonal(stderr, 0.0)
    traj = StateTrajectory.build(
        edges[:-1],
        edges[1:],
        path,
        state_labels(k),
        photon_times_s=t,
        level_intensity_hz=lam / bin_width_s,
        method="hmm",
        info={"bin_width_s": bin_width_s},
    )
    return HMMResult(
        trajectory=traj,
        intensity_hz=lam / bin_width_s,
        transition_matrix=a,
        rates_hz=rates,
        rates_stderr_hz=stderr,
        n_transitions=xi,
        dwell_time_s=dwell,
        rate_method=how,
        posterior=np.asarray(fit["gamma"]),
        log_likelihood=float(fit["loglik"]),
        bic=bic,
        counts=counts,
        bin_edges_s=edges,
        bin_width_s=float(bin_width_s),
        converged=bool(fit["converged"]),
        n_iter=int(fit["n_iter"]),
    )
