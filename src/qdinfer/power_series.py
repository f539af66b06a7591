"""Power series: rate, lifetimes, g2(0) (gated and not) and spectral fraction versus power.

The paper follows each quantity from 0.01 to 4 uW and finds three regimes of
the photon rate (MODEL.md section 4): *usual* (rate grows about linearly with
power), *saturating* (it grows more slowly) and *unusual* (it falls while
g2(0) rises).  :func:`measure_power_point` measures one acquisition,
:func:`power_series` collects the points into a table and flags the regimes
(:func:`classify_power_response`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qdio import PhotonStream

from .decay import Irf, fit_decay
from .g2 import pulsed_g2_zero
from .intensity import count_rates
from .selection import Selection, gate
from .spectra import Spectrum, band_areas

__all__ = [
    "PowerPoint",
    "PowerSeries",
    "classify_power_response",
    "measure_power_point",
    "power_series",
]

_NAN = math.nan


@dataclass(frozen=True)
class PowerPoint:
    """What was measured at one excitation power (NaN: not measured, see ``notes``).

    Attributes
    ----------
    power_w : float
    rate_hz, rate_stderr_hz : float
        Detected photons per second (all selected channels).
    tau_s, tau_stderr_s : float
        Lifetime (mono-exponential fit, or the longest component of a
        multi-exponential one).
    g2_zero, g2_zero_stderr : float
        Pulsed g2(0), ungated.
    g2_zero_gated, g2_zero_gated_stderr : float
        Pulsed g2(0) with the microtime gate.
    red_fraction, red_fraction_stderr : float
        ``A_red / (A_red + A_blue)`` of the spectrum.
    notes : tuple of str
        Why a value is NaN (e.g. "g2: too few photons").
    """

    power_w: float
    rate_hz: float = _NAN
    rate_stderr_hz: float = _NAN
    tau_s: float = _NAN
    tau_stderr_s: float = _NAN
    g2_zero: float = _NAN
    g2_zero_stderr: float = _NAN
    g2_zero_gated: float = _NAN
    g2_zero_gated_stderr: float = _NAN
    red_fraction: float = _NAN
    red_fraction_stderr: float = _NAN
    notes: tuple[str, ...] = ()


def measure_power_point(
    stream: PhotonStream,
    power_w: float,
    *,
    channels: tuple[int, int] = (0, 1),
    gate_s: float | None = 2.5e-9,
    selection: Selection | None = None,
    n_exp: int = 1,
    irf: Irf | None = None,
    spectrum: Spectrum | None = None,
    split_m: float | None = None,
    side_peaks: str = "near",
) -> PowerPoint:
    """Rate, lifetime, g2(0) ungated and gated, and red fraction of one acquisition.

    Each measurement that cannot be made (too few photons, one channel only,
    no spectrum) is left NaN with the reason in ``notes``; nothing raises
    for lack of data.

    Parameters
    ----------
    stream : PhotonStream
        T3 photons of one power.
    power_w : float
        Excitation power (watts).
    channels : (int, int)
        HBT channels.
    gate_s : float or None
        Gate after the IRF peak for the gated g2(0) (None: skip).
    selection : Selection, optional
        Applied to everything (e.g. the bright state).
    n_exp : int
        Exponentials in the lifetime fit.
    irf : Irf, optional
        For the fit (default: estimated from the rising edge).
    spectrum, split_m : Spectrum and float, optional
        For the red fraction.
    side_peaks : str
        For :func:`qdinfer.pulsed_g2_zero`.
    """
    notes: list[str] = []
    vals: dict[str, float] = {}
    from .selection import channels as channel_sel

    both = channel_sel(channels)
    sel = both if selection is None else selection & both
    try:
        rates = count_rates(stream, selection=sel)
        n = sum(rates.counts.values())
        vals["rate_hz"] = n / rates.duration_s
        vals["rate_stderr_hz"] = math.sqrt(n) / rates.duration_s
    except ValueError as exc:
        notes.append(f"rate: {exc}")
    if stream.is_t3:
        try:
            fit = fit_decay(stream, selection=sel, n_exp=n_exp, irf=irf)
            k = int(np.argmax(fit.tau_s))
            vals["tau_s"] = float(fit.tau_s[k])
            vals["tau_stderr_s"] = float(fit.tau_stderr_s[k])
        except ValueError as exc:
            notes.append(f"lifetime: {exc}")
    for key, extra in (("g2_zero", None), ("g2_zero_gated", gate_s)):
        if key == "g2_zero_gated" and gate_s is None:
            continue
        try:
            s = selection
            if extra is not None:
                g = gate(min_s=extra, relative_to="irf_peak")
                s = g if s is None else s & g
            res = pulsed_g2_zero(stream, channels=channels, selection=s, side_peaks=side_peaks)
            vals[key] = res.value
            vals[key + "_stderr"] = res.stderr
        except ValueError as exc:
            notes.append(f"{key}: {exc}")
    if spectrum is not None:
        if split_m is None:
            raise ValueError(
                "measure_power_point: a spectrum needs split_m= (the split wavelength)"
            )
        ba = band_areas(spectrum, split_m)
        vals["red_fraction"] = ba.red_fraction
        vals["red_fraction_stderr"] = ba.red_fraction_stderr
    return PowerPoint(float(power_w), notes=tuple(notes), **vals)


def classify_power_response(
    power_w: Sequence[float],
    rate_hz: Sequence[float],
    rate_stderr_hz: Sequence[float] | None = None,
    *,
    linear_slope: float = 0.7,
    n_sigma: float = 2.0,
) -> np.ndarray:
    """Label each power "usual", "saturating" or "unusual" from the rate's growth.

    For each step between neighbouring powers (sorted), the log-log slope
    ``d ln(rate) / d ln(power)`` decides: a rate that falls by more than
    ``n_sigma`` standard errors is "unusual"; a slope of at least
    ``linear_slope`` is "usual" (about linear); anything in between is
    "saturating".  A point takes the label of the step that ends at it; the
    lowest power takes the label of the first step.

    Returns
    -------
    ndarray of str, in the order of ``power_w``.

    Examples
    --------
    >>> classify_power_response([1, 2, 4, 8, 16], [10, 20, 38, 45, 30]).tolist()
    ['usual', 'usual', 'usual', 'saturating', 'unusual']
    """
    p = np.asarray(power_w, np.float64)
    r = np.asarray(rate_hz, np.float64)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError("power_w and rate_hz must be 1-D of equal length")
    err = np.zeros_like(r) if rate_stderr_hz is None else np.asarray(rate_stderr_hz, np.float64)
    labels = np.full(p.shape, "", dtype=object)
    if len(p) == 0:
        return labels.astype(str)
    if np.any(p <= 0) or np.any(~np.isfinite(p)):
        raise ValueError("power_w must be finite and > 0")
    order = np.argsort(p)
    ps, rs, es = p[order], r[order], err[order]
    step = []
    for i in range(1, len(ps)):
        if not (np.isfinite(rs[i]) and np.isfinite(rs[i - 1])) or rs[i] <= 0 or rs[i - 1] <= 0:
            step.append("")
            continue
        sigma = math.hypot(es[i], es[i - 1])
        if rs[i] < rs[i - 1] - n_sigma * sigma:
            step.append("unusual")
            continue
        slope = math.log(rs[i] / rs[i - 1]) / math.log(ps[i] / ps[i - 1])
        step.append("usual" if slope >= linear_slope else "saturating")
    out = [step[0] if step else "usual", *step]
    labels[order] = out
    return labels.astype(str)


@dataclass(frozen=True, eq=False)
class PowerSeries:
    """A power series as a table of columns (one row per power, ascending).

    Attributes
    ----------
    power_w, rate_hz, rate_stderr_hz, tau_s, tau_stderr_s, g2_zero, g2_zero_stderr,
    g2_zero_gated, g2_zero_gated_stderr, red_fraction, red_fraction_stderr : ndarray
        Columns of :class:`PowerPoint`.
    region : ndarray of str
        "usual", "saturating" or "unusual" (:func:`classify_power_response`).
    notes : tuple of tuple of str
    """

    power_w: np.ndarray
    rate_hz: np.ndarray
    rate_stderr_hz: np.ndarray
    tau_s: np.ndarray
    tau_stderr_s: np.ndarray
    g2_zero: np.ndarray
    g2_zero_stderr: np.ndarray
    g2_zero_gated: np.ndarray
    g2_zero_gated_stderr: np.ndarray
    red_fraction: np.ndarray
    red_fraction_stderr: np.ndarray
    region: np.ndarray
    notes: tuple[tuple[str, ...], ...] = field(default=())

    def __len__(self) -> int:
        return int(self.power_w.shape[0])

    def regions(self) -> list[tuple[str, float, float]]:
        """Contiguous runs of one label: (label, first power, last power)."""
        out: list[tuple[str, float, float]] = []
        for p, lab in zip(self.power_w, self.region, strict=True):
            if out and out[-1][0] == lab:
                out[-1] = (lab, out[-1][1], float(p))
            else:
                out.append((str(lab), float(p), float(p)))
        return out

    def as_dict(self) -> dict[str, list]:
        """Columns as plain lists (for JSON)."""
        names = [
            "power_w",
            "rate_hz",
            "rate_stderr_hz",
            "tau_s",
            "tau_stderr_s",
            "g2_zero",
            "g2_zero_stderr",
            "g2_zero_gated",
            "g2_zero_gated_stderr",
            "red_fraction",
            "red_fraction_stderr",
            "region",
        ]
        return {n: getattr(self, n).tolist() for n in names}


def power_series(points: Sequence[PowerPoint], **classify_kwargs) -> PowerSeries:
    """Collect :class:`PowerPoint` rows into a :class:`PowerSeries` with regimes flagged.

    >>> pts = [PowerPoint(p, rate_hz=r) for p, r in [(1e-7, 1e4), (2e-7, 2e4), (4e-7, 2.2e4)]]
    >>> power_series(pts).region.tolist()
    ['usual', 'usual', 'saturating']
    """
    if not points:
        raise ValueError("power_series needs at least one PowerPoint")
    pts = sorted(points, key=lambda q: q.power_w)

    def col(name: str) -> np.ndarray:
        return np.array([getattr(q, name) for q in pts], np.float64)

    power = col("power_w")
    region = classify_power_response(
        power, col("rate_hz"), np.nan_to_num(col("rate_stderr_hz")), **classify_kwargs
    )
    return PowerSeries(
        power_w=power,
        rate_hz=col("rate_hz"),
        rate_stderr_hz=col("rate_stderr_hz"),
        tau_s=col("tau_s"),
        tau_stderr_s=col("tau_stderr_s"),
        g2_zero=col("g2_zero"),
        g2_zero_stderr=col("g2_zero_stderr"),
        g2_zero_gated=col("g2_zero_gated"),
        g2_zero_gated_stderr=col("g2_zero_gated_stderr"),
        red_fraction=col("red_fraction"),
        red_fraction_stderr=col("red_fraction_stderr"),
        region=region,
        notes=tuple(q.notes for q in pts),
    )
