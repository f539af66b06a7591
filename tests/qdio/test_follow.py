"""Following a PTU file while it is written: the chunks equal qdio.read of the finished file."""

from __future__ import annotations

import itertools
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import qdio
from qdio.follow import PtuFollower, follow
from qdio.ptu import ptu_source

from ptu_build import build_ptu


def _stream(rng, n=30_000, t3=True):
    """Two channels over ~3e5 syncs (several 65536-sync overflows), with markers."""
    mac = np.sort(rng.integers(0, 300_000, n))
    ch = rng.integers(0, 2, n).astype(np.uint8)
    if t3:
        mic = rng.integers(0, 3000, n)
        return qdio.PhotonStream(ch, mac, mic, 400e-9, 128e-12, 4096)
    return qdio.PhotonStream(ch, mac * 1000, None, 1e-12)


def _live_copy(path: Path) -> tuple[bytes, int]:
    """The file's bytes with the header record count set to 0 (as while acquiring)."""
    data = bytearray(path.read_bytes())
    src = ptu_source(path)
    at = data.index(b"TTResult_NumberOfRecords") + 40
    data[at : at + 8] = struct.pack("<q", 0)
    return bytes(data), src.data_offset


@pytest.fixture(scope="module")
def t3_file(tmp_path_factory):
    rng = np.random.default_rng(1)
    stream = _stream(rng)
    markers = qdio.Markers(np.sort(rng.integers(0, 300_000, 20)), rng.integers(1, 4, 20))
    path = tmp_path_factory.mktemp("follow") / "whole.ptu"
    qdio.write_ptu(path, stream, markers=markers, record_type="picoharp_t3")
    return path


class _Counting:
    """A file object that counts the bytes read through it (to check nothing is read twice)."""

    def __init__(self, f) -> None:
        self.f = f
        self.n = 0

    def readinto(self, buf):
        k = self.f.readinto(buf)
        self.n += k or 0
        return k

    def read(self, n):
        out = self.f.read(n)
        self.n += len(out)
        return out

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_pieces_cut_anywhere_equal_read(tmp_path, t3_file):
    data, offset = _live_copy(t3_file)
    live = tmp_path / "live.ptu"
    live.write_bytes(b"")
    # cuts inside the magic, inside a tag, just before and after Header_End, inside a
    # record (several times), and whole-record borders
    cuts = [0, 3, 100, offset - 1, offset, offset + 2, offset + 4003, offset + 4004]
    cuts += [offset + 70_001, offset + 70_002, len(data) - 1, len(data)]
    chunks = []
    with PtuFollower(live, max_records=5000, with_markers=True) as f:
        for a, b in itertools.pairwise(cuts):
            with open(live, "ab") as w:
                w.write(data[a:b])
            while (r := f.poll()) is not None:
                chunks.append(r)
            if f.source is None:
                assert b < offset  # waits while the header is incomplete
            else:
                assert f.offset == offset + (b - offset) // 4 * 4  # a partial record waits
                assert f.backlog_records == 0
            assert not f.finished  # the header count is 0: not final
        assert f.header_records == 0
    whole = qdio.read(t3_file, with_markers=True)
    got = qdio.concatenate([c.stream for c in chunks])
    for col in ("channel", "macrotime", "microtime"):
        np.testing.assert_array_equal(getattr(got, col), getattr(whole.stream, col))
    mk_t = np.concatenate([c.markers.macrotime for c in chunks])
    mk_b = np.concatenate([c.markers.bits for c in chunks])
    np.testing.assert_array_equal(mk_t, whole.markers.macrotime)
    np.testing.assert_array_equal(mk_b, whole.markers.bits)
    # every record byte read exactly once (the header is parsed once, by name)
    n_rec = (len(data) - offset) // 4
    assert f.bytes_read == 4 * n_rec and f.n_records == n_rec
    record_reads = [c.stream.attrs["chunk_first_record"] for c in chunks]
    assert record_reads == sorted(record_reads) and record_reads[0] == 0
    assert max(len(c.stream) for c in chunks) <= 5000  # max_records bounds each poll
    last = chunks[-1].stream.attrs
    assert last["n_overflow_records"] == whole.stream.attrs["n_overflow_records"]


def test_bytes_read_once(tmp_path, t3_file):
    data, offset = _live_copy(t3_file)
    live = tmp_path / "live.ptu"
    live.write_bytes(data[: offset + 10])
    with PtuFollower(live) as f:
        f.poll()  # header and the first two records
        counter = f._f = _Counting(f._f)
        for stop in (offset + 50_000, offset + 50_001, len(data)):
            with open(live, "ab") as w:
                w.write(data[os.path.getsize(live) : stop])
            while f.poll() is not None:
                pass
        # only the new records were read, plus 8 bytes of header record count per
        # finished-check (none here: poll never asks) -- nothing else
        assert counter.n == len(data) - offset - 8
        assert f.n_photons == len(qdio.read(t3_file))


