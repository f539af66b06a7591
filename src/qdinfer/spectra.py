"""Emission spectra: a container, text/CSV readers, band areas, peak, centroid, shift with power.

The paper splits each spectrum at a wavelength between the shell ("high
energy", blue) and core ("low energy", red) emission and follows the red
fraction ``A_red / (A_red + A_blue)`` with power; the peak position shows the
blue shift of the biexciton line at high power (MODEL.md sections 2 and 4).

Wavelengths are metres in code (``wavelength_m``); readers and plots convert
from and to nanometres.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "BandAreas",
    "SpectralShift",
    "Spectrum",
    "band_areas",
    "centroid_wavelength",
    "peak_wavelength",
    "read_spectrum",
    "spectral_shift",
]

_LENGTH_UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "nm": 1e-9, "A": 1e-10, "Å": 1e-10}


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Intensity versus wavelength, sorted by wavelength.

    Parameters
    ----------
    wavelength_m : array of float, shape (n,)
        Wavelengths in metres (any order; stored ascending).
    intensity : array of float, shape (n,)
        Counts or intensity per sample (spectrometer pixel).
    attrs : mapping
        Provenance (file, power, ...).

    Examples
    --------
    >>> s = Spectrum([640e-9, 630e-9, 635e-9], [1.0, 2.0, 5.0])
    >>> s.wavelength_m.tolist(), s.intensity.tolist()
    ([6.3e-07, 6.35e-07, 6.4e-07], [2.0, 5.0, 1.0])
    """

    wavelength_m: np.ndarray
    intensity: np.ndarray
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        wl = np.asarray(self.wavelength_m, np.float64)
        inten = np.asarray(self.intensity, np.float64)
        if wl.ndim != 1 or inten.shape != wl.shape:
            raise ValueError(
                f"Spectrum needs 1-D wavelength_m and intensity of equal length, got "
                f"{wl.shape} and {inten.shape}"
            )
        if wl.size < 2:
            raise ValueError(f"Spectrum needs at least 2 samples, got {wl.size}")
        if not (np.all(np.isfinite(wl)) and np.all(np.isfinite(inten))):
            raise ValueError("Spectrum values must be finite")
        if np.any(wl <= 0):
            raise ValueError("Spectrum wavelengths must be > 0 (metres)")
        order = np.argsort(wl, kind="stable")
        wl, inten = wl[order], inten[order]
        if np.any(np.diff(wl) == 0):
            raise ValueError("Spectrum wavelengths must be distinct")
        wl.flags.writeable = False
        inten.flags.writeable = False
        object.__setattr__(self, "wavelength_m", wl)
        object.__setattr__(self, "intensity", inten)
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def __len__(self) -> int:
        return int(self.wavelength_m.shape[0])

    def crop(self, start_m: float, stop_m: float) -> Spectrum:
        """Samples with ``start_m <= wavelength <= stop_m``."""
        m = (self.wavelength_m >= start_m) & (self.wavelength_m <= stop_m)
        return Spectrum(self.wavelength_m[m], self.intensity[m], self.attrs)

    def minus(self, baseline: float | str) -> Spectrum:
        """The spectrum with a constant baseline removed ("auto": the 10th percentile)."""
        level = float(np.percentile(self.intensity, 10)) if baseline == "auto" else float(baseline)
        return Spectrum(self.wavelength_m, self.intensity - level, self.attrs)


def _sniff_rows(text: str, delimiter: str | None) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if delimiter is None:
        sample = "\n".join(lines[:50])
        if "\t" in sample:
            delimiter = "\t"
        elif ";" in sample:
            delimiter = ";"
        elif "," in sample:
            delimiter = ","
    if delimiter is None:
        return [ln.split() for ln in lines]
    return [row for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]


