"""Numba kernels for intensity change-point detection on photon arrival times.

This module owns the numerical core of the Watkins & Yang (2005) method:

* the weighted, standardised log-likelihood-ratio statistic ``Z_k`` for one
  change of a Poisson rate inside a segment of photon arrival times, and its
  maximum (:func:`max_weighted_lr`);
* the raw log-likelihood profile that locates the change (its maximum is the
  maximum-likelihood change point) and gives its confidence region
  (:func:`lr_profile`);
* binary segmentation and the re-check pass (:func:`find_change_points`);
* the Monte Carlo generators of the critical values: the null distribution of
  ``max_k Z_k`` versus the number of inter-photon intervals ``N``
  (:func:`null_max_z`, :func:`critical_value_table_mc`) and the distribution
  of the log-likelihood drop at the true change point, which calibrates the
  confidence regions (:func:`ci_drop_mc`).

The shipped tables live in :mod:`qdinfer._changepoint_table` and were written
by ``python -m qdinfer._make_changepoint_table``.

Statistic
---------
A segment holds photons ``t_0 < t_1 < ... < t_N`` (``N`` inter-photon
intervals, duration ``T = t_N - t_0``).  A change of rate after photon ``k``
(``1 <= k <= N - 1``) has the log-likelihood ratio

    L_k = 2 k ln(k / V_k) + 2 (N - k) ln((N - k) / (1 - V_k)) - 2 N ln N,

with ``V_k = (t_k - t_0) / T``.  Under the null (constant rate) ``V_k`` is the
``k``-th order statistic of ``N - 1`` uniforms, ``Beta(k, N - k)``, so

    E[L_k]   = const - 2 k (psi(k) - psi(N)) - 2 (N - k) (psi(N - k) - psi(N)),
    Var[L_k] = 4 [f(k) + f(N - k) - f(N)],  f(x) = x^2 psi'(x) - x,

(``psi`` the digamma function; the form with ``f`` avoids the cancellation
of the three O(N) terms of Watkins & Yang's expression).  The weighted,
standardised statistic is

    Z_k = (L_k - E[L_k]) / sqrt(Var[L_k]) + (1/2) ln(4 k (N - k) / N^2),

and a change is accepted when ``max_k Z_k`` exceeds the ``1 - alpha``
quantile of its null distribution, which depends on ``N`` only.

References
----------
L. P. Watkins and H. Yang, "Detection of intensity change points in
time-resolved single-molecule measurements", J. Phys. Chem. B 109, 617-628
(2005), doi:10.1021/jp0467548.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from scipy import special

__all__ = [
    "ci_drop_mc",
    "ci_drop_vs_strength_mc",
    "critical_value_table_mc",
    "find_change_points",
    "lr_profile",
    "max_weighted_lr",
    "moment_tables",
    "null_max_z",
]

_TABLES: dict[str, np.ndarray] = {}


def moment_tables(n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Tables ``psi[x]`` and ``f[x] = x^2 psi'(x) - x`` for ``x = 0 .. n_max``.

    Entry 0 is unused (set to 0).  Tables are cached and grown on demand.
    """
    n_max = max(int(n_max), 16)
    have = _TABLES.get("psi")
    if have is None or have.shape[0] <= n_max:
        size = max(n_max + 1, 2 * (0 if have is None else have.shape[0]))
        x = np.arange(size, dtype=np.float64)
        x[0] = 1.0
        psi = special.digamma(x)
        f = x * x * special.polygamma(1, x) - x
        psi[0] = 0.0
        f[0] = 0.0
        _TABLES["psi"] = psi
        _TABLES["f"] = f
    return _TABLES["psi"], _TABLES["f"]


@numba.njit(cache=True, nogil=True)
def _z_at(k, n, v, psi, f):  # pragma: no cover - numba
    """Weighted standardised statistic Z_k for one k (see module docstring)."""
    if v <= 0.0 or v >= 1.0:
        return np.inf
    nk = n - k
    x = -2.0 * k * math.log(v) - 2.0 * nk * math.log1p(-v)
    x += 2.0 * k * (psi[k] - psi[n]) + 2.0 * nk * (psi[nk] - psi[n])
    var = 4.0 * (f[k] + f[nk] - f[n])
    return x / math.sqrt(var) + 0.5 * math.log(4.0 * k * nk / (float(n) * n))


