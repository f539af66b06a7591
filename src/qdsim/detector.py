"""Detection chain: timing jitter (IRF) tables, dark counts, background, leakage.

Per detector (channel c):

- emitter photons reach c with the probabilities of :mod:`qdsim.spectra`;
- every detection time gets the detector's ``delay_s`` plus an IRF draw
  (Gaussian core plus exponential tail, or a measured histogram);
- dark counts and flat background are Poisson processes uniform in time;
- laser leakage is a Poisson number of events per pulse, mean
  ``leakage_rate_hz (P / P_ref)^a / f_rep``, at the pulse time plus the
  pulse jitter, the delay and the IRF (an IRF-shaped peak);
- then, in time order (:func:`qdsim._numba.deadtime_pass`): detector dead
  time (non-paralysable), afterpulsing of registered avalanches (the
  afterpulse is a candidate event ``dead_time + Exp(afterpulse_delay)``
  later, subject to dead time itself and able to afterpulse again), and the
  TCSPC dead time of the recorded events;
- finally the TCSPC digitises: macrotime = sync index, microtime =
  ``floor(time since the sync / resolution)``; photons later than the next
  sync wrap into the next sync period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._numba import guide_table, irf_samples
from .params import Setup

__all__ = ["IrfTables", "irf_tables", "noise_events"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True, eq=False)
class IrfTables:
    """IRF of every detector as arrays for the kernels."""

    kind: np.ndarray  # (C,) 0 Gaussian + tail, 1 histogram
    sigma: np.ndarray  # (C,) s
    tail_frac: np.ndarray
    tail_tau: np.ndarray  # s
    hist_cdf: np.ndarray  # (C, H)
    hist_guide: np.ndarray  # (C, H) guide table of hist_cdf
    hist_bin: np.ndarray  # (C,) s
    hist_offset: np.ndarray  # (C,) s: centre of the histogram's highest bin

    def args(self) -> tuple:
        return (
            self.kind,
            self.sigma,
            self.tail_frac,
            self.tail_tau,
            self.hist_cdf,
            self.hist_guide,
            self.hist_bin,
            self.hist_offset,
        )


def irf_tables(setup: Setup) -> IrfTables:
    """Arrays describing each detector's IRF."""
    dets = setup.detection.detectors
    n_ch = len(dets)
    h = max([len(d.irf.histogram) for d in dets] + [1])
    kind = np.zeros(n_ch, np.int64)
    sigma = np.zeros(n_ch)
    tail_frac = np.zeros(n_ch)
    tail_tau = np.zeros(n_ch)
    hist_cdf = np.ones((n_ch, h))
    hist_bin = np.zeros(n_ch)
    hist_offset = np.zeros(n_ch)
    for c, d in enumerate(dets):
        irf = d.irf
        if irf.is_histogram:
            kind[c] = 1
            counts = np.asarray(irf.histogram, float)
            cdf = np.cumsum(counts) / counts.sum()
            cdf[-1] = 1.0
            hist_cdf[c, : len(cdf)] = cdf
            hist_bin[c] = irf.histogram_bin_s
            hist_offset[c] = (int(np.argmax(counts)) + 0.5) * irf.histogram_bin_s
        else:
            sigma[c] = irf.fwhm_s * _FWHM_TO_SIGMA
            tail_frac[c] = irf.tail_fraction
            tail_tau[c] = irf.tail_tau_s
    return IrfTables(
        kind, sigma, tail_frac, tail_tau, hist_cdf, guide_table(hist_cdf), hist_bin, hist_offset
    )


def leakage_per_pulse(setup: Setup, power_w: float) -> np.ndarray:
    """Mean leaked laser counts per pulse on each detector."""
    det = setup.detection
    scale = (
        (power_w / det.leakage_reference_power_w) ** det.leakage_exponent if power_w > 0 else 0.0
    )
    return (
        np.array([d.leakage_rate_hz * scale for d in det.detectors]) / setup.excitation.rep_rate_hz
    )


def noise_events(
    setup: Setup,
    rng: np.random.Generator,
    *,
    first_pulse: int,
    n_pulses: int,
    leak_per_pulse: np.ndarray,
    irf: IrfTables,
) -> dict[str, np.ndarray]:
    """Dark counts, flat background and laser leakage of one block of pulses.

    Times are in seconds since the block start; arrays are not sorted.
    """
    period = setup.excitation.period_s
    span = n_pulses * period
    sigma_pulse = setup.excitation.pulse_fwhm_s * _FWHM_TO_SIGMA
    laser = setup.excitation.wavelength_m
    t, ch, proc, wl, pulse = [], [], [], [], []
    for c, d in enumerate(setup.detection.detectors):
        for rate, code in ((d.dark_rate_hz, 4), (d.background_rate_hz, 6)):
            k = int(rng.poisson(rate * span)) if rate > 0 else 0
            if k:
                t.append(rng.random(k) * span)
                ch.append(np.full(k, c, np.uint8))
                proc.append(np.full(k, code, np.uint8))
                wl.append(np.full(k, np.nan))
                pulse.append(np.full(k, -1, np.int64))
        mu = leak_per_pulse[c] * n_pulses
        k = int(rng.poisson(mu)) if mu > 0 else 0
        if k:
            idx = rng.integers(0, n_pulses, k)
            times = idx * period + d.delay_s
            if sigma_pulse > 0:
                times = times + sigma_pulse * rng.standard_normal(k)
            times = times + irf_samples(rng, c, k, *irf.args())
            t.append(times)
            ch.append(np.full(k, c, np.uint8))
            proc.append(np.full(k, 6, np.uint8))
            wl.append(np.full(k, laser))
            pulse.append(first_pulse + idx.astype(np.int64))
    if not t:
        return {
            "t": np.empty(0),
            "channel": np.empty(0, np.uint8),
            "process": np.empty(0, np.uint8),
            "wavelength_m": np.empty(0),
            "pulse": np.empty(0, np.int64),
        }
    return {
        "t": np.concatenate(t),
        "channel": np.concatenate(ch),
        "process": np.concatenate(proc),
        "wavelength_m": np.concatenate(wl),
        "pulse": np.concatenate(pulse),
    }