def read_spectrum(
    path: str | os.PathLike,
    *,
    wavelength_unit: str = "nm",
    columns: tuple[int, int] = (0, 1),
    delimiter: str | None = None,
) -> Spectrum:
    """Read a two-column (wavelength, intensity) text or CSV file.

    Parameters
    ----------
    path : path-like
    wavelength_unit : {"nm", "um", "mm", "m", "A"}
        Unit of the wavelength column.
    columns : (int, int)
        Columns of wavelength and intensity (0-based), for files with more.
    delimiter : str, optional
        Default: tab, semicolon or comma when present, else whitespace.

    Header lines (rows whose wavelength cell is not a number) and lines
    starting with ``#`` are skipped.

    Raises
    ------
    ValueError
        No numeric rows, a bad unit, or rows without the requested columns.
    """
    if wavelength_unit not in _LENGTH_UNITS:
        raise ValueError(f"wavelength_unit={wavelength_unit!r}: use one of {sorted(_LENGTH_UNITS)}")
    scale = _LENGTH_UNITS[wavelength_unit]
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    wl, inten, skipped = [], [], 0
    for i, row in enumerate(_sniff_rows(text, delimiter)):
        cells = [c.strip() for c in row]
        try:
            # a cell never holds the delimiter, so a comma in it is a decimal comma
            x = float(cells[columns[0]].replace(",", "."))
            y = float(cells[columns[1]].replace(",", "."))
        except (ValueError, IndexError) as exc:
            if wl:  # a bad row after data started
                raise ValueError(f"{path}: row {i + 1} {row!r} is not two numbers") from exc
            skipped += 1
            continue
        wl.append(x * scale)
        inten.append(y)
    if not wl:
        raise ValueError(f"{path}: no numeric (wavelength, intensity) rows found")
    return Spectrum(
        np.asarray(wl), np.asarray(inten), {"file": os.fspath(path), "header_rows": skipped}
    )


def _integrate(wl: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, np.ndarray]:
    """Trapezoid integral of y over [lo, hi] (interpolating at the ends), and its
    weights on the samples (for the variance)."""
    inner = (wl > lo) & (wl < hi)
    x = np.concatenate([[lo], wl[inner], [hi]])
    # interpolation at the ends: weights on the neighbouring samples
    n = len(wl)
    weights = np.zeros(n)
    w_x = np.zeros(len(x))
    dx = np.diff(x)
    w_x[:-1] += dx / 2
    w_x[1:] += dx / 2
    idx_inner = np.flatnonzero(inner)
    weights[idx_inner] += w_x[1:-1]
    for end, wx in ((lo, w_x[0]), (hi, w_x[-1])):
        j = int(np.clip(np.searchsorted(wl, end), 1, n - 1))
        t = (end - wl[j - 1]) / (wl[j] - wl[j - 1])
        weights[j - 1] += wx * (1 - t)
        weights[j] += wx * t
    return float(weights @ y), weights


@dataclass(frozen=True)
class BandAreas:
    """Areas of a spectrum below and above a split wavelength.

    Attributes
    ----------
    blue, red : float
        Integrated intensity (trapezoid rule, intensity x metres) of
        ``[start, split)`` and ``[split, stop]``.
    red_fraction : float
        ``red / (red + blue)``.
    red_fraction_stderr : float
        Its standard error when the intensities are photon counts (Poisson);
        NaN-free: 0 when ``counts=False``.
    split_m : float
    """

    blue: float
    red: float
    red_fraction: float
    red_fraction_stderr: float
    split_m: float


def band_areas(
    spectrum: Spectrum,
    split_m: float,
    *,
    range_m: tuple[float, float] | None = None,
    baseline: float | str | None = None,
    counts: bool = True,
) -> BandAreas:
    """Blue and red band areas split at ``split_m``, and the red fraction.

    Parameters
    ----------
    spectrum : Spectrum
    split_m : float
        Split wavelength in metres (e.g. 600e-9 between the CdS shell and the
        CdSe core lines).
    range_m : (float, float), optional
        Integration range (default: the whole spectrum).
    baseline : float or "auto", optional
        Constant to subtract first (see :meth:`Spectrum.minus`).
    counts : bool
        Intensities are photon counts: give the Poisson error of the fraction.

    Examples
    --------
    >>> s = Spectrum(np.array([500, 550, 600, 650, 700]) * 1e-9, [0, 1, 1, 1, 0])
    >>> round(band_areas(s, 600e-9).red_fraction, 6)
    0.5
    """
    wl = spectrum.wavelength_m
    lo, hi = (wl[0], wl[-1]) if range_m is None else (float(range_m[0]), float(range_m[1]))
    lo, hi = max(lo, wl[0]), min(hi, wl[-1])
    if not lo < split_m < hi:
        raise ValueError(
            f"split_m={split_m!r} must lie inside the integration range {lo!r}..{hi!r} m"
        )
    y = spectrum.intensity
    if baseline is not None:
        y = spectrum.minus(baseline).intensity
    blue, wb = _integrate(wl, y, lo, split_m)
    red, wr = _integrate(wl, y, split_m, hi)
    total = blue + red
    if total <= 0:
        raise ValueError("band_areas: the spectrum has no positive area in the range")
    frac = red / total
    err = 0.0
    if counts:
        # d frac / d y_i = (wr_i * blue - wb_i * red) / total^2, var y_i = max(raw y_i, 0)
        grad = (wr * blue - wb * red) / total**2
        err = float(math.sqrt(np.sum(grad**2 * np.maximum(spectrum.intensity, 0.0))))
    return BandAreas(float(blue), float(red), float(frac), err, float(split_m))


