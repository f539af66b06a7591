"""Bayesian decay model: agreement with the scipy MLE, gating, SBC."""

from __future__ import annotations

import time

import numpy as np
import pytest

import qdinfer
from qdinfer.decay import DecayHistogram, _Model, gaussian_irf

models = pytest.importorskip("qdinfer.models")
from qdinfer.models import SamplerSettings, fit_decay_bayes  # noqa: E402
from qdinfer.models import decay as md  # noqa: E402
from qdinfer.models.sbc import sbc  # noqa: E402

N_BINS = 256
PERIOD_S = 100e-9
W_S = PERIOD_S / N_BINS
EDGES = np.arange(N_BINS + 1) * W_S
IRF = gaussian_irf(5e-9, 0.5e-9, EDGES)
TAUS = np.array([2e-9, 20e-9])
AMPS = np.array([3e4, 7e4])  # photons per period: 1e5 counts
BG = 5.0
SHIFT_BINS = 0.7


def _expected() -> np.ndarray:
    """Counts expected from fit_decay's own (numpy) model: an independent implementation."""
    m = _Model(IRF.weights_on(EDGES), N_BINS)
    return sum(a * m.component(t / W_S, SHIFT_BINS) for a, t in zip(AMPS, TAUS, strict=True)) + BG


@pytest.fixture(scope="module")
def decay() -> DecayHistogram:
    rng = np.random.default_rng(20261126)
    return DecayHistogram(rng.poisson(_expected()), EDGES, PERIOD_S)


@pytest.fixture(scope="module")
def fits(decay):
    t0 = time.perf_counter()
    first = fit_decay_bayes(decay, n_exp=2, irf=IRF, seed=1)
    t1 = time.perf_counter()
    second = fit_decay_bayes(decay, n_exp=2, irf=IRF, seed=2)
    t2 = time.perf_counter()
    return first, second, t1 - t0, t2 - t1


def test_kernel_matches_numpy_model():
    """The float32 jax kernel equals fit_decay's float64 second-difference kernel."""
    import jax.numpy as jnp

    from qdinfer.decay import _kernels

    for tau, period in [(0.05, 256.0), (0.7, 256.0), (5.0, 100.3), (50.0, 256.0)]:
        y = np.arange(-300, 301, dtype=float) - 0.37
        g, _, _ = _kernels(y, 1 / tau, period, False)
        gj = np.asarray(md._component(jnp.asarray(y[1:-1], jnp.float32), jnp.ones(1), tau, period))
        assert np.max(np.abs(gj - g)) < 1e-4 * g.max()


def test_agrees_with_mle(decay, fits):
    """Posterior means agree with fit_decay's MLE to a fraction of the posterior sd."""
    res, _, _, _ = fits
    mle = qdinfer.fit_decay(decay, n_exp=2, irf=IRF)
    assert res.diagnostics["r_hat"] < 1.01
    assert res.diagnostics["divergences"] == 0
    for k in range(2):
        name = f"tau_{k + 1}_s"
        # posterior mean and MLE of the same data differ by O(sd / sqrt(N)) + skew: < 0.5 sd
        assert abs(res.mean(name) - mle.tau_s[k]) < 0.5 * res.sd(name)
        # and the posterior sd matches the Fisher standard error within 20 %
        assert res.sd(name) == pytest.approx(mle.tau_stderr_s[k], rel=0.2)
    assert abs(res.mean("shift_s") - mle.shift_s) < 0.5 * res.sd("shift_s")
    # truth within 4 posterior sd (sigma = posterior sd; fails ~6e-5 of seeds)
    for k, name in enumerate(["tau_1_s", "tau_2_s"]):
        assert abs(res.mean(name) - TAUS[k]) < 4 * res.sd(name)
    assert abs(res.mean("shift_s") - SHIFT_BINS * W_S) < 4 * res.sd("shift_s")
    lo, hi = res.interval("tau_2_s", 0.9)
    assert lo < res.mean("tau_2_s") < hi


def test_fit_result_api(fits, tmp_path):
    """interval, summary (arviz 1.x columns), diagnostics, JSON dict, netCDF."""
    res = fits[0]
    lo, hi = res.interval("tau_2_s", 0.9)
    lo50, hi50 = res.interval("tau_2_s", 0.5)
    assert lo < lo50 < hi50 < hi
    table = res.summary(prob=0.9)
    assert {"mean", "sd", "eti90_lb", "eti90_ub", "r_hat", "ess_bulk", "unit"} <= set(table.columns)
    assert table.loc["tau_2_s", "unit"] == "s"
    assert table.loc["tau_2_s", "eti90_lb"] == pytest.approx(lo, rel=1e-3)
    d = res.diagnostics
    assert {"r_hat", "ess_bulk", "divergences", "r_hat_by_param", "ok"} <= set(d)
    assert d["ess_bulk"] > 100
    out = res.to_dict()
    assert out["params"]["tau_1_s"]["unit"] == "s"
    assert res.posterior["posterior"]["tau_1_s"].shape == (2, 500)
    path = tmp_path / "post.nc"
    res.posterior.to_netcdf(path, engine="h5netcdf")
    assert path.stat().st_size > 0
    with pytest.raises(KeyError):
        res.interval("nope")


