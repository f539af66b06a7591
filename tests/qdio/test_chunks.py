"""iter_chunks gives exactly read()'s photons, with macrotimes continuous across borders."""

from __future__ import annotations

import numpy as np
import pytest

import qdio

from conftest import shared_file
from ptu_build import build_ptu, ht3, pt3


def _assert_same(a: qdio.PhotonStream, b: qdio.PhotonStream) -> None:
    np.testing.assert_array_equal(a.channel, b.channel)
    np.testing.assert_array_equal(a.macrotime, b.macrotime)
    if a.microtime is None:
        assert b.microtime is None
    else:
        np.testing.assert_array_equal(a.microtime, b.microtime)
    assert a.macrotime_resolution_s == b.macrotime_resolution_s
    assert a.microtime_resolution_s == b.microtime_resolution_s
    assert a.n_microtime_bins == b.n_microtime_bins


def _check_chunks(path, max_records):
    whole = qdio.read(path, with_markers=True)
    chunks = list(qdio.iter_chunks(path, max_records=max_records, with_markers=True))
    n_records = whole.stream.attrs.get("n_records")
    if n_records is not None:
        assert len(chunks) == max(1, -(-n_records // max_records)) or n_records == 0
    joined = qdio.concatenate([c.stream for c in chunks])
    _assert_same(joined, whole.stream)
    mk_t = np.concatenate([c.markers.macrotime for c in chunks])
    np.testing.assert_array_equal(mk_t, whole.markers.macrotime)
    if "n_overflow_records" in whole.stream.attrs and chunks:
        last = chunks[-1].stream.attrs
        assert last["n_overflow_records"] == whole.stream.attrs["n_overflow_records"]


@pytest.mark.parametrize("max_records", [1, 2, 3, 5, 100])
def test_chunk_borders_inside_overflow_runs(tmp_path, max_records):
    recs = [pt3(1, 1, 10), pt3(15, 0, 0), pt3(15, 0, 0), pt3(15, 3, 4), pt3(2, 9, 0),
            pt3(15, 0, 0), pt3(1, 0, 65535), pt3(1, 2, 65535)]  # fmt: skip
    _check_chunks(build_ptu(tmp_path / "a.ptu", recs), max_records)


@pytest.mark.parametrize("max_records", [1, 4, 1000])
def test_chunks_hydraharp_multi_overflow(tmp_path, max_records):
    rng = np.random.default_rng(7)
    recs = []
    for _ in range(300):
        if rng.random() < 0.3:
            recs.append(ht3(1, 63, 0, int(rng.integers(0, 1024))))
        else:
            recs.append(ht3(0, int(rng.integers(0, 4)), int(rng.integers(0, 32768)), 0))
    # photons with nsync 0 after each overflow keep the macrotime non-decreasing
    _check_chunks(build_ptu(tmp_path / "h.ptu", recs, rec_type=0x01010304), max_records)


def test_bad_chunk_size(tmp_path):
    path = build_ptu(tmp_path / "a.ptu", [pt3(1, 1, 1)])
    with pytest.raises(ValueError, match="max_records"):
        next(qdio.iter_chunks(path, max_records=0))


REAL = [
    "napari_flim/ptu_stack_FLIM_z1.ptu",
    "libpicoquant/hydraharp_v30_t2.ptu",
    "full_sms/trace0.pt3",
    "fcs_point_correlator/topfluorPE_2_1_1_1.pt3",
    "libpicoquant/hydraharp_v20.ht3",
    "libpicoquant/timeharp_v50.t3r",
    "bh_spc/phconvert_test_noise.spc",
    "derived/topfluorPE_2_1_1_1_photon-hdf5.h5",
]


@pytest.mark.parametrize("name", REAL)
def test_real_files_chunked_equal_whole(name):
    _check_chunks(shared_file(name), 12_345)
