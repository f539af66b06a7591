"""Mixture models and clustering behind the emission-state classifiers (private).

* :func:`nb_mixture_em`: a mixture of negative-binomial (Poisson-gamma)
  distributions fitted by EM to binned photon counts; thresholds lie where
  the weighted densities of neighbouring components cross.
* :func:`multi_otsu`: Otsu's between-class-variance thresholds on an integer
  histogram (2 or 3 classes).
* :func:`agglomerate`: Watkins & Yang's hierarchical grouping of change-point
  segments by the Poisson likelihood.
* :func:`poisson_segment_em`: EM refinement of the level intensities of
  segments (counts ``n_j`` over durations ``T_j``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import optimize, special

__all__ = [
    "agglomerate",
    "bridge_logpmf",
    "kmeans_1d",
    "multi_otsu",
    "nb_logpmf",
    "nb_mixture_best",
    "nb_mixture_em",
    "poisson_segment_em",
]

#: Largest negative-binomial shape: beyond it the component is Poisson.
R_MAX = 1e8
#: Smallest shape allowed (variance up to mean + mean^2).
R_MIN = 1.0


def nb_logpmf(x: np.ndarray, mean: float, r: float) -> np.ndarray:
    """Log pmf of the negative binomial with ``mean`` and shape ``r`` (Poisson as r -> inf).

    Variance ``mean + mean^2 / r``.
    """
    x = np.asarray(x, np.float64)
    mean = max(float(mean), 1e-300)
    if r >= R_MAX:
        return x * math.log(mean) - mean - special.gammaln(x + 1.0)
    return (
        special.gammaln(x + r)
        - special.gammaln(r)
        - special.gammaln(x + 1.0)
        + r * math.log(r / (r + mean))
        + x * math.log(mean / (r + mean))
    )


def kmeans_1d(x: np.ndarray, w: np.ndarray, k: int, n_iter: int = 100) -> np.ndarray:
    """Sorted 1-D k-means centres of values ``x`` with weights ``w`` (quantile start)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    cdf = np.cumsum(ws) / np.sum(ws)
    centres = xs[np.minimum(np.searchsorted(cdf, (np.arange(k) + 0.5) / k), xs.size - 1)]
    centres = centres.astype(np.float64)
    for _ in range(n_iter):
        lab = np.argmin(np.abs(xs[:, None] - centres[None, :]), axis=1)
        new = centres.copy()
        for j in range(k):
            sel = lab == j
            if np.any(sel):
                new[j] = np.sum(ws[sel] * xs[sel]) / np.sum(ws[sel])
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def bridge_logpmf(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Log pmf of counts whose Poisson mean is uniform between ``lo`` and ``hi``.

    A bin during which the emitter switched between two states of means
    ``lo`` and ``hi`` (per bin), at a uniformly distributed moment, has this
    distribution: ``(P(x + 1, hi) - P(x + 1, lo)) / (hi - lo)`` with ``P`` the
    regularised lower incomplete gamma function.
    """
    x = np.asarray(x, np.float64)
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if hi - lo < 1e-9:
        return nb_logpmf(x, 0.5 * (lo + hi), R_MAX)
    diff = special.gammainc(x + 1.0, hi) - special.gammainc(x + 1.0, lo)
    return np.log(np.maximum(diff, 1e-300)) - math.log(hi - lo)


def nb_mixture_em(
    values: np.ndarray,
    weights: np.ndarray,
    k: int,
    *,
    bridges: bool = True,
    init_means: np.ndarray | None = None,
    max_iter: int = 500,
    tol: float = 1e-9,
) -> dict[str, np.ndarray | float]:
    """Fit ``k`` negative-binomial components to a weighted integer sample.

    Parameters
    ----------
    values : ndarray of int
        Distinct counts per bin.
    weights : ndarray of float
        How many bins had each count.
    k : int
        Number of components (states).
    bridges : bool
        Add a "switching bin" component between each pair of neighbouring
        states (:func:`bridge_logpmf`, its own weight, its ends tied to the
        two states' means), so that bins in which the emitter switched are
        not mistaken for an extra state.

    Returns
    -------
    dict
        ``weight``, ``mean``, ``r`` (shape; ``R_MAX`` = Poisson) of the
        states, sorted by mean; ``bridge_weight`` (k - 1); ``loglik``
        (natural log, summed over bins), ``bic`` (``-2 loglik + p ln
        n_bins``, ``p = 3 k - 1`` plus ``k - 1`` bridge weights) and ``icl``
        (BIC plus twice the classification entropy, Biernacki, Celeux &
        Govaert 2000).
    """
    x = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    n = float(np.sum(w))
    if init_means is not None:
        centres = np.sort(np.asarray(init_means, np.float64))
    else:
        centres = kmeans_1d(x, w, k) if k > 1 else np.array([np.sum(w * x) / n])
    mean = np.maximum(centres, 1e-3)
    r = np.full(k, R_MAX)
    nb = k - 1 if bridges else 0
    pi = np.r_[np.full(k, 0.98 / k), np.full(nb, 0.02 / max(nb, 1))]
    pi /= pi.sum()
    last = -np.inf
    loglik = -np.inf

    def log_components() -> np.ndarray:
        order = np.argsort(mean)
        rows = [np.log(pi[j]) + nb_logpmf(x, mean[j], r[j]) for j in range(k)]
        for b in range(nb):
            lo, hi = mean[order[b]], mean[order[b + 1]]
            rows.append(np.log(max(pi[k + b], 1e-300)) + bridge_logpmf(x, lo, hi))
        return np.stack(rows)

    for it in range(max_iter):
        logp = log_components()
        norm = special.logsumexp(logp, axis=0)
        loglik = float(np.sum(w * norm))
        resp = np.exp(logp - norm) * w
        tot = resp.sum(axis=1)
        if np.any(tot[:k] <= 1e-9 * n):
            break  # an empty state: this k is not supported by the data
        pi = np.maximum(tot / n, 1e-12)
        pi /= pi.sum()
        mean = np.maximum(resp[:k] @ x / tot[:k], 1e-6)
        for j in range(k):
            r[j] = _fit_shape(x, resp[j], mean[j])
        if it > 2 and abs(loglik - last) <= tol * abs(loglik):
            break
        last = loglik
    logp = log_components()
    norm = special.logsumexp(logp, axis=0)
    loglik = float(np.sum(w * norm))
    tau = np.exp(logp - norm)
    entropy = float(-np.sum(w * np.sum(tau * np.log(np.maximum(tau, 1e-300)), axis=0)))
    bic = -2.0 * loglik + (3 * k - 1 + nb) * math.log(max(n, 2.0))
    order = np.argsort(mean)
    return {
        "weight": pi[:k][order] / pi[:k].sum(),
        "mean": mean[order],
        "r": r[order],
        "bridge_weight": pi[k:],
        "loglik": loglik,
        "bic": bic,
        "icl": bic + 2.0 * entropy,
    }


def nb_mixture_best(values: np.ndarray, weights: np.ndarray, k: int) -> dict:
    """:func:`nb_mixture_em` from two starts, the fit with the larger likelihood.

    Starts: 1-D k-means centres, and means spaced geometrically between the
    2nd and 98th percentiles of the counts (states an order of magnitude
    apart, such as dark / grey / bright, which k-means tends to mix up).
    """
    x = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    best = nb_mixture_em(x, w, k)
    if k > 1:
        order = np.argsort(x)
        cdf = np.cumsum(w[order]) / w.sum()
        lo = max(float(x[order][np.searchsorted(cdf, 0.02)]), 0.5)
        hi = float(x[order][min(np.searchsorted(cdf, 0.98), x.size - 1)])
        if hi > lo:
            other = nb_mixture_em(x, w, k, init_means=np.geomspace(lo, hi, k))
            if other["loglik"] > best["loglik"]:
                best = other
    return best


def _fit_shape(x: np.ndarray, resp: np.ndarray, mean: float) -> float:
    """Weighted MLE of the negative-binomial shape at fixed mean (bounded, log scale)."""
    mom_var = float(resp @ (x - mean) ** 2 / resp.sum())
    if mom_var <= mean * (1 + 1e-6):
        return R_MAX  # not over-dispersed: Poisson

    def nll(logr: float) -> float:
        return -float(resp @ nb_logpmf(x, mean, math.exp(logr)))

    res = optimize.minimize_scalar(nll, bounds=(math.log(R_MIN), math.log(R_MAX)), method="bounded")
    rr = math.exp(float(res.x))
    # prefer the Poisson limit when it is as good (flat likelihood at large r)
    poisson = -float(resp @ nb_logpmf(x, mean, R_MAX))
    return R_MAX if poisson <= float(res.fun) + 1e-9 else rr


def mixture_thresholds(model: dict, max_count: int) -> np.ndarray:
    """Count thresholds between neighbouring components (ascending).

    Threshold ``j`` is the smallest integer count above ``mean[j]`` at which
    component ``j + 1`` has the larger weighted probability: bins with
    ``counts >= threshold[j]`` are in a state above ``j``.
    """
    mean, r, pi = model["mean"], model["r"], model["weight"]
    out = []
    for j in range(len(mean) - 1):
        lo = math.floor(mean[j])
        hi = max(math.ceil(mean[j + 1]), lo + 1)
        xs = np.arange(lo, hi + 1)
        a = math.log(pi[j]) + nb_logpmf(xs, mean[j], r[j])
        b = math.log(pi[j + 1]) + nb_logpmf(xs, mean[j + 1], r[j + 1])
        above = np.flatnonzero((b >= a) & (xs > mean[j]))
        out.append(int(xs[above[0]]) if above.size else hi)
    return np.maximum.accumulate(np.asarray(out, np.int64)) if out else np.empty(0, np.int64)


def multi_otsu(counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Otsu thresholds on the histogram of integer counts (2 or 3 classes).

    Returns integer thresholds ``th`` (ascending): class ``c`` holds the bins
    with ``th[c - 1] <= count < th[c]``.  Maximises the between-class
    variance (Otsu 1979; Liao, Chen & Chung 2001 for several thresholds).
    """
    counts = np.asarray(counts, np.int64)
    hist = np.bincount(counts).astype(np.float64)
    x = np.arange(hist.size, dtype=np.float64)
    p = hist / hist.sum()
    w = np.concatenate([[0.0], np.cumsum(p)])  # w[i] = P(count < i)
    m = np.concatenate([[0.0], np.cumsum(p * x)])
    total_mean = m[-1]
    if n_classes == 2:
        wi, mi = w[1:-1], m[1:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            between = (total_mean * wi - mi) ** 2 / (wi * (1 - wi))
        between[~np.isfinite(between)] = -1
        return np.array([int(np.argmax(between)) + 1])
    if n_classes == 3:
        nb = hist.size
        best, th = -1.0, (1, 2)
        for i in range(1, nb - 1):
            for j in range(i + 1, nb):
                w0, w1, w2 = w[i], w[j] - w[i], 1 - w[j]
                if w0 <= 0 or w1 <= 0 or w2 <= 0:
                    continue
                m0, m1, m2 = m[i] / w0, (m[j] - m[i]) / w1, (total_mean - m[j]) / w2
                s = w0 * m0**2 + w1 * m1**2 + w2 * m2**2
                if s > best:
                    best, th = s, (i, j)
        return np.array(th)
    raise ValueError(f"multi_otsu: n_classes={n_classes} must be 2 or 3")


@numba.njit(cache=True)
def _xlogx_rate(n, t):  # pragma: no cover - numba
    return n * math.log(n / t) if n > 0 else 0.0


@numba.njit(cache=True)
def _agglomerate_kernel(n, t, max_keep):  # pragma: no cover - numba
    """Merge intensity-sorted groups pairwise; record the partitions at 1..max_keep groups.

    Returns ``labels[g - 1, i]``: the group (0..g-1, ordered by intensity) of
    input group ``i`` when ``g`` groups are left.
    """
    m = n.shape[0]
    order = np.argsort(n / t)
    gn = n[order].astype(np.float64)
    gt = t[order].astype(np.float64)
    member = np.arange(m)  # sorted position -> current group id (as left-most position)
    alive = np.ones(m, np.bool_)
    nxt = np.arange(1, m + 1)
    prv = np.arange(-1, m - 1)
    out = np.zeros((max_keep, m), np.int64)
    g = m
    if g <= max_keep:
        for i in range(m):
            out[g - 1, order[i]] = i
    while g > 1:
        best = np.inf
        bi = -1
        i = 0
        while i < m:
            j = nxt[i]
            if j >= m:
                break
            cost = (
                _xlogx_rate(gn[i], gt[i])
                + _xlogx_rate(gn[j], gt[j])
                - _xlogx_rate(gn[i] + gn[j], gt[i] + gt[j])
            )
            if cost < best:
                best = cost
                bi = i
            i = j
        j = nxt[bi]
        gn[bi] += gn[j]
        gt[bi] += gt[j]
        alive[j] = False
        nxt[bi] = nxt[j]
        if nxt[j] < m:
            prv[nxt[j]] = bi
        g -= 1
        if g <= max_keep:
            # label every sorted position by the rank of its group head
            rank = 0
            head = 0
            for pos in range(m):
                if alive[pos]:
                    head = rank
                    rank += 1
                member[pos] = head
            for pos in range(m):
                out[g - 1, order[pos]] = member[pos]
    return out


def agglomerate(n: np.ndarray, t: np.ndarray, max_groups: int) -> np.ndarray:
    """Hierarchical grouping of segments by the Poisson likelihood (Watkins & Yang 2005).

    Starting from one group per segment, the two groups whose merger lowers
    the log-likelihood ``sum_g n_g ln(n_g / T_g)`` least are merged, until one
    group is left.  Candidates are neighbours in intensity order: with a
    Bregman-divergence cost such as this one the cheapest merge joins
    neighbours (checked against an exhaustive search in the tests), which
    makes the whole hierarchy O(S^2) instead of O(S^3).

    Parameters
    ----------
    n : ndarray of float, shape (S,)
        Photon (interval) counts of the segments.
    t : ndarray of float, shape (S,)
        Durations of the segments, in seconds (> 0).
    max_groups : int
        Largest number of groups whose partition is returned.

    Returns
    -------
    ndarray of int64, shape (max_groups, S)
        Row ``g - 1``: the group of each segment (0 = dimmest) with ``g``
        groups; rows above ``S`` groups are all zero.
    """
    n = np.asarray(n, np.float64)
    t = np.asarray(t, np.float64)
    max_groups = int(max(1, min(max_groups, n.size)))
    return _agglomerate_kernel(n, t, max_groups)


def poisson_segment_em(
    n: np.ndarray,
    t: np.ndarray,
    labels: np.ndarray,
    k: int,
    *,
    max_iter: int = 2000,
    tol: float = 1e-10,
) -> dict[str, np.ndarray | float]:
    """EM for a mixture of ``k`` Poisson intensities over segments.

    Segment ``j`` has ``n_j`` photons in ``T_j`` seconds; level ``m`` has
    intensity ``I_m`` (photons/s) and weight ``p_m``.  Starts from the
    grouping ``labels``.  Returns ``intensity_hz`` and ``weight`` (sorted by
    intensity), ``resp`` (S, k), ``loglik`` (mixture log-likelihood) and
    ``assign`` (most probable level of each segment).
    """
    n = np.asarray(n, np.float64)
    t = np.asarray(t, np.float64)
    intensity = np.array([n[labels == m].sum() / t[labels == m].sum() for m in range(k)])
    weight = np.array([np.mean(labels == m) for m in range(k)])
    const = special.gammaln(n + 1.0)
    last = -np.inf
    loglik = -np.inf
    resp = np.zeros((n.size, k))
    for it in range(max_iter):
        lam = np.maximum(intensity, 1e-300)
        logp = (
            np.log(np.maximum(weight, 1e-300))[None, :]
            + n[:, None] * np.log(lam[None, :] * t[:, None])
            - lam[None, :] * t[:, None]
            - const[:, None]
        )
        norm = special.logsumexp(logp, axis=1)
        loglik = float(norm.sum())
        resp = np.exp(logp - norm[:, None])
        tot = resp.sum(axis=0)
        weight = tot / n.size
        with np.errstate(invalid="ignore", divide="ignore"):
            new = (resp.T @ n) / (resp.T @ t)
        intensity = np.where(tot > 0, new, intensity)
        if it > 2 and abs(loglik - last) <= tol * max(abs(loglik), 1.0):
            break
        last = loglik
    order = np.argsort(intensity)
    resp = resp[:, order]
    return {
        "intensity_hz": intensity[order],
        "weight": weight[order],
        "resp": resp,
        "loglik": loglik,
        "assign": np.argmax(resp, axis=1),
    }
