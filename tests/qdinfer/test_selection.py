"""Selections: masks worked out by hand, composition, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import qdinfer
from qdinfer import channels, gate, select, state_intervals, time_window
from qdio import PhotonStream


@pytest.fixture
def stream():
    # sync 400 ns, 0.1 ns bins; channel 1 has a 2 ns cable delay
    ch = np.array([0, 0, 0, 1, 1, 1, 0, 1], np.uint8)
    mac = np.array([0, 1, 2, 3, 2_500_000, 2_500_001, 5_000_000, 5_000_001])
    mic = np.array([100, 110, 150, 120, 130, 170, 3000, 3999])
    return PhotonStream(ch, mac, mic, 400e-9, 0.1e-9, 4096)


def test_absolute_gate(stream):
    m = gate(min_s=12.5e-9, max_s=350e-9).mask(stream)
    assert m.tolist() == [False, False, True, False, True, True, True, False]


def test_gate_relative_to_irf_peak_per_channel(stream):
    peaks = qdinfer.irf_peak_bins(stream, smooth_bins=1)
    assert peaks == {0: 100, 1: 120}  # first of the tied maxima
    m = gate(min_s=2.5e-9, relative_to="irf_peak").mask(stream)
    # channel 0: microtime - 100 >= 25 bins; channel 1: microtime - 120 >= 25; the last
    # photon (387.9 ns after its peak) is 12.1 ns before the next pulse's peak: delays
    # wrap into [-0.05 P, 0.95 P), so it counts as early, not late
    assert m.tolist() == [False, False, True, False, False, True, True, False]


def test_irf_gate_wraps_late_photons_around_the_period():
    # IRF peak 10 ns before the end of a 12.5 ns period: a photon 5 ns after the
    # peak has a microtime of 2.5 ns (it wrapped) and is late, not early
    s = PhotonStream(
        np.zeros(4, np.uint8), np.arange(4), np.array([1100, 1100, 1100, 250]),
        12.5e-9, 1e-11, 4096,
    )  # fmt: skip
    peaks = qdinfer.irf_peak_bins(s, smooth_bins=1)
    assert peaks == {0: 1100}
    assert gate(min_s=2.5e-9, relative_to="irf_peak").mask(s).tolist() == [False] * 3 + [True]


def test_channels_time_window_state_intervals(stream):
    assert channels(1).mask(stream).tolist() == [False] * 3 + [True] * 3 + [False, True]
    assert channels([0, 1]).mask(stream).all()
    w = time_window(0.5, 1.5)  # seconds: macrotimes 1.25e6 .. 3.75e6
    assert w.mask(stream).tolist() == [False] * 4 + [True, True, False, False]
    s = state_intervals([0.0, 1.9], [0.5, 2.1], label="bright")
    assert s.mask(stream).tolist() == [True] * 4 + [False, False, True, True]


def test_composition(stream):
    sel = (channels(0) | gate(min_s=16e-9)) & ~time_window(1.9, 3.0)
    assert select(stream, sel).macrotime.tolist() == [0, 1, 2, 2_500_001]
    assert len(select(stream, qdinfer.everything())) == len(stream)
    assert select(stream, None) is stream
    with pytest.raises(TypeError, match="combine"):
        channels(0) & 3  # type: ignore[operator]


def test_bad_selections(stream):
    with pytest.raises(ValueError, match="max_s"):
        gate(min_s=5e-9, max_s=1e-9)
    with pytest.raises(ValueError, match="relative_to"):
        gate(relative_to="laser")
    with pytest.raises(ValueError, match="beyond the sync period"):
        gate(min_s=500e-9).mask(stream)
    with pytest.raises(ValueError, match="channel"):
        channels(300)
    with pytest.raises(ValueError, match="overlap"):
        state_intervals([0, 1], [2, 3])
    t2 = PhotonStream(np.zeros(2, np.uint8), np.array([1, 2]), None, 1e-12)
    with pytest.raises(ValueError, match="T3"):
        gate(min_s=1e-9).mask(t2)


def test_empty_selection_is_an_empty_stream(stream):
    empty = select(stream, channels(7))
    assert len(empty) == 0 and empty.microtime is not None
