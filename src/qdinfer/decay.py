"""Decays: microtime histograms, IRFs, maximum-likelihood lifetime fits, mean arrival time.

* :func:`decay_histogram`: photons per microtime bin over one laser period,
  at any whole multiple of the TCSPC bin width.
* IRFs (:class:`Irf`): from a reference measurement (:func:`irf_from_file`,
  any file :func:`qdio.read` understands, or :func:`irf_from_histogram`), a
  Gaussian (:func:`gaussian_irf`), or estimated from the rising edge of the
  decay itself (:func:`estimate_irf`).
* :func:`fit_decay`: 1 to 3 exponentials convolved with the IRF, a flat
  background and the tail left over from earlier pulses, by minimising the
  Poisson deviance (scipy L-BFGS-B); uncertainties from the Fisher information.
* :func:`mean_arrival_time`: first moment of the delay after the IRF.
* :func:`estimate_background`: the flat level before the rising edge.

The decay model (MODEL.md section 4).  With ``F(t)`` the density of a
component's emission delay summed over all earlier pulses,
``F(t) = exp(-t/tau) / (tau (1 - exp(-P/tau)))`` for ``0 <= t < P`` and
periodic in P, the expected counts in bin i are::

    mu_i = sum_k a_k sum_j w_j g_k(i - j - s) + b,
    g(d) = integral_{-1}^{1} (1 - |v|) F((d + v) dt) dv     (bin units)

with ``w`` the IRF weights on the decay's bins (sum 1), ``s`` the IRF shift
in bins, ``b`` the background per bin and ``a_k`` the photons of component k
per period.  The triangle kernel is the exact overlap of an IRF photon spread
uniformly over its bin with the detection bin, so no half-bin correction is
needed; it is evaluated in closed form from the second antiderivative of F,
which also handles sync periods that are not a whole number of bins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as _fft
from scipy import optimize

from qdio import PhotonStream

from ._common import check_positive
from .selection import Selection, select

__all__ = [
    "DecayFit",
    "DecayHistogram",
    "Irf",
    "MeanArrivalTime",
    "decay_histogram",
    "estimate_background",
    "estimate_irf",
    "fit_decay",
    "gaussian_irf",
    "irf_from_file",
    "irf_from_histogram",
    "mean_arrival_time",
]


# -- histograms -----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DecayHistogram:
    """Photons per microtime bin (the fluorescence decay).

    Attributes
    ----------
    counts : ndarray of int64, shape (n_bins,)
        Photons with delay in ``[edges_s[k], edges_s[k+1])`` after the sync.
    edges_s : ndarray of float64, shape (n_bins + 1,)
        Bin edges in seconds; they cover the sync period (the last bin may
        reach past it when the period is not a whole number of bins).
    period_s : float
        Sync (laser) period.
    channels : tuple of int
        Channels whose photons were counted.
    n_outside : int
        Photons with a microtime at or beyond the sync period (not counted).
    """

    counts: np.ndarray
    edges_s: np.ndarray
    period_s: float
    channels: tuple[int, ...] = ()
    n_outside: int = 0

    @property
    def bin_width_s(self) -> float:
        """Bin width, in seconds."""
        return float(self.edges_s[1] - self.edges_s[0])

    @property
    def centers_s(self) -> np.ndarray:
        """Bin centres, in seconds."""
        return 0.5 * (self.edges_s[1:] + self.edges_s[:-1])

    @property
    def n_photons(self) -> int:
        """Photons in the histogram."""
        return int(self.counts.sum())

    @property
    def n_full_bins(self) -> int:
        """Bins lying wholly inside the sync period (those a fit uses)."""
        w = self.bin_width_s
        return int(min(len(self.counts), math.floor(self.period_s / w + 1e-6)))


def _n_period_ticks(stream: PhotonStream) -> int:
    """Microtime bins that fit in the sync period (at most ``n_microtime_bins``)."""
    ratio = stream.macrotime_resolution_s / stream.microtime_resolution_s
    return int(max(1, min(stream.n_microtime_bins, math.ceil(ratio - 1e-6))))


def _tick_histograms(stream: PhotonStream) -> np.ndarray:
    """Photons per microtime bin over the whole hardware range (int64)."""
    if not stream.is_t3:
        raise ValueError("a decay histogram needs a T3 stream (with microtimes); this one is T2")
    return np.bincount(stream.microtime, minlength=stream.n_microtime_bins).astype(np.int64)


def _bin_ticks(bin_width_s: float | None, tick_s: float) -> int:
    if bin_width_s is None:
        return 1
    bin_width_s = check_positive("bin_width_s", bin_width_s)
    k = round(bin_width_s / tick_s)
    if k < 1 or abs(bin_width_s / tick_s - k) > 1e-6 * max(k, 1):
        raise ValueError(
            f"bin_width_s={bin_width_s!r} must be a whole multiple of the microtime bin "
            f"{tick_s!r} s (nearest: {max(k, 1) * tick_s!r})"
        )
    return k


def decay_from_ticks(
    ticks: np.ndarray,
    *,
    tick_s: float,
    period_s: float,
    bin_width_s: float | None = None,
    channels: Sequence[int] = (),
) -> DecayHistogram:
    """A :class:`DecayHistogram` from photons per microtime bin (rebinned to ``bin_width_s``)."""
    k = _bin_ticks(bin_width_s, tick_s)
    n_ticks = int(max(1, min(len(ticks), math.ceil(period_s / tick_s - 1e-6))))
    n_outside = int(ticks[n_ticks:].sum())
    n_bins = -(-n_ticks // k)
    padded = np.zeros(n_bins * k, np.int64)
    padded[:n_ticks] = ticks[:n_ticks]
    counts = padded.reshape(n_bins, k).sum(axis=1)
    edges = np.arange(n_bins + 1) * (k * tick_s)
    return DecayHistogram(
        counts, edges, float(period_s), tuple(int(c) for c in channels), n_outside
    )


def decay_histogram(
    stream: PhotonStream,
    *,
    selection: Selection | None = None,
    bin_width_s: float | None = None,
) -> DecayHistogram:
    """Histogram of the microtimes (delay after the sync) of the selected photons.

    Parameters
    ----------
    stream : PhotonStream
        T3 photons.
    selection : Selection, optional
        E.g. ``qdinfer.channels(1)`` for one detector.  Channels are summed.
    bin_width_s : float, optional
        A whole multiple of the microtime bin (default: the microtime bin).

    Returns
    -------
    DecayHistogram

    Examples
    --------
    >>> import numpy as np, qdio
    >>> s = qdio.PhotonStream(np.zeros(4, np.uint8), np.arange(4), np.array([0, 1, 2, 5]),
    ...                       8e-9, 1e-9, 16)
    >>> decay_histogram(s, bin_width_s=2e-9).counts.tolist()
    [2, 1, 1, 0]
    """
    sel = select(stream, selection)
    ticks = _tick_histograms(sel)
    return decay_from_ticks(
        ticks,
        tick_s=stream.microtime_resolution_s,
        period_s=stream.laser_period_s,
        bin_width_s=bin_width_s,
        channels=sel.channels.tolist(),
    )


# -- background and IRF ---------------------------------------------------


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return y.astype(np.float64)
    kernel = np.ones(width) / width
    # circular smoothing: the decay is periodic
    pad = np.concatenate([y[-width:], y, y[:width]]).astype(np.float64)
    return np.convolve(pad, kernel, mode="same")[width:-width]


def _background_level(counts: np.ndarray) -> float:
    """Mean counts per bin in the flat stretch before the rising edge (circular)."""
    return _background_window(counts)[0]


def _background_window(counts: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean counts per bin, bin indices) of the flat stretch before the rising edge."""
    n = len(counts)
    if n < 8 or counts.sum() == 0:
        return 0.0, np.arange(0)
    sm = _smooth(counts, max(3, n // 200))
    p = int(np.argmax(sm))
    floor = float(np.percentile(sm, 10))
    thresh = floor + 0.1 * (sm[p] - floor)
    r = 0
    while r < n // 2 and sm[(p - r) % n] > thresh:
        r += 1
    margin = max(3, 2 * r)
    length = max(10, n // 5)
    end = p - r - margin
    idx = np.arange(end - length, end) % n
    return float(counts[idx].mean()), idx


def estimate_background(decay: DecayHistogram) -> float:
    """Background counts per bin: the mean level before the decay's rising edge.

    The window is a fifth of the period ending well before the rising edge
    (wrapping around the period).  When the lifetime is not short compared
    with the period, this level also holds the tail of earlier pulses, so it
    overestimates the background; :func:`fit_decay` separates the two.

    >>> import numpy as np
    >>> counts = np.full(100, 4); counts[50:60] = [90, 80, 70, 60, 50, 40, 30, 20, 10, 5]
    >>> estimate_background(DecayHistogram(counts, np.arange(101) * 1e-9, 100e-9))
    4.0
    """
    n = decay.n_full_bins
    return _background_level(decay.counts[:n])


def background_per_tick(ticks: np.ndarray, period_s: float, tick_s: float) -> np.ndarray:
    """Background per microtime bin (flat inside the period, 0 beyond it)."""
    n = int(max(1, min(len(ticks), math.floor(period_s / tick_s + 1e-6))))
    # estimate on a coarser grid (~1000 bins) for robustness
    k = max(1, n // 1000)
    m = n // k
    coarse = ticks[: m * k].reshape(m, k).sum(axis=1)
    level = _background_level(coarse) / k
    out = np.zeros(len(ticks))
    out[:n] = level
    return out


@dataclass(frozen=True, eq=False)
class Irf:
    """Instrument response function: a histogram of delays (any bin width).

    Attributes
    ----------
    counts : ndarray of float64, shape (m,)
        Non-negative weights per bin (not necessarily normalised).
    edges_s : ndarray of float64, shape (m + 1,)
        Bin edges in seconds, on the same clock as the decay's microtime.
    source : str
        Where it came from ("file ...", "gaussian", "rising edge").
    """

    counts: np.ndarray
    edges_s: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, np.float64)
        edges = np.asarray(self.edges_s, np.float64)
        if counts.ndim != 1 or edges.shape != (counts.shape[0] + 1,):
            raise ValueError(
                f"Irf needs counts of shape (m,) and edges_s of shape (m + 1,), got "
                f"{counts.shape} and {edges.shape}"
            )
        if np.any(~np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
            raise ValueError("Irf counts must be finite, non-negative and not all zero")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "edges_s", edges)

    @property
    def centers_s(self) -> np.ndarray:
        return 0.5 * (self.edges_s[1:] + self.edges_s[:-1])

    @property
    def mean_s(self) -> float:
        """Mean delay of the IRF, in seconds."""
        return float(np.sum(self.counts * self.centers_s) / self.counts.sum())

    @property
    def peak_s(self) -> float:
        """Centre of the IRF's highest bin, in seconds."""
        return float(self.centers_s[int(np.argmax(self.counts))])

    @property
    def fwhm_s(self) -> float:
        """Full width at half maximum (linear interpolation), in seconds."""
        c, x = self.counts, self.centers_s
        p = int(np.argmax(c))
        half = c[p] / 2
        lo = p
        while lo > 0 and c[lo - 1] > half:
            lo -= 1
        hi = p
        while hi < len(c) - 1 and c[hi + 1] > half:
            hi += 1
        left = x[lo] if lo == 0 else np.interp(half, [c[lo - 1], c[lo]], [x[lo - 1], x[lo]])
        right = (
            x[hi] if hi == len(c) - 1 else np.interp(half, [c[hi + 1], c[hi]], [x[hi + 1], x[hi]])
        )
        return float(right - left)

    def weights_on(self, edges_s: np.ndarray) -> np.ndarray:
        """IRF weights on other bins (cumulative interpolation), normalised to sum 1."""
        cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
        at = np.interp(edges_s, self.edges_s, cdf, left=0.0, right=cdf[-1])
        w = np.maximum(np.diff(at), 0.0)
        total = w.sum()
        if total <= 0:
            raise ValueError(
                f"the IRF ({self.edges_s[0]:.4g}..{self.edges_s[-1]:.4g} s) does not overlap "
                f"the decay's bins ({edges_s[0]:.4g}..{edges_s[-1]:.4g} s)"
            )
        return w / total


def irf_from_histogram(
    decay: DecayHistogram, *, subtract_background: bool = True, source: str = "histogram"
) -> Irf:
    """An :class:`Irf` from a measured decay histogram of scattered laser light.

    With ``subtract_background`` the flat level is removed and everything
    outside the peak region (where the smoothed counts stay within 3 sigma of
    that level, beyond a margin) is set to zero, so that background noise far
    from the peak does not shift the IRF's mean.
    """
    n = decay.n_full_bins
    counts = decay.counts[:n].astype(np.float64)
    if subtract_background:
        level = _background_level(decay.counts[:n])
        width = max(3, n // 500)
        sm = _smooth(counts, width) - level
        noise = 3 * math.sqrt(max(level, 1.0) / width)
        above = np.flatnonzero(sm > noise)
        keep = np.zeros(n, bool)
        if above.size:
            p = int(np.argmax(sm))
            # the contiguous run of bins above the noise around the peak, plus a margin
            lo = p
            while lo > 0 and sm[lo - 1] > noise:
                lo -= 1
            hi = p
            while hi < n - 1 and sm[hi + 1] > noise:
                hi += 1
            margin = max(2 * width, (hi - lo) // 4)
            keep[max(0, lo - margin) : min(n, hi + margin + 1)] = True
        counts = np.where(keep, np.maximum(counts - level, 0.0), 0.0)
    if counts.sum() <= 0:
        raise ValueError(f"IRF from {source}: no counts above the background")
    return Irf(counts, decay.edges_s[: n + 1], source)


def irf_from_file(
    path: str | os.PathLike,
    *,
    selection: Selection | None = None,
    subtract_background: bool = True,
    max_records: int | None = None,
) -> Irf:
    """An :class:`Irf` from a reference measurement (any T3 file qdio reads).

    The file is read in chunks; ``selection`` picks the channel (e.g.
    ``qdinfer.channels(1)``); all its photons are summed otherwise.
    """
    import qdio

    kwargs = {} if max_records is None else {"max_records": max_records}
    ticks = None
    first = None
    for chunk in qdio.iter_chunks(path, **kwargs):
        if not chunk.is_t3:
            raise ValueError(f"IRF file {path}: needs T3 data (microtimes), got T2")
        sel = select(chunk, selection)
        h = _tick_histograms(sel)
        ticks = h if ticks is None else ticks + h
        first = chunk if first is None else first
    if ticks is None or ticks.sum() == 0:
        raise ValueError(f"IRF file {path}: no photons (after the selection)")
    decay = decay_from_ticks(
        ticks, tick_s=first.microtime_resolution_s, period_s=first.laser_period_s
    )
    return irf_from_histogram(
        decay, subtract_background=subtract_background, source=f"file {os.fspath(path)}"
    )


def gaussian_irf(center_s: float, fwhm_s: float, edges_s: np.ndarray) -> Irf:
    """A Gaussian IRF integrated over the given bins."""
    from scipy.special import ndtr

    fwhm_s = check_positive("fwhm_s", fwhm_s)
    sigma = fwhm_s / (2 * math.sqrt(2 * math.log(2)))
    cdf = ndtr((np.asarray(edges_s, np.float64) - center_s) / sigma)
    counts = np.diff(cdf)
    if counts.sum() <= 0:
        raise ValueError(f"gaussian_irf: center_s={center_s!r} lies outside the bins")
    return Irf(counts, np.asarray(edges_s, np.float64), "gaussian")


def _rising_edge(counts: np.ndarray, bg: float) -> tuple[float, float, float, int]:
    """(t10, t50, t90) in bins (interpolated) on the rising edge, and the peak bin."""
    n = len(counts)
    sm = _smooth(counts.astype(np.float64) - bg, 3)
    p = int(np.argmax(sm))
    h = sm[p]
    out = []
    for frac in (0.1, 0.5, 0.9):
        level = frac * h
        i = p
        while i > p - n // 2 and sm[(i - 1) % n] > level:
            i -= 1
        lo, hi = sm[(i - 1) % n], sm[i % n]
        x = (i - 1) + (level - lo) / (hi - lo) if hi > lo else float(i)
        out.append(x + 0.5)  # bin centres
    return out[0], out[1], out[2], p


def estimate_irf(decay: DecayHistogram, *, min_fwhm_s: float | None = None) -> Irf:
    """A Gaussian IRF estimated from the rising edge of a decay.

    For lifetimes much longer than the IRF the rising edge is the IRF's
    cumulative distribution: its 50 % point is the IRF centre and the 10-90 %
    rise time is 2.563 sigma.  The width is at least ``min_fwhm_s`` (default
    one bin).  A fit with ``fit_shift=True`` corrects the centre.
    """
    n = decay.n_full_bins
    counts = decay.counts[:n]
    if counts.sum() < 20:
        raise ValueError(
            f"estimate_irf: {int(counts.sum())} photons are too few to see a rising edge"
        )
    bg = _background_level(counts)
    t10, t50, t90, _ = _rising_edge(counts, bg)
    w = decay.bin_width_s
    sigma = max((t90 - t10) / 2.563, 0.0) * w
    min_fwhm = w if min_fwhm_s is None else min_fwhm_s
    fwhm = max(sigma * 2 * math.sqrt(2 * math.log(2)), min_fwhm)
    irf = gaussian_irf(t50 * w, fwhm, decay.edges_s[: n + 1])
    return Irf(irf.counts, irf.edges_s, "rising edge")


# -- the periodic decay model ---------------------------------------------


def _second_diff(lin: np.ndarray, nonlin: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``v[i+1] - 2 v[i] + v[i-1]`` of ``v = lin + nonlin`` for consecutive points.

    ``lin`` is linear in y while q (the period index) stays the same, so its
    second difference is exactly 0 there; computing it only where a period
    boundary falls between the points avoids cancelling large numbers.
    """
    out = nonlin[2:] - 2 * nonlin[1:-1] + nonlin[:-2]
    cross = (q[2:] != q[1:-1]) | (q[:-2] != q[1:-1])
    if np.any(cross):
        d2 = lin[2:] - 2 * lin[1:-1] + lin[:-2]
        out[cross] += d2[cross]
    return out


def _kernels(y: np.ndarray, lam: float, period: float, derivs: bool):
    """Triangle-averaged periodic exponential at lags ``y[1:-1]`` (bin units).

    With F the periodic exponential density (unit area per period),
    C(y) = int_0^y F and D(y) = int_0^y C, the kernel is the second difference
    ``D(y+1) - 2 D(y) + D(y-1)``.  Returns it, and with ``derivs`` also its
    derivatives with respect to lambda = 1/tau and to y.
    """
    ex = math.exp(-lam * period)
    den = -math.expm1(-lam * period)
    q = np.floor(y / period)
    r = y - q * period
    big_k = period / den - 1.0 / lam
    em = np.expm1(-lam * r)
    # D = lin + nonlin, lin linear in y for fixed q
    lin = q * (q - 1) / 2 * period + q * big_k + q * r + r / den
    nonlin = em / (lam * den)
    g = _second_diff(lin, nonlin, q)
    if not derivs:
        return g, None, None
    # C = dD/dy = q - em / den: q is exact, so a plain difference is fine
    c = q - em / den
    dy = c[2:] - 2 * c[1:-1] + c[:-2]
    dden = period * ex
    dk = -period * dden / den**2 + 1.0 / lam**2
    lin_l = q * dk - r / (lam * den) - r * dden / den**2
    nonlin_l = (-r * em / lam - em / lam**2) / den - em * dden / (lam * den**2)
    dl = _second_diff(lin_l, nonlin_l, q)
    return g, dl, dy


class _Model:
    """Components of the periodic decay model on ``n`` bins."""

    def __init__(self, irf_w: np.ndarray, period_bins: float) -> None:
        self.n = n = len(irf_w)
        self.period = period_bins
        self.size = _fft.next_fast_len(2 * n - 1, real=True)
        self.irf_hat = _fft.rfft(irf_w, self.size)
        self.y = np.arange(-n, n + 1, dtype=np.float64)

    def _conv(self, g: np.ndarray) -> np.ndarray:
        conv = _fft.irfft(self.irf_hat * _fft.rfft(g, self.size), self.size)
        return conv[self.n - 1 : 2 * self.n - 1]

    def component(self, tau_bins: float, shift_bins: float) -> np.ndarray:
        """Expected counts per bin of a unit-area component."""
        g, _, _ = _kernels(self.y - shift_bins, 1.0 / tau_bins, self.period, False)
        return np.maximum(self._conv(g), 0.0)

    def component_derivs(self, tau_bins: float, shift_bins: float):
        """(component, d component / d log tau, d component / d shift)."""
        lam = 1.0 / tau_bins
        g, dl, dy = _kernels(self.y - shift_bins, lam, self.period, True)
        return self._conv(g), self._conv(dl) * (-lam), -self._conv(dy)


# -- fits -----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DecayFit:
    """Result of :func:`fit_decay` (times in seconds, counts in photons).

    Attributes
    ----------
    tau_s, tau_stderr_s : ndarray, shape (n_exp,)
        Lifetimes (ascending) and standard errors (inf for a component
        fitted with no photons: its lifetime is undetermined).
    counts, counts_stderr : ndarray, shape (n_exp,)
        Photons of each component per period of the histogram (its area).
    intensity_fractions : ndarray
        ``counts / counts.sum()``: the share of photons of each component.
    amplitude_fractions : ndarray
        Pre-exponential amplitudes ``counts / tau`` normalised to sum 1.
    background_per_bin, background_stderr : float
        Flat background, photons per bin.
    shift_s, shift_stderr_s : float
        IRF shift (positive: the decay comes later than the IRF).
    deviance : float
        Poisson deviance ``2 sum(mu - y + y log(y / mu))`` over the fit bins.
    pearson_chi2 : float
        ``sum((y - mu)^2 / mu)`` over the fit bins.
    dof : int
        Fit bins minus free parameters.
    model : ndarray, shape (n_bins,)
        Expected counts for every bin of ``decay`` (0 past the period).
    fit_mask : ndarray of bool, shape (n_bins,)
        Bins used in the fit.
    covariance : ndarray
        Covariance of the free parameters ``param_names`` (inverse Fisher).
    success : bool
        The optimiser converged and the Fisher information was invertible.
    message : str
    """

    tau_s: np.ndarray
    tau_stderr_s: np.ndarray
    counts: np.ndarray
    counts_stderr: np.ndarray
    background_per_bin: float
    background_stderr: float
    shift_s: float
    shift_stderr_s: float
    deviance: float
    pearson_chi2: float
    dof: int
    n_photons: int
    model: np.ndarray = field(repr=False)
    fit_mask: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    param_names: tuple[str, ...] = ()
    decay: DecayHistogram | None = field(default=None, repr=False)
    irf: Irf | None = field(default=None, repr=False)
    success: bool = True
    message: str = ""

    @property
    def n_exp(self) -> int:
        return len(self.tau_s)

    @property
    def intensity_fractions(self) -> np.ndarray:
        return self.counts / self.counts.sum() if self.counts.sum() > 0 else self.counts * 0.0

    @property
    def amplitude_fractions(self) -> np.ndarray:
        amp = self.counts / self.tau_s
        return amp / amp.sum() if amp.sum() > 0 else amp * 0.0

    @property
    def tau_mean_amplitude_s(self) -> float:
        """Amplitude-weighted mean lifetime ``sum(alpha_k tau_k)``."""
        return float(np.sum(self.amplitude_fractions * self.tau_s))

    @property
    def tau_mean_intensity_s(self) -> float:
        """Intensity-weighted mean lifetime ``sum(f_k tau_k)``."""
        return float(np.sum(self.intensity_fractions * self.tau_s))

    @property
    def reduced_chi2(self) -> float:
        """Pearson chi-square per degree of freedom (about 1 for a good fit)."""
        return self.pearson_chi2 / max(self.dof, 1)

    @property
    def reduced_deviance(self) -> float:
        """Poisson deviance per degree of freedom."""
        return self.deviance / max(self.dof, 1)

    @property
    def residuals(self) -> np.ndarray:
        """Pearson residuals ``(y - mu) / sqrt(mu)`` on the fit bins, 0 elsewhere."""
        y = self.decay.counts.astype(np.float64)
        out = np.zeros_like(y)
        m = self.fit_mask & (self.model > 0)
        out[m] = (y[m] - self.model[m]) / np.sqrt(self.model[m])
        return out


def _delay_mean_tau(mean_delay: float, period: float) -> float:
    """Lifetime whose periodic exponential has this mean delay in [0, P)."""
    if mean_delay <= 0:
        return 1e-3 * period
    if mean_delay >= period / 2 * (1 - 1e-9):
        return 1e3 * period

    def mean_of(tau: float) -> float:
        x = period / tau
        return tau - period / math.expm1(x) if x < 700 else tau

    return float(optimize.brentq(lambda t: mean_of(t) - mean_delay, 1e-9 * period, 1e4 * period))


def _as_decay(data, selection, bin_width_s) -> DecayHistogram:
    if isinstance(data, DecayHistogram):
        if selection is not None or bin_width_s is not None:
            raise ValueError(
                "selection= and bin_width_s= apply to a PhotonStream; this is a DecayHistogram"
            )
        return data
    if isinstance(data, PhotonStream):
        return decay_histogram(data, selection=selection, bin_width_s=bin_width_s)
    raise TypeError(f"expected a PhotonStream or DecayHistogram, got {type(data).__name__}")


def _irf_weights(irf, decay: DecayHistogram, n: int) -> tuple[np.ndarray, Irf]:
    if irf is None:
        irf = estimate_irf(decay)
    elif isinstance(irf, DecayHistogram):
        irf = irf_from_histogram(irf)
    elif isinstance(irf, (str, os.PathLike)):
        irf = irf_from_file(irf)
    elif not isinstance(irf, Irf):
        raise TypeError(f"irf= must be an Irf, DecayHistogram, file path or None, got {irf!r}")
    return irf.weights_on(decay.edges_s[: n + 1]), irf


def fit_decay(
    data: DecayHistogram | PhotonStream,
    *,
    n_exp: int = 1,
    irf: Irf | DecayHistogram | str | os.PathLike | None = None,
    selection: Selection | None = None,
    bin_width_s: float | None = None,
    background: bool | float = True,
    fit_shift: bool = True,
    max_shift_s: float = 1e-9,
    fit_range_s: tuple[float, float] | None = None,
    tau_init_s: Sequence[float] | None = None,
    min_photons: int = 100,
) -> DecayFit:
    """Maximum-likelihood fit of 1 to 3 exponentials convolved with the IRF.

    Parameters
    ----------
    data : DecayHistogram or PhotonStream
        A decay, or photons to histogram (with ``selection``, ``bin_width_s``).
    n_exp : {1, 2, 3}
        Number of exponential components.
    irf : Irf, DecayHistogram, path or None
        The IRF: an :class:`Irf`, a measured IRF histogram, a reference file,
        or None to estimate a Gaussian from the decay's rising edge.
    background : bool or float
        True: fit a flat background; False: none; a number: fixed
        background in photons per bin.
    fit_shift : bool
        Fit a shift of the IRF (within ``max_shift_s`` of the initial
        alignment of the IRF's and the decay's rising edges).
    fit_range_s : (float, float), optional
        Delay range used in the fit (default: the whole period).
    tau_init_s : sequence of float, optional
        Starting lifetimes (default: from the mean delay).
    min_photons : int
        Fewer photons in the fit range raise ValueError.

    Returns
    -------
    DecayFit

    Raises
    ------
    ValueError
        Too few photons, bad ``n_exp``, an IRF that misses the decay.

    Notes
    -----
    The objective is the Poisson deviance, minimised by L-BFGS-B in scaled
    parameters (log lifetimes; amplitudes and background relative to the
    counts) from several starting points for n_exp > 1.  Standard errors are
    the square roots of the diagonal of the inverse expected Fisher
    information ``J^T diag(1/mu) J`` at the optimum.
    """
    if n_exp not in (1, 2, 3):
        raise ValueError(f"n_exp={n_exp!r} must be 1, 2 or 3")
    decay = _as_decay(data, selection, bin_width_s)
    n = decay.n_full_bins
    if n < 4:
        raise ValueError(f"fit_decay: the decay has only {n} bins in the period")
    w_s = decay.bin_width_s
    y_all = decay.counts[:n].astype(np.float64)
    centers = decay.centers_s[:n]
    mask = np.ones(n, bool)
    if fit_range_s is not None:
        lo, hi = (float(x) for x in fit_range_s)
        if not hi > lo:
            raise ValueError(f"fit_range_s={fit_range_s!r} must be (start, stop) with stop > start")
        mask = (centers >= lo) & (centers < hi)
    y = y_all[mask]
    n_fit = int(mask.sum())
    total = float(y.sum())
    n_free = 2 * n_exp + (background is True) + bool(fit_shift)
    if total < min_photons:
        raise ValueError(
            f"fit_decay: {int(total)} photons in the fit range are too few for a fit "
            f"(min_photons={min_photons})"
        )
    if n_fit <= n_free:
        raise ValueError(f"fit_decay: {n_fit} bins cannot constrain {n_free} parameters")
    irf_w, irf_obj = _irf_weights(irf, decay, n)
    period = decay.period_s / w_s
    model = _Model(irf_w, period)

    # initial alignment: rising edges of decay and IRF
    bg_est = _background_level(decay.counts[:n])
    _, t50_d, _, _ = _rising_edge(y_all, bg_est)
    _, t50_i, _, _ = _rising_edge(irf_w * 1e6, 0.0)
    s0 = (t50_d - t50_i + n / 2) % n - n / 2 if fit_shift else 0.0
    s_max = max_shift_s / w_s

    if background is True:
        b0 = min(bg_est, 0.5 * total / n_fit)
    elif background is False:
        b0 = 0.0
    else:
        b0 = float(background)
        if not (math.isfinite(b0) and b0 >= 0):
            raise ValueError(f"background={background!r} must be True, False or a count >= 0")
    # mean delay after the IRF, background removed -> starting lifetime
    # delays in [-m, P - m) so that IRF jitter before the reference does not wrap
    ref = float(np.sum(irf_w * (np.arange(n) + 0.5))) + s0
    m = 3 * max(irf_obj.fwhm_s / w_s, 1.0)
    delay = (np.arange(n) + 0.5 - ref + m) % period - m
    sig = np.maximum(y_all - b0, 0.0)
    tau0 = _delay_mean_tau(float(np.sum(sig * delay) / max(sig.sum(), 1e-300)), period)
    tau0 = float(np.clip(tau0, 1.0, 100 * period))

    fit_b = background is True
    fitter = _Fitter(model, mask, y, total, n_fit, period, b0, s0, s_max, fit_b, fit_shift)
    sig_total = max(total - b0 * n_fit, 0.05 * total)
    if tau_init_s is not None:
        start = np.asarray(tau_init_s, np.float64) / w_s
        if start.shape != (n_exp,) or np.any(start <= 0):
            raise ValueError(f"tau_init_s={tau_init_s!r} needs {n_exp} positive lifetimes")
        best = fitter.fit([start], sig_total)
    else:
        # 1 exponential from the mean delay; each further one from the previous fit
        # (a new component faster, slower, or splitting the main one) and from
        # generic spreads around the mean delay; the lowest deviance wins
        best = fitter.fit([np.array([tau0])], sig_total)
        for k in range(2, n_exp + 1):
            prev = np.sort(fitter.unpack(best.x, k - 1)[0])
            main = prev[np.argmax(fitter.unpack(best.x, k - 1)[1])]
            starts = [
                np.append(prev, prev.min() / 5),
                np.append(prev, prev.max() * 3),
                np.concatenate([prev[prev != main], [main / 2, main * 2]]),
                tau0 * np.geomspace(0.1, 2.0, k),
                tau0 * np.geomspace(0.03, 1.3, k),
            ]
            best = fitter.fit(starts, sig_total)
    taus, amps, b, s = fitter.unpack(best.x, n_exp)
    order = np.argsort(taus)
    taus, amps = taus[order], amps[order]
    return _finish_fit(
        decay, irf_obj, model, mask, y, taus, amps, b, s, fit_b, fit_shift, best, w_s
    )


class _Fitter:
    """Poisson-deviance minimisation of the decay model in scaled parameters.

    x = [log tau_k (bins)..., counts_k / N..., background / (N / n_bins),
    shift (bins)]; the objective is half the deviance per photon.
    """

    def __init__(self, model, mask, y, total, n_fit, period, b0, s0, s_max, fit_b, fit_shift):
        self.model, self.mask, self.y, self.total = model, mask, y, total
        self.scale_a = total
        self.scale_b = max(total / n_fit, 1e-12)
        self.period, self.b0, self.s0, self.s_max = period, b0, s0, s_max
        self.fit_b, self.fit_shift = fit_b, fit_shift
        self.pos = y > 0
        self.y_pos = y[self.pos]

    def unpack(self, x, n_exp):
        taus = np.exp(x[:n_exp])
        amps = x[n_exp : 2 * n_exp] * self.scale_a
        i = 2 * n_exp
        b = x[i] * self.scale_b if self.fit_b else self.b0
        i += self.fit_b
        s = x[i] if self.fit_shift else self.s0
        return taus, amps, b, s

    def evaluate(self, x, n_exp):
        """(f, gradient, Jacobian of mu in x, mu) on the fit bins."""
        taus, amps, b, s = self.unpack(x, n_exp)
        m = self.mask
        parts = [self.model.component_derivs(t, s) for t in taus]
        comps = [p[0][m] for p in parts]
        mu = b + sum(a * c for a, c in zip(amps, comps, strict=True))
        mu = np.maximum(mu, 1e-300)
        y = self.y
        # half the Poisson deviance, summed term by term (no large cancellations),
        # per photon so that the gradient is O(1) for L-BFGS-B's first steps
        f = float(np.sum(mu - y) - np.dot(self.y_pos, np.log(mu[self.pos] / self.y_pos)))
        cols = [a * p[1][m] for a, p in zip(amps, parts, strict=True)]
        cols += [c * self.scale_a for c in comps]
        if self.fit_b:
            cols.append(np.full(len(mu), self.scale_b))
        if self.fit_shift:
            cols.append(sum(a * p[2][m] for a, p in zip(amps, parts, strict=True)))
        jac = np.column_stack(cols)
        grad = jac.T @ (1.0 - y / mu)
        return f / self.total, grad / self.total, jac, mu

    def bounds(self, n_exp):
        out = [(math.log(0.1), math.log(1000 * self.period))] * n_exp + [(0.0, 10.0)] * n_exp
        if self.fit_b:
            out.append((0.0, 10.0))
        if self.fit_shift:
            out.append((self.s0 - self.s_max, self.s0 + self.s_max))
        return out

    def scoring(self, x, n_exp, max_iter=100):
        """Fisher scoring (Gauss-Newton for Poisson data), projected on the bounds.

        Returns (x, f, converged): converged when a further full step would
        gain less than 1e-8 in log-likelihood.
        """
        lo, hi = np.array(self.bounds(n_exp)).T
        f, g, jac, mu = self.evaluate(x, n_exp)
        history = [f]
        for _ in range(max_iter):
            # bins expecting < 0.01 photons carry no information (and 1/mu would blow up)
            fisher = jac.T @ (jac / np.maximum(mu, 1e-2)[:, None]) / self.total
            step = -np.linalg.lstsq(fisher, g, rcond=1e-12)[0]
            # a parameter at a bound whose step points outwards stays there
            blocked = ((x <= lo) & (step < 0)) | ((x >= hi) & (step > 0))
            if np.any(blocked):
                free = ~blocked
                step = np.zeros_like(step)
                sub = fisher[np.ix_(free, free)]
                step[free] = -np.linalg.lstsq(sub, g[free], rcond=1e-12)[0]
            if -float(g @ step) * self.total < 1e-8:  # expected gain in log-likelihood
                return x, f, True
            t = 1.0
            for _ in range(40):
                x_new = np.clip(x + t * step, lo, hi)
                f_new, g_new, jac_new, mu_new = self.evaluate(x_new, n_exp)
                if f_new < f:
                    break
                t /= 2
            else:
                return x, f, True  # no decrease along the step: at round-off level
            x, f, g, jac, mu = x_new, f_new, g_new, jac_new, mu_new
            history.append(f)
            # creeping along a flat direction (unresolved components): stop when 10
            # steps gained less than 1e-3 in log-likelihood together (1 sigma = 0.5)
            if len(history) > 10 and (history[-11] - f) * self.total < 1e-3:
                return x, f, True
        return x, f, False

    def fit(self, starts, sig_total):
        """Best of Fisher scoring from each start (L-BFGS-B first where scoring stalls)."""
        best = None
        for taus in starts:
            n_exp = len(taus)
            taus = np.clip(taus, 0.2, 500 * self.period)
            x0 = list(np.log(taus)) + [sig_total / n_exp / self.scale_a] * n_exp
            if self.fit_b:
                x0.append(self.b0 / self.scale_b)
            if self.fit_shift:
                x0.append(self.s0)
            x, f, ok = self.scoring(np.array(x0), n_exp)
            message = "Fisher scoring converged" if ok else "Fisher scoring: iteration limit"
            if not ok:
                res = optimize.minimize(
                    lambda x, n=n_exp: self.evaluate(x, n)[:2],
                    x,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=self.bounds(n_exp),
                    options={"maxiter": 3000, "ftol": 1e-15, "gtol": 1e-9},
                )
                x, f, ok = self.scoring(res.x, n_exp)
                message = f"L-BFGS-B ({res.message}) then Fisher scoring"
            if best is None or f < best.fun:
                best = optimize.OptimizeResult(x=x, fun=f, success=ok, message=message)
        return best


def _finish_fit(decay, irf_obj, model, mask, y, taus, amps, b, s, fit_b, fit_shift, res, w_s):
    n_exp = len(taus)
    n = model.n
    parts = [model.component_derivs(t, s) for t in taus]
    comps = [np.maximum(p[0], 0.0) for p in parts]
    mu_full = b + sum(a * c for a, c in zip(amps, comps, strict=True))
    mu = np.maximum(mu_full[mask], 1e-300)
    # Jacobian of mu (fit bins) in natural units: tau [bins], counts, bg, shift [bins]
    cols, names = [], []
    for k, (t, a) in enumerate(zip(taus, amps, strict=True)):
        cols.append(a * parts[k][1][mask] / t)
        names.append(f"tau_{k + 1}")
    for k in range(n_exp):
        cols.append(comps[k][mask])
        names.append(f"counts_{k + 1}")
    if fit_b:
        cols.append(np.ones(mask.sum()))
        names.append("background")
    if fit_shift:
        d = sum(a * p[2] for a, p in zip(amps, parts, strict=True))
        cols.append(d[mask])
        names.append("shift")
    jac = np.column_stack(cols)
    fisher = jac.T @ (jac / np.maximum(mu, 1e-2)[:, None])  # see _Fitter.scoring
    message = str(res.message)
    ok = True
    try:
        cov = np.linalg.inv(fisher)
        if np.any(np.diag(cov) < 0) or not np.all(np.isfinite(cov)):
            raise np.linalg.LinAlgError("not positive definite")
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(fisher)
        ok = False
        message += "; Fisher information singular (components not resolved?)"
    # converged when a Newton step from here would gain < 1e-4 in log-likelihood
    # (the optimiser may stop on round-off, "ABNORMAL", long after that)
    grad = jac.T @ (1.0 - y / mu)
    free = np.ones(len(names), bool)
    free[n_exp : 2 * n_exp] = amps > 0
    if fit_b:
        free[2 * n_exp] = b > 0
    gf = grad[free]
    gain = 0.5 * float(gf @ np.linalg.pinv(fisher[np.ix_(free, free)]) @ gf)
    if gain > 1e-4:
        ok = False
        message += f"; not converged (expected log-likelihood gain {gain:.3g})"
    err = np.sqrt(np.abs(np.diag(cov)))
    tau_err = err[:n_exp] * w_s
    # a component without photons has an undetermined lifetime
    tau_err = np.where(amps > 1e-9 * max(float(y.sum()), 1.0), tau_err, np.inf)
    cnt_err = err[n_exp : 2 * n_exp]
    i = 2 * n_exp
    b_err = float(err[i]) if fit_b else 0.0
    i += fit_b
    s_err = float(err[i]) * w_s if fit_shift else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_terms = np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu)
    deviance = float(2 * np.sum(dev_terms))
    pearson = float(np.sum((y - mu) ** 2 / mu))
    model_all = np.zeros(len(decay.counts))
    model_all[:n] = mu_full
    mask_all = np.zeros(len(decay.counts), bool)
    mask_all[:n] = mask
    n_par = len(names)
    if ok and np.any(amps <= 1e-9 * max(y.sum(), 1)):
        message += "; a component has zero amplitude (try fewer exponentials)"
    return DecayFit(
        tau_s=taus * w_s,
        tau_stderr_s=tau_err,
        counts=amps,
        counts_stderr=cnt_err,
        background_per_bin=float(b),
        background_stderr=b_err,
        shift_s=float(s) * w_s,
        shift_stderr_s=s_err,
        deviance=deviance,
        pearson_chi2=pearson,
        dof=int(mask.sum()) - n_par,
        n_photons=int(y.sum()),
        model=model_all,
        fit_mask=mask_all,
        covariance=cov,
        param_names=tuple(names),
        decay=decay,
        irf=irf_obj,
        success=ok,
        message=message,
    )


# -- mean arrival time ----------------------------------------------------


@dataclass(frozen=True)
class MeanArrivalTime:
    """Mean delay of the photons after the IRF.

    Attributes
    ----------
    mean_delay_s, stderr_s : float
        Mean of ``(t - t_irf) mod P`` over the signal photons (background
        removed), and its standard error ``sd / sqrt(N_signal)``.
    tau_s : float
        The lifetime of a mono-exponential with this mean delay, accounting
        for the tail of earlier pulses (``mean = tau - P / (exp(P/tau) - 1)``);
        equal to the mean delay when tau << P.
    reference_s : float
        The IRF time delays are measured from (the IRF mean).
    n_photons : int
    background_per_bin : float
    """

    mean_delay_s: float
    stderr_s: float
    tau_s: float
    reference_s: float
    n_photons: int
    background_per_bin: float


def mean_arrival_time(
    data: DecayHistogram | PhotonStream,
    *,
    selection: Selection | None = None,
    irf: Irf | None = None,
    subtract_background: bool = True,
) -> MeanArrivalTime:
    """Mean arrival time after the IRF (a model-free lifetime estimate).

    Parameters
    ----------
    data : DecayHistogram or PhotonStream
    selection : Selection, optional
        With a stream.
    irf : Irf, optional
        Reference for the delays (its mean); estimated from the rising edge
        when None.
    subtract_background : bool
        Remove the flat background first: the level before the rising edge
        less the tail of earlier pulses that a mono-exponential with the
        estimated lifetime leaves there (solved self-consistently).
    """
    decay = _as_decay(data, selection, None)
    n = decay.n_full_bins
    counts = decay.counts[:n].astype(np.float64)
    if counts.sum() < 2:
        raise ValueError(f"mean_arrival_time: {int(counts.sum())} photons are too few")
    if irf is None:
        irf = estimate_irf(decay) if counts.sum() >= 20 else None
    ref = irf.mean_s if irf is not None else float(decay.centers_s[int(np.argmax(counts))])
    # delays in [-m, P - m): IRF jitter around the reference stays near 0
    m = 3 * irf.fwhm_s if irf is not None else 0.0
    period, w = decay.period_s, decay.bin_width_s
    delay = (decay.centers_s[:n] - ref + m) % period - m
    level, window = _background_window(counts) if subtract_background else (0.0, None)
    bg = level
    for _ in range(200):
        sig = counts - bg  # signed: clipping would bias the mean towards P / 2
        n_sig = float(sig.sum())
        if n_sig <= 0:
            raise ValueError("mean_arrival_time: no photons above the background")
        mean = float(np.sum(sig * delay) / n_sig)
        tau = _delay_mean_tau(mean / w, period / w) * w
        if window is None or not window.size or not (tau > 0 and math.isfinite(tau)):
            break
        # the pre-edge level holds the background plus the tail of earlier pulses
        # (a mono-exponential of this tau): subtract only the background
        tail = n_sig * w / tau * float(np.mean(np.exp(-delay[window] / tau)))
        tail /= -math.expm1(-period / tau)
        new_bg = max(level - tail, 0.0)
        if abs(new_bg - bg) <= 1e-9 * max(level, 1.0):
            break
        bg = new_bg
    var = float(np.sum(np.maximum(counts, 0) * (delay - mean) ** 2) / n_sig)
    return MeanArrivalTime(mean, math.sqrt(var / n_sig), tau, ref, int(counts.sum()), float(bg))
