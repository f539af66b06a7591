"""Emission spectra: line shapes per process, channel filters, the spectrometer.

Each emission process (X, BX, MX, shell) has a :class:`~qdsim.params.LineShape`
(shifted per blink state for the core lines).  Photon wavelengths are drawn
from the line on a fine grid (bins of ``Spectra.grid_step_m``, uniform within
a bin).  A detector channel sees ``T_c(lambda)`` = collection filter x its own
filter; the probability that an emitted photon of process p is detected on
channel c is ``eta_C split_c sum_lambda line_p(lambda) T_c(lambda)``, and the
wavelength of a photon detected on c follows ``line_p T_c``, normalised.

The spectrometer spectrum is drawn from the expected emission: for each
state and process, the number of pulses spent in that state times the mean
photons emitted per pulse (:func:`qdsim.closed_forms.emitted_per_pulse`),
spread over the line, times the collection filter and the spectrometer
efficiency, with Poisson noise per bin (the sum over ~1e8 pulses of thinned
per-pulse counts is Poisson to a very good approximation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from . import closed_forms as cf
from ._numba import guide_table
from .params import LineShape, Setup, SpectralFilter

__all__ = [
    "EMISSION_PROCESSES",
    "Spectrum",
    "bin_transmission",
    "line_pmf",
    "spectrometer_spectrum",
]

EMISSION_PROCESSES = ("x", "bx", "mx", "shell")  # index = Process code of the emitter photons


def line_cdf(line: LineShape, wavelength_m: np.ndarray, shift_m: float = 0.0) -> np.ndarray:
    """Cumulative distribution of the (untruncated) line at ``wavelength_m``."""
    x = np.asarray(wavelength_m, float) - (line.center_m + shift_m)
    if line.profile == "gaussian":
        sigma = line.fwhm_m / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        return special.ndtr(x / sigma)
    gamma = line.fwhm_m / 2.0
    return 0.5 + np.arctan(x / gamma) / math.pi


def line_pmf(line: LineShape, edges_m: np.ndarray, shift_m: float = 0.0) -> np.ndarray:
    """Probability of each bin between ``edges_m`` (renormalised to the bins).

    >>> edges = np.linspace(600e-9, 670e-9, 8)
    >>> p = line_pmf(LineShape(635e-9, 25e-9), edges)
    >>> round(float(p.sum()), 12), int(p.argmax())
    (1.0, 3)
    """
    cdf = line_cdf(line, edges_m, shift_m)
    pmf = np.diff(cdf)
    total = pmf.sum()
    if total <= 0:
        raise ValueError(
            f"line at {line.center_m + shift_m:.4g} m (FWHM {line.fwhm_m:.3g} m) lies "
            f"outside the wavelength grid {edges_m[0]:.4g}..{edges_m[-1]:.4g} m"
        )
    return pmf / total


def bin_transmission(filt: SpectralFilter | None, edges_m: np.ndarray) -> np.ndarray:
    """Mean transmission of ``filt`` over each bin between ``edges_m`` (1 for no filter).

    A passband is averaged exactly (fraction of the bin inside it); a table
    is evaluated at bin centres.

    >>> edges = np.array([470e-9, 472e-9, 474e-9, 476e-9])
    >>> bin_transmission(SpectralFilter(lo_m=473e-9), edges).round(9).tolist()
    [0.0, 0.5, 1.0]
    """
    edges = np.asarray(edges_m, float)
    if filt is None:
        return np.ones(len(edges) - 1)
    if filt.wavelengths_m:
        centres = 0.5 * (edges[1:] + edges[:-1])
        return np.asarray(filt.transmission_at(centres), float)
    lo = np.clip(edges[:-1], filt.lo_m, filt.hi_m)
    hi = np.clip(edges[1:], filt.lo_m, filt.hi_m)
    inside = (hi - lo) / np.diff(edges)
    return inside * filt.transmission + (1.0 - inside) * filt.blocking


def grid_edges(setup: Setup) -> np.ndarray:
    """Bin edges (m) of the wavelength grid photons are drawn on."""
    s = setup.spectra
    n_bins = max(1, round((s.grid_max_m - s.grid_min_m) / s.grid_step_m))
    return s.grid_min_m + s.grid_step_m * np.arange(n_bins + 1)


def channel_transmission(setup: Setup, edges_m: np.ndarray) -> np.ndarray:
    """T[c, bin]: collection filter x channel filter, bin-averaged (shape (C, bins))."""
    det = setup.detection
    common = bin_transmission(det.collection_filter, edges_m)
    return np.stack([common * bin_transmission(d.filter, edges_m) for d in det.detectors])


@dataclass(frozen=True, eq=False)
class DetectionTables:
    """Per (state, process, channel) detection probabilities and wavelength tables.

    ``d[s, p, c]`` is the probability that an emitted photon of process p in
    state s is detected on channel c; ``wl_cdf[line[s, p], c]`` the
    cumulative distribution over the grid bins of the wavelength of such a
    detected photon.
    """

    d: np.ndarray  # (S, 4, C)
    line_index: np.ndarray  # (S, 4) int64 -> row of wl_cdf
    wl_cdf: np.ndarray  # (L, C, G)
    wl_guide: np.ndarray  # (L, C, G) guide table of wl_cdf
    grid_min_m: float
    grid_step_m: float


def detection_tables(setup: Setup) -> DetectionTables:
    """Build :class:`DetectionTables` for ``setup`` (power independent)."""
    edges = grid_edges(setup)
    trans = channel_transmission(setup, edges)  # (C, G)
    det = setup.detection
    split = np.array([d.split for d in det.detectors])
    states = setup.emitter.states
    n_states, n_ch = len(states), len(det.detectors)
    d = np.zeros((n_states, 4, n_ch))
    line_index = np.zeros((n_states, 4), np.int64)
    keys: dict[tuple[str, float], int] = {}
    totals: list[np.ndarray] = []
    cdfs: list[np.ndarray] = []
    for s, state in enumerate(states):
        for p, proc in enumerate(EMISSION_PROCESSES):
            shift = 0.0 if proc == "shell" else float(state.wavelength_shift_m)
            key = (proc, shift)
            if key not in keys:
                pmf = line_pmf(setup.spectra.line(proc), edges, shift)
                weighted = pmf[None, :] * trans  # (C, G)
                total = weighted.sum(axis=1)
                cdf = np.cumsum(weighted, axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    cdf = np.where(total[:, None] > 0, cdf / total[:, None], 0.0)
                cdf[:, -1] = 1.0
                keys[key] = len(cdfs)
                cdfs.append(cdf)
                totals.append(total)
            line_index[s, p] = keys[key]
            d[s, p] = det.eta_c * split * totals[keys[key]]
    wl_cdf = np.ascontiguousarray(np.stack(cdfs))
    return DetectionTables(
        d=d,
        line_index=line_index,
        wl_cdf=wl_cdf,
        wl_guide=guide_table(wl_cdf),
        grid_min_m=float(edges[0]),
        grid_step_m=float(setup.spectra.grid_step_m),
    )


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Emission spectrum recorded by the spectrometer.

    Attributes
    ----------
    wavelength_m : ndarray of float64, shape (B,)
        Bin centres, in metres.
    counts : ndarray of int64, shape (B,)
        Counts per bin (Poisson).
    expected : ndarray of float64, shape (B,)
        Expected counts per bin given the blink trajectory (noise free).
    bin_width_m : float
        Width of the bins, in metres.
    exposure_s : float
        Acquisition time, in seconds.
    """

    wavelength_m: np.ndarray
    counts: np.ndarray
    expected: np.ndarray
    bin_width_m: float
    exposure_s: float

    def band_counts(self, lo_m: float, hi_m: float) -> int:
        """Counts in the bins whose centre lies in ``[lo_m, hi_m)``."""
        sel = (self.wavelength_m >= lo_m) & (self.wavelength_m < hi_m)
        return int(self.counts[sel].sum())

    def red_fraction(self, split_m: float) -> float:
        """``A_red / (A_red + A_blue)`` with the bands split at ``split_m`` [paper]."""
        red = self.band_counts(split_m, math.inf)
        total = int(self.counts.sum())
        return red / total if total else math.nan


