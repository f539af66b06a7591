"""Posterior predictive check figures for :class:`~qdinfer.models.FitResult`."""

from __future__ import annotations

import numpy as np

from ._fit import FitResult

__all__ = ["plot_ppc"]


def plot_ppc(result: FitResult, *, prob: float = 0.9, n_draws: int = 400, seed: int = 0, ax=None):
    """Data against the posterior predictive (Poisson draws of ``mu``), with residuals.

    Top: observed counts, the posterior-mean expectation and the ``prob``
    band of replicated data; bottom: (data - mean) / predictive sd.
    Returns the matplotlib Figure.  Needs ``samples["mu"]`` and
    ``observed`` (every model of this package stores both).
    """
    import matplotlib.pyplot as plt

    if "mu" not in result.samples or result.observed is None:
        raise ValueError("plot_ppc needs a fit with samples['mu'] and observed data")
    rng = np.random.default_rng(seed)
    mu = result.draws("mu")
    idx = rng.choice(len(mu), size=min(n_draws, len(mu)), replace=False)
    rep = rng.poisson(np.maximum(mu[idx], 0.0))
    lo, hi = np.quantile(rep, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    mean = mu.mean(axis=0)
    sd = np.sqrt(np.maximum(np.maximum(rep.var(axis=0), mean), 1e-12))
    x = np.asarray(result.info.get("x_s", np.arange(len(mean))))
    y = result.observed
    if ax is None:
        fig, (a0, a1) = plt.subplots(
            2, 1, sharex=True, figsize=(7, 5), gridspec_kw={"height_ratios": [3, 1]}
        )
    else:
        a0 = ax
        a1 = None
        fig = ax.figure
    a0.fill_between(x, lo, hi, step="mid", alpha=0.3, label=f"{prob:.0%} predictive")
    a0.step(x, y, where="mid", lw=0.8, color="k", label="data")
    a0.plot(x, mean, color="C3", lw=1, label="posterior mean")
    a0.set_ylabel("counts")
    if np.all(y >= 0) and y.max() > 100 * max(np.median(y), 1):
        a0.set_yscale("symlog", linthresh=1)
    a0.legend(loc="best", fontsize=8)
    a0.set_title(f"{result.model_name}: posterior predictive check")
    if a1 is not None:
        a1.plot(x, (y - mean) / sd, ".", ms=2, color="k")
        a1.axhline(0, color="C3", lw=0.8)
        a1.set_ylabel("residual (sd)")
        a1.set_xlabel(result.info.get("x_label", "index"))
    return fig
