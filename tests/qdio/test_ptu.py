"""PTU reading: hand-built record sequences for every special case, header quirks, real files."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest

import qdio
from qdio import QdioError, QdioWarning
from qdio.ptu import PTU_MAGIC, TagType, _tag_bytes

from conftest import shared_file
from ptu_build import build_ptu, ht2, ht3, pt2, pt3


def test_picoharp_t3_specials(tmp_path):
    recs = [
        pt3(1, 100, 10),  # photon ch 0
        pt3(2, 0, 11),  # photon with dtime == 0: a photon, not a special
        pt3(15, 0, 0),  # overflow: +65536
        pt3(15, 0b0101, 7),  # marker bits 0101 at 65536 + 7
        pt3(4, 4095, 65535),  # photon ch 3 at 65536 + 65535
        pt3(15, 0, 0),
        pt3(15, 0, 0),  # two overflows
        pt3(3, 5, 0),  # photon ch 2 at 3 * 65536
    ]
    r = qdio.read(build_ptu(tmp_path / "a.ptu", recs), with_markers=True)
    s = r.stream
    assert s.channel.tolist() == [0, 1, 3, 2]
    assert s.macrotime.tolist() == [10, 11, 65536 + 65535, 3 * 65536]
    assert s.microtime.tolist() == [100, 0, 4095, 5]
    assert s.n_microtime_bins == 4096
    assert r.markers.macrotime.tolist() == [65536 + 7] and r.markers.bits.tolist() == [5]
    assert s.attrs["n_overflow_records"] == 3
    assert s.attrs["measurement_mode"] == "T3"
    assert s.macrotime_resolution_s == 400e-9 and s.microtime_resolution_s == 128e-12


def test_picoharp_t3_channel_zero_is_invalid_and_skipped(tmp_path):
    path = build_ptu(tmp_path / "a.ptu", [pt3(1, 1, 1), pt3(0, 1, 2), pt3(1, 1, 3)])
    with pytest.warns(QdioWarning, match="1 invalid"):
        s = qdio.read(path)
    assert s.macrotime.tolist() == [1, 3]


def test_hydraharp_v2_t3_overflow_counts(tmp_path):
    recs = [
        ht3(0, 0, 7, 5),
        ht3(1, 63, 0, 3),  # overflow x3
        ht3(0, 2, 9, 1),
        ht3(1, 63, 0, 0),  # count 0 means 1
        ht3(1, 4, 0, 2),  # marker bits 0100
        ht3(0, 63, 32767, 1023),  # photon on channel 63
    ]
    r = qdio.read(build_ptu(tmp_path / "h.ptu", recs, rec_type=0x01010304), with_markers=True)
    assert r.stream.channel.tolist() == [0, 2, 63]
    assert r.stream.macrotime.tolist() == [5, 3 * 1024 + 1, 4 * 1024 + 1023]
    assert r.stream.microtime.tolist() == [7, 9, 32767]
    assert r.stream.n_microtime_bins == 32768
    assert r.markers.macrotime.tolist() == [4 * 1024 + 2] and r.markers.bits.tolist() == [4]
    # the same records under the v1 rule: every overflow record adds exactly 1024
    s1 = qdio.read(build_ptu(tmp_path / "h1.ptu", recs, rec_type=0x00010304))
    assert s1.macrotime.tolist() == [5, 1024 + 1, 2 * 1024 + 1023]


@pytest.mark.parametrize("rec_type", [0x00010305, 0x00010306, 0x00010307])
def test_timeharp_and_multiharp_t3_use_v2_rules(tmp_path, rec_type):
    recs = [ht3(1, 63, 0, 2), ht3(0, 1, 3, 4)]
    s = qdio.read(build_ptu(tmp_path / "t.ptu", recs, rec_type=rec_type))
    assert s.macrotime.tolist() == [2 * 1024 + 4] and s.channel.tolist() == [1]


def test_hydraharp_t2_sync_markers_and_overflows(tmp_path):
    recs = [
        ht2(0, 1, 100),
        ht2(1, 0, 150),  # sync event -> marker with bits 0
        ht2(1, 63, 2),  # overflow x2 (v2)
        ht2(1, 3, 10),  # marker bits 3
        ht2(0, 0, 20),
    ]
    path = build_ptu(tmp_path / "t2.ptu", recs, rec_type=0x01010204, glob_res=1e-12)
    r = qdio.read(path, with_markers=True)
    s = r.stream
    assert s.microtime is None and s.microtime_resolution_s is None
    assert s.channel.tolist() == [1, 0]
    assert s.macrotime.tolist() == [100, 2 * 33554432 + 20]
    assert r.markers.bits.tolist() == [0, 3]
    assert r.markers.macrotime.tolist() == [150, 2 * 33554432 + 10]
    # v1: overflow adds 33552000 whatever the count
    s1 = qdio.read(build_ptu(tmp_path / "v1.ptu", recs, rec_type=0x00010204, glob_res=1e-12))
    assert s1.macrotime.tolist() == [100, 33552000 + 20]


def test_picoharp_t2(tmp_path):
    recs = [pt2(0, 5), pt2(15, 0), pt2(15, 0x30 | 2), pt2(3, 7)]  # overflow, marker 2
    r = qdio.read(
        build_ptu(tmp_path / "p2.ptu", recs, rec_type=0x00010203, glob_res=4e-12),
        with_markers=True,
    )
    assert r.stream.channel.tolist() == [0, 3]
    assert r.stream.macrotime.tolist() == [5, 210698240 + 7]
    assert r.markers.bits.tolist() == [2] and r.markers.macrotime.tolist() == [210698240 + 0x30]


def test_record_count_zero_uses_file_size(tmp_path):
    path = build_ptu(tmp_path / "z.ptu", [pt3(1, 1, 1), pt3(1, 1, 2)], n_records=0)
    assert len(qdio.read(path)) == 2


def test_record_count_larger_than_file_warns_and_never_allocates_it(tmp_path):
    path = build_ptu(tmp_path / "big.ptu", [pt3(1, 1, 1), pt3(1, 1, 2)], n_records=3_000_000_000)
    with pytest.warns(QdioWarning, match="header says 3000000000 records, the file holds 2"):
        s = qdio.read(path)
    assert len(s) == 2


def test_truncated_last_record_is_dropped_with_a_warning(tmp_path):
    path = build_ptu(
        tmp_path / "t.ptu", [pt3(1, 1, 1), pt3(1, 1, 2)], n_records=3, trailing=b"\x01\x02"
    )
    with pytest.warns(QdioWarning) as record:
        s = qdio.read(path)
    messages = " ".join(str(w.message) for w in record)
    assert "truncated record dropped" in messages and "header says 3" in messages
    assert s.macrotime.tolist() == [1, 2]


def test_out_of_order_records_are_sorted_with_a_warning(tmp_path):
    path = build_ptu(tmp_path / "o.ptu", [pt3(1, 1, 5), pt3(1, 2, 3), pt3(1, 3, 9)])
    with pytest.warns(QdioWarning, match="1 photon records are earlier than a record before"):
        s = qdio.read(path)
    assert s.macrotime.tolist() == [3, 5, 9] and s.microtime.tolist() == [2, 1, 3]


def test_float8_creation_time_symphotime(tmp_path):
    # SymPhoTime 64 writes File_CreatingTime as Float8 seconds since 1601-01-01
    seconds = (dt.datetime(2023, 7, 19, 9, 57, 25) - dt.datetime(1601, 1, 1)).total_seconds()
    tags = [("File_CreatingTime", seconds, TagType.Float8)]
    path = build_ptu(tmp_path / "f.ptu", [pt3(1, 1, 1)], extra_tags=tags)
    s = qdio.read(path)
    assert s.attrs["created"] == dt.datetime(2023, 7, 19, 9, 57, 25)


def test_tag_types_decoded(tmp_path):
    tags = [
        ("Some_Bool", 1, TagType.Bool8),
        ("Some_Wide", "Grüße", TagType.WideString),
        ("Some_Array", [1.5, 2.5], TagType.Float8Array),
        ("Some_Blob", b"\x00\x01\x02", TagType.BinaryBlob),
    ]
    path = build_ptu(tmp_path / "tags.ptu", [pt3(1, 1, 1)], extra_tags=tags)
    t = qdio.read(path).attrs["tags"]
    assert t["Some_Bool"] is True and t["Some_Wide"] == "Grüße"
    assert t["Some_Array"].tolist() == [1.5, 2.5]
    assert t["Some_Blob"][:3] == b"\x00\x01\x02"
    assert t["File_CreatingTime"] == dt.datetime(1899, 12, 30) + dt.timedelta(days=45000.5)


def test_indexed_tags_become_lists(tmp_path):
    tags = [
        ("TTResult_InputRate", 10, TagType.Int8, 0),
        ("TTResult_InputRate", 20, TagType.Int8, 1),
    ]
    head = PTU_MAGIC + b"1.0.00\0\0"
    path = build_ptu(tmp_path / "i.ptu", [pt3(1, 1, 1)])
    raw = path.read_bytes()
    body = b"".join(_tag_bytes(*t) for t in tags)
    path.write_bytes(head + body + raw[len(head) :])
    assert qdio.read(path).attrs["tags"]["TTResult_InputRate"] == [10, 20]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b"PQTTTX\0\0" + b[8:], "unknown file format"),
        (lambda b: b[:200], "without Header_End"),
        (lambda b: b[:16] + b"\0" * 48 + b[64:], "unreadable tag name"),
        (lambda b: b[: 16 + 36] + struct.pack("<I", 0x12345678) + b[16 + 40 :], "unknown tag type"),
    ],
)
def test_corrupt_headers_raise_qdio_error_with_offset(tmp_path, mutate, match):
    path = build_ptu(tmp_path / "c.ptu", [pt3(1, 1, 1)])
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(QdioError, match=match) as exc:
        qdio.read(bad)
    assert str(bad) in str(exc.value)


def test_string_payload_past_end_of_file(tmp_path):
    head = PTU_MAGIC + b"1.0.00\0\0"
    tag = _tag_bytes("File_Comment", "x", TagType.AnsiString)
    tag = tag[:40] + struct.pack("<q", 10**12)  # claims a terabyte of comment
    path = tmp_path / "s.ptu"
    path.write_bytes(head + tag)
    with pytest.raises(QdioError, match=r"'File_Comment' at offset 16: payload of 1000000000000"):
        qdio.read(path)


def test_unknown_record_type_and_missing_resolution(tmp_path):
    with pytest.raises(QdioError, match="TTTRRecType"):
        qdio.read(build_ptu(tmp_path / "r.ptu", [pt3(1, 1, 1)], rec_type=0x00010999))
    with pytest.raises(QdioError, match="MeasDesc_Resolution"):
        qdio.read(build_ptu(tmp_path / "m.ptu", [pt3(1, 1, 1)], resolution=0.0))


def test_empty_file_and_missing_file(tmp_path):
    (tmp_path / "e.ptu").write_bytes(b"")
    with pytest.raises(QdioError, match="empty"):
        qdio.read(tmp_path / "e.ptu")
    with pytest.raises(FileNotFoundError):
        qdio.read(tmp_path / "nope.ptu")


def test_reader_never_modifies_input(tmp_path):
    path = build_ptu(tmp_path / "a.ptu", [pt3(1, 1, 1)], n_records=0)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    qdio.read(path)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


# ------------------------------------------------------------ real files --

PTU_FILES = {
    # file: (photons per channel, markers, overflow records) from ptufile/tttrlib (PROVENANCE.md)
    "napari_flim/ptu_stack_FLIM_z1.ptu": None,
    "napari_flim/ptu_stack_FLIM_z11.ptu": None,
    "libpicoquant/hydraharp_v30_t2.ptu": ({0: 305565}, 0, 129754),
}


@pytest.mark.parametrize("name", sorted(PTU_FILES))
def test_real_ptu_matches_ptufile_elementwise(name):
    ptufile = pytest.importorskip("ptufile")
    path = shared_file(f"{name}")
    r = qdio.read(path, with_markers=True)
    s = r.stream
    with ptufile.PtuFile(path) as p:
        rec = p.decode_records()
        glob_res, res = p.global_resolution, p.tcspc_resolution
    photons = rec[rec["channel"] >= 0]
    np.testing.assert_array_equal(s.macrotime, photons["time"])
    np.testing.assert_array_equal(s.channel, photons["channel"])
    if s.is_t3:
        np.testing.assert_array_equal(s.microtime, photons["dtime"])
        assert s.microtime_resolution_s == pytest.approx(res)
    marks = rec[rec["marker"] > 0]
    np.testing.assert_array_equal(r.markers.macrotime, marks["time"])
    np.testing.assert_array_equal(r.markers.bits, marks["marker"])
    assert s.macrotime_resolution_s == pytest.approx(glob_res)
    n_ovf = int(np.count_nonzero((rec["channel"] < 0) & (rec["marker"] == 0)))
    assert s.attrs["n_overflow_records"] == n_ovf
    expected = PTU_FILES[name]
    if expected is not None:
        assert s.counts_per_channel() == expected[0]
        assert len(r.markers) == expected[1] and s.attrs["n_overflow_records"] == expected[2]


def test_real_symphotime_ptu_header_quirks():
    s = qdio.read(shared_file("napari_flim/ptu_stack_FLIM_z1.ptu"))
    # tag version 00.0.1, Float8 File_CreatingTime (SymPhoTime 64): a 2023 date
    assert s.attrs["tags"]["_tag_version"] == "00.0.1"
    assert s.attrs["created"].year == 2023
    assert s.attrs["sync_rate_hz"] == pytest.approx(78.02e6, rel=1e-3)
    assert s.microtime_resolution_s == pytest.approx(97e-12, rel=0.01)
    # 155k-732k records: 5 frames x 256 lines of line-start/stop markers
    assert 155_000 <= s.attrs["n_records"] <= 732_000
