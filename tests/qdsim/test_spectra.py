"""Spectra: wavelengths of detected photons, filtered channels, the spectrometer."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

import qdsim
from qdsim import LineShape, Process, Spectra, SpectralFilter
from qdsim import closed_forms as cf

SIGMA = 1 / (2 * math.sqrt(2 * math.log(2)))


def test_detected_wavelengths_follow_lines(h):
    setup = h.ideal_setup(eta_c=0.05)
    res = qdsim.simulate(setup, power_w=setup.power_for(5.0), duration_s=0.05, rng=61)
    t = res.truth
    sp = setup.spectra
    for proc, line in ((Process.X, sp.x), (Process.BX, sp.bx), (Process.SHELL, sp.shell)):
        wl = t.wavelength_m[t.process == proc]
        assert len(wl) > 300
        dist = stats.norm(line.center_m, line.fwhm_m * SIGMA)
        assert stats.kstest(wl, dist.cdf).pvalue > 1e-4, proc


def test_lorentzian_and_state_shift(h):
    spectra = dataclasses.replace(Spectra(), x=LineShape(640e-9, 10e-9, "lorentzian"))
    setup = dataclasses.replace(h.ideal_setup(eta_c=0.05), spectra=spectra)
    setup = h.with_state(setup, wavelength_shift_m=5e-9)
    res = qdsim.simulate(setup, power_w=setup.power_for(0.5), duration_s=0.1, rng=62)
    wl = res.truth.wavelength_m[res.truth.process == Process.X]
    # the grid (350-900 nm) cuts the Lorentzian's far tails: compare the truncated law
    dist = stats.cauchy(645e-9, 5e-9)
    lo, hi = dist.cdf(350e-9), dist.cdf(900e-9)
    assert stats.kstest(wl, lambda x: (dist.cdf(x) - lo) / (hi - lo)).pvalue > 1e-4


def test_band_resolved_channels(h):
    """Channel 0 sees the shell band (473-580 nm), channel 1 the core band (> 580 nm)."""
    n = 10.0
    blue = h.ideal_detector(filter=SpectralFilter(lo_m=473e-9, hi_m=580e-9))
    red = h.ideal_detector(filter=SpectralFilter(lo_m=580e-9))
    setup = h.ideal_setup(eta_c=0.01, detectors=[blue, red])
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=4.0, rng=63)
    e = cf.emitted_per_pulse(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    sp = setup.spectra

    def frac(line, lo, hi):
        d = stats.norm(line.center_m, line.fwhm_m * SIGMA)
        return d.cdf(hi) - d.cdf(lo)

    n_pulses = res.truth.n_pulses
    for c, (lo, hi) in enumerate(((473e-9, 580e-9), (580e-9, 900e-9))):
        mu = (
            0.01
            * 0.5
            * n_pulses
            * (
                e["x"] * frac(sp.x, lo, hi)
                + e["bx"] * frac(sp.bx, lo, hi)
                + e["shell"] * frac(sp.shell, lo, hi)
            )
        )
        count = int((res.stream.channel == c).sum())
        # per-pulse counts are independent; d(d-1) terms are ~1e-4 of the mean here
        assert abs(count - mu) < 5 * math.sqrt(1.01 * mu), (c, count, mu)
    shell_in_blue = np.mean(res.truth.process[res.stream.channel == 0] == Process.SHELL)
    assert shell_in_blue > 0.99


def test_spectrometer_band_fraction():
    """A_red / (A_red + A_blue) at 580 nm against the emitted photon numbers."""
    setup = qdsim.presets.paper_qd()
    n = 8.0
    res = qdsim.simulate(setup, power_w=setup.power_for(n), duration_s=5.0, rng=64)
    spec = res.spectrum
    assert spec.counts.dtype == np.int64 and spec.wavelength_m.shape == spec.counts.shape
    e = cf.emitted_per_pulse(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    sp = setup.spectra

    def band(line, lo, hi):
        d = stats.norm(line.center_m, line.fwhm_m * SIGMA)
        return d.cdf(hi) - d.cdf(lo)

    red = sum(e[k] * band(getattr(sp, k), 580e-9, 750e-9) for k in ("x", "bx", "shell"))
    blue = sum(e[k] * band(getattr(sp, k), 473e-9, 580e-9) for k in ("x", "bx", "shell"))
    expected = red / (red + blue)
    total = int(spec.counts[spec.wavelength_m > 473e-9].sum())
    assert total > 1e5
    measured = spec.red_fraction(580e-9)
    assert abs(measured - expected) < 5 * math.sqrt(expected * (1 - expected) / total)
    # the spectrometer counts 0.7 % of the emitted photons
    mu = 0.007 * res.truth.n_pulses * (red + blue)
    assert abs(total - mu) < 5 * math.sqrt(mu) + 1e-3 * mu
    # nothing below the 473 nm long pass
    assert spec.counts[spec.wavelength_m < 472e-9].sum() == 0
