"""Change-point kernels, the Monte Carlo tables and level clustering (qdinfer._changepoint).

Known answers: the moments of the null statistic, the closed-form limit of
the confidence-region drop; oracles: numpy references for the numba
kernels and an exhaustive search for the agglomerative merge; calibration:
the false-positive rate and the coverage of confidence regions by
simulation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import qdinfer
import qdio
from qdinfer import _changepoint, _changepoint_table, _levels
from qdinfer._make_changepoint_table import ALPHAS, grid

# -- numpy references ------------------------------------------------------


def z_reference(t: np.ndarray) -> np.ndarray:
    """Watkins & Yang's weighted standardised statistic, straight from the formulas."""
    n = t.size - 1
    v = (t[1:n] - t[0]) / (t[n] - t[0])
    k = np.arange(1, n, dtype=float)
    dg = special.digamma
    pg = lambda x: special.polygamma(1, x)  # noqa: E731
    x = -2 * k * np.log(v) - 2 * (n - k) * np.log(1 - v)
    x += 2 * k * (dg(k) - dg(n)) + 2 * (n - k) * (dg(n - k) - dg(n))
    var = 4 * k**2 * (pg(k) - pg(n)) + 4 * (n - k) ** 2 * (pg(n - k) - pg(n))
    var -= 8 * k * (n - k) * pg(n)  # Cov(ln V, ln(1 - V)) = -psi'(N)
    return x / np.sqrt(var) + 0.5 * np.log(4 * k * (n - k) / n**2)


def test_weighted_statistic_matches_reference():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 257):
        t = np.cumsum(rng.exponential(size=n + 1))
        ref = z_reference(t)
        psi, f = _changepoint.moment_tables(n)
        got = [_changepoint._z_at(k, n, (t[k] - t[0]) / (t[n] - t[0]), psi, f) for k in range(1, n)]
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
        zmax, kmax = _changepoint.max_weighted_lr(t, 0, n, psi, f)
        assert zmax == pytest.approx(ref.max(), rel=1e-9)
        assert kmax == int(np.argmax(ref)) + 1


def test_standardised_statistic_has_mean_0_variance_1():
    # (L_k - E L_k) / sigma_k under the null: mean 0, variance 1 for every k.
    # 20000 samples: the mean's sigma is 1/sqrt(20000) = 0.007, the variance's ~0.01-0.03
    rng = np.random.default_rng(1)
    n, m = 12, 20000
    t = np.concatenate([np.zeros((m, 1)), np.cumsum(rng.exponential(size=(m, n)), axis=1)], axis=1)
    z = np.array([z_reference(row) for row in t])
    k = np.arange(1, n)
    z -= 0.5 * np.log(4 * k * (n - k) / n**2)
    assert np.all(np.abs(z.mean(axis=0)) < 5 / math.sqrt(m))
    assert np.all(np.abs(z.var(axis=0) - 1) < 0.08)


def test_lr_profile_matches_reference():
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.exponential(size=50))
    a, b = 3, 40
    prof = _changepoint.lr_profile(t, a, b)
    n = b - a
    k = np.arange(1, n)
    tk = t[a + k] - t[a]
    ref = k * np.log(k / tk) + (n - k) * np.log((n - k) / (t[b] - t[a] - tk))
    np.testing.assert_allclose(prof[1:], ref, rtol=1e-12)
    assert prof[0] == -np.inf


# -- the shipped tables ----------------------------------------------------


def test_table_reproduces_from_seed():
    """The first grid points of TAU_RAW come back exactly from the seed (2 blocks)."""
    grid_n, n_sim = grid()
    assert tuple(grid_n) == _changepoint_table.GRID_N
    assert tuple(n_sim) == _changepoint_table.N_SIM
    assert ALPHAS == _changepoint_table.ALPHAS
    seed_table, _ = np.random.SeedSequence(_changepoint_table.SEED).spawn(2)
    got = _changepoint.critical_value_table_mc(
        grid_n[:3], ALPHAS, n_sim[:3], seed_table, n_blocks=2
    )
    np.testing.assert_array_equal(got, np.asarray(_changepoint_table.TAU_RAW)[:, :3])


def test_table_is_monotone_and_smooth():
    tau = np.asarray(_changepoint_table.TAU)
    raw = np.asarray(_changepoint_table.TAU_RAW)
    assert np.all(np.diff(tau, axis=1) >= 0)  # critical values grow with N
    assert np.all(np.diff(tau, axis=0) < 0)  # and with 1 - alpha
    # smoothing moves a value by less than the Monte Carlo scatter (largest at alpha = 0.01,
    # 2000 simulations: the 99 % quantile's sigma is ~0.25 there)
    assert np.max(np.abs(tau - raw)) < 0.8
    assert tau[1, -1] == pytest.approx(6.6, abs=0.3)  # alpha = 0.05 at N = 1e6


