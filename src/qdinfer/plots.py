"""Figures: one matplotlib function per result, returning a Figure.

The functions build :class:`matplotlib.figure.Figure` objects directly (no
pyplot, no global state, no window): save them with ``fig.savefig(path)``.
Each takes an optional ``ax`` to draw into an existing figure (for example
the state-coloured trace of :mod:`qdinfer.states` over :func:`plot_trace`).

* :func:`plot_decay`: decay on a log scale with the fit, the IRF and the
  residuals (the paper's Fig. 1c / 5b style);
* :func:`plot_g2`: coincidences versus lag with the centre and side-peak
  windows of the pulsed g2(0) shaded (Fig. 2);
* :func:`plot_g2_vs_gate`: pulsed g2(0) versus gate delay (Fig. 4);
* :func:`plot_trace`: intensity trace with its histogram on the side (Fig. 1b);
* :func:`plot_spectrum`: spectrum with the blue and red bands (Fig. 5a);
* :func:`plot_power_series`: rate, lifetime, g2(0) and red fraction versus
  power with the usual / saturating / unusual regions shaded (Fig. 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .decay import DecayFit, DecayHistogram, Irf
from .g2 import G2Histogram, PulsedG2
from .intensity import IntensityTrace, intensity_histogram
from .power_series import PowerSeries
from .spectra import BandAreas, Spectrum

__all__ = [
    "plot_decay",
    "plot_g2",
    "plot_g2_vs_gate",
    "plot_power_series",
    "plot_spectrum",
    "plot_trace",
]

_REGION_COLOURS = {"usual": "#d9f0d3", "saturating": "#fee8c8", "unusual": "#f4cccc"}


def _time_unit(span_s: float) -> tuple[float, str]:
    """(scale, label) to show times of about ``span_s`` in ps, ns, us, ms or s."""
    for scale, name in ((1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s")):
        if abs(span_s) < 2000 * scale:
            return scale, name
    return 1.0, "s"


def _figure(ax: Axes | None, **kwargs) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(**kwargs)
    return fig, fig.add_subplot()


def plot_decay(
    decay: DecayHistogram | DecayFit,
    *,
    fit: DecayFit | None = None,
    irf: Irf | None = None,
    label: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Decay histogram on a log scale, with the fit and its residuals when given.

    ``decay`` may be a :class:`DecayFit`, whose decay and IRF are then used.
    """
    if isinstance(decay, DecayFit):
        fit, decay = decay, decay.decay
    irf = irf if irf is not None else (fit.irf if fit is not None else None)
    scale, unit = _time_unit(decay.period_s)
    x = decay.centers_s / scale
    if ax is None:
        fig = Figure(figsize=(6.4, 4.8), layout="constrained")
        if fit is not None:
            ax, ax_res = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        else:
            ax, ax_res = fig.add_subplot(), None
    else:
        fig, ax_res = ax.figure, None
    counts = decay.counts
    ax.step(
        x,
        np.where(counts > 0, counts, np.nan),
        where="mid",
        color="0.35",
        lw=0.8,
        label=label or f"data ({decay.n_photons:,} photons)",
    )
    floor = 0.5 * (counts[counts > 0].min() if np.any(counts > 0) else 1)
    if irf is not None:
        w = irf.weights_on(decay.edges_s)
        w = w / w.max() * max(counts.max(), 1)
        ax.plot(
            x,
            np.where(w >= floor, w, np.nan),
            color="tab:green",
            lw=0.8,
            alpha=0.7,
            label="IRF (scaled)",
        )
    if fit is not None:
        m = fit.fit_mask
        taus = ", ".join(
            f"{t / scale:.3g}±{e / scale:.2g}"
            for t, e in zip(fit.tau_s, fit.tau_stderr_s, strict=True)
        )
        ax.plot(
            x[m],
            fit.model[m],
            color="tab:red",
            lw=1.2,
            label=f"fit: τ = {taus} {unit}, χ²/dof = {fit.reduced_chi2:.2f}",
        )
        if ax_res is not None:
            ax_res.plot(x[m], fit.residuals[m], color="tab:red", lw=0.6)
            ax_res.axhline(0, color="k", lw=0.6)
            ax_res.set_ylabel("residual (σ)")
            ax_res.set_xlabel(f"delay after sync ({unit})")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_ylabel(f"photons / {decay.bin_width_s / 1e-12:.4g} ps bin")
    if ax_res is None:
        ax.set_xlabel(f"delay after sync ({unit})")
    ax.set_xlim(0, decay.period_s / scale)
    if decay.channels:
        ax.set_title(f"decay, channel(s) {', '.join(map(str, decay.channels))}")
    ax.legend(fontsize="small", loc="upper right")
    return fig


