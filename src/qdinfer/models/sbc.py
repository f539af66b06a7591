"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788).

Draw parameters from the prior, data from the model given them, fit, and
record the rank of each true value among the posterior draws.  For a correct
model and sampler the ranks are uniform; :func:`rank_uniformity_pvalue` tests
that with a chi-square over a few rank bins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from numpyro.infer import Predictive
from scipy import stats

from ._fit import SamplerSettings, run_model

__all__ = ["SbcResult", "rank_uniformity_pvalue", "sbc"]


@dataclass(frozen=True)
class SbcResult:
    """Ranks of the true values among ``n_draws`` posterior draws.

    Attributes
    ----------
    ranks : dict of ndarray of int, shape (n_datasets,)
        Per parameter.
    truths : dict of ndarray
        The prior draws that generated each dataset.
    n_draws : int
        Posterior draws per fit (ranks lie in 0..n_draws).
    max_r_hat : ndarray, shape (n_datasets,)
    divergences : ndarray of int, shape (n_datasets,)
    """

    ranks: dict[str, np.ndarray]
    truths: dict[str, np.ndarray]
    n_draws: int
    max_r_hat: np.ndarray
    divergences: np.ndarray

    def pvalues(self, n_bins: int = 4) -> dict[str, float]:
        """Chi-square p-value of rank uniformity per parameter."""
        return {k: rank_uniformity_pvalue(r, self.n_draws, n_bins) for k, r in self.ranks.items()}


def rank_uniformity_pvalue(ranks: np.ndarray, n_draws: int, n_bins: int = 4) -> float:
    """Chi-square test that ranks in ``0..n_draws`` are uniform (``n_bins`` bins)."""
    ranks = np.asarray(ranks)
    edges = np.linspace(0, n_draws + 1, n_bins + 1)
    counts, _ = np.histogram(ranks, bins=edges)
    return float(stats.chisquare(counts).pvalue)


def sbc(
    model: Callable,
    data: Mapping[str, Any],
    *,
    params: Sequence[str],
    n_datasets: int,
    static: Mapping[str, Any] | None = None,
    init_fn: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    settings: SamplerSettings | None = None,
    thin: int = 1,
    seed: int = 0,
    obs_key: str = "counts",
) -> SbcResult:
    """Run simulation-based calibration of ``model``.

    Parameters
    ----------
    model : callable
        numpyro model ``model(data=..., **static)`` whose likelihood site
        ``"obs"`` is observed as ``data[obs_key]``.
    data : dict
        Geometry and hyperparameters (``obs_key`` is replaced per dataset).
    params : sequence of str
        Scalar sites to rank.
    n_datasets : int
    init_fn : callable, optional
        Starting values given the dataset's data dict (default: the prior
        draw that generated it, which is exact for SBC).
    thin : int
        Keep every ``thin``-th posterior draw (reduces autocorrelation of
        the ranks).
    """
    static = dict(static or {})
    settings = settings or SamplerSettings()
    base = {k: v for k, v in data.items() if k != obs_key}

    def bound(data=None):
        return model(data=data, **static)

    prior = Predictive(bound, num_samples=n_datasets)(jax.random.PRNGKey(seed), data=base)
    from numpyro import handlers

    tr = handlers.trace(handlers.seed(bound, 0)).get_trace(data=base)
    latent = [k for k, s in tr.items() if s["type"] == "sample" and k != "obs"]
    ranks = {p: np.zeros(n_datasets, np.int64) for p in params}
    truths = {p: np.asarray(prior[p]) for p in params}
    r_hats = np.zeros(n_datasets)
    divs = np.zeros(n_datasets, np.int64)
    n_draws = 0
    for i in range(n_datasets):
        d = dict(base)
        d[obs_key] = np.asarray(prior["obs"][i], np.float64)
        if init_fn is None:
            init = {k: np.asarray(prior[k][i]) for k in latent}
        else:
            init = dict(init_fn(d))
        res = run_model(
            model,
            d,
            static=static,
            init_values=init,
            params=params,
            settings=settings,
            seed=seed + 1 + i,
            warn=False,
        )
        r_hats[i] = res.diagnostics["r_hat"]
        divs[i] = res.diagnostics["divergences"]
        for p in params:
            draws = res.draws(p)[::thin]
            n_draws = len(draws)
            ranks[p][i] = int(np.sum(draws < truths[p][i]))
    return SbcResult(ranks, truths, n_draws, r_hats, divs)
