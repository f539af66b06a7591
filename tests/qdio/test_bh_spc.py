"""Becker & Hickl SPC FIFO files: hand-built records, the .set companion, real data, oracles."""

from __future__ import annotations

import datetime as dt
import struct
import warnings

import numpy as np
import pytest

import qdio
from qdio import QdioError, QdioWarning
from qdio.bh_spc import bh_spc_source, parse_set_file

from conftest import shared_file

REAL = "bh_spc/phconvert_test_noise.spc"

# ------------------------------------------------------------------ builders --

INVALID, MTOV, GAP, MARK = 1 << 31, 1 << 30, 1 << 29, 1 << 28


def rec(mt: int, rout: int = 0, adc: int = 0, *flags: int) -> int:
    """One 32-bit FIFO record: INVALID MTOV GAP MARK | ADC:12 | ROUT:4 | MT:12."""
    word = (adc << 16) | (rout << 12) | mt
    for flag in flags:
        word |= flag
    return word


def ovf(count: int) -> int:
    """Multiple-overflow record: INVALID + MTOV, wrap count in bits 0..27."""
    return INVALID | MTOV | count


def header(clock_01ns: int = 250, *, markers: bool = False, raw: bool = False) -> int:
    return INVALID | (markers << 25) | (raw << 26) | clock_01ns


def set_bytes(
    revision: int = 0x028D,
    setup: str = "  #SP [SP_TAC_R,F,5e-08]\r\n  #SP [SP_TAC_G,I,4]\r\n  #SP [SP_ADC_RE,I,4096]\r\n",
    contents: str = "Setup file made by system at the end of FIFO measurement",
) -> bytes:
    """A minimal .set: bhfile_header, *IDENTIFICATION and *SETUP sections."""
    ident = (
        "*IDENTIFICATION\r\n  ID        : \x04SPC Setup Script File\x04\r\n"
        "  Title     : hand-built\r\n  Date      : 2024-01-02\r\n  Time      : 03:04:05\r\n"
        f"  Contents  : {contents}\r\n*END\r\n\r\n"
    ).encode()
    setup_b = (f"*SETUP\r\n  SYS_PARA_BEGIN:\r\n{setup}  SYS_PARA_END:\r\n*END\r\n").encode()
    head = struct.pack(
        "<hihihihIihhHIHH",
        revision - (1 << 16) if revision >= 1 << 15 else revision,
        42, len(ident), 42 + len(ident), len(setup_b), 0, 0, 0, 0, 0, 0, 0x5555, 0, 0, 0,
    )  # fmt: skip
    return head + ident + setup_b


def write_pair(tmp_path, records, *, stem="m", hdr=None, set_data=None, extra=b""):
    spc = tmp_path / f"{stem}.spc"
    words = [header() if hdr is None else hdr, *records]
    spc.write_bytes(np.array(words, "<u4").tobytes() + extra)
    if set_data is not False:
        (tmp_path / f"{stem}.set").write_bytes(set_bytes() if set_data is None else set_data)
    return spc