def plot_g2(
    g2: G2Histogram,
    *,
    pulsed: PulsedG2 | None = None,
    normalized: bool = True,
    ax: Axes | None = None,
    label: str | None = None,
) -> Figure:
    """Coincidences (or normalised g2) versus lag; the pulsed g2(0) windows shaded.

    With ``pulsed``, the centre-peak window is shaded red and the side-peak
    windows used for the normalisation blue (those inside the plotted lag
    range), and the value is written in the legend.  For "pulse" windows
    (pairs assigned by laser pulse) the shading marks ``[(k - 1/2) P,
    (k + 1/2) P)`` around each peak's position ``k P + lag_offset_s``.
    """
    fig, ax = _figure(ax, figsize=(6.4, 4.0), layout="constrained")
    scale, unit = _time_unit(max(abs(g2.edges_s[0]), abs(g2.edges_s[-1])))
    x = g2.centers_s / scale
    if normalized and np.any(g2.defined):
        y = g2.g2
        ylabel = "g²(τ) (1 = uncorrelated)"
    else:
        y = g2.counts
        ylabel = f"coincidences / {g2.bin_width_s / 1e-9:.4g} ns bin"
    if pulsed is not None:
        p = pulsed.period_s / scale
        off = pulsed.lag_offset_s / scale  # peaks of "pulse" windows sit at k P + offset
        lo, hi = g2.edges_s[0] / scale, g2.edges_s[-1] / scale
        ax.axvspan(off - p / 2, off + p / 2, color="tab:red", alpha=0.12, lw=0)
        for k in pulsed.side_peaks:
            a, b = (k - 0.5) * p + off, (k + 0.5) * p + off
            if b > lo and a < hi:  # alternate the shade so neighbouring windows show
                ax.axvspan(
                    max(a, lo), min(b, hi), color="tab:blue", alpha=0.07 if k % 2 else 0.14, lw=0
                )
    ax.step(x, y, where="mid", color="0.2", lw=0.8, label=label or f"channels {g2.channels}")
    if pulsed is not None:
        corr = " (bg-corrected)" if pulsed.signal_fraction is not None else ""
        ax.plot(
            [],
            [],
            " ",
            label=f"g²(0) = {pulsed.value:.3f} ± {pulsed.stderr:.3f}{corr}, "
            f"{pulsed.side} side peaks",
        )
    if normalized and np.any(g2.defined):
        ax.axhline(1.0, color="0.5", lw=0.6, ls="--")
    ax.set_xlabel(f"lag τ = t(ch {g2.channels[1]}) − t(ch {g2.channels[0]}) ({unit})")
    ax.set_ylabel(ylabel)
    ax.set_xlim(g2.edges_s[0] / scale, g2.edges_s[-1] / scale)
    ax.legend(fontsize="small", loc="upper right")
    return fig


def plot_g2_vs_gate(
    gates_s: Sequence[float], results: Sequence[PulsedG2], *, ax: Axes | None = None
) -> Figure:
    """Pulsed g2(0) with error bars versus the gate delay (lifetime-gated g2)."""
    fig, ax = _figure(ax, figsize=(5.0, 3.6), layout="constrained")
    g = np.asarray(gates_s) / 1e-9
    ax.errorbar(
        g,
        [r.value for r in results],
        yerr=[r.stderr for r in results],
        fmt="o-",
        color="tab:purple",
        ms=4,
        capsize=2,
    )
    ax.set_xlabel("gate delay after IRF peak (ns)")
    ax.set_ylabel("g²(0)")
    ax.set_ylim(bottom=0)
    return fig