@numba.njit(cache=True, nogil=True)
def max_weighted_lr(t, a, b, psi, f):  # pragma: no cover - numba
    """Maximum of ``Z_k`` over the segment of photons ``a..b`` (inclusive).

    Parameters
    ----------
    t : ndarray of float64
        Strictly increasing arrival times, in seconds.
    a, b : int
        First and last photon of the segment (``N = b - a`` intervals).
    psi, f : ndarray of float64
        Tables from :func:`moment_tables`, at least ``N + 1`` long.

    Returns
    -------
    z_max : float
        ``max_k Z_k``; ``-inf`` when ``N < 2`` (nothing to test).
    k_max : int
        Absolute index of the photon after which the change happens.
    """
    n = b - a
    if n < 2:
        return -np.inf, -1
    t0 = t[a]
    span = t[b] - t0
    best = -np.inf
    kbest = -1
    for k in range(1, n):
        z = _z_at(k, n, (t[a + k] - t0) / span, psi, f)
        if z > best:
            best = z
            kbest = a + k
    return best, kbest


@numba.njit(cache=True, nogil=True)
def lr_profile(t, a, b):  # pragma: no cover - numba
    """Raw log-likelihood profile ``l_k`` of one change after photon ``a + k``.

    ``l_k = k ln(k / T_k) + (N - k) ln((N - k) / (T - T_k))`` for
    ``k = 1 .. N - 1`` (entry 0 is ``-inf``); ``2 (max l - l_k)`` is the
    likelihood-ratio drop used for confidence regions.
    """
    n = b - a
    out = np.full(max(n, 1), -np.inf)
    t0 = t[a]
    span = t[b] - t0
    for k in range(1, n):
        tk = t[a + k] - t0
        rest = span - tk
        if tk > 0.0 and rest > 0.0:
            out[k] = k * math.log(k / tk) + (n - k) * math.log((n - k) / rest)
    return out


@numba.njit(cache=True, nogil=True)
def _mle_location(t, a, b):  # pragma: no cover - numba
    prof = lr_profile(t, a, b)
    return a + int(np.argmax(prof))


@numba.njit(cache=True, nogil=True)
def _crit(n, grid_n, grid_z):  # pragma: no cover - numba
    """Critical value at ``n`` intervals: linear in ln(ln(n + 1)) between grid points.

    Beyond the grid: extrapolated linearly with the last slope (never decreasing).
    """
    if n <= grid_n[0]:
        return grid_z[0]
    m = grid_n.shape[0]
    x = math.log(math.log(n + 1.0))
    if n >= grid_n[m - 1]:
        x0 = math.log(math.log(grid_n[m - 2] + 1.0))
        x1 = math.log(math.log(grid_n[m - 1] + 1.0))
        slope = max(grid_z[m - 1] - grid_z[m - 2], 0.0) / (x1 - x0)
        return grid_z[m - 1] + slope * (x - x1)
    j = np.searchsorted(grid_n, n)
    x0 = math.log(math.log(grid_n[j - 1] + 1.0))
    x1 = math.log(math.log(grid_n[j] + 1.0))
    w = (x - x0) / (x1 - x0)
    return grid_z[j - 1] * (1.0 - w) + grid_z[j] * w


@numba.njit(cache=True, nogil=True)
def _test_segment(t, a, b, psi, f, grid_n, grid_z):  # pragma: no cover - numba
    """(significant, change photon index) for the segment a..b."""
    n = b - a
    if n < 2:
        return False, -1
    z, _ = max_weighted_lr(t, a, b, psi, f)
    if z > _crit(n, grid_n, grid_z):
        return True, _mle_location(t, a, b)
    return False, -1


@numba.njit(cache=True, nogil=True)
def _binary_segmentation(t, psi, f, grid_n, grid_z, max_cp):  # pragma: no cover - numba
    n_ph = t.shape[0]
    found = np.empty(max(max_cp, 1), np.int64)
    n_found = 0
    stack_a = np.empty(2 * max_cp + 2, np.int64)
    stack_b = np.empty(2 * max_cp + 2, np.int64)
    top = 0
    stack_a[0] = 0
    stack_b[0] = n_ph - 1
    top = 1
    while top > 0 and n_found < max_cp:
        top -= 1
        a = stack_a[top]
        b = stack_b[top]
        ok, c = _test_segment(t, a, b, psi, f, grid_n, grid_z)
        if ok:
            found[n_found] = c
            n_found += 1
            stack_a[top] = a
            stack_b[top] = c
            stack_a[top + 1] = c
            stack_b[top + 1] = b
            top += 2
    return np.sort(found[:n_found])


@numba.njit(cache=True, nogil=True)
def _recheck(t, cps, psi, f, grid_n, grid_z, max_pass):  # pragma: no cover - numba
    """Re-test each change point between its neighbours; drop or move it.

    Repeats until nothing changes (at most ``max_pass`` passes).
    """
    cur = cps.copy()
    last = t.shape[0] - 1
    for _ in range(max_pass):
        changed = False
        keep = np.ones(cur.shape[0], np.bool_)
        new = cur.copy()
        prev = 0
        for j in range(cur.shape[0]):
            nxt = cur[j + 1] if j + 1 < cur.shape[0] else last
            ok, c = _test_segment(t, prev, nxt, psi, f, grid_n, grid_z)
            if not ok:
                keep[j] = False
                changed = True
                # the neighbours now span the dropped point: prev stays.
            else:
                if c != cur[j]:
                    changed = True
                new[j] = c
                prev = c
        cur = new[keep]
        if cur.shape[0] > 1:
            cur = np.unique(cur)
        if not changed:
            break
    return cur


