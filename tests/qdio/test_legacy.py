"""Legacy PicoQuant files (PT3, PT2, HT3, HT2, T3R): headers, records, real files, oracles.

Three kinds of tests:

* hand-built files written to ``tmp_path`` (headers assembled here with
  ``struct``, independently of :mod:`qdio.legacy`'s dtypes) with records
  whose decoded values are worked out by hand;
* known answers for the real files of ``../shared/data`` (PROVENANCE.md);
* element-wise comparison with phconvert and tttrlib where they can read a
  file, with the places where an oracle is wrong written down and asserted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import qdio
from qdio import QdioError, QdioWarning
from qdio.legacy import FORMATS, legacy_source, parse_file_time, parse_legacy_header

from conftest import shared_file

# ----------------------------------------------------------- file builders --


def _s(text: bytes | str, n: int, pad: bytes = b"\0") -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    assert len(raw) <= n
    return raw + pad * (n - len(raw))


def _text_header(ident, version, *, creator=b"qdlight test", creator_version=b"1.0",
                 file_time=b"18/10/13 14:34:28", pad=b"\0", comment=b"hand-built"):  # fmt: skip
    crlf = b"  " if pad == b" " else b"\r\n"
    return (
        _s(ident, 16, pad) + _s(version, 6, pad) + _s(creator, 18, pad)
        + _s(creator_version, 12, pad) + _s(file_time, 18, pad) + crlf + _s(comment, 256)
    )  # fmt: skip


_DISPLAY_TAIL = bytes(64 + 36 + 16 + 20)  # DispCurves, Params, Repeat*, ScriptName


def pt3_bytes(records, *, mode=3, version=b"2.0", sync_rate=80_000_000, resolution_ns=0.004,
              n_records=None, img_hdr=(), bits=32, pad=b"\0", file_time=b"18/10/13 14:34:28",
              acquisition_ms=1500):  # fmt: skip
    """A PicoHarp 300 PT3 (mode 3) or PT2 (mode 2) file, format version 2.0."""
    records = np.asarray(records, "<u4")
    n = len(records) if n_records is None else n_records
    text = _text_header(b"PicoHarp 300", version, pad=pad, file_time=file_time)
    # Curves, BitsPerRecord, RoutingChannels, NumberOfBoards, ActiveCurve, MeasMode,
    # SubMode, RangeNo, Offset, Tacq, StopAt, StopOnOvfl, Restart, DispLinLog, 4 axes
    binary = struct.pack("<18i", 0, bits, 4, 1, 0, mode, 0, 0, 0, acquisition_ms,
                         0, 0, 0, 0, 0, 0, 0, 0) + _DISPLAY_TAIL  # fmt: skip
    board = (
        _s(b"PicoHarp 300", 16) + _s(b"2.0", 8) + struct.pack("<6i", 1013247, 1, 0, 0, 0, 0)
        + struct.pack("<f", resolution_ns) + struct.pack("<2i", 0, 0) + bytes(96)
    )  # fmt: skip
    # ExtDevices, Reserved1, Reserved2, CntRate0, CntRate1, StopAfter, StopReason,
    # Records, ImgHdrSize
    tttr = struct.pack("<9i", 0, 0, 0, sync_rate, 1000, 1400, 0, n, len(img_hdr))
    img = struct.pack(f"<{len(img_hdr)}i", *img_hdr)
    head = text + binary + board + tttr + img
    assert len(text + binary + board + tttr) == 728
    return head + records.tobytes()


def hh_bytes(records, *, mode=3, version=b"2.0", sync_rate=1_000_000, resolution_ps=16.0,
             base_ps=1.0, n_inputs=2, n_records=None, img_hdr=()):  # fmt: skip
    """A HydraHarp HT3 (mode 3) or HT2 (mode 2) file."""
    records = np.asarray(records, "<u4")
    n = len(records) if n_records is None else n_records
    text = _text_header(b"HydraHarp", version, creator=b"HydraHarp AcqUI")
    binary = (
        struct.pack("<6i", 0, 32, 0, mode, 0, 2) + struct.pack("<d", resolution_ps)
        + struct.pack("<10i", 0, 2500, 0, 0, 0, 0, 0, 0, 0, 0) + _DISPLAY_TAIL
    )  # fmt: skip
    hardware = (
        _s(b"HydraHarp 400", 16) + _s(b"930021", 8) + struct.pack("<2i", 1, 1) + bytes(80)
        + struct.pack("<dQ", base_ps, (1 << min(n_inputs, 64)) - 1)
        + struct.pack("<8i", n_inputs, 0, 0, 0, 1, 50, 10, 0)
    )  # fmt: skip
    inputs = b"".join(struct.pack("<4i", 1, 50, 10, 0) for _ in range(n_inputs))
    rates = struct.pack(f"<{n_inputs}i", *range(100, 100 + n_inputs))
    tttr = struct.pack("<4iq", sync_rate, 2500, 0, len(img_hdr), n)
    img = struct.pack(f"<{len(img_hdr)}i", *img_hdr)
    assert len(text + binary + hardware) == 696
    return text + binary + hardware + inputs + rates + tttr + img + records.tobytes()


def t3r_bytes(records, *, version=b"6.0", mode=2, clock_ns=100, resolution_ns=0.25,
              n_boards=1, n_records=None):  # fmt: skip
    """A TimeHarp 200 T3R file, format 5.0 or 6.0."""
    records = np.asarray(records, "<u4")
    n = len(records) if n_records is None else n_records
    if version == b"5.0":
        text = (_s(b"TimeHarp 200", 16) + _s(version, 6) + _s(b"2.4", 6)
                + _s(b"08/09/03 12:51:43", 18) + b"\r\n" + _s(b"x", 256))  # fmt: skip
        board = struct.pack("<5if", 76, 20, 50, -300, 0, resolution_ns)
    else:
        text = _text_header(b"TimeHarp 200", version, creator=b"TimeHarp Software")
        board = (
            _s(b"TimeHarp 200", 16)
            + _s(b"2.5", 8)
            + struct.pack("<5if", 208, 20, 97, -100, 0, resolution_ns)
        )
    # NumberOfChannels, Curves, BitsPerChannel, RoutingChannels, NumberOfBoards,
    # ActiveCurve, MeasurementMode, SubMode, RangeNo, Offset, Tacq, StopAt, StopOnOvfl,
    # Restart, DispLinLog, 4 axes
    binary = struct.pack("<19i", 4096, 0, 32, 4, n_boards, 0, mode, 0, 1, 0, 10000,
                         65535, 0, 0, 0, 0, 0, 0, 0) + _DISPLAY_TAIL  # fmt: skip
    # TTTRGlobClock, ExtDevices/Reserved, Reserved x5, SyncRate, AverageCFDRate,
    # StopAfter, StopReason, NumberOfRecords, SpecHeaderLength
    tttr = struct.pack("<13i", clock_ns, 0, 0, 0, 0, 0, 0, 5_000_000, 7000, 9000, 0, n, 0)
    return text + binary + board * max(n_boards, 0) + tttr + records.tobytes()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# record encoders (bit layouts of ../shared/ptu_format.md section 4)
def ph_t3(chan, dtime, nsync):
    return (chan << 28) | (dtime << 16) | nsync


PH_T3_OVF = 0xF0000000


def hh_t3(chan, dtime, nsync, special=0):
    return (special << 31) | (chan << 25) | (dtime << 10) | nsync


def hh_t3_ovf(count):
    return hh_t3(63, 0, count, special=1)


def th_rec(valid, route, data, tag):
    return (valid << 30) | (route << 28) | (data << 16) | tag


# ---------------------------------------------------- hand-built: records --


def test_pt3_hand_built_records_decode_exactly(tmp_path):
    records = [
        ph_t3(1, 0, 5),  # photon with dtime == 0: a photon, not a special record
        PH_T3_OVF,
        ph_t3(15, 2, 7),  # marker bit 1, at overflow 1
        ph_t3(2, 4095, 65535),
        PH_T3_OVF,
        PH_T3_OVF,
        ph_t3(4, 100, 0),
        ph_t3(0, 9, 9),  # channel 0 never occurs in T3 mode: invalid, skipped
    ]
    path = write(tmp_path, "hand.pt3", pt3_bytes(records, img_hdr=(11, 22, 33)))
    with pytest.warns(QdioWarning, match="1 invalid picoharp_t3 records skipped"):
        result = qdio.read(path, with_markers=True)
    s, mk = result.stream, result.markers
    assert s.channel.tolist() == [0, 1, 3]
    assert s.macrotime.tolist() == [5, 65536 + 65535, 3 * 65536]
    assert s.microtime.tolist() == [0, 4095, 100]
    assert mk.macrotime.tolist() == [65536 + 7] and mk.bits.tolist() == [2]
    assert s.macrotime_resolution_s == 1 / 80e6
    assert s.microtime_resolution_s == 4e-12  # float32 0.004 ns, read as the decimal written
    assert s.n_microtime_bins == 4096
    a = s.attrs
    assert a["format"] == "PT3" and a["n_overflow_records"] == 3 and a["n_invalid_records"] == 1
    assert a["header"]["ImgHdr"] == [11, 22, 33]  # the image header was skipped, not decoded
    assert a["sync_rate_hz"] == 80e6 and a["acquisition_time_s"] == 1.5
    assert a["measurement_mode"] == "T3" and a["header_records"] == len(records)
    assert a["created"] == dt.datetime(2013, 10, 18, 14, 34, 28)


def test_pt3_labview_space_padding_and_four_digit_year(tmp_path):
    data = pt3_bytes([ph_t3(2, 7, 3)], pad=b" ", file_time=b"10/03/2014 16:59")
    assert data[16:22] == b"2.0   "
    s = qdio.read(write(tmp_path, "labview.pt3", data))
    h = s.attrs["header"]
    assert h["Ident"] == "PicoHarp 300" and h["FormatVersion"] == "2.0"
    assert h["CreatorName"] == "qdlight test" and h["CRLF"] == ""
    assert s.attrs["created"] == dt.datetime(2014, 3, 10, 16, 59)
    assert s.channel.tolist() == [1] and s.macrotime.tolist() == [3]


@pytest.mark.parametrize("version", [1, 2])
def test_ht3_overflow_semantics_by_file_format_version(tmp_path, version):
    records = [
        hh_t3_ovf(3),  # v2: 3 overflows; v1: always one
        hh_t3(5, 0, 10),  # photon with dtime 0
        hh_t3_ovf(0),  # count 0 means 1 in v2
        hh_t3(2, 0, 20, special=1),  # marker bits 0b10
        hh_t3(63, 1, 1000),  # channel 63 photon (not special): a real detector number
        hh_t3(0, 32767, 1023),
    ]
    data = hh_bytes(records, version=f"{version}.0".encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = qdio.read(write(tmp_path, "hand.ht3", data), with_markers=True)
    s = r.stream
    base = 3 * 1024 if version == 2 else 1024
    assert s.channel.tolist() == [5, 63, 0]
    assert s.macrotime.tolist() == [base + 10, base + 1024 + 1000, base + 1024 + 1023]
    assert s.microtime.tolist() == [0, 1, 32767]
    assert r.markers.macrotime.tolist() == [base + 1024 + 20] and r.markers.bits.tolist() == [2]
    assert s.n_microtime_bins == 32768 and s.microtime_resolution_s == 16e-12
    assert s.macrotime_resolution_s == 1e-6
    assert s.attrs["n_overflow_records"] == 2
    assert f"record version {version}" in s.attrs["record_type"]
    assert s.attrs["header"]["InputRates"] == [100, 101]
    assert s.attrs["instrument"] == "HydraHarp 400"


@pytest.mark.parametrize("version", [1, 2])
def test_ht2_sync_events_markers_and_overflows(tmp_path, version):
    sync = (1 << 31) | 1000  # special, channel 0: a sync event
    records = [
        sync,
        (3 << 25) | 1234,  # photon, detector 3
        (1 << 31) | (63 << 25) | 2,  # overflow: v2 counts 2, v1 one of 33552000
        (1 << 31) | (4 << 25) | 50,  # marker bits 0b100
        (0 << 25) | 7,
    ]
    path = write(tmp_path, "hand.ht2", hh_bytes(records, mode=2, version=f"{version}.0".encode()))
    r = qdio.read(path, with_markers=True)
    s = r.stream
    ovf = 2 * 33554432 if version == 2 else 33552000
    assert s.microtime is None and s.macrotime_resolution_s == 1e-12
    assert s.channel.tolist() == [3, 0] and s.macrotime.tolist() == [1234, ovf + 7]
    assert r.markers.bits.tolist() == [0, 4]  # bits 0: the sync event
    assert r.markers.macrotime.tolist() == [1000, ovf + 50]
    assert s.attrs["measurement_mode"] == "T2" and s.attrs["format"] == "HT2"


def test_pt2_hand_built(tmp_path):
    records = [
        (0 << 28) | 100,
        0xF0000000,  # overflow: special with marker bits 0
        (15 << 28) | 0x1230 | 0x4,  # marker bit 2; the low 4 time bits carry the bits
        (3 << 28) | 0x0FFFFFFF,
    ]
    r = qdio.read(write(tmp_path, "hand.pt2", pt3_bytes(records, mode=2)), with_markers=True)
    s = r.stream
    assert s.attrs["format"] == "PT2" and s.microtime is None
    assert s.macrotime_resolution_s == 4e-12  # PicoHarp T2 tag unit (pt2demo.c RESOL)
    assert s.channel.tolist() == [0, 3]
    assert s.macrotime.tolist() == [100, 210698240 + 0x0FFFFFFF]
    assert r.markers.macrotime.tolist() == [210698240 + 0x1230]
    assert r.markers.bits.tolist() == [4]


@pytest.mark.parametrize("version", [b"5.0", b"6.0"])
def test_t3r_hand_built(tmp_path, version):
    records = [
        th_rec(1, 2, 123, 77),
        th_rec(0, 0, 0x800, 0),  # overflow (Data bit 11)
        th_rec(0, 0, 0x5, 9),  # markers 1 and 3 (Data bits 0..2)
        th_rec(1, 1, 4095, 65535) | (1 << 31),  # the reserved top bit is ignored
        th_rec(0, 3, 0x800, 65535),  # overflow with route bits set (seen in real files)
        th_rec(1, 0, 0, 0),  # photon with Data == 0
    ]
    r = qdio.read(write(tmp_path, "hand.t3r", t3r_bytes(records, version=version)),
                  with_markers=True)  # fmt: skip
    s = r.stream
    assert s.channel.tolist() == [2, 1, 0]
    assert s.macrotime.tolist() == [77, 65536 + 65535, 2 * 65536]
    assert s.microtime.tolist() == [123, 4095, 0]
    assert r.markers.macrotime.tolist() == [65536 + 9] and r.markers.bits.tolist() == [5]
    # time tags count the 100 ns TTTR clock, not sync periods
    assert s.macrotime_resolution_s == 100e-9 and s.microtime_resolution_s == 0.25e-9
    assert s.attrs["sync_rate_hz"] == 5e6 and s.attrs["stop_after_s"] == 9.0
    assert s.attrs["format_version"] == version.decode()


# ------------------------------------------------ record counts and sizes --


def test_header_count_zero_reads_the_whole_file(tmp_path):
    path = write(tmp_path, "zero.pt3", pt3_bytes([ph_t3(1, 1, i) for i in range(5)], n_records=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = qdio.read(path)
    assert len(s) == 5 and s.attrs["header_records"] == 0 and s.attrs["n_records"] == 5


def test_header_count_smaller_than_file_is_trusted(tmp_path):
    path = write(tmp_path, "short.pt3", pt3_bytes([ph_t3(1, 1, i) for i in range(5)], n_records=3))
    with pytest.warns(QdioWarning, match="reading 3, ignoring the rest"):
        assert qdio.read(path).macrotime.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("build", "records", "count"),
    [
        (pt3_bytes, [ph_t3(1, 0, i) for i in range(3)], 2**31 - 1),  # int32 field
        (hh_bytes, [hh_t3(0, 0, i) for i in range(3)], 2**62),  # int64 field
        (t3r_bytes, [th_rec(1, 0, 0, i) for i in range(3)], 2**31 - 1),
    ],
)
def test_huge_header_count_never_allocates_from_it(tmp_path, build, records, count):
    path = write(tmp_path, "huge.bin", build(records, n_records=count) + b"\x01\x02")
    tracemalloc.start()
    try:
        with pytest.warns(QdioWarning) as rec:
            s = qdio.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    messages = " ".join(str(w.message) for w in rec)
    assert f"header says {count} records, the file holds 3" in messages
    assert "2 trailing byte(s)" in messages
    assert s.attrs["n_records"] == 3 and s.attrs["header_records"] == count
    assert peak < 8 << 20  # bytes: sized from the file, not the header


# ------------------------------------------------------ sniffing/dispatch --


def test_content_not_extension_decides(tmp_path):
    pt3 = write(tmp_path, "looks_like.phd", pt3_bytes([ph_t3(1, 0, 0)]))
    ht3 = write(tmp_path, "data.pt3", hh_bytes([hh_t3(0, 0, 0)]))
    t3r = write(tmp_path, "noext", t3r_bytes([th_rec(1, 0, 0, 0)]))
    assert [qdio.detect_format(p) for p in (pt3, ht3, t3r)] == ["PT3", "HT3", "T3R"]


@pytest.mark.parametrize(
    "data",
    [
        pt3_bytes([], mode=0),  # PHD: PicoHarp histogram (interactive mode)
        hh_bytes([], mode=0),  # HHD
        t3r_bytes([], mode=0),  # THD
        t3r_bytes([], mode=0, version=b"5.0"),
        t3r_bytes([], mode=1),  # TimeHarp continuous mode
        b"PQTTTR\0\0" + bytes(1000),
        b"PicoHarp 301" + bytes(1000),
    ],
)
def test_sniffers_leave_histogram_and_other_files_alone(data):
    for fmt in FORMATS:
        assert not fmt.sniff(data[:1024], Path("x")), fmt.name


@pytest.mark.realdata
@pytest.mark.parametrize(
    "rel",
    [
        "libpicoquant/picoharp_v20.phd",
        "libpicoquant/timeharp_v60.thd",
        "mn_pqreader/IRF.thd",  # its Comment says "TTTR Mode": only the mode field counts
        "mn_pqreader/Nile_Blue_Glycerol.thd",
        "libpicoquant/hydraharp_v30_t2.ptu",
    ],
)
def test_real_histogram_files_are_not_claimed(rel):
    head = shared_file(rel).read_bytes()[:1024]
    assert not any(fmt.sniff(head, Path(rel)) for fmt in FORMATS)


def test_each_format_sniffs_only_its_own_mode(tmp_path):
    pairs = {
        "PT3": pt3_bytes([]), "PT2": pt3_bytes([], mode=2), "HT3": hh_bytes([]),
        "HT2": hh_bytes([], mode=2), "T3R": t3r_bytes([]),
    }  # fmt: skip
    for name, data in pairs.items():
        claimed = [fmt.name for fmt in FORMATS if fmt.sniff(data[:1024], Path("x"))]
        assert claimed == [name]


# ---------------------------------------------------------- header errors --


def _error(tmp_path, data, name="bad.pt3"):
    path = write(tmp_path, name, data)
    with pytest.raises(QdioError) as info:
        qdio.read(path)
    msg = str(info.value)
    assert str(path) in msg  # every message names the file
    return msg


@pytest.mark.parametrize(
    ("cut", "field", "offset"),
    [
        (349, "'MeasurementMode'", 348),  # the sniffer cannot see the mode; the reader says why
        (600, "'RouterChannels'", 596),
        (700, "'Reserved2'", 700),
        (727, "'ImgHdrSize'", 724),
    ],
)
def test_truncated_pt3_header_names_the_field(tmp_path, cut, field, offset):
    msg = _error(tmp_path, pt3_bytes([ph_t3(1, 0, 0)])[:cut])
    assert f"file is {cut} bytes and ends inside the" in msg and field in msg
    assert f"{field} at offset {offset}" in msg


def test_file_shorter_than_ident_and_version(tmp_path):
    msg = _error(tmp_path, b"PicoHarp 300\0\0\0\0")
    assert "Ident (16 bytes) and FormatVersion (6 bytes)" in msg


def test_image_header_longer_than_the_file(tmp_path):
    data = bytearray(pt3_bytes([]))
    struct.pack_into("<i", data, 724, 1000)  # ImgHdrSize
    msg = _error(tmp_path, bytes(data))
    assert "'ImgHdr[0]'" in msg and "truncated" in msg


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (pt3_bytes([], bits=16), ["'BitsPerRecord' at offset 332", "expected 32"]),
        (pt3_bytes([], version=b"1.0"), ["'FormatVersion' at offset 16", "'1.0'", "2.0"]),
        (pt3_bytes([], sync_rate=0), ["'CntRate0'", "positive sync rate in Hz"]),
        (pt3_bytes([], resolution_ns=float("nan")), ["'Board.Resolution'", "ns"]),
        (hh_bytes([], version=b"3.0"), ["'FormatVersion'", "'3.0'", "1.0 or 2.0"]),
        (hh_bytes([], n_inputs=65), ["'InpChansPresent' at offset 664", "0..64"]),
        (hh_bytes([], mode=2, base_ps=0.0), ["'BaseResolution'", "ps"]),
        (hh_bytes([], sync_rate=-5), ["'SyncRate'", "sync rate"]),
        (t3r_bytes([], n_boards=0), ["'NumberOfBoards' at offset 344", "1..16"]),
        (t3r_bytes([], clock_ns=0), ["'TTTRGlobClock'", "clock period"]),
        (t3r_bytes([], version=b"3.0"), ["'FormatVersion'", "5.0 or 6.0"]),
    ],
)
def test_header_problems_raise_with_field_and_expectation(tmp_path, data, needles):
    msg = _error(tmp_path, data)
    for needle in needles:
        assert needle in msg


def test_negative_image_header_size(tmp_path):
    data = bytearray(pt3_bytes([]))
    struct.pack_into("<i", data, 724, -1)
    assert "'ImgHdrSize' at offset 724 is -1" in _error(tmp_path, bytes(data))


def test_histogram_mode_is_refused_by_the_reader(tmp_path):
    path = write(tmp_path, "hist.phd", pt3_bytes([], mode=0))
    with pytest.raises(QdioError, match=r"'MeasurementMode' at offset 348 is 0 \(a histogram"):
        legacy_source(path)
    with pytest.raises(QdioError, match="expected a PT2 file, the header describes PT3"):
        legacy_source(write(tmp_path, "t3.pt3", pt3_bytes([])), expected="PT2")


def test_reading_never_modifies_the_input(tmp_path):
    path = write(tmp_path, "in.ht3", hh_bytes([hh_t3(1, 2, 3)], n_records=10))
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns)
    with pytest.warns(QdioWarning):
        qdio.read(path)
    after = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns)
    assert before == after


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18/10/13 14:34:28", dt.datetime(2013, 10, 18, 14, 34, 28)),  # SymPhoTime
        ("28/07/11 18:15:35", dt.datetime(2011, 7, 28, 18, 15, 35)),  # HydraHarp AcqUI
        ("10/03/2014 16:59", dt.datetime(2014, 3, 10, 16, 59)),  # LabVIEW
        ("10/18/2013 2:34:28 PM", dt.datetime(2013, 10, 18, 14, 34, 28)),  # US order
        ("08.09.03 12:51:43", dt.datetime(2003, 9, 8, 12, 51, 43)),
        ("05/06/99", dt.datetime(1999, 6, 5)),
        ("Wed Aug 09 18:10:40 2023", dt.datetime(2023, 8, 9, 18, 10, 40)),
        ("31/02/2013 10:00", None),
        ("13/13/13", None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_parse_file_time(text, expected):
    assert parse_file_time(text) == expected


# -------------------------------------------------------------- real data --

PT3_KNOWN = {
    # file: (counts per channel, overflow records, nominal acquisition [s])
    # Channel numbers are 0-based (PT3 routing channel - 1).  full_sms counts
    # agree element-wise with phconvert (test below).
    "full_sms/trace0.pt3": ({0: 1506, 1: 8003}, 139058, 120.0),
    "full_sms/trace1.pt3": ({0: 1803, 1: 106015}, 139058, 120.0),
    "full_sms/trace2.pt3": ({0: 1732, 1: 20673}, 139058, 120.0),
    "full_sms/trace3.pt3": ({0: 907, 1: 184928}, 69529, 60.0),
    "full_sms/trace4.pt3": ({0: 932, 1: 106475}, 69529, 60.0),
    # PROVENANCE: routing 1: 482,775 and 2: 490,562 photons, 13,063 overflows, 10.96 s
    "fcs_point_correlator/topfluorPE_2_1_1_1.pt3": ({0: 482775, 1: 490562}, 13063, 11.08),
}


@pytest.mark.realdata
@pytest.mark.parametrize("rel", sorted(PT3_KNOWN))
def test_real_pt3_known_answers(rel):
    counts, n_ovf, acq_s = PT3_KNOWN[rel]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = qdio.read(shared_file(rel))
    assert s.counts_per_channel() == counts
    assert s.attrs["n_overflow_records"] == n_ovf and s.attrs["n_invalid_records"] == 0
    assert s.attrs["format"] == "PT3" and s.n_microtime_bins == 4096
    # the last photon comes shortly before the acquisition stopped
    assert 0.98 * acq_s < s.duration_s < acq_s
    assert s.attrs["stop_after_s"] == acq_s
    if rel.startswith("full_sms"):
        assert s.microtime_resolution_s == 4e-12
        assert s.attrs["sync_rate_hz"] in (75944720.0, 75944640.0)  # 13.17 ns
        assert s.attrs["creating_software"] == "Labview Software"
        assert s.attrs["header"]["FormatVersion"] == "2.0"  # space-padded on disk
        assert s.attrs["created"].date() == dt.date(2014, 3, 10)
    else:
        assert s.microtime_resolution_s == 16e-12
        assert s.macrotime_resolution_s == 1 / 78133041  # 12.80 ns
        assert s.attrs["created"] == dt.datetime(2013, 10, 18, 14, 34, 28)
        assert s.attrs["creating_software"] == "SymPhoTime"
    assert s.macrotime_resolution_s == 1 / s.attrs["sync_rate_hz"]


@pytest.mark.realdata
def test_real_ht3_v20_multi_overflow_known_answers():
    r = qdio.read(shared_file("libpicoquant/hydraharp_v20.ht3"), with_markers=True)
    s = r.stream
    assert s.counts_per_channel() == {0: 7102, 1: 26648, 2: 3085, 3: 7306}
    assert s.attrs["n_overflow_records"] == 9465 and len(r.markers) == 0
    assert s.attrs["n_records"] == s.attrs["header_records"] == 53606
    assert s.microtime_resolution_s == 16e-12 and s.n_microtime_bins == 32768
    assert s.attrs["sync_rate_hz"] == 998898.0  # 0.999 MHz
    assert 9.99 < s.duration_s <= s.attrs["acquisition_time_s"] == 10.0
    # The file really holds counted overflow records (counts 1..3); an
    # independent numpy decode of the last photon's macrotime: every overflow
    # record before it adds 1024 x count.  Read as v1 (1024 per record) the
    # end would come ~3 % early (ptu_format.md section 4).
    rec = np.fromfile(shared_file("libpicoquant/hydraharp_v20.ht3"), "<u4", offset=800)
    is_ovf = (rec >> 25) == 127
    counts = (rec & 0x3FF).astype(np.int64)
    assert set(np.unique(counts[is_ovf]).tolist()) == {1, 2, 3}
    last = np.flatnonzero(rec >> 31 == 0)[-1]
    wraps = int(counts[:last][is_ovf[:last]].sum())
    assert s.macrotime[-1] == 1024 * wraps + int(counts[last])
    assert 1024 * int(is_ovf[:last].sum()) < 0.98 * s.macrotime[-1]


@pytest.mark.realdata
def test_real_ht3_v10_truncated_file_header_count():
    path = shared_file("libpicoquant/hydraharp_v10.ht3")
    with pytest.warns(QdioWarning, match="header says 72463591 records, the file holds 1050"):
        s = qdio.read(path)
    assert s.counts_per_channel() == {0: 6, 1: 9, 2: 3, 3: 14}  # 32 photons
    assert s.attrs["n_overflow_records"] == 1018
    assert s.attrs["header_records"] == 72463591 and s.attrs["n_records"] == 1050
    assert "record version 1" in s.attrs["record_type"]
    assert s.microtime_resolution_s == 4e-12


@pytest.mark.realdata
def test_real_ht2_files_hold_a_full_header_and_25_records():
    # PROVENANCE calls these "header-only": in fact each has a complete 800-byte
    # header (InpChansPresent = 4, ImgHdrSize = 0) and 25 records, while the
    # header claims millions.  qdio reads the 25 records and warns.
    v10 = shared_file("libpicoquant/hydraharp_v10.ht2")
    with pytest.warns(QdioWarning, match="header says 52378636 records, the file holds 25"):
        r = qdio.read(v10, with_markers=True)
    s = r.stream
    assert parse_legacy_header(v10).data_offset == 800
    assert s.counts_per_channel() == {0: 2, 1: 4, 2: 6, 3: 7}
    assert s.attrs["n_overflow_records"] == 6 and len(r.markers) == 0
    # first two photons, by hand from the raw records 0x0380282A, 0xFE000000, 0x0618D1E4:
    # detector 1 at 25176106 ps; one v1 overflow (33552000 ps); detector 3 at 1626596 ps
    assert s.channel[:2].tolist() == [1, 3]
    assert s.macrotime[:2].tolist() == [25176106, 33552000 + 1626596]
    assert s.macrotime_resolution_s == 1e-12 and s.microtime is None

    v20 = shared_file("libpicoquant/hydraharp_v20.ht2")
    with pytest.warns(QdioWarning, match="header says 10431577 records, the file holds 25"):
        r = qdio.read(v20, with_markers=True)
    assert len(r.stream) == 0  # an empty stream: only sync events were recorded
    assert r.markers.bits.tolist() == [0] * 25  # sync events (special, channel 0)
    period_ps = np.diff(r.markers.macrotime).mean()
    assert period_ps == pytest.approx(1e12 / r.stream.attrs["sync_rate_hz"], rel=1e-3)


@pytest.mark.realdata
def test_real_t3r_v50_known_answers():
    r = qdio.read(shared_file("libpicoquant/timeharp_v50.t3r"), with_markers=True)
    s = r.stream
    # 86,997 records: 85,571 photons, all routed to channel 0 (PROVENANCE's
    # "channels 0/1" is phconvert's valid bit, see the oracle test), 1,425
    # overflows and one marker record (all three marker bits, time tag 4).
    assert s.counts_per_channel() == {0: 85571}
    assert s.attrs["n_overflow_records"] == 1425 and s.attrs["n_records"] == 86997
    assert r.markers.macrotime.tolist() == [4] and r.markers.bits.tolist() == [7]
    assert s.macrotime_resolution_s == 100e-9
    assert s.microtime_resolution_s == pytest.approx(70.2e-12, rel=1e-3)
    # the acquisition stopped after 9.344 s; the last photon is just before
    assert 9.3 < s.duration_s < s.attrs["stop_after_s"] == 9.344
    assert s.attrs["created"] == dt.datetime(2003, 9, 8, 12, 51, 43)


@pytest.mark.realdata
def test_real_t3r_v60_known_answers():
    path = shared_file("mn_pqreader/Test.t3r")
    s = qdio.read(path)
    assert s.counts_per_channel() == {0: 180, 1: 180}
    assert s.attrs["n_overflow_records"] == 1520 and s.attrs["n_records"] == 1880
    assert s.attrs["creating_software"] == "TimeHarp Software"
    assert s.attrs["instrument"] == "TimeHarp 200"
    assert 9.0 < s.duration_s < s.attrs["stop_after_s"] == 10.0
    assert s.microtime.max() < 4096


@pytest.mark.realdata
def test_real_rotating_polarizer_t3r():
    s = qdio.read(shared_file("mn_pqreader/RotatingPolarizer.t3r"))
    assert s.attrs["format"] == "T3R" and s.attrs["format_version"] == "6.0"
    assert len(s) > 0


@pytest.mark.realdata
def test_real_chunks_equal_whole_read():
    path = shared_file("libpicoquant/hydraharp_v20.ht3")
    whole = qdio.read(path)
    joined = qdio.concatenate(list(qdio.iter_chunks(path, max_records=5000)))
    assert np.array_equal(whole.macrotime, joined.macrotime)
    assert np.array_equal(whole.channel, joined.channel)
    assert np.array_equal(whole.microtime, joined.microtime)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("rel", "fmt"),
    [
        ("full_sms/trace0.pt3", "PT3"),
        ("fcs_point_correlator/topfluorPE_2_1_1_1.pt3", "PT3"),
        ("libpicoquant/hydraharp_v20.ht3", "HT3"),
        ("libpicoquant/hydraharp_v10.ht3", "HT3"),
        ("libpicoquant/hydraharp_v10.ht2", "HT2"),
        ("libpicoquant/hydraharp_v20.ht2", "HT2"),
        ("libpicoquant/timeharp_v50.t3r", "T3R"),
        ("mn_pqreader/Test.t3r", "T3R"),
    ],
)
def test_real_files_are_detected(rel, fmt):
    assert qdio.detect_format(shared_file(rel)) == fmt


# ---------------------------------------------------------------- oracles --


@pytest.fixture(scope="module")
def pqreader():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the oracle's own import-time warnings
        return pytest.importorskip("phconvert.pqreader")


def _quiet(func, *args, **kwargs):
    """Call an oracle with its warnings silenced (they are not qdio's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def _assert_same_t3(s, timestamps, channels, nanotimes):
    assert np.array_equal(s.macrotime, timestamps)
    assert np.array_equal(s.channel, channels)
    assert np.array_equal(s.microtime, nanotimes)


@pytest.mark.realdata
def test_oracle_phconvert_symphotime_pt3(pqreader):
    path = shared_file("fcs_point_correlator/topfluorPE_2_1_1_1.pt3")
    ts, det, nt, meta, _ = _quiet(pqreader.load_pt3, str(path))
    photon = det != 15  # phconvert keeps overflow records in its arrays
    s = qdio.read(path)
    _assert_same_t3(s, ts[photon], det[photon] - 1, nt[photon])  # phconvert: 1-based
    assert s.macrotime_resolution_s == meta["timestamps_unit"]
    # phconvert's bin width is float32 (1e-9 * the float32 header field)
    assert s.microtime_resolution_s == pytest.approx(meta["nanotimes_unit"], rel=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize("i", range(5))
def test_oracle_phconvert_labview_pt3_on_a_patched_copy(pqreader, tmp_path, i):
    # phconvert refuses the space-padded version b"2.0   " (and load_pt3 then
    # fails on the 4-digit year): patch a copy, never the original.
    src = shared_file(f"full_sms/trace{i}.pt3")
    data = bytearray(src.read_bytes())
    assert data[16:22] == b"2.0   "
    data[16:22] = b"2.0\0\0\0"
    copy = write(tmp_path, "patched.pt3", bytes(data))
    records, ts_unit, nt_unit, _ = _quiet(pqreader.pt3_reader, str(copy))
    det, ts, nt, _ = _quiet(
        pqreader.process_t3records,
        records, time_bit=16, dtime_bit=12, ch_bit=4, special_bit=False,
    )  # fmt: skip
    photon = det != 15
    s = qdio.read(src)
    _assert_same_t3(s, ts[photon], det[photon] - 1, nt[photon])
    assert s.macrotime_resolution_s == ts_unit
    assert s.microtime_resolution_s == pytest.approx(nt_unit, rel=1e-6)
    assert bytes(data[22:]) == src.read_bytes()[22:]  # only the version was patched


@pytest.mark.realdata
def test_oracle_phconvert_ht3_v10(pqreader):
    path = shared_file("libpicoquant/hydraharp_v10.ht3")
    ts, det, nt, meta, _ = _quiet(pqreader.load_ht3, str(path))
    photon = det < 64  # special records have the special bit as detector bit 6
    with pytest.warns(QdioWarning, match="header says"):
        s = qdio.read(path)
    _assert_same_t3(s, ts[photon], det[photon], nt[photon])
    assert s.macrotime_resolution_s == meta["timestamps_unit"]
    assert s.microtime_resolution_s == pytest.approx(meta["nanotimes_unit"])


@pytest.mark.realdata
def test_oracle_phconvert_t3r_v50_and_where_it_is_wrong(pqreader):
    path = shared_file("libpicoquant/timeharp_v50.t3r")
    ts, det, nt, meta = _quiet(pqreader.load_t3r, str(path))
    s = qdio.read(path)
    # phconvert's T3R "detectors" are bits 30..31 (the Valid bit and the reserved
    # bit), not the route bits 28..29: 1 = photon, 0 = special record.  The real
    # route of every photon in this file is 0.
    photon = det == 1
    assert photon.sum() == len(s) == 85571 and np.all(s.channel == 0)
    assert np.array_equal(nt[photon], s.microtime)
    # phconvert counts *every* special record as an overflow, including the
    # marker record at the start (Data = 7, overflow bit 11 clear), so all its
    # timestamps are one wrap (65536 x 100 ns) late.  PicoQuant's T3R layout
    # (overflow iff Data & 0x800, markers in Data & 7) and the data agree with
    # qdio: with phconvert's times the last photon would come after the
    # acquisition had stopped (StopAfter = 9344 ms).
    assert np.all(ts[photon] - s.macrotime == 65536)
    stop_after_s = s.attrs["stop_after_s"]
    assert s.macrotime[-1] * 100e-9 < stop_after_s < ts[photon][-1] * 100e-9
    assert meta["timestamps_unit"] == s.macrotime_resolution_s


@pytest.mark.realdata
@pytest.mark.parametrize(
    "rel", ["libpicoquant/hydraharp_v20.ht3", "libpicoquant/hydraharp_v10.ht3"]
)
def test_oracle_tttrlib_ht3(rel):
    tttrlib = pytest.importorskip("tttrlib")
    path = shared_file(rel)
    # tttrlib prints "Only HT3 files in version 1.0 supported" for v2.0, then reads it right
    data = _quiet(tttrlib.TTTR, str(path), "HT3")
    ch = np.asarray(data.routing_channels)
    photon = np.asarray(data.event_types) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QdioWarning)  # the v1.0 file's header count
        s = qdio.read(path)
    # tttrlib's HydraHarp channels are 0-based, like qdio's (its PicoHarp ones are 1-based)
    _assert_same_t3(
        s,
        np.asarray(data.macro_times)[photon],
        ch[photon],
        np.asarray(data.micro_times)[photon],
    )
    assert s.macrotime_resolution_s == pytest.approx(data.header.macro_time_resolution, rel=1e-12)
    assert s.microtime_resolution_s == pytest.approx(data.header.micro_time_resolution)