def plot_trace(
    trace: IntensityTrace,
    *,
    histogram: bool = True,
    ax: Axes | None = None,
    color: str = "0.25",
) -> Figure:
    """Intensity trace (counts per bin) with the histogram of counts on the right."""
    if ax is None:
        fig = Figure(figsize=(8.0, 3.2), layout="constrained")
        if histogram:
            ax, ax_h = fig.subplots(1, 2, sharey=True, width_ratios=[5, 1])
        else:
            ax, ax_h = fig.add_subplot(), None
    else:
        fig, ax_h = ax.figure, None
    if len(trace):
        ax.plot(trace.centers_s, trace.counts, color=color, lw=0.5, drawstyle="steps-mid")
        if ax_h is not None:
            h = intensity_histogram(trace)
            ax_h.barh(h.centers, h.occurrences, height=np.diff(h.edges), color=color)
            ax_h.set_xlabel("bins")
        ax.set_xlim(trace.edges_s[0], trace.edges_s[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"photons / {trace.bin_width_s / 1e-3:.3g} ms")
    ax.set_ylim(bottom=0)
    return fig


def plot_spectrum(
    spectrum: Spectrum,
    *,
    split_m: float | None = None,
    areas: BandAreas | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Spectrum versus wavelength (nm), the blue and red bands shaded at ``split_m``."""
    fig, ax = _figure(ax, figsize=(6.0, 3.6), layout="constrained")
    wl = spectrum.wavelength_m / 1e-9
    y = spectrum.intensity
    ax.plot(wl, y, color="0.2", lw=0.8)
    if split_m is not None:
        s = split_m / 1e-9
        ax.fill_between(wl, y, where=wl <= s, color="tab:blue", alpha=0.25, lw=0)
        ax.fill_between(wl, y, where=wl >= s, color="tab:red", alpha=0.25, lw=0)
        ax.axvline(s, color="k", lw=0.6, ls="--")
        if areas is not None:
            ax.set_title(f"A_red / (A_red + A_blue) = {areas.red_fraction:.3f}")
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("intensity")
    return fig


def plot_power_series(series: PowerSeries) -> Figure:
    """Four panels versus power (µW, log scale): rate, lifetime, g2(0), red fraction.

    Regions are shaded: usual green, saturating orange, unusual red.
    """
    fig = Figure(figsize=(9.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    p = series.power_w / 1e-6
    panels = [
        ("detected rate (kcps)", series.rate_hz / 1e3, series.rate_stderr_hz / 1e3, None),
        ("lifetime (ns)", series.tau_s / 1e-9, series.tau_stderr_s / 1e-9, None),
        ("g²(0)", series.g2_zero, series.g2_zero_stderr, "ungated"),
        ("A_red / (A_red + A_blue)", series.red_fraction, series.red_fraction_stderr, None),
    ]
    for ax, (ylabel, y, err, lab) in zip(axes, panels, strict=True):
        for region, lo, hi in series.regions():
            if region in _REGION_COLOURS and len(p) > 1:
                ax.axvspan(lo / 1e-6 / 1.15, hi / 1e-6 * 1.15, color=_REGION_COLOURS[region], lw=0)
        if np.any(np.isfinite(y)):
            ax.errorbar(
                p,
                y,
                yerr=np.nan_to_num(err),
                fmt="o-",
                ms=4,
                capsize=2,
                color="tab:blue",
                label=lab,
            )
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
    if np.any(np.isfinite(series.g2_zero_gated)):
        axes[2].errorbar(
            p,
            series.g2_zero_gated,
            yerr=np.nan_to_num(series.g2_zero_gated_stderr),
            fmt="s-",
            ms=4,
            capsize=2,
            color="tab:purple",
            label="gated",
        )
        axes[2].legend(fontsize="small")
    axes[0].set_yscale("log")
    for ax in axes[2:]:
        ax.set_xlabel("excitation power (µW)")
    handles = [axes[0].fill_between([], [], color=c, label=r) for r, c in _REGION_COLOURS.items()]
    fig.legend(handles=handles, loc="outside upper center", ncols=3, fontsize="small")
    return fig
