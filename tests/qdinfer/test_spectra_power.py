"""Spectra (readers, band areas, peak, centroid, shift) and power-series tables."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

from qdinfer import (
    PowerPoint,
    Spectrum,
    band_areas,
    centroid_wavelength,
    classify_power_response,
    measure_power_point,
    peak_wavelength,
    power_series,
    read_spectrum,
    spectral_shift,
)


def _load_sources():
    path = Path(__file__).with_name("qdinfer_sources.py")
    spec = importlib.util.spec_from_file_location("qdinfer_sources", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


src = _load_sources()


def two_lines(wl_nm, shift_nm=0.0):
    """Shell line at 520 nm (area 1) and core line at 635 nm (area 3), sigma 10 nm."""
    g = lambda c, a: a * np.exp(-0.5 * ((wl_nm - c) / 10) ** 2) / (10 * math.sqrt(2 * math.pi))  # noqa: E731
    return g(520, 1.0) + g(635 + shift_nm, 3.0)


def test_read_text_and_csv(tmp_path):
    wl = np.arange(450, 750, 0.5)
    y = two_lines(wl)
    (tmp_path / "a.txt").write_text(
        "# spectrometer export\nwavelength intensity\n"
        + "\n".join(f"{a} {b}" for a, b in zip(wl, y, strict=True))
    )
    (tmp_path / "b.csv").write_text(
        "Wavelength (nm),Counts\n" + "\n".join(f"{a},{b}" for a, b in zip(wl, y, strict=True))
    )
    (tmp_path / "c.csv").write_text(
        "\n".join(
            f"{str(a).replace('.', ',')};{str(b).replace('.', ',')}"
            for a, b in zip(wl, y, strict=True)
        )
    )
    for name in ("a.txt", "b.csv", "c.csv"):
        s = read_spectrum(tmp_path / name)
        assert len(s) == len(wl)
        np.testing.assert_allclose(s.wavelength_m, wl * 1e-9)
        np.testing.assert_allclose(s.intensity, y, rtol=1e-12)
    um = read_spectrum(tmp_path / "b.csv", wavelength_unit="um")
    assert um.wavelength_m[0] == pytest.approx(450e-6)
    (tmp_path / "bad.txt").write_text("1 2\n3 x\n")
    with pytest.raises(ValueError, match="row 2"):
        read_spectrum(tmp_path / "bad.txt")
    (tmp_path / "none.txt").write_text("header only\n")
    with pytest.raises(ValueError, match="no numeric"):
        read_spectrum(tmp_path / "none.txt")
    with pytest.raises(ValueError, match="wavelength_unit"):
        read_spectrum(tmp_path / "a.txt", wavelength_unit="inch")


def test_band_areas_against_the_closed_form():
    wl = np.arange(400, 800, 0.25)
    s = Spectrum(wl * 1e-9, two_lines(wl))
    split = 580.0
    # exact areas of the Gaussians on each side of the split
    below = 1.0 * 0.5 * (1 + erf((split - 520) / (10 * math.sqrt(2))))
    below += 3.0 * 0.5 * (1 + erf((split - 635) / (10 * math.sqrt(2))))
    ba = band_areas(s, split * 1e-9, counts=False)
    assert ba.blue * 1e9 == pytest.approx(below, rel=1e-4)  # trapezoid, 0.25 nm steps
    assert ba.red_fraction == pytest.approx((4 - below) / 4, rel=1e-4)
    assert ba.red_fraction_stderr == 0.0
    # split between two samples: the interpolated point splits the areas exactly
    ba2 = band_areas(s, 580.1e-9, counts=False)
    assert ba2.blue + ba2.red == pytest.approx(ba.blue + ba.red, rel=1e-12)
    # a constant baseline changes nothing once removed
    ba3 = band_areas(
        Spectrum(s.wavelength_m, s.intensity + 0.5), split * 1e-9, baseline=0.5, counts=False
    )
    assert ba3.red_fraction == pytest.approx(ba.red_fraction, rel=1e-9)
    with pytest.raises(ValueError, match="split_m"):
        band_areas(s, 900e-9)


def test_red_fraction_error_for_counts():
    # Poisson counts: the stated error matches the spread over 300 noisy copies
    rng = np.random.default_rng(1)
    wl = np.arange(450, 750, 1.0)
    mean = two_lines(wl) * 2e4
    fr = [
        band_areas(Spectrum(wl * 1e-9, rng.poisson(mean)), 580e-9).red_fraction for _ in range(300)
    ]
    ba = band_areas(Spectrum(wl * 1e-9, rng.poisson(mean)), 580e-9)
    # the sd of 300 samples is known to ~ 1/sqrt(2 * 299) = 4 %: 25 % is > 5 sigma
    assert np.std(fr, ddof=1) == pytest.approx(ba.red_fraction_stderr, rel=0.25)


def test_peak_centroid_and_shift():
    wl = np.arange(600, 680, 0.5)
    spectra = [Spectrum(wl * 1e-9, two_lines(wl, shift)) for shift in (0.0, -1.0, -2.0, -3.0)]
    assert peak_wavelength(spectra[0]) == pytest.approx(635e-9, abs=1e-12)
    assert peak_wavelength(spectra[0], range_m=(600e-9, 660e-9)) == pytest.approx(635e-9, abs=1e-12)
    assert centroid_wavelength(spectra[0], range_m=(605e-9, 665e-9)) == pytest.approx(
        635e-9, abs=1e-11
    )
    sh = spectral_shift(spectra, [1e-7, 2e-7, 3e-7, 4e-7])
    assert sh.shift_m == pytest.approx(-3e-9, abs=1e-12)
    assert sh.slope_m_per_w == pytest.approx(-1e-9 / 1e-7, rel=1e-6)
    with pytest.raises(ValueError, match="spectral_shift"):
        spectral_shift(spectra[:1], [1e-7])
    with pytest.raises(ValueError, match="distinct"):
        Spectrum([1e-7, 1e-7], [1, 2])


def test_classify_power_response():
    p = [1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 2e-6, 4e-6]
    r = [1e3, 3e3, 1e4, 1.8e4, 3.5e4, 3.0e4, 2.0e4]
    assert classify_power_response(p, r).tolist() == [
        "usual",
        "usual",
        "usual",
        "saturating",
        "saturating",
        "unusual",
        "unusual",
    ]
    # a dip within the errors is not "unusual"
    noisy = classify_power_response([1, 2], [100.0, 99.0], [5.0, 5.0])
    assert noisy.tolist() == ["saturating", "saturating"]
    # order of the input is kept
    assert classify_power_response([4, 1, 2], [1.0, 1.0, 2.0]).tolist() == [
        "unusual",
        "usual",
        "usual",
    ]
    with pytest.raises(ValueError, match="power_w"):
        classify_power_response([0.0, 1.0], [1.0, 2.0])


def test_measure_power_point_against_closed_forms():
    # weak and strong pumping of the reduced model: g2(0) ungated and gated
    points = []
    for n_mean, power in ((0.3, 1e-7), (3.0, 1e-6)):
        rng = np.random.default_rng(int(n_mean * 10))
        s = src.cascade_stream(
            rng,
            n_pulses=2_000_000,
            n_mean=n_mean,
            tau_x_s=20e-9,
            eta_c=0.1,
            t0_s=3e-9,
            irf_sigma_s=30e-12,
        )
        pt = measure_power_point(s, power, gate_s=2.5e-9, n_exp=2)
        truth = src.g2_reduced(n_mean, 1.0, 0.3)
        gated = src.g2_gated(n_mean, 1.0, 0.3, 20e-9, 2e-9, 2.5e-9)
        assert abs(pt.g2_zero - truth) < 5 * pt.g2_zero_stderr
        # the gate is measured from the IRF peak (3 ns here, +-1 bin of jitter)
        assert abs(pt.g2_zero_gated - gated) < 5 * pt.g2_zero_gated_stderr + 0.01
        # photons per pulse: eta_c E[m] with E[m] = P(>=1) + 0.3 P(>=2)
        e_m = (1 - math.exp(-n_mean)) + 0.3 * (1 - math.exp(-n_mean) * (1 + n_mean))
        assert abs(pt.rate_hz - 0.1 * e_m * 2.5e6) < 5 * pt.rate_stderr_hz + 0.002 * pt.rate_hz
        # the slow component is the X (the X after a BX rises with 2 ns: not exactly
        # a sum of positive exponentials, so allow 3 % besides the error)
        assert abs(pt.tau_s - 20e-9) < 5 * pt.tau_stderr_s + 0.03 * 20e-9
        assert pt.notes == ()
        points.append(pt)
    series = power_series(points)
    assert series.power_w.tolist() == [1e-7, 1e-6]
    assert series.region.tolist() == ["saturating", "saturating"]  # 10x power, < 4x rate
    assert series.as_dict()["g2_zero"][0] == pytest.approx(points[0].g2_zero)
    assert series.regions() == [("saturating", 1e-7, 1e-6)]


def test_power_point_with_too_few_photons_is_explicit():
    rng = np.random.default_rng(2)
    s = src.cascade_stream(rng, n_pulses=300, eta_c=0.1)
    pt = measure_power_point(s, 1e-7)
    # 23 photons: g2(0) is measured, with an honest error (or left NaN with a note)
    assert pt.g2_zero_stderr > 0.2 or any(n.startswith("g2_zero") for n in pt.notes)
    assert math.isnan(pt.tau_s) and any(n.startswith("lifetime") for n in pt.notes)
    assert pt.rate_hz > 0
    series = power_series([pt, PowerPoint(2e-7, rate_hz=2 * pt.rate_hz)])
    assert len(series) == 2 and series.notes[0] == pt.notes
    with pytest.raises(ValueError, match="at least one"):
        power_series([])
