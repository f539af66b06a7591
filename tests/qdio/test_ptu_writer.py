"""PtuWriter: chunk-by-chunk PTU writing gives what write_ptu gives, atomically."""

from __future__ import annotations

import numpy as np
import pytest

import qdio
from qdio.ptu import PtuWriter

from conftest import shared_file


def _same(a, b):
    np.testing.assert_array_equal(a.channel, b.channel)
    np.testing.assert_array_equal(a.macrotime, b.macrotime)
    np.testing.assert_array_equal(a.microtime, b.microtime)


@pytest.mark.parametrize("record_type", ["picoharp_t3", "hydraharp_v2_t3"])
def test_chunked_writing_of_a_real_file_with_markers(tmp_path, record_type):
    src = shared_file("napari_flim/ptu_stack_FLIM_z1.ptu")
    whole = qdio.read(src, with_markers=True)
    out = tmp_path / "chunked.ptu"
    s = whole.stream
    with PtuWriter(
        out,
        record_type=record_type,
        macrotime_resolution_s=s.macrotime_resolution_s,
        microtime_resolution_s=s.microtime_resolution_s,
    ) as w:
        for chunk in qdio.iter_chunks(src, max_records=10_007, with_markers=True):
            w.write(chunk.stream, chunk.markers)
    back = qdio.read(out, with_markers=True)
    _same(back.stream, s)
    np.testing.assert_array_equal(back.markers.macrotime, whole.markers.macrotime)
    np.testing.assert_array_equal(back.markers.bits, whole.markers.bits)
    tags = back.stream.attrs["tags"]
    assert tags["TTResult_NumberOfRecords"] == back.stream.attrs["n_records"]
    assert tags["MeasDesc_AcquisitionTime"] == round(
        int(max(s.macrotime[-1], whole.markers.macrotime.max())) * s.macrotime_resolution_s * 1e3
    )
    # the same bytes after the header as one write_ptu call
    one = qdio.write_ptu(tmp_path / "one.ptu", s, record_type=record_type, markers=whole.markers)
    off = back.stream.attrs["n_records"] * 4
    assert one.read_bytes()[-off:] == out.read_bytes()[-off:]


def test_blocks_larger_than_the_encode_block(tmp_path, monkeypatch):
    monkeypatch.setattr(qdio.ptu, "_ENCODE_BLOCK", 3)
    rng = np.random.default_rng(1)
    mac = np.cumsum(rng.integers(0, 200_000, 50))
    s = qdio.PhotonStream(
        rng.integers(0, 4, 50).astype(np.uint8), mac, rng.integers(0, 4096, 50), 1e-8, 4e-12, 4096
    )
    mk = qdio.Markers(np.sort(rng.integers(0, int(mac[-1]) + 5, 9)), rng.integers(1, 16, 9))
    back = qdio.read(qdio.write_ptu(tmp_path / "b.ptu", s, markers=mk), with_markers=True)
    _same(back.stream, s)
    np.testing.assert_array_equal(back.markers.macrotime, mk.macrotime)


def test_writer_rejects_time_going_back_and_leaves_nothing(tmp_path):
    s = qdio.PhotonStream(
        np.zeros(2, np.uint8), np.array([10, 20]), np.zeros(2, np.int32), 1e-8, 1e-11, 4096
    )
    out = tmp_path / "x.ptu"
    with pytest.raises(ValueError, match="goes back"):
        with PtuWriter(out, macrotime_resolution_s=1e-8, microtime_resolution_s=1e-11) as w:
            w.write(s)
            w.write(s)
    assert list(tmp_path.iterdir()) == []


def test_writer_checks_resolutions_and_mode(tmp_path):
    s = qdio.PhotonStream(
        np.zeros(1, np.uint8), np.array([1]), np.zeros(1, np.int32), 1e-8, 1e-11, 4096
    )
    with pytest.raises(ValueError, match="T3 format"):
        PtuWriter(tmp_path / "a.ptu", macrotime_resolution_s=1e-8)
    with pytest.raises(ValueError, match="resolutions"):
        with PtuWriter(
            tmp_path / "a.ptu", macrotime_resolution_s=2e-8, microtime_resolution_s=1e-11
        ) as w:
            w.write(s)
    assert list(tmp_path.iterdir()) == []


def test_markers_slightly_out_of_order_across_writes_are_moved_up(tmp_path):
    # HydraHarp T3 wraps every 1024 syncs: a marker of the next chunk at sync 10,
    # after photons up to sync 1500 were written, lies before the written overflow
    s1 = qdio.PhotonStream(np.zeros(1, np.uint8), np.array([1500]), np.zeros(1, np.int32),
                           1e-8, 1e-11, 32768)  # fmt: skip
    s2 = qdio.PhotonStream(np.zeros(1, np.uint8), np.array([1600]), np.zeros(1, np.int32),
                           1e-8, 1e-11, 32768)  # fmt: skip
    out = tmp_path / "m.ptu"
    with PtuWriter(out, record_type="hydraharp_v2_t3", macrotime_resolution_s=1e-8,
                   microtime_resolution_s=1e-11) as w:  # fmt: skip
        w.write(s1)
        with pytest.warns(qdio.QdioWarning, match="moved to macrotime 1024"):
            w.write(s2, qdio.Markers(np.array([10]), np.array([1])))
    back = qdio.read(out, with_markers=True)
    assert back.stream.macrotime.tolist() == [1500, 1600]
    assert back.markers.macrotime.tolist() == [1024]


def test_missing_output_folder_names_the_users_path(tmp_path):
    s = qdio.PhotonStream(np.zeros(1, np.uint8), np.array([1]), np.zeros(1, np.int32),
                          1e-8, 1e-11, 4096)  # fmt: skip
    target = tmp_path / "nodir" / "x.ptu"
    with pytest.raises(FileNotFoundError, match="nodir does not exist"):
        qdio.write_ptu(target, s)
