"""Figures for emission states: coloured intensity traces and state-resolved panels.

* :func:`plot_state_trace`: the intensity trace with every bin coloured by
  its state, the levels drawn over it, and the intensity histogram beside
  it (stacked by state) with the thresholds or levels marked.
* :func:`plot_state_resolved`: the Figure-5 style panel of the paper:
  per-state decays (log scale) beside per-state g2 histograms.

Functions return :class:`matplotlib.figure.Figure` objects built without
pyplot (Agg canvas), so they work headless and leak no global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from qdio import PhotonStream

from .selection import Selection
from .states import StateTrajectory, binned_counts

if TYPE_CHECKING:
    from .states import StateResolved

__all__ = ["STATE_COLOURS", "plot_state_resolved", "plot_state_trace", "state_colour"]

#: Colours of the named states.
STATE_COLOURS = {
    "dark": "#3b4cc0",
    "grey": "#8c8c8c",
    "bright": "#d1495b",
    "single": "#2a9d8f",
}
_EXTRA = ["#edae49", "#66a182", "#8d5a97", "#00798c", "#a05195"]


def state_colour(label: str, index: int = 0) -> str:
    """Colour of a state label (greys beyond the first get distinct colours)."""
    if label in STATE_COLOURS:
        return STATE_COLOURS[label]
    return _EXTRA[index % len(_EXTRA)]


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_state_trace(
    stream: PhotonStream,
    trajectory: StateTrajectory,
    *,
    bin_width_s: float = 10e-3,
    selection: Selection | None = None,
    thresholds_hz: Sequence[float] | None = None,
    time_range_s: tuple[float, float] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (10.0, 3.2),
) -> Figure:
    """Intensity trace coloured by state, with the intensity histogram beside it.

    Parameters
    ----------
    stream : PhotonStream
    trajectory : StateTrajectory
        From any classifier.
    bin_width_s : float
        Bin width of the trace, in seconds.
    selection : Selection, optional
        Photons to count (use the one the trajectory was made from).
    thresholds_hz : sequence of float, optional
        Thresholds to mark on the histogram (default: the trajectory's
        ``info["thresholds_hz"]`` when there is one).
    time_range_s : (float, float), optional
        Part of the trace to show.
    title : str, optional
    figsize : (float, float)

    Returns
    -------
    matplotlib.figure.Figure
        Axes ``fig.axes[0]`` (trace, counts/s versus s) and ``fig.axes[1]``
        (histogram, sharing the intensity axis).
    """
    counts, edges, _ = binned_counts(stream, bin_width_s, selection, what="plot_state_trace")
    rate = counts / bin_width_s
    centres = 0.5 * (edges[1:] + edges[:-1])
    state = trajectory.state_at(centres)
    fig = _figure(figsize)
    gs = fig.add_gridspec(1, 2, width_ratios=[5, 1])
    ax = fig.add_subplot(gs[0])
    axh = fig.add_subplot(gs[1], sharey=ax)
    ax.plot(centres, rate, color="0.75", lw=0.5, zorder=1)
    for k, lab in enumerate(trajectory.labels):
        m = state == k
        if np.any(m):
            ax.scatter(
                centres[m],
                rate[m],
                s=2,
                color=state_colour(lab, k),
                label=lab,
                zorder=2,
                linewidths=0,
            )
    # levels: each interval's state intensity
    lvl = trajectory.level_intensity_hz[trajectory.state]
    xs = np.column_stack([trajectory.start_s, trajectory.stop_s]).ravel()
    ys = np.repeat(lvl, 2)
    ax.plot(xs, ys, color="k", lw=0.8, zorder=3, label="level")
    if time_range_s is not None:
        ax.set_xlim(*time_range_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"intensity (counts/s, {bin_width_s * 1e3:g} ms bins)")
    ax.legend(loc="upper right", fontsize="small", markerscale=4, ncols=len(trajectory.labels) + 1)
    if title:
        ax.set_title(title)
    top = max(float(rate.max()), 1.0 / bin_width_s)
    hbins = np.arange(
        0, top + 2 / bin_width_s, max(1, int(np.ceil(top * bin_width_s / 60))) / bin_width_s
    )
    stacks = [rate[state == k] for k in range(trajectory.n_states)]
    colours = [state_colour(lab, k) for k, lab in enumerate(trajectory.labels)]
    axh.hist(
        stacks,
        bins=hbins,
        orientation="horizontal",
        stacked=True,
        color=colours,
        histtype="stepfilled",
    )
    if thresholds_hz is None:
        thresholds_hz = trajectory.info.get("thresholds_hz", None)
    for th in np.atleast_1d(thresholds_hz if thresholds_hz is not None else []):
        axh.axhline(float(th), color="k", ls="--", lw=0.8)
        ax.axhline(float(th), color="k", ls="--", lw=0.5, alpha=0.5)
    for k, lev in enumerate(trajectory.level_intensity_hz):
        axh.axhline(float(lev), color=colours[k], lw=1.2)
    axh.set_xlabel("bins")
    axh.tick_params(labelleft=False)
    return fig


def plot_state_resolved(
    result: StateResolved,
    *,
    normalise_decays: bool = True,
    min_side_counts: int = 50,
    figsize: tuple[float, float] = (10.0, 3.8),
    title: str | None = None,
) -> Figure:
    """Figure-5 style panel: decays per state (log y) beside g2 per state.

    Parameters
    ----------
    result : StateResolved
        From :func:`qdinfer.state_resolved`.
    normalise_decays : bool
        Scale each decay to its maximum (shapes compare; the legend keeps the
        photon numbers and lifetimes).
    min_side_counts : int
        States whose side peaks hold fewer coincidences get no g2 curve
        (too noisy to show).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]``: decays versus delay (ns), the lifetime fits drawn
        over them, mean arrival times and fitted lifetimes in the legend;
        ``fig.axes[1]``: coincidences within visits versus lag (ns), each
        state's divided by its mean side-peak area per bin (side peaks
        average 1 over a period, the centre peak's area is g2(0)), stacked
        with an offset per state.
    """
    fig = _figure(figsize)
    ax_d, ax_g = fig.subplots(1, 2)
    offset = 0.0
    for m in result.states:
        c = state_colour(m.label, m.index)
        if m.decay is not None and m.decay.n_photons > 0:
            y = m.decay.counts.astype(float)
            scale = y.max() if normalise_decays and y.max() > 0 else 1.0
            lab = f"{m.label}: {m.n_photons} ph"
            if m.mean_arrival is not None:
                lab += f", <t> = {m.mean_arrival.tau_s * 1e9:.2f} ns"
            if m.lifetime is not None:
                lab += f", fit {m.lifetime.tau_s[0] * 1e9:.2f} ns"
            ax_d.step(
                m.decay.centers_s * 1e9,
                np.where(y > 0, y / scale, np.nan),
                where="mid",
                color=c,
                lw=0.8,
                label=lab,
            )
            if m.lifetime is not None:
                model = m.lifetime.model / scale
                ax_d.plot(
                    m.decay.centers_s * 1e9,
                    np.where(model > 0, model, np.nan),
                    color=c,
                    lw=1.2,
                    alpha=0.7,
                )
        if (
            m.g2_histogram is not None
            and m.g2 is not None
            and m.g2.side_counts.sum() >= min_side_counts
        ):
            h = m.g2_histogram
            per_bin = h.counts / m.g2.mean_side_counts * (m.g2.period_s / h.bin_width_s)
            ax_g.step(
                h.centers_s * 1e9,
                per_bin + offset,
                where="mid",
                color=c,
                lw=0.8,
                label=f"{m.label}: g2(0) = {m.g2.value:.3f} ± {m.g2.stderr:.3f}",
            )
            offset += 1.2 * float(np.max(per_bin)) if per_bin.size else 0.0
    ax_d.set_yscale("log")
    ax_d.set_xlabel("delay after sync (ns)")
    ax_d.set_ylabel("counts (normalised)" if normalise_decays else "counts")
    ax_d.legend(fontsize="small")
    ax_g.set_xlabel("lag (ns)")
    ax_g.set_ylabel("coincidences / mean side peak (offset per state)")
    if ax_g.has_data():
        ax_g.legend(fontsize="small")
    else:
        ax_g.text(
            0.5, 0.5, "no g2 (one channel or too few pairs)", ha="center", transform=ax_g.transAxes
        )
    if title:
        fig.suptitle(title)
    return fig