def _grid_cdf(setup: Setup, proc: str, x_m: np.ndarray, shift_m: float) -> np.ndarray:
    """CDF of the line truncated to the photon wavelength grid (as photons are drawn)."""
    edges = grid_edges(setup)
    g_lo, g_hi = float(edges[0]), float(edges[-1])
    line = setup.spectra.line(proc)
    lo, hi = line_cdf(line, np.array([g_lo, g_hi]), shift_m)
    x = np.clip(np.asarray(x_m, float), g_lo, g_hi)
    return (line_cdf(line, x, shift_m) - lo) / (hi - lo)


def expected_emission(setup: Setup, n: float, pulses_per_state: np.ndarray) -> np.ndarray:
    """Mean emitted photons E[s, p] over the acquisition (shape (S, 4))."""
    em = setup.emitter
    out = np.zeros((len(em.states), 4))
    for s, state in enumerate(em.states):
        n_s = n * state.excitation_efficiency
        m_max = cf.poisson_cutoff(n_s)
        core = em.core_capacity(m_max)
        eta, _ = em.levels(state, core)
        e = cf.emitted_per_pulse(n_s, eta, eta_h=em.eta_h, core_capacity=core)
        out[s] = [e[k] * pulses_per_state[s] for k in EMISSION_PROCESSES]
    return out


def spectrometer_spectrum(
    setup: Setup,
    n: float,
    pulses_per_state: np.ndarray,
    exposure_s: float,
    rng: np.random.Generator,
) -> Spectrum:
    """Spectrum of the acquisition: expected emission x efficiency, Poisson per bin."""
    sp = setup.spectrometer
    n_bins = max(1, round((sp.max_m - sp.min_m) / sp.bin_m))
    edges = sp.min_m + sp.bin_m * np.arange(n_bins + 1)
    trans = bin_transmission(setup.detection.collection_filter, edges)
    emitted = expected_emission(setup, n, pulses_per_state)
    expected = np.zeros(n_bins)
    for s, state in enumerate(setup.emitter.states):
        for p, proc in enumerate(EMISSION_PROCESSES):
            if emitted[s, p] <= 0:
                continue
            shift = 0.0 if proc == "shell" else float(state.wavelength_shift_m)
            expected += emitted[s, p] * np.diff(_grid_cdf(setup, proc, edges, shift))
    expected *= trans * sp.efficiency
    counts = rng.poisson(expected).astype(np.int64)
    return Spectrum(
        wavelength_m=0.5 * (edges[1:] + edges[:-1]),
        counts=counts,
        expected=expected,
        bin_width_m=float(sp.bin_m),
        exposure_s=float(exposure_s),
    )