def find_change_points(
    t: np.ndarray,
    grid_n: np.ndarray,
    grid_z: np.ndarray,
    *,
    max_change_points: int = 100_000,
    max_passes: int = 20,
) -> np.ndarray:
    """Indices of the photons after which the rate changes (sorted, int64).

    Binary segmentation with the weighted statistic ``Z`` against the
    critical values ``grid_z`` (tabulated at ``grid_n`` intervals), change
    located at the maximum of the raw likelihood, then re-check passes that
    test each change point between its neighbours.
    """
    t = np.ascontiguousarray(t, dtype=np.float64)
    psi, f = moment_tables(t.shape[0])
    grid_n = np.ascontiguousarray(grid_n, dtype=np.float64)
    grid_z = np.ascontiguousarray(grid_z, dtype=np.float64)
    if t.shape[0] < 3:
        return np.empty(0, np.int64)
    cps = _binary_segmentation(t, psi, f, grid_n, grid_z, int(max_change_points))
    if cps.size:
        cps = _recheck(t, cps, psi, f, grid_n, grid_z, int(max_passes))
    return cps.astype(np.int64)


# ---------------------------------------------------------------------------
# Monte Carlo generators of the critical values
# ---------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _null_max_z_kernel(n, n_sim, rng, psi, f):  # pragma: no cover - numba
    out = np.empty(n_sim)
    t = np.empty(n + 1)
    for s in range(n_sim):
        acc = 0.0
        t[0] = 0.0
        for i in range(1, n + 1):
            acc += rng.standard_exponential()
            t[i] = acc
        z, _ = max_weighted_lr(t, 0, n, psi, f)
        out[s] = z
    return out


def null_max_z(
    n: int, n_sim: int, rng: np.random.Generator | int | None = None, *, n_blocks: int = 1
) -> np.ndarray:
    """Samples of ``max_k Z_k`` for ``n`` exponential intervals (no change).

    Parameters
    ----------
    n : int
        Number of inter-photon intervals (``>= 2``).
    n_sim : int
        Number of simulated segments.
    rng : Generator, int or None
        Seed or generator.  With ``n_blocks > 1`` the simulations are split
        into blocks with independent child seeds (``SeedSequence.spawn``)
        run on threads: the result depends on the seed and ``n_blocks`` only.
    n_blocks : int
        Number of independent blocks (threads).

    Returns
    -------
    ndarray of float64, shape (n_sim,)
    """
    if n < 2:
        raise ValueError(f"null_max_z: n={n} must be >= 2 intervals")
    psi, f = moment_tables(n)
    rng = np.random.default_rng(rng)
    if n_blocks <= 1:
        return _null_max_z_kernel(int(n), int(n_sim), rng, psi, f)
    seeds = rng.bit_generator.seed_seq.spawn(n_blocks)  # type: ignore[attr-defined]
    sizes = np.diff(np.linspace(0, n_sim, n_blocks + 1).astype(int))
    with ThreadPoolExecutor(n_blocks) as pool:
        parts = pool.map(
            lambda args: _null_max_z_kernel(
                int(n), int(args[1]), np.random.default_rng(args[0]), psi, f
            ),
            zip(seeds, sizes, strict=True),
        )
        return np.concatenate(list(parts))


def critical_value_table_mc(
    grid_n: np.ndarray,
    alphas: tuple[float, ...],
    n_sim: np.ndarray,
    rng: np.random.Generator | int | None = None,
    *,
    n_blocks: int = 1,
) -> np.ndarray:
    """Monte Carlo critical values ``tau_{1-alpha}(N)`` of ``max_k Z_k``.

    Parameters
    ----------
    grid_n : ndarray of int, shape (G,)
        Numbers of intervals ``N``.
    alphas : tuple of float
        Type-I error probabilities.
    n_sim : ndarray of int, shape (G,)
        Simulated segments per grid point.
    rng : Generator, int or None
        Seed; each grid point gets its own child seed, so a table entry does
        not depend on the other grid points.

    Returns
    -------
    ndarray of float64, shape (len(alphas), G)
        ``table[i, j]`` is the ``1 - alphas[i]`` quantile at ``grid_n[j]``.
    """
    rng = np.random.default_rng(rng)
    seeds = rng.bit_generator.seed_seq.spawn(len(grid_n))  # type: ignore[attr-defined]
    out = np.empty((len(alphas), len(grid_n)))
    for j, (n, m, seed) in enumerate(zip(grid_n, n_sim, seeds, strict=True)):
        z = null_max_z(int(n), int(m), np.random.default_rng(seed), n_blocks=n_blocks)
        out[:, j] = np.quantile(z, 1.0 - np.asarray(alphas))
    return out


