"""Intensity traces, their histograms and photon rates: by hand and for Poisson photons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import qdinfer
from qdinfer import count_rates, intensity_histogram, intensity_trace
from qdio import PhotonStream


def test_trace_by_hand():
    # 1 ms macrotime clock; photons at 0, 1, 5, 6, 12, 13 ms; 5 ms bins
    s = PhotonStream(
        np.array([0, 1, 0, 0, 1, 0], np.uint8), np.array([0, 1, 5, 6, 12, 13]), None, 1e-3
    )
    t = intensity_trace(s, bin_width_s=5e-3)
    assert t.counts.tolist() == [2, 2]  # the partial bin [10, 15) ms is left out
    assert t.edges_s.tolist() == pytest.approx([0, 5e-3, 10e-3])
    assert t.rate_hz.tolist() == pytest.approx([400.0, 400.0])
    t1 = intensity_trace(s, bin_width_s=5e-3, selection=qdinfer.channels(1))
    assert t1.counts.tolist() == [1, 0] and len(t1) == len(t)  # same bins for any selection
    t3 = intensity_trace(s, bin_width_s=2.5e-3)  # non-integer number of clock ticks
    assert t3.counts.tolist() == [2, 0, 2, 0, 1]
    assert len(intensity_trace(s, bin_width_s=1.0)) == 0  # shorter than one bin: empty
    with pytest.raises(ValueError, match="bin_width_s"):
        intensity_trace(s, bin_width_s=0)


def test_intensity_histogram():
    t = qdinfer.IntensityTrace(np.array([0, 2, 2, 3, 7]), np.arange(6) * 0.01)
    h = intensity_histogram(t)
    assert h.occurrences.tolist() == [1, 0, 2, 1, 0, 0, 0, 1]
    assert h.centers.tolist() == list(range(8)) and h.bin_width_s == pytest.approx(0.01)
    h2 = intensity_histogram(t, bins=2)
    assert h2.occurrences.tolist() == [4, 1]
    empty = intensity_histogram(qdinfer.IntensityTrace(np.zeros(0, np.int64), np.zeros(1)))
    assert empty.occurrences.tolist() == [0]


def test_rates_by_hand_and_with_time_windows():
    s = PhotonStream(np.array([0, 1, 0, 0], np.uint8), np.array([0, 10, 20, 99]), None, 1e-3)
    r = count_rates(s)
    assert r.duration_s == pytest.approx(0.1)  # macrotimes 0..99 ms: 100 ms
    assert r.counts == {0: 3, 1: 1} and r.rate_hz[0] == pytest.approx(30.0)
    assert r.rate_stderr_hz[0] == pytest.approx(math.sqrt(3) / 0.1)
    w = count_rates(s, selection=qdinfer.time_window(0, 0.05))
    assert w.duration_s == pytest.approx(0.05) and w.counts == {0: 2, 1: 1}
    assert count_rates(s, duration_s=2.0).rate_hz[1] == pytest.approx(0.5)
    # one photon, or photons at a single macrotime, span no time: no rate without duration_s
    one = PhotonStream(np.zeros(1, np.uint8), np.array([5]), None, 1e-3)
    with pytest.raises(ValueError, match="span no time"):
        count_rates(one)
    assert count_rates(one, duration_s=0.5).rate_hz[0] == pytest.approx(2.0)
    same = PhotonStream(np.zeros(3, np.uint8), np.array([7, 7, 7]), None, 1e-12)
    with pytest.raises(ValueError, match="span no time"):
        count_rates(same)
    empty = PhotonStream(np.zeros(0, np.uint8), np.zeros(0, np.int64), None, 1e-3)
    with pytest.raises(ValueError, match="span no time"):
        count_rates(empty)


def test_poisson_trace_statistics():
    # 20 kHz Poisson photons in 10 ms bins: counts ~ Poisson(200); mean and a
    # dispersion test (variance / mean = 1 within its sampling error)
    rng = np.random.default_rng(1)
    T, rate = 20.0, 2e4
    mac = np.sort(rng.integers(0, round(T / 1e-9), rng.poisson(rate * T)))
    s = PhotonStream(np.zeros(mac.size, np.uint8), mac, None, 1e-9)
    t = intensity_trace(s)
    assert len(t) == 1999 or len(t) == 2000
    assert abs(t.counts.mean() - 200) < 5 * math.sqrt(200 / len(t))
    disp = float(np.sum((t.counts - t.counts.mean()) ** 2) / t.counts.mean())
    assert stats.chi2.sf(disp, len(t) - 1) > 1e-4 and stats.chi2.cdf(disp, len(t) - 1) > 1e-4
    r = count_rates(s)
    assert abs(r.rate_hz[0] - rate) < 5 * r.rate_stderr_hz[0]


def test_a_trace_bin_too_small_is_a_clear_error():
    s = PhotonStream(np.zeros(2, np.uint8), np.array([0, 10**12]), None, 1e-12)  # 1 s
    with pytest.raises(ValueError, match="bin_width_s=1e-09 would need 1e"):
        intensity_trace(s, bin_width_s=1e-9)