def _in_range(spectrum: Spectrum, range_m) -> tuple[np.ndarray, np.ndarray]:
    wl, y = spectrum.wavelength_m, spectrum.intensity
    if range_m is not None:
        m = (wl >= range_m[0]) & (wl <= range_m[1])
        wl, y = wl[m], y[m]
    if len(wl) < 3:
        raise ValueError(f"range_m={range_m!r} holds fewer than 3 samples of the spectrum")
    return wl, y


def peak_wavelength(
    spectrum: Spectrum, *, range_m: tuple[float, float] | None = None, smooth: int = 1
) -> float:
    """Wavelength of the maximum, refined by a parabola through the top three samples.

    >>> s = Spectrum(np.array([630, 632, 634, 636]) * 1e-9, [1, 3, 3, 1])
    >>> round(peak_wavelength(s) * 1e9, 6)
    633.0
    """
    wl, y = _in_range(spectrum, range_m)
    if smooth > 1:
        y = np.convolve(y, np.ones(smooth) / smooth, mode="same")
    i = int(np.argmax(y))
    if 0 < i < len(y) - 1:
        x0, x1, x2 = wl[i - 1 : i + 2]
        y0, y1, y2 = y[i - 1 : i + 2]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom
        if a < 0:
            return float(-b / (2 * a))
    return float(wl[i])


def centroid_wavelength(
    spectrum: Spectrum,
    *,
    range_m: tuple[float, float] | None = None,
    baseline: float | str | None = None,
) -> float:
    """Intensity-weighted mean wavelength (trapezoid rule).

    >>> s = Spectrum(np.array([630, 635, 640]) * 1e-9, [1, 2, 1])
    >>> round(centroid_wavelength(s) * 1e9, 6)
    635.0
    """
    s = spectrum.minus(baseline) if baseline is not None else spectrum
    wl, y = _in_range(s, range_m)
    area = np.trapezoid(y, wl)
    if area <= 0:
        raise ValueError("centroid_wavelength: no positive area in the range")
    return float(np.trapezoid(y * wl, wl) / area)


@dataclass(frozen=True, eq=False)
class SpectralShift:
    """Line position versus power and a straight-line fit.

    Attributes
    ----------
    power_w, position_m : ndarray
        Power and peak (or centroid) wavelength of each spectrum.
    slope_m_per_w, intercept_m : float
        Least-squares line ``position = intercept + slope * power``.
    shift_m : float
        Position at the highest power minus at the lowest (negative: blue shift).
    """

    power_w: np.ndarray
    position_m: np.ndarray
    slope_m_per_w: float
    intercept_m: float
    shift_m: float


def spectral_shift(
    spectra: Sequence[Spectrum],
    powers_w: Sequence[float],
    *,
    method: str = "peak",
    range_m: tuple[float, float] | None = None,
) -> SpectralShift:
    """Peak (or centroid) wavelength of each spectrum versus excitation power."""
    if len(spectra) != len(powers_w) or len(spectra) < 2:
        raise ValueError(
            f"spectral_shift needs >= 2 spectra with one power each, got {len(spectra)} "
            f"spectra and {len(powers_w)} powers"
        )
    if method == "peak":
        pos = [peak_wavelength(s, range_m=range_m) for s in spectra]
    elif method == "centroid":
        pos = [centroid_wavelength(s, range_m=range_m) for s in spectra]
    else:
        raise ValueError(f"method={method!r}: use 'peak' or 'centroid'")
    p = np.asarray(powers_w, np.float64)
    x = np.asarray(pos)
    order = np.argsort(p)
    p, x = p[order], x[order]
    slope, intercept = np.polyfit(p, x, 1) if np.ptp(p) > 0 else (0.0, float(x.mean()))
    return SpectralShift(p, x, float(slope), float(intercept), float(x[-1] - x[0]))