def test_bad_diagnostics_warn():
    """r_hat > 1.01, divergences or low ESS give a FitDiagnosticsWarning naming them."""
    from qdinfer.models._fit import warn_if_bad

    good = {
        "method": "nuts",
        "r_hat": 1.002,
        "divergences": 0,
        "ess_bulk": 800.0,
        "r_hat_by_param": {"a": 1.002},
    }
    assert warn_if_bad(good) == []
    bad = dict(good, r_hat=1.05, r_hat_by_param={"a": 1.05}, divergences=3)
    with pytest.warns(models.FitDiagnosticsWarning, match=r"r_hat 1.050 > 1.01 \(a\); 3 divergent"):
        assert len(warn_if_bad(bad, "decay")) == 2
    with pytest.warns(models.FitDiagnosticsWarning, match="ESS 20"):
        warn_if_bad(dict(good, ess_bulk=20.0))


def test_compiled_once(fits):
    """The second fit of same-shape data reuses the compiled sampler."""
    _, second, t_first, t_second = fits
    assert second.diagnostics["r_hat"] < 1.01
    assert t_second < 0.6 * t_first


def test_gate_masks_early_bins(decay):
    """A 2.5 ns gate drops the bins starting less than 2.5 ns after the IRF peak."""
    data, extra = md.decay_inputs(decay, IRF, gate_s=2.5e-9)
    start = EDGES[:-1]
    early = (start >= IRF.peak_s) & (start < IRF.peak_s + 2.5e-9 - 1e-15)
    assert not extra["mask"][early].any()
    assert extra["mask"][~early].all()
    assert data["mask"].sum() == N_BINS - early.sum()


@pytest.mark.slow
def test_gated_fit(decay):
    """Gated 10 ns after the peak, one exponential recovers the long lifetime."""
    res = fit_decay_bayes(decay, n_exp=1, irf=IRF, gate_s=10e-9, seed=3)
    # 10 ns after the peak the 2 ns component has decayed by e^-5: one exponential suffices
    assert res.diagnostics["r_hat"] < 1.01
    # sigma: posterior sd; 5 sd allows for the residual fast component (~0.7 % of it)
    assert abs(res.mean("tau_1_s") - TAUS[1]) < 5 * res.sd("tau_1_s")


def _sbc_setup():
    n = 64
    period = 50e-9
    edges = np.arange(n + 1) * period / n
    irf = gaussian_irf(3e-9, 0.6e-9, edges)
    d = DecayHistogram(np.ones(n, np.int64), edges, period)
    data, _ = md.decay_inputs(
        d, irf, tau_prior_ns=(5.0, 0.5), shift_prior_s=(0.0, 0.1e-9), scale=2e3
    )
    return data


PARAMS = ["tau_1_s", "background_per_bin", "shift_s"]


def test_sbc_small():
    """SBC, 8 datasets of ~2e3 photons drawn from the prior: ranks uniform (chi2 p > 1e-4)."""
    r = sbc(
        md.decay_model,
        _sbc_setup(),
        params=PARAMS,
        n_datasets=8,
        static={"n_exp": 1},
        settings=SamplerSettings(num_warmup=200, num_samples=200),
        thin=4,
        seed=0,
    )
    assert r.divergences.sum() == 0
    for p in r.pvalues(n_bins=3).values():
        assert p > 1e-4


@pytest.mark.slow
def test_sbc_full():
    """SBC, 100 datasets."""
    r = sbc(
        md.decay_model,
        _sbc_setup(),
        params=PARAMS,
        n_datasets=100,
        static={"n_exp": 1},
        settings=SamplerSettings(num_warmup=300, num_samples=300),
        thin=5,
        seed=1,
    )
    assert np.median(r.max_r_hat) < 1.01
    for p in r.pvalues(n_bins=5).values():
        assert p > 1e-4


def test_batched_fits_agree_with_single_fits(decay, fits):
    """fit_decays_bayes (one vmapped fit) gives each decay the posterior fit_decay_bayes gives.

    Two decays of the same binning, one of them the fixture's: the batched
    posterior of that one agrees with the single fit's (the same posterior,
    other draws: means within 0.3 posterior sd; 2 x 500 draws with ESS > 100
    give a Monte-Carlo error below 0.1 sd).
    """
    from qdinfer.models import fit_decays_bayes

    rng = np.random.default_rng(7)
    other = DecayHistogram(rng.poisson(_expected()), EDGES, PERIOD_S)
    batch = fit_decays_bayes([decay, other], n_exp=2, irf=IRF, seed=3)
    single = fits[0]
    assert len(batch) == 2
    for res in batch:
        assert res.diagnostics["r_hat"] < 1.01 and res.diagnostics["divergences"] == 0
        for k, name in enumerate(["tau_1_s", "tau_2_s"]):
            assert abs(res.mean(name) - TAUS[k]) < 4 * res.sd(name)
    for name in ("tau_1_s", "tau_2_s", "shift_s"):
        assert abs(batch[0].mean(name) - single.mean(name)) < 0.3 * single.sd(name)
        assert batch[0].sd(name) == pytest.approx(single.sd(name), rel=0.2)


def test_batched_fits_need_one_shape(decay):
    from qdinfer.models import fit_decays_bayes

    short = DecayHistogram(decay.counts[:128], EDGES[:129], PERIOD_S)
    with pytest.raises(ValueError, match=r"has shape .* \(batch datasets of one shape\)"):
        fit_decays_bayes([decay, short], n_exp=1, irf=IRF)
    with pytest.raises(ValueError, match="no decays"):
        fit_decays_bayes([], n_exp=1)
