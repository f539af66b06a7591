"""PhotonStream contract: validation, read-only storage, operations."""

from __future__ import annotations

import numpy as np
import pytest

import qdio
from qdio import Markers, PhotonStream, concatenate, select_channels, time_slice


def make(n=6, t3=True):
    ch = np.array([0, 1, 0, 1, 1, 0][:n], np.uint8)
    mac = np.array([0, 0, 5, 9, 9, 20][:n], np.int64)
    mic = np.array([1, 2, 3, 4, 5, 6][:n], np.int32) if t3 else None
    if t3:
        return PhotonStream(ch, mac, mic, 400e-9, 128e-12, 4096, {"source": "hand"})
    return PhotonStream(ch, mac, None, 1e-12)


def test_columns_are_readonly_views_and_caller_arrays_stay_writable():
    ch = np.array([0, 1], np.uint8)
    s = PhotonStream(ch, np.array([1, 2]), np.array([0, 0]), 1e-8, 1e-11, 10)
    assert not s.channel.flags.writeable and not s.macrotime.flags.writeable
    assert not s.microtime.flags.writeable
    ch[0] = 3  # the caller's array is still writable
    assert s.macrotime.dtype == np.int64 and s.microtime.dtype == np.int32
    with pytest.raises(TypeError):
        s.attrs["x"] = 1  # attrs are read-only too


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"macrotime": np.array([2, 1])}, "non-decreasing: row 1"),
        ({"microtime": np.array([0, 4096])}, "outside"),
        ({"microtime": np.array([-1, 0])}, "outside"),
        ({"channel": np.array([0, 256])}, "do not fit uint8"),
        ({"channel": np.array([0.0, 1.0])}, "integers"),
        ({"macrotime": np.array([1, 2, 3])}, "has 3 rows"),
        ({"macrotime_resolution_s": -1.0}, "must be a finite number > 0"),
        ({"macrotime_resolution_s": float("nan")}, "must be a finite number > 0"),
        ({"n_microtime_bins": 0}, "n_microtime_bins"),
        ({"channel": np.zeros((2, 1), np.uint8)}, "1-D"),
    ],
)
def test_invalid_columns_are_rejected_with_the_field_named(kwargs, match):
    args = {
        "channel": np.array([0, 1], np.uint8),
        "macrotime": np.array([1, 2]),
        "microtime": np.array([0, 1]),
        "macrotime_resolution_s": 4e-7,
        "microtime_resolution_s": 1.28e-10,
        "n_microtime_bins": 4096,
    }
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        PhotonStream(**args)


def test_t2_stream_must_not_carry_microtime_settings():
    with pytest.raises(ValueError, match="T2"):
        PhotonStream(np.zeros(1, np.uint8), np.zeros(1, np.int64), None, 1e-12, 1e-12, None)


def test_derived_values():
    s = make()
    assert len(s) == 6 and s.is_t3
    assert s.sync_rate_hz == pytest.approx(2.5e6)
    assert s.duration_s == pytest.approx(20 * 400e-9)
    assert s.counts_per_channel() == {0: 3, 1: 3}
    assert s.channels.tolist() == [0, 1]
    np.testing.assert_allclose(s.microtime_s(), np.arange(1, 7) * 128e-12)
    np.testing.assert_allclose(s.arrival_time_s(), s.macrotime * 400e-9 + s.microtime * 128e-12)
    t2 = make(t3=False)
    assert t2.sync_rate_hz is None
    with pytest.raises(ValueError, match="T3"):
        t2.microtime_s()


def test_select_channels_and_time_slice():
    s = make()
    a = select_channels(s, [1])
    assert a.macrotime.tolist() == [0, 9, 9] and a.microtime.tolist() == [2, 4, 5]
    assert a.attrs["source"] == "hand"
    assert len(select_channels(s, 7)) == 0
    with pytest.raises(ValueError, match="channels"):
        select_channels(s, -1)
    w = time_slice(s, 5 * 400e-9, 20 * 400e-9)  # [5, 20) in sync periods
    assert w.macrotime.tolist() == [5, 9, 9]
    assert time_slice(s, 0.0).macrotime.tolist() == s.macrotime.tolist()
    with pytest.raises(ValueError, match="start_s < stop_s"):
        time_slice(s, 1.0, 0.5)


