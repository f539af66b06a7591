"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788).

Draw parameters from the prior, data given them, fit, and record the rank
of each true value among the posterior draws.  For a correct model and
sampler the ranks are uniform; :func:`rank_uniformity_pvalue` tests that
with a chi-square over a few rank bins and :func:`plot_ranks` shows the
rank histograms.  The data come from the model's own likelihood (its prior
predictive) or from an outside simulator (``simulate``: e.g. qdsim given
the drawn parameters), which then calibrates the model against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from numpyro.infer import Predictive
from scipy import stats

from ._fit import SamplerSettings, run_model

__all__ = ["SbcResult", "plot_ranks", "rank_uniformity_pvalue", "sbc"]


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
    wall_s : float
        Time of the whole run (simulations and fits), seconds.
    """

    ranks: dict[str, np.ndarray]
    truths: dict[str, np.ndarray]
    n_draws: int
    max_r_hat: np.ndarray
    divergences: np.ndarray
    wall_s: float = 0.0

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
    simulate: Callable[[Mapping[str, np.ndarray], int], Mapping[str, Any]] | None = None,
    progress: bool = True,
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
    simulate : callable, optional
        ``simulate(truth, seed)`` returns the observed entries of the data
        dict (e.g. ``{"counts": ...}``) for one prior draw ``truth`` (every
        sampled and deterministic site, as NumPy values).  Default: the
        model's own draw of ``"obs"``, as ``data[obs_key]``.
    progress : bool
        Show a tqdm bar over the datasets.
    """
    from numpyro import handlers
    from tqdm import tqdm

    t0 = time.perf_counter()
    static = dict(static or {})
    settings = settings or SamplerSettings()
    base = {k: v for k, v in data.items() if k != obs_key}

    def bound(data=None):
        return model(data=data, **static)

    prior = Predictive(bound, num_samples=n_datasets)(jax.random.PRNGKey(seed), data=base)
    prior = {k: np.asarray(v) for k, v in prior.items()}
    tr = handlers.trace(handlers.seed(bound, 0)).get_trace(data=base)
    latent = [
        k for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"] and k != "obs"
    ]
    ranks = {p: np.zeros(n_datasets, np.int64) for p in params}
    truths = {p: prior[p] for p in params}
    r_hats = np.zeros(n_datasets)
    divs = np.zeros(n_datasets, np.int64)
    n_draws = 0
    for i in tqdm(range(n_datasets), desc="SBC", disable=not progress, leave=False):
        d = dict(base)
        if simulate is None:
            d[obs_key] = np.asarray(prior["obs"][i], np.float64)
        else:
            truth = {k: v[i] for k, v in prior.items()}
            d.update(simulate(truth, seed + 1 + i))
        if init_fn is None:
            init = {k: prior[k][i] for k in latent}
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
    return SbcResult(ranks, truths, n_draws, r_hats, divs, time.perf_counter() - t0)


def plot_ranks(result: SbcResult, *, n_bins: int = 10, ax=None):
    """Histogram of the ranks per parameter, with the uniform band (99 % of counts).

    Returns the matplotlib Figure (one panel per parameter unless ``ax``, a
    sequence of axes, is given).
    """
    names = list(result.ranks)
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2.6 * len(names), 2.4), layout="constrained")
        axes = fig.subplots(1, len(names), squeeze=False)[0]
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    edges = np.linspace(0, result.n_draws + 1, n_bins + 1)
    n = len(next(iter(result.ranks.values())))
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1.0 / n_bins)
    pvals = result.pvalues(n_bins=min(n_bins, max(2, n // 5)))
    for a, name in zip(axes, names, strict=True):
        a.axhspan(lo, hi, color="0.85")
        a.hist(result.ranks[name], bins=edges, color="C0")
        a.set_title(f"{name}\np = {pvals[name]:.2g}", fontsize=8)
        a.set_xlabel("rank")
    axes[0].set_ylabel("datasets")
    return fig