@pytest.mark.parametrize(("n", "alpha"), [(40, 0.05), (500, 0.05), (500, 0.01), (3000, 0.1)])
def test_false_positive_rate_is_alpha(n, alpha):
    # fresh simulations (another seed than the table's): P(max Z > tau) = alpha
    m = 6000
    z = _changepoint.null_max_z(n, m, np.random.default_rng(99 + n))
    rate = float(np.mean(z > qdinfer.changepoint_critical_value(n, alpha)))
    sigma = math.sqrt(alpha * (1 - alpha) / m)
    # table smoothing / interpolation add a little on top of 4 sigma of binomial noise
    assert abs(rate - alpha) < 4 * sigma + 0.15 * alpha


def test_critical_value_interpolates_and_extrapolates():
    tab_n = np.asarray(_changepoint_table.GRID_N)
    tau = np.asarray(_changepoint_table.TAU[1])
    assert qdinfer.changepoint_critical_value(int(tab_n[20]), 0.05) == pytest.approx(tau[20])
    mid = qdinfer.changepoint_critical_value(int(np.sqrt(tab_n[20] * tab_n[21])), 0.05)
    assert tau[20] <= mid <= tau[21]
    assert qdinfer.changepoint_critical_value(10**8, 0.05) >= tau[-1]
    with pytest.raises(ValueError, match="alpha"):
        qdinfer.changepoint_critical_value(100, 0.02)
    with pytest.raises(ValueError, match="n_intervals"):
        qdinfer.changepoint_critical_value(1, 0.05)


def test_ci_drop_limit_matches_closed_form():
    """For strong, well-resolved changes the drop tends to -2 ln(1 - sqrt(beta))."""
    drops = np.asarray(_changepoint_table.CI_DROP)
    for i, beta in enumerate(_changepoint_table.CI_BETAS):
        limit = -2 * math.log(1 - math.sqrt(beta))  # 3.552, 7.352
        # last bins (L* >= 150): within the Monte Carlo scatter and the
        # discreteness of moderate jumps, both ~0.1-0.2
        assert drops[i, -1] == pytest.approx(limit, abs=0.4)
        assert np.all(np.diff(drops[i]) <= 0)  # weaker changes: wider regions


# -- detection on simulated steps -----------------------------------------


def _step_stream(rates_hz, counts, rng):
    """T2 stream: counts[i] photons at rates_hz[i], one segment after the other."""
    gaps = np.concatenate(
        [rng.exponential(1 / r, size=c) for r, c in zip(rates_hz, counts, strict=True)]
    )
    t = np.cumsum(gaps)
    macro = np.round(t / 1e-9).astype(np.int64)
    return qdio.PhotonStream(np.zeros(t.size, np.uint8), macro, None, 1e-9)


def test_single_change_located_within_confidence_region():
    # 200 steps of 600 photons at 1 kHz then 600 at 3 kHz: the change must be found
    # (its Z is far above tau), and the 95 % region must cover it in >= 95 % - 4 sigma
    rng = np.random.default_rng(3)
    m, hit, found, width = 200, 0, 0, []
    for _ in range(m):
        s = _step_stream([1e3, 3e3], [600, 600], rng)
        cps = qdinfer.change_points(s, alpha=0.05, confidence=0.95)
        if len(cps) >= 1:
            found += 1
            j = int(np.argmin(np.abs(cps.index - 600)))
            lo, hi = cps.ci_index[j]
            hit += lo <= 600 <= hi
            width.append(hi - lo)
            assert lo <= cps.index[j] <= hi
    assert found == m
    assert hit / m >= 0.95 - 4 * math.sqrt(0.95 * 0.05 / m)
    assert np.median(width) < 150  # a few tens of photons either side


def test_no_change_in_constant_rate_mostly():
    rng = np.random.default_rng(4)
    m = 100
    n_found = sum(
        len(qdinfer.change_points(_step_stream([2e3], [2000], rng), alpha=0.05)) > 0
        for _ in range(m)
    )
    # each recursion level tests at alpha; with no change only the first test counts
    assert n_found / m < 0.05 + 4 * math.sqrt(0.05 * 0.95 / m)