def test_concatenate_rejoins_pieces_and_checks_compatibility():
    s = make()
    joined = concatenate([s.take(slice(0, 2)), s.take(slice(2, 6))])
    for name in ("channel", "macrotime", "microtime"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(s, name))
    with pytest.raises(ValueError, match="non-decreasing"):
        concatenate([s.take(slice(2, 6)), s.take(slice(0, 2))])
    with pytest.raises(ValueError, match="stream 1"):
        concatenate([s, make(t3=False)])
    with pytest.raises(ValueError, match="at least one"):
        concatenate([])


def test_take_requires_sorted_indices():
    s = make()
    assert s.take(np.array([0, 2])).macrotime.tolist() == [0, 5]
    with pytest.raises(ValueError, match="sorted"):
        s.take(np.array([2, 0]))


def test_markers():
    m = Markers(np.array([5, 3]), np.array([1, 3]))  # markers may be out of order
    assert len(m) == 2 and m.counts_per_bit() == {0: 2, 1: 1}
    assert len(Markers.empty()) == 0


def test_public_names():
    for name in (
        "read",
        "iter_chunks",
        "write_ptu",
        "write_photon_hdf5",
        "QdioError",
        "PhotonStream",
        "select_channels",
        "time_slice",
        "concatenate",
    ):
        assert hasattr(qdio, name), name
    assert issubclass(qdio.QdioError, ValueError)


def test_time_slice_exact_boundaries_at_large_tick_counts():
    # 1 ps tags at 17 ms: t / res is ~1.7e10, where a fixed 1e-9 tick tolerance fails
    s = PhotonStream(
        np.zeros(3, np.uint8), np.array([16_999_999_999, 17_000_000_000, 17_000_000_001]),
        None, 1e-12,
    )  # fmt: skip
    assert time_slice(s, 0.017).macrotime.tolist() == [17_000_000_000, 17_000_000_001]
    assert time_slice(s, 0.0, 0.017).macrotime.tolist() == [16_999_999_999]
    # every 10 ms start of a 400 ns T3 clock finds its own sync
    t3 = PhotonStream(np.zeros(1000, np.uint8), np.arange(1000) * 25_000, np.zeros(1000, np.int32),
                      400e-9, 1e-10, 4096)  # fmt: skip
    for k in range(0, 1000, 7):
        assert time_slice(t3, k * 0.01).macrotime[0] == k * 25_000


def test_laser_period_from_the_files_sync_rate():
    base = {
        "channel": np.zeros(1, np.uint8),
        "macrotime": np.array([1]),
        "microtime": np.array([0]),
        "microtime_resolution_s": 1e-10,
        "n_microtime_bins": 4096,
    }
    assert PhotonStream(macrotime_resolution_s=400e-9, **base).laser_period_s == 400e-9
    # TimeHarp 200 T3R: macrotime counts a 100 ns clock, the laser ran at 5 MHz
    t3r = PhotonStream(macrotime_resolution_s=100e-9, attrs={"sync_rate_hz": 5e6}, **base)
    assert t3r.laser_period_s == pytest.approx(200e-9)
    # a sync rate within 1 % of the macrotime clock is the same clock (integer rounding)
    ptu = PhotonStream(macrotime_resolution_s=12.8167e-9, attrs={"sync_rate_hz": 78022000}, **base)
    assert ptu.laser_period_s == 12.8167e-9
    assert make(t3=False).laser_period_s is None


def test_select_channels_empty_and_nan_bins_messages():
    with pytest.raises(ValueError, match="channels is empty"):
        select_channels(make(), [])
    with pytest.raises(ValueError, match="n_microtime_bins"):
        PhotonStream(np.zeros(1, np.uint8), np.array([1]), np.array([0]), 1e-8, 1e-11,
                     float("nan"))  # fmt: skip