def read_ignoring_invalid(path, **kwargs):
    """qdio.read, ignoring only the notice about skipped INVALID records.

    INVALID photon records (no valid routing, ADC out of range) are routine in
    B&H files; whether reading them warns is the generic decoder's policy, so
    the tests check ``attrs["n_invalid_records"]`` instead.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*invalid bh_spc records skipped", QdioWarning)
        return qdio.read(path, **kwargs)


# ------------------------------------------------------------- hand-built --


def test_record_kinds_by_hand(tmp_path):
    W = 4096
    records = [
        rec(10, 0, 4095),  # photon: macro 10, micro 0
        ovf(3),  # three wraps
        rec(5, 2, 0, MTOV),  # photon after one more wrap: 4*W + 5, micro 4095
        rec(7, 0b0101, 123, INVALID, MARK),  # marker bits 0101 at 4*W + 7
        rec(1, 0b0010, 0, INVALID, MARK, MTOV),  # marker after one wrap: 5*W + 1
        rec(100, 3, 7, INVALID),  # invalid photon: skipped
        ovf(0),  # a count of 0 adds nothing
        rec(4095, 15, 1),  # photon on routing 15 at 5*W + 4095, micro 4094
        ovf(1000),  # 1000 wraps
        rec(3, 0, 2048, MARK, MTOV),  # MARK without INVALID: skipped, its MTOV counts
        rec(0, 1, 4000),  # photon at 1006*W, micro 95
    ]
    path = write_pair(tmp_path, records, hdr=header(250, markers=True))
    r = read_ignoring_invalid(path, with_markers=True)
    s = r.stream
    assert s.macrotime.tolist() == [10, 4 * W + 5, 5 * W + 4095, 1006 * W]
    assert s.microtime.tolist() == [0, 4095, 4094, 95]
    assert s.channel.tolist() == [0, 2, 15, 1]
    assert r.markers.macrotime.tolist() == [4 * W + 7, 5 * W + 1]
    assert r.markers.bits.tolist() == [0b0101, 0b0010]
    assert s.macrotime_resolution_s == pytest.approx(25e-9, rel=1e-15)
    assert s.microtime_resolution_s == pytest.approx(50e-9 / 4 / 4096, rel=1e-15)
    assert s.n_microtime_bins == 4096
    assert s.attrs["n_overflow_records"] == 3
    assert s.attrs["n_invalid_records"] == 2
    assert s.attrs["markers_enabled"] is True
    assert s.attrs["instrument"] == "Becker & Hickl SPC-150"
    assert s.attrs["created"] == dt.datetime(2024, 1, 2, 3, 4, 5)


def test_huge_overflow_count(tmp_path):
    n = (1 << 28) - 1
    path = write_pair(tmp_path, [ovf(n), rec(1), ovf(n), rec(2, 0, 0, MTOV)])
    s = qdio.read(path)
    assert s.macrotime.tolist() == [n * 4096 + 1, (2 * n + 1) * 4096 + 2]


def test_set_file_path_reads_the_spc_beside_it(tmp_path):
    spc = write_pair(tmp_path, [rec(1), rec(2), ovf(1), rec(3)])
    a = qdio.read(spc)
    b = qdio.read(spc.with_suffix(".set"))
    assert qdio.detect_format(spc.with_suffix(".set")) == "SPC"
    assert b.macrotime.tolist() == a.macrotime.tolist() == [1, 2, 4096 + 3]
    assert b.attrs["source"] == str(spc)


def _encode(times, chans, adcs, rng):
    """Records for sorted absolute macrotimes, as a card writes them.

    Several wraps before a photon become a count record, sometimes followed by
    a photon with MTOV for the last wrap.
    """
    records, done = [], 0
    for t, c, a in zip(times.tolist(), chans.tolist(), adcs.tolist(), strict=True):
        need = t // 4096 - done
        flags = ()
        if need == 1 or (need > 1 and rng.random() < 0.5):
            need -= 1
            flags = (MTOV,)
        if need:
            records.append(ovf(need))
        records.append(rec(t % 4096, c, a, *flags))
        done = t // 4096
    return records


def test_random_stream_round_trip_and_chunks(tmp_path):
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.geometric(1 / 3000, size=3000))
    chans = rng.integers(0, 16, size=times.size)
    adcs = rng.integers(0, 4096, size=times.size)
    records = _encode(times, chans, adcs, rng)
    path = write_pair(tmp_path, records)
    whole = qdio.read(path)
    assert np.array_equal(whole.macrotime, times)
    assert np.array_equal(whole.channel, chans)
    assert np.array_equal(whole.microtime, 4095 - adcs)
    chunks = list(qdio.iter_chunks(path, max_records=777))
    assert len(chunks) == -(-len(records) // 777)
    joined = qdio.concatenate(chunks)
    assert np.array_equal(joined.macrotime, whole.macrotime)
    assert np.array_equal(joined.microtime, whole.microtime)
    assert np.array_equal(joined.channel, whole.channel)


def test_gap_flag_warns_with_offset(tmp_path):
    path = write_pair(tmp_path, [rec(1), rec(2, 0, 0, GAP), rec(3)])
    with pytest.warns(QdioWarning, match=r"1 record\(s\) carry the GAP flag.*offset 8"):
        s = qdio.read(path)
    assert s.macrotime.tolist() == [1, 2, 3]  # the GAP photon itself is valid
    assert s.attrs["n_gap_records"] == 1


def test_tac_range_in_ns_and_set_parsing(tmp_path):
    setup = "  #SP [SP_TAC_R,F,50]\r\n  #SP [SP_TAC_G,I,2]\r\n  #SP [SP_MODE,I,11]\r\n"
    path = write_pair(tmp_path, [rec(1)], set_data=set_bytes(setup=setup))
    s = qdio.read(path)
    assert s.microtime_resolution_s == pytest.approx(50e-9 / 2 / 4096, rel=1e-12)
    meta = parse_set_file(path.with_suffix(".set"))
    assert meta["setup"] == {"SP_TAC_R": 50.0, "SP_TAC_G": 2, "SP_MODE": 11}
    assert meta["module"] == "SPC-150" and meta["module_code"] == 0x28
    assert meta["identification"]["Title"] == "hand-built"


def test_module_from_contents_for_old_software(tmp_path):
    data = set_bytes(revision=0x0001, contents="made with module SPC-830 (Ser.No. 1)")
    path = write_pair(tmp_path, [rec(1)], set_data=data)
    assert parse_set_file(path.with_suffix(".set"))["module"] == "SPC-830"
    assert qdio.read(path).attrs["instrument"] == "Becker & Hickl SPC-830"


def test_unknown_card_warns_and_reads_common_format(tmp_path):
    path = write_pair(tmp_path, [rec(1)], set_data=set_bytes(revision=0x0001, contents="x"))
    with pytest.warns(QdioWarning, match="names no known SPC card"):
        s = qdio.read(path)
    assert s.macrotime.tolist() == [1]


@pytest.mark.parametrize(
    ("code", "card"),
    [(0x21, "SPC-600"), (0x22, "SPC-630"), (0x29, "DPC-230"), (0x8C, "SPC-QC-004")],
)
def test_unsupported_cards_are_named(tmp_path, code, card):
    # SPC-600 48-bit files do not even start with a 32-bit SPC header record
    path = write_pair(
        tmp_path, [rec(1)], hdr=0x1234, set_data=set_bytes(revision=(code << 4) | 0xD)
    )
    with pytest.raises(QdioError, match=f"names a {card} card"):
        qdio.read(path)


def test_hand_built_markers_match_tttrlib(tmp_path):
    """tttrlib keeps markers (event type 1, routing = marker bits) and applies MTOV on them.

    phconvert is not used here: it drops every INVALID record, markers included,
    and reads a marker with MTOV as a multiple-overflow record (count = bits
    0..27 = ROUT/MT bits), which shifts every later timestamp.
    """
    tttrlib = pytest.importorskip("tttrlib")
    records = [
        rec(10, 0, 4095),
        ovf(3),
        rec(5, 2, 0, MTOV),
        rec(7, 0b0101, 123, INVALID, MARK),
        rec(1, 0b0010, 0, INVALID, MARK, MTOV),
        rec(100, 3, 7, INVALID),
        rec(4095, 15, 1),
        ovf(1000),
        rec(0, 1, 4000),
    ]
    path = write_pair(tmp_path, records, hdr=header(250, markers=True))
    r = read_ignoring_invalid(path, with_markers=True)
    assert r.stream.attrs["n_invalid_records"] == 1
    t = tttrlib.TTTR(str(path), "SPC-130")
    kind = np.asarray(t.event_types)
    mac = np.asarray(t.macro_times, np.int64)
    rout = np.asarray(t.routing_channels)
    assert np.array_equal(mac[kind == 0], r.stream.macrotime)
    assert np.array_equal(rout[kind == 0], r.stream.channel)
    assert np.array_equal(np.asarray(t.micro_times)[kind == 0], r.stream.microtime)
    assert np.array_equal(mac[kind == 1], r.markers.macrotime)
    assert np.array_equal(rout[kind == 1], r.markers.bits)


def test_random_stream_matches_phconvert_and_tttrlib(tmp_path):
    bhreader = pytest.importorskip("phconvert.bhreader")
    tttrlib = pytest.importorskip("tttrlib")
    rng = np.random.default_rng(11)
    times = np.cumsum(rng.geometric(1 / 9000, size=2000))
    chans = rng.integers(0, 4, size=times.size)
    adcs = rng.integers(0, 4096, size=times.size)
    path = write_pair(tmp_path, _encode(times, chans, adcs, rng))
    s = qdio.read(path)
    pd = bhreader.load_spc(str(path))["photon_data"]
    assert np.array_equal(pd["timestamps"].astype(np.int64), s.macrotime)
    assert np.array_equal(pd["nanotimes"].astype(np.int64), s.microtime)
    t = tttrlib.TTTR(str(path), "SPC-130")
    assert np.array_equal(np.asarray(t.macro_times, np.int64), s.macrotime)
    assert np.array_equal(np.asarray(t.micro_times, np.int64), s.microtime)


# -------------------------------------------------------------- bad input --


def test_missing_set_gives_unknown_format_with_hint(tmp_path):
    path = write_pair(tmp_path, [rec(1)], set_data=False)
    with pytest.raises(QdioError, match=r"unknown file format.*\.set file \(m\.set\) beside it"):
        qdio.read(path)
    with pytest.raises(QdioError, match=r"needs its \.set file \(m\.set\)"):
        bh_spc_source(path)


def test_set_without_spc(tmp_path):
    (tmp_path / "lonely.set").write_bytes(set_bytes())
    with pytest.raises(QdioError, match=r"lonely\.spc \(same name, \.spc\) is not beside it"):
        qdio.read(tmp_path / "lonely.set")


def test_sdt_data_file_is_not_taken_for_a_set(tmp_path):
    sdt = set_bytes().replace(b"SPC Setup Script File", b"SPC Setup & Data File")
    (tmp_path / "x.sdt").write_bytes(sdt)
    with pytest.raises(QdioError, match="unknown file format"):
        qdio.read(tmp_path / "x.sdt")


@pytest.mark.parametrize("word", [0x000000FA, INVALID])  # bit 31 clear; clock 0
def test_bad_header_record_is_not_claimed(tmp_path, word):
    path = write_pair(tmp_path, [rec(1)], hdr=word)
    with pytest.raises(QdioError, match=r"unknown file format.*Becker & Hickl"):
        qdio.read(path)
    with pytest.raises(QdioError, match=r"header record at offset 0 = 0x"):
        bh_spc_source(path)


def test_raw_diagnostic_file_refused(tmp_path):
    path = write_pair(tmp_path, [rec(1)], hdr=header(raw=True))
    with pytest.raises(QdioError, match="raw data"):
        qdio.read(path)


def test_missing_tac_range(tmp_path):
    path = write_pair(tmp_path, [rec(1)], set_data=set_bytes(setup="  #SP [SP_TAC_G,I,4]\r\n"))
    with pytest.raises(QdioError, match=r"m\.set: setup parameter 'SP_TAC_R' = None"):
        qdio.read(path)


def test_set_without_identification(tmp_path):
    path = write_pair(tmp_path, [rec(1)], set_data=b"\0" * 100)
    with pytest.raises(QdioError, match="unknown file format"):
        qdio.read(path)
    with pytest.raises(QdioError, match=r"no '\*IDENTIFICATION' section"):
        parse_set_file(path.with_suffix(".set"))


def test_truncated_last_record_warns_and_keeps_complete_records(tmp_path):
    path = write_pair(tmp_path, [rec(1), rec(2)], extra=b"\x05\x00")
    with pytest.warns(QdioWarning, match=r"2 trailing byte\(s\).*offset 12"):
        s = qdio.read(path)
    assert s.macrotime.tolist() == [1, 2]


def test_header_only_file_is_empty_stream(tmp_path):
    s = qdio.read(write_pair(tmp_path, []))
    assert len(s) == 0 and s.attrs["n_records"] == 0


# --------------------------------------------------------------- real data --


def _read_real(path):
    r = read_ignoring_invalid(path, with_markers=True)
    # the file has 1087 INVALID photon records (no valid routing / ADC out of range)
    assert r.stream.attrs["n_invalid_records"] == 1087
    return r


@pytest.mark.realdata
def test_real_file_known_answers():
    path = shared_file(REAL)
    r = _read_real(path)
    s = r.stream
    assert len(s) == 6114 and s.channels.tolist() == [0] and len(r.markers) == 0
    assert s.macrotime_resolution_s == pytest.approx(9.5e-9, rel=1e-12)
    # TAC range 50.03 ns / gain 5 / 4096 ADC channels (the .set's SP_TAC_TC agrees)
    assert s.microtime_resolution_s == pytest.approx(5.0033574e-08 / 5 / 4096, rel=1e-12)
    assert s.microtime_resolution_s == pytest.approx(2.4430455e-12, rel=1e-7)
    assert s.n_microtime_bins == 4096
    assert s.macrotime[:5].tolist() == [44054, 72904, 364634, 412760, 571542]
    assert s.microtime[:5].tolist() == [2856, 1659, 2626, 1872, 727]
    assert s.macrotime[-1] * s.macrotime_resolution_s == pytest.approx(16.1502, abs=1e-4)
    assert s.attrs["n_records"] == 26111
    assert s.attrs["n_overflow_records"] == 18910
    assert s.attrs["n_invalid_records"] == 1087
    assert s.attrs["instrument"] == "Becker & Hickl SPC-150"
    assert s.attrs["created"] == dt.datetime(2016, 9, 5, 16, 12, 20)
    assert s.attrs["adc_resolution"] == 4096 and s.attrs["n_gap_records"] == 0
    assert qdio.detect_format(path) == qdio.detect_format(path.with_suffix(".set")) == "SPC"


@pytest.mark.realdata
def test_real_file_matches_phconvert():
    bhreader = pytest.importorskip("phconvert.bhreader")
    path = shared_file(REAL)
    s = _read_real(path).stream
    pd = bhreader.load_spc(str(path))["photon_data"]
    assert np.array_equal(s.macrotime, pd["timestamps"].astype(np.int64))
    assert np.array_equal(s.microtime, pd["nanotimes"].astype(np.int64))  # both 4095 - ADC
    assert np.array_equal(s.channel, pd["detectors"])
    assert pd["timestamps_unit"] == pytest.approx(s.macrotime_resolution_s, rel=1e-12)


@pytest.mark.realdata
def test_real_file_matches_tttrlib():
    tttrlib = pytest.importorskip("tttrlib")
    path = shared_file(REAL)
    s = _read_real(path).stream
    t = tttrlib.TTTR(str(path), "SPC-130")
    assert np.array_equal(s.macrotime, np.asarray(t.macro_times, np.int64))
    assert np.array_equal(s.microtime, np.asarray(t.micro_times, np.int64))
    assert np.array_equal(s.channel, np.asarray(t.routing_channels))
    assert t.header.macro_time_resolution == pytest.approx(9.5e-9, rel=1e-12)
    # Discrepancy: tttrlib does not read the .set and reports macro / 4096 =
    # 2.319 ps as the microtime unit; the TAC range / gain / 4096 is 2.443 ps.
    assert t.header.micro_time_resolution == pytest.approx(9.5e-9 / 4096, rel=1e-9)


@pytest.mark.realdata
def test_real_set_file():
    meta = parse_set_file(shared_file("bh_spc/phconvert_test_noise.set"))
    assert meta["module"] == "SPC-150"
    assert meta["setup"]["SP_TAC_R"] == 5.0033574e-08
    assert meta["setup"]["SP_TAC_G"] == 5
    assert meta["setup"]["SP_ADC_RE"] == 4096
    assert meta["identification"]["Title"] == "test_noise"
    assert "SPC-150" in meta["identification"]["Contents"]


@pytest.mark.realdata
def test_real_file_truncated_copy(tmp_path):
    src = shared_file(REAL)
    data = src.read_bytes()
    (tmp_path / "cut.spc").write_bytes(data[: 4 + 4 * 1000 + 3])
    (tmp_path / "cut.set").write_bytes(src.with_suffix(".set").read_bytes())
    with pytest.warns(QdioWarning, match=r"3 trailing byte\(s\)"):
        s = read_ignoring_invalid(tmp_path / "cut.spc")
    assert s.attrs["n_records"] == 1000
    full = _read_real(src).stream
    assert np.array_equal(s.macrotime, full.macrotime[: len(s)])