@numba.njit(cache=True, nogil=True)
def _ci_drop_kernel(n1, n2, ratio, n_sim, rng):  # pragma: no cover - numba
    out = np.empty(n_sim)
    n = n1 + n2
    t = np.empty(n + 1)
    for s in range(n_sim):
        acc = 0.0
        t[0] = 0.0
        for i in range(1, n + 1):
            e = rng.standard_exponential()
            acc += e if i <= n1 else e / ratio
            t[i] = acc
        prof = lr_profile(t, 0, n)
        out[s] = 2.0 * (np.max(prof) - prof[n1])
    return out


def ci_drop_mc(
    n1: int,
    n2: int,
    ratio: float,
    n_sim: int,
    rng: np.random.Generator | int | None = None,
    *,
    n_blocks: int = 1,
) -> np.ndarray:
    """Samples of ``2 (max_k l_k - l_{k*})`` for a true change after ``n1`` intervals.

    The rate is 1 for the first ``n1`` intervals and ``ratio`` for the next
    ``n2``.  The quantile ``beta`` of these samples is the drop below the
    profile maximum that a ``beta`` confidence region must include.  Blocks
    as in :func:`null_max_z`.
    """
    if n1 < 1 or n2 < 1 or not ratio > 0:
        raise ValueError(f"ci_drop_mc: need n1, n2 >= 1 and ratio > 0, got {n1=}, {n2=}, {ratio=}")
    rng = np.random.default_rng(rng)
    if n_blocks <= 1:
        return _ci_drop_kernel(int(n1), int(n2), float(ratio), int(n_sim), rng)
    seeds = rng.bit_generator.seed_seq.spawn(n_blocks)  # type: ignore[attr-defined]
    sizes = np.diff(np.linspace(0, n_sim, n_blocks + 1).astype(int))
    with ThreadPoolExecutor(n_blocks) as pool:
        parts = pool.map(
            lambda args: _ci_drop_kernel(
                int(n1), int(n2), float(ratio), int(args[1]), np.random.default_rng(args[0])
            ),
            zip(seeds, sizes, strict=True),
        )
        return np.concatenate(list(parts))


@numba.njit(cache=True, nogil=True)
def _ci_strength_kernel(n, s_min, s_max, n_sim, rng):  # pragma: no cover - numba
    lstar = np.empty(n_sim)
    drop = np.empty(n_sim)
    t = np.empty(2 * n + 1)
    for s in range(n_sim):
        strength = math.exp(rng.uniform(math.log(s_min), math.log(s_max)))
        ratio = 1.0 + math.sqrt(strength / n)
        acc = 0.0
        t[0] = 0.0
        for i in range(1, 2 * n + 1):
            e = rng.standard_exponential()
            acc += e if i <= n else e / ratio
            t[i] = acc
        prof = lr_profile(t, 0, 2 * n)
        top = np.max(prof)
        null = 2 * n * math.log(2 * n / t[2 * n])
        lstar[s] = 2.0 * (top - null)
        drop[s] = 2.0 * (top - prof[n])
    return lstar, drop


def ci_drop_vs_strength_mc(
    n: int,
    strength_range: tuple[float, float],
    n_sim: int,
    rng: np.random.Generator | int | None = None,
    *,
    n_blocks: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Likelihood drop at the true change versus the strength of the change.

    Each simulation has ``n`` intervals at rate 1, then ``n`` at rate
    ``1 + sqrt(s / n)`` with ``s`` log-uniform in ``strength_range`` (weak
    changes: the Brownian limit, where the drop depends on ``s`` only).
    Returns ``(lstar, drop)``: twice the log-likelihood ratio of the best
    single change against no change, and ``2 (max_k l_k - l_{k*})``.
    """
    rng = np.random.default_rng(rng)
    lo, hi = (float(x) for x in strength_range)
    if not 0 < lo < hi:
        raise ValueError(f"strength_range={strength_range!r} must be 0 < lo < hi")
    seeds = rng.bit_generator.seed_seq.spawn(max(n_blocks, 1))  # type: ignore[attr-defined]
    sizes = np.diff(np.linspace(0, n_sim, max(n_blocks, 1) + 1).astype(int))
    with ThreadPoolExecutor(max(n_blocks, 1)) as pool:
        parts = list(
            pool.map(
                lambda args: _ci_strength_kernel(
                    int(n), lo, hi, int(args[1]), np.random.default_rng(args[0])
                ),
                zip(seeds, sizes, strict=True),
            )
        )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
