"""Figures of :class:`~qdinfer.models.FitResult` objects.

* :func:`plot_ppc`: posterior predictive check of a binned model (``mu``).
* :func:`plot_states`: a blinking-state fit: the trace coloured by the most
  probable state, and with per-state decays, each state's photons per
  microtime bin with its fitted decay.
"""

from __future__ import annotations

import numpy as np

from ._fit import FitResult

__all__ = ["plot_ppc", "plot_states"]


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


def plot_states(
    result: FitResult, *, time_range_s: tuple[float, float] | None = None, figsize=None
):
    """Blinking-state fit: trace coloured by state, and the per-state decays.

    Top: counts/s per bin, each bin coloured by its most probable state
    (``info["state_probability"]``), the posterior-mean intensities as
    lines.  Bottom (fits with per-state decays): the photons of each state
    per microtime bin (bins weighted by their state probability) against
    the fitted decay (posterior-mean ``micro_prob`` times the state's
    photons), log scale, lifetimes in the legend.  Returns the matplotlib
    Figure (Agg canvas, no pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..plots_states import state_colour
    from ..states import state_labels

    info = result.info
    if "state_probability" not in info:
        raise ValueError("plot_states needs a fit from fit_states_bayes (state probabilities)")
    prob = np.asarray(info["state_probability"])
    k = prob.shape[1]
    labels = state_labels(k)
    colours = [state_colour(lab, j) for j, lab in enumerate(labels)]
    dt = float(info["bin_width_s"])
    edges = np.asarray(info["edges_s"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    rate = np.asarray(info["counts"], np.float64) / dt
    state = np.argmax(prob, axis=1)
    hist = info.get("micro_hist")
    fig = Figure(figsize=figsize or (10.0, 6.0 if hist is not None else 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if hist is not None else 1, 1, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(centres, rate, color="0.75", lw=0.5, zorder=1)
    for j in range(k):
        m = state == j
        if np.any(m):
            ax.scatter(centres[m], rate[m], s=2, color=colours[j], label=labels[j], linewidths=0)
        ax.axhline(result.mean(f"intensity_{j + 1}_hz"), color=colours[j], lw=1.0, zorder=3)
    if time_range_s is not None:
        ax.set_xlim(*time_range_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts/s ({dt * 1e3:g} ms bins)")
    ax.legend(loc="upper right", fontsize="small", markerscale=4, ncols=k)
    ax.set_title(f"{result.model_name}: most probable state per bin")
    if hist is not None:
        axd = axes[1]
        m_edges = np.asarray(info["micro_edges_s"])
        x_ns = 0.5 * (m_edges[1:] + m_edges[:-1]) * 1e9
        per_state = prob.T @ np.asarray(hist, np.float64)  # (K, M) expected photons
        shape = result.draws("micro_prob").mean(axis=0)
        for j in range(k):
            tau, sd = result.mean(f"tau_{j + 1}_s") * 1e9, result.sd(f"tau_{j + 1}_s") * 1e9
            axd.plot(x_ns, per_state[j], ".", ms=3, color=colours[j])
            axd.plot(
                x_ns,
                shape[j] * per_state[j].sum(),
                color=colours[j],
                lw=1.0,
                label=f"{labels[j]}: tau {tau:.3g} +- {sd:.2g} ns",
            )
        axd.set_yscale("log")
        axd.set_xlabel("delay (ns)")
        axd.set_ylabel("photons per bin")
        axd.legend(loc="upper right", fontsize="small")
    return fig