def test_t2_and_hydraharp(tmp_path):
    rng = np.random.default_rng(2)
    s = _stream(rng, 20_000, t3=False)
    path = qdio.write_ptu(tmp_path / "t2.ptu", s, record_type="hydraharp_v2_t2")
    data, _ = _live_copy(path)
    live = tmp_path / "live_t2.ptu"
    live.write_bytes(b"")
    chunks = []
    with PtuFollower(live) as f:
        for stop in range(0, len(data) + 7001, 7001):
            with open(live, "ab") as w:
                w.write(data[os.path.getsize(live) : stop])
            while (c := f.poll()) is not None:
                chunks.append(c)
    got = qdio.concatenate(chunks)
    np.testing.assert_array_equal(got.macrotime, s.macrotime)
    np.testing.assert_array_equal(got.channel, s.channel)
    assert got.microtime is None and chunks[0].attrs["measurement_mode"] == "T2"


def test_follow_with_a_writer_thread(tmp_path, t3_file):
    """A writer appends pieces (some ending mid-record) while follow() reads."""
    data, offset = _live_copy(t3_file)
    live = tmp_path / "live.ptu"
    live.write_bytes(b"")
    rng = np.random.default_rng(3)
    cuts = np.unique(np.concatenate([[0, 50, offset + 1], rng.integers(0, len(data), 25)]))
    cuts = [*cuts.tolist(), len(data)]

    def writer():
        with open(live, "ab") as w:
            for a, b in itertools.pairwise(cuts):
                w.write(data[a:b])
                w.flush()
                time.sleep(0.01)

    th = threading.Thread(target=writer)
    th.start()
    try:
        chunks = list(follow(live, poll_interval_s=0.005, idle_timeout_s=0.3))
    finally:
        th.join()
    got = qdio.concatenate(chunks)
    whole = qdio.read(t3_file)
    np.testing.assert_array_equal(got.macrotime, whole.macrotime)
    np.testing.assert_array_equal(got.microtime, whole.microtime)


def test_idle_stop_and_final_count(tmp_path, t3_file):
    data, _ = _live_copy(t3_file)
    live = tmp_path / "live.ptu"
    live.write_bytes(data)
    t = time.monotonic()
    n = sum(len(c) for c in follow(live, poll_interval_s=0.02, idle_timeout_s=0.25))
    waited = time.monotonic() - t
    assert n == len(qdio.read(t3_file))
    assert 0.25 <= waited < 3.0  # stopped by the idle timeout
    # a header with its final record count: stops as soon as every record is read,
    # without waiting (no idle timeout at all)
    t = time.monotonic()
    n = sum(len(c) for c in follow(t3_file, poll_interval_s=0.02, idle_timeout_s=None))
    assert n == len(qdio.read(t3_file)) and time.monotonic() - t < 2.0
    # the header never completes: a clear error at the idle stop
    partial = tmp_path / "partial.ptu"
    partial.write_bytes(data[:200])
    with pytest.raises(qdio.QdioError, match="no complete PTU header"):
        list(follow(partial, poll_interval_s=0.02, idle_timeout_s=0.1))
    with pytest.raises(ValueError, match="poll_interval_s"):
        next(follow(live, poll_interval_s=0))


def test_truncated_replaced_deleted(tmp_path, t3_file):
    data, offset = _live_copy(t3_file)
    live = tmp_path / "live.ptu"
    live.write_bytes(data[: offset + 4000])
    with PtuFollower(live) as f:
        assert len(f.poll()) > 0
        with open(live, "r+b") as w:
            w.truncate(offset + 400)
        with pytest.raises(qdio.QdioError, match=r"live\.ptu: file shrank from .* to .* bytes"):
            f.poll()
    live.write_bytes(data[: offset + 4000])
    with PtuFollower(live) as f:
        f.poll()
        other = tmp_path / "other.ptu"
        other.write_bytes(data)
        os.replace(other, live)
        with pytest.raises(qdio.QdioError, match="replaced by another file"):
            f.poll()
    with PtuFollower(live) as f:
        f.poll()
        live.unlink()
        with pytest.raises(qdio.QdioError, match="deleted while being followed"):
            f.poll()
    with pytest.raises(ValueError, match="closed"):
        f.poll()


def test_not_ptu_and_bad_header(tmp_path):
    with pytest.raises(FileNotFoundError):
        PtuFollower(tmp_path / "missing.ptu")
    junk = tmp_path / "junk.ptu"
    junk.write_bytes(b"not a tttr file at all")
    with PtuFollower(junk) as f, pytest.raises(qdio.QdioError, match=r"junk\.ptu: not a PTU"):
        f.poll()
    h5 = tmp_path / "s.h5"
    qdio.write_photon_hdf5(h5, _stream(np.random.default_rng(4), 100))
    with PtuFollower(h5) as f, pytest.raises(qdio.QdioError, match="a Photon-HDF5 file"):
        f.poll()
    bad = build_ptu(tmp_path / "bad.ptu", [1, 2, 3], rec_type=0x00ABCDEF)
    with PtuFollower(bad) as f, pytest.raises(qdio.QdioError, match="TTTRRecType"):
        f.poll()
    empty = tmp_path / "empty.ptu"
    empty.write_bytes(b"PQTT")  # a prefix of the magic: wait
    with PtuFollower(empty) as f:
        assert f.poll() is None and f.source is None
    with pytest.raises(ValueError, match="max_records"):
        PtuFollower(empty, max_records=0)