def test_change_points_on_three_steps_and_levels():
    rng = np.random.default_rng(5)
    s = _step_stream([5e3, 500, 5e3, 20e3], [4000, 400, 4000, 8000], rng)
    res = qdinfer.change_point_states(s, alpha=0.01)
    cps = res.change_points
    truth = np.array([4000, 4400, 8400])
    assert len(cps) == 3
    for c, (lo, hi), tr in zip(cps.index, cps.ci_index, truth, strict=True):
        assert abs(c - tr) <= 30 and lo <= tr <= hi
    # levels: 500, 5000, 20000 photons/s (sigma ~ rate / sqrt(n): 25, 55, 220)
    assert res.n_levels == 3
    np.testing.assert_allclose(res.level_intensity_hz, [500, 5e3, 20e3], rtol=0.05)
    assert res.trajectory.labels == ("dark", "grey", "bright")
    assert res.trajectory.state.tolist() == [1, 0, 1, 2]
    assert max(res.bic, key=res.bic.get) == 3


def test_change_points_edge_cases():
    one = qdio.PhotonStream(np.zeros(1, np.uint8), np.array([5]), None, 1e-9)
    with pytest.raises(ValueError, match="at least 2 photons"):
        qdinfer.change_points(one)
    two = qdio.PhotonStream(np.zeros(2, np.uint8), np.array([5, 9]), None, 1e-9)
    res = qdinfer.change_points(two)
    assert len(res) == 0 and res.segment_n_intervals.tolist() == [1]
    lev = qdinfer.cluster_levels(res)
    assert lev.n_levels == 1 and lev.trajectory.labels == ("single",)
    # ties in time (same macrotime, T2) are split, not turned into infinite rates
    tied = qdio.PhotonStream(np.zeros(6, np.uint8), np.array([1, 1, 1, 5, 9, 9]), None, 1e-3)
    assert np.all(np.isfinite(qdinfer.change_points(tied).segment_intensity_hz))
    with pytest.raises(ValueError, match="confidence"):
        qdinfer.change_points(two, confidence=0.9)
    with pytest.raises(ValueError, match="no photons"):
        qdinfer.change_points(two, selection=qdinfer.channels(3))
    with pytest.raises(ValueError, match="n_levels"):
        qdinfer.cluster_levels(res, n_levels=2)


# -- agglomerative clustering ---------------------------------------------


def _cost(n1, t1, n2, t2):
    def ll(n, t):
        return n * math.log(n / t) if n > 0 else 0.0

    return ll(n1, t1) + ll(n2, t2) - ll(n1 + n2, t1 + t2)


def test_cheapest_merge_joins_intensity_neighbours():
    """Exhaustive search over all pairs never beats the best neighbour pair."""
    rng = np.random.default_rng(6)
    for _ in range(3000):
        g = int(rng.integers(3, 9))
        n = rng.integers(0, 200, g).astype(float)
        t = rng.uniform(0.01, 2, g)
        order = np.argsort(n / t)
        n, t = n[order], t[order]
        best_any = min(_cost(n[i], t[i], n[j], t[j]) for i in range(g) for j in range(i + 1, g))
        best_adj = min(_cost(n[i], t[i], n[i + 1], t[i + 1]) for i in range(g - 1))
        assert best_adj <= best_any + 1e-9 * max(1.0, abs(best_any))


def test_agglomerate_matches_bruteforce_hierarchy():
    rng = np.random.default_rng(7)
    n = rng.integers(1, 300, 12).astype(float)
    t = rng.uniform(0.05, 1, 12)
    table = _levels.agglomerate(n, t, 12)
    # brute force: merge the cheapest pair among all pairs, record partitions
    groups = [[i] for i in range(12)]
    for g in range(12, 0, -1):
        rank = sorted(range(len(groups)), key=lambda a: n[groups[a]].sum() / t[groups[a]].sum())
        labels = np.empty(12, int)
        for r, a in enumerate(rank):
            labels[groups[a]] = r
        np.testing.assert_array_equal(table[g - 1], labels)
        if g == 1:
            break
        pairs = [(a, b) for a in range(len(groups)) for b in range(a + 1, len(groups))]
        a, b = min(
            pairs,
            key=lambda p: _cost(
                n[groups[p[0]]].sum(),
                t[groups[p[0]]].sum(),
                n[groups[p[1]]].sum(),
                t[groups[p[1]]].sum(),
            ),
        )
        groups[a] = groups[a] + groups[b]
        del groups[b]


def test_segment_em_recovers_two_levels():
    rng = np.random.default_rng(8)
    t = rng.uniform(0.05, 0.5, 400)
    lam = np.where(rng.random(400) < 0.3, 300.0, 5000.0)
    n = rng.poisson(lam * t).astype(float)
    fit = _levels.poisson_segment_em(n, t, (lam > 1000).astype(int), 2)
    # sigma of a level: sqrt(rate / total time): ~3 /s and ~9 /s
    np.testing.assert_allclose(fit["intensity_hz"], [300, 5000], atol=50)
    assert fit["weight"][0] == pytest.approx(0.3, abs=4 * math.sqrt(0.21 / 400))
