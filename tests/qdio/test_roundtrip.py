"""Writers: write -> read round trips, and the files checked by other readers.

Both qdio writers (:func:`qdio.write_ptu` for every record type,
:func:`qdio.write_photon_hdf5`) must give files that qdio reads back exactly
(channel, macrotime, microtime, resolutions, n_microtime_bins, markers) and
that ptufile, tttrlib and phconvert decode to the same photons.  Streams are
drawn with hypothesis, including gaps long enough to need many overflow
records and HydraHarp multi-overflow counts; the oracle checks use fixed
example streams.

Known oracle quirks (checked here, so a change in an oracle shows up):

- tttrlib 0.26 (PicoHarp T3): photons with dtime == 0 get event type 1
  ("marker"); real marker records come back as event type 0 on routing
  channel 15 with the marker bits as micro time.
- PicoHarp T2 markers carry their bits in the 4 lowest time-tag bits: qdio
  clears them (marker time resolution is 16 tags), ptufile and tttrlib
  return ``(t & ~15) | bits``.
- phconvert 0.10.2 (PicoHarp T3 with markers): the default numba overflow
  path raises IndexError and the "loop" path gives every marker the same
  detector; ``ovcfunc="base"`` is right.  PicoHarp T2 markers: the times are
  right (low 4 bits cleared) but every marker gets detector 16 (bits lost).
- tttrlib (Photon-HDF5) ignores non-photon IDs: markers come back as events
  on their detector ID.
- ptufile (HydraHarp v2 / generic T2) computes ``count * 2**25`` in 32 bits,
  so overflow records with counts >= 128 decode wrongly; write_ptu therefore
  writes T2 overflow counts of at most 127 (T3 counts go up to 1023).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdio
from qdio import photon_hdf5

from conftest import shared_file

ptufile = pytest.importorskip("ptufile")
tttrlib = pytest.importorskip("tttrlib")
phconvert = pytest.importorskip("phconvert")
from phconvert import pqreader  # noqa: E402

# record type -> what it holds: mode, max channel, microtime bins (read back),
# overflow period and the most wraps one overflow record can hold
RECORD_TYPES = {
    "picoharp_t3": dict(t3=True, max_ch=3, nbins=4096, wrap=65536, max_count=1),
    "hydraharp_v2_t3": dict(t3=True, max_ch=63, nbins=32768, wrap=1024, max_count=1023),
    "generic_t3": dict(t3=True, max_ch=63, nbins=32768, wrap=1024, max_count=1023),
    "picoharp_t2": dict(t3=False, max_ch=4, nbins=None, wrap=210698240, max_count=1),
    "hydraharp_v2_t2": dict(t3=False, max_ch=63, nbins=None, wrap=1 << 25, max_count=127),
}
HYPOTHESIS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_same_stream(got: qdio.PhotonStream, want: qdio.PhotonStream) -> None:
    """Columns, dtypes and resolutions identical."""
    assert got.channel.dtype == np.uint8 and got.macrotime.dtype == np.int64
    np.testing.assert_array_equal(got.channel, want.channel)
    np.testing.assert_array_equal(got.macrotime, want.macrotime)
    if want.microtime is None:
        assert got.microtime is None
    else:
        assert got.microtime is not None and got.microtime.dtype == np.int32
        np.testing.assert_array_equal(got.microtime, want.microtime)
    assert got.macrotime_resolution_s == want.macrotime_resolution_s
    assert got.microtime_resolution_s == want.microtime_resolution_s
    assert got.n_microtime_bins == want.n_microtime_bins


def assert_same_markers(got: qdio.Markers, want: qdio.Markers) -> None:
    np.testing.assert_array_equal(got.macrotime, want.macrotime)
    np.testing.assert_array_equal(got.bits, want.bits)


def expected_ptu_markers(record_type: str, markers: qdio.Markers) -> qdio.Markers:
    """Markers as a PTU of ``record_type`` can hold them (PicoHarp T2: 16-tag steps)."""
    if record_type == "picoharp_t2":
        return qdio.Markers(markers.macrotime & ~np.int64(15), markers.bits)
    return markers


# ------------------------------------------------------------ strategies --


@st.composite
def macrotimes(draw, wrap: int, max_count: int, n: int) -> np.ndarray:
    """Sorted times with gaps of every kind: none, small, one wrap +-1, many wraps."""
    # long gaps: up to 300 one-wrap overflow records, or 5 full multi-overflow records
    many_wraps = 300 if max_count == 1 else 5 * max_count
    gap = st.one_of(
        st.integers(0, 3),
        st.integers(0, wrap),
        st.sampled_from([wrap - 1, wrap, wrap + 1, wrap * max_count, wrap * max_count + 1]),
        st.integers(wrap, wrap * many_wraps),
    )
    start = draw(st.integers(0, 3 * wrap))
    gaps = draw(st.lists(gap, min_size=n, max_size=n))
    return start + np.cumsum(np.asarray(gaps, np.int64))


@st.composite
def ptu_streams(draw, record_type: str) -> qdio.PhotonStream:
    rt = RECORD_TYPES[record_type]
    n = draw(st.integers(0, 60))
    channel = draw(st.lists(st.integers(0, rt["max_ch"]), min_size=n, max_size=n))
    macro = draw(macrotimes(rt["wrap"], rt["max_count"], n))
    macro_res = draw(st.floats(1e-12, 1e-6))
    if not rt["t3"]:
        return qdio.PhotonStream(np.asarray(channel, np.uint8), macro, None, macro_res)
    nbins = rt["nbins"]
    micro = draw(
        st.lists(
            st.one_of(st.sampled_from([0, nbins - 1]), st.integers(0, nbins - 1)),
            min_size=n,
            max_size=n,
        )
    )
    micro_res = draw(st.floats(1e-13, 1e-9))
    return qdio.PhotonStream(
        np.asarray(channel, np.uint8), macro, np.asarray(micro, np.int32),
        macro_res, micro_res, nbins,
    )  # fmt: skip


@st.composite
def marker_tables(draw, stream: qdio.PhotonStream, wrap: int, *, bits=(1, 15)) -> qdio.Markers:
    end = int(stream.macrotime[-1]) if len(stream) else 0
    times = draw(st.lists(st.integers(0, end + 2 * wrap), max_size=12))
    bits_ = draw(st.lists(st.integers(*bits), min_size=len(times), max_size=len(times)))
    return qdio.Markers(np.sort(np.asarray(times, np.int64)), np.asarray(bits_, np.uint8))


# ------------------------------------------------- PTU: hypothesis round trip --


@pytest.mark.parametrize("record_type", sorted(RECORD_TYPES))
@HYPOTHESIS
@given(data=st.data())
def test_write_ptu_roundtrip(record_type, data):
    stream = data.draw(ptu_streams(record_type), label="stream")
    markers = data.draw(
        st.one_of(st.none(), marker_tables(stream, RECORD_TYPES[record_type]["wrap"])),
        label="markers",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = qdio.write_ptu(Path(tmp) / "x.ptu", stream, record_type=record_type, markers=markers)
        got = qdio.read(path, with_markers=True)
        chunks = list(qdio.iter_chunks(path, max_records=7, with_markers=True))
    assert_same_stream(got.stream, stream)
    want_markers = qdio.Markers.empty() if markers is None else markers
    assert_same_markers(got.markers, expected_ptu_markers(record_type, want_markers))
    # chunked reading across overflow records continues the macrotime
    # (a file without records gives no chunk at all)
    if chunks:
        assert_same_stream(qdio.concatenate([c.stream for c in chunks]), stream)
    else:
        assert len(stream) == 0 and len(want_markers) == 0
    assert sum(len(c.markers) for c in chunks) == len(want_markers)


def test_write_ptu_multi_overflow_records(tmp_path):
    """A gap of 2.5 x 1023 wraps needs three HydraHarp v2 overflow records (1023, 1023, rest)."""
    gap = int(2.5 * 1023 * 1024)
    stream = qdio.PhotonStream(
        np.array([1, 2], np.uint8), np.array([5, 5 + gap]), np.array([0, 32767]),
        1e-8, 1e-12, 32768,
    )  # fmt: skip
    path = qdio.write_ptu(tmp_path / "x.ptu", stream, record_type="hydraharp_v2_t3")
    data_offset = os.path.getsize(path) - 4 * 5
    records = np.fromfile(path, "<u4", offset=data_offset)
    overflows = records[(records >> 31 == 1) & ((records >> 25) & 0x3F == 63)]
    np.testing.assert_array_equal(overflows & 0x3FF, [1023, 1023, (5 + gap) // 1024 - 2046])
    assert_same_stream(qdio.read(path), stream)


def test_write_ptu_t2_overflow_counts_fit_ptufile(tmp_path):
    """HydraHarp T2 overflow counts stay below 128 (ptufile multiplies in 32 bits)."""
    gap = 1000 * (1 << 25) + 7
    stream = qdio.PhotonStream(np.array([0, 3], np.uint8), np.array([1, 1 + gap]), None, 1e-12)
    path = qdio.write_ptu(tmp_path / "x.ptu", stream, record_type="hydraharp_v2_t2")
    records = np.fromfile(path, "<u4", offset=os.path.getsize(path) - 4 * (2 + 8))
    overflows = records[(records >> 31 == 1) & ((records >> 25) & 0x3F == 63)]
    np.testing.assert_array_equal(overflows & 0x1FFFFFF, [127] * 7 + [1000 - 7 * 127])
    assert_same_stream(qdio.read(path), stream)
    rec = _ptufile_records(path)
    np.testing.assert_array_equal(rec["time"][rec["channel"] >= 0], stream.macrotime)


def test_write_ptu_n_microtime_bins_is_the_record_range(tmp_path):
    """PTU stores no TCSPC range: it reads back as the record's 12- or 15-bit range."""
    stream = qdio.PhotonStream(np.zeros(2, np.uint8), [1, 2], [3, 999], 1e-8, 1e-11, 1000)
    got = qdio.read(qdio.write_ptu(tmp_path / "x.ptu", stream, record_type="picoharp_t3"))
    assert got.n_microtime_bins == 4096
    np.testing.assert_array_equal(got.microtime, stream.microtime)


# --------------------------------------------------- PTU: fixed examples --


def example_stream(record_type: str) -> qdio.PhotonStream:
    """Every channel, microtimes 0 and max, equal times, and long multi-wrap gaps."""
    rt = RECORD_TYPES[record_type]
    rng = np.random.default_rng(sum(map(ord, record_type)))
    n = 400
    wrap, max_count = rt["wrap"], rt["max_count"]
    gaps = rng.integers(0, wrap // 3, n)
    gaps[::50] = 0  # photons at equal times
    gaps[17] = wrap * (70 if max_count == 1 else 3 * max_count) + 11  # many overflow records
    gaps[101] = wrap
    gaps[202] = wrap * max_count + 1
    macro = np.cumsum(gaps.astype(np.int64))
    channel = (np.arange(n) % (rt["max_ch"] + 1)).astype(np.uint8)
    if not rt["t3"]:
        return qdio.PhotonStream(channel, macro, None, 1e-12)
    micro = rng.integers(0, rt["nbins"], n)
    micro[[3, 90]] = 0
    micro[[4, 91]] = rt["nbins"] - 1
    micro_res = 16e-12 if record_type == "picoharp_t3" else 1e-12
    return qdio.PhotonStream(channel, macro, micro, 12.5e-9, micro_res, rt["nbins"])


def example_markers(stream: qdio.PhotonStream) -> qdio.Markers:
    times = np.sort(stream.macrotime[[10, 17, 18, 150, 300]] + np.array([0, -1, 0, 5, 3]))
    return qdio.Markers(times, np.array([1, 2, 4, 8, 15], np.uint8))


@pytest.fixture(params=sorted(RECORD_TYPES))
def written_ptu(request, tmp_path):
    record_type = request.param
    stream = example_stream(record_type)
    markers = example_markers(stream)
    plain = qdio.write_ptu(tmp_path / "plain.ptu", stream, record_type=record_type)
    marked = qdio.write_ptu(
        tmp_path / "marked.ptu", stream, record_type=record_type, markers=markers
    )
    return record_type, stream, markers, plain, marked


def test_write_ptu_read_by_qdio(written_ptu):
    record_type, stream, markers, plain, marked = written_ptu
    assert_same_stream(qdio.read(plain), stream)
    got = qdio.read(marked, with_markers=True)
    assert_same_stream(got.stream, stream)
    assert_same_markers(got.markers, expected_ptu_markers(record_type, markers))
    attrs = got.stream.attrs
    assert attrs["format"] == "PTU"
    assert attrs["tags"]["TTResult_NumberOfRecords"] == attrs["n_records"]
    assert attrs["tags"]["CreatorSW_Name"] == "qdlight"
    guid = attrs["tags"]["File_GUID"]
    assert len(guid) == 38 and guid[0] == "{" and guid[9] == "-" and guid[-1] == "}"


def _ptufile_records(path: Path) -> np.ndarray:
    with ptufile.PtuFile(path) as ptu:
        return ptu.decode_records()


def test_write_ptu_oracle_ptufile(written_ptu):
    record_type, stream, markers, plain, marked = written_ptu
    with ptufile.PtuFile(plain) as ptu:
        assert ptu.global_resolution == stream.macrotime_resolution_s
        if stream.is_t3:
            assert ptu.tcspc_resolution == stream.microtime_resolution_s
    for path in (plain, marked):
        rec = _ptufile_records(path)
        photons = rec[rec["channel"] >= 0]  # overflow and marker rows have channel -1
        np.testing.assert_array_equal(photons["time"], stream.macrotime)
        np.testing.assert_array_equal(photons["channel"], stream.channel)
        if stream.is_t3:
            np.testing.assert_array_equal(photons["dtime"], stream.microtime)
        else:
            assert "dtime" not in rec.dtype.names
    rec = _ptufile_records(marked)
    mk = rec[rec["marker"] > 0]
    np.testing.assert_array_equal(mk["marker"], markers.bits)
    want = markers.macrotime
    if record_type == "picoharp_t2":  # ptufile keeps the marker bits in the low time bits
        want = (want & ~np.int64(15)) | markers.bits
    np.testing.assert_array_equal(mk["time"], want)


def _tttrlib(path: Path, container: str):
    # tttrlib prints diagnostics on stdout (for example for files without nanotimes)
    with contextlib.redirect_stdout(io.StringIO()):
        return tttrlib.TTTR(str(path), container)


def test_write_ptu_oracle_tttrlib(written_ptu):
    record_type, stream, markers, plain, marked = written_ptu
    t = _tttrlib(plain, "PTU")
    assert t.header.macro_time_resolution == pytest.approx(stream.macrotime_resolution_s)
    for path in (plain, marked):
        t = _tttrlib(path, "PTU")
        macro, route = t.get_macro_times(), t.get_routing_channel().astype(np.int64)
        micro, kind = t.get_micro_times(), t.get_event_type()
        if record_type == "picoharp_t3":
            # tttrlib: 1-based PicoHarp channels; markers are channel 15 "photons"
            # and photons with dtime == 0 are labelled markers (event type 1)
            photon = route != 15
            np.testing.assert_array_equal(route[photon] - 1, stream.channel)
            np.testing.assert_array_equal(kind[photon], (stream.microtime == 0).astype(np.int8))
            marker = ~photon
            marker_bits = micro[marker]
        else:
            photon = kind == 0
            np.testing.assert_array_equal(route[photon], stream.channel)
            marker = kind == 1
            marker_bits = route[marker]
        np.testing.assert_array_equal(macro[photon], stream.macrotime)
        if stream.is_t3:
            np.testing.assert_array_equal(micro[photon], stream.microtime)
        if path == marked:
            np.testing.assert_array_equal(marker_bits, markers.bits)
            want = markers.macrotime
            if record_type == "picoharp_t2":
                want = (want & ~np.int64(15)) | markers.bits
            np.testing.assert_array_equal(macro[marker], want)
        else:
            assert record_type == "picoharp_t3" or not np.any(kind == 1)


def test_write_ptu_oracle_phconvert(written_ptu):
    record_type, stream, markers, plain, marked = written_ptu
    picoharp = record_type.startswith("picoharp")
    # PicoHarp T3 routing channels are 1-based in phconvert; markers get IDs
    # 2**k + bits above every photon channel (16 for PicoHarp, 64 HydraHarp)
    offset = 1 if record_type == "picoharp_t3" else 0
    limit = 16 if picoharp else 64
    for path in (plain, marked):
        ovcfunc = "base" if record_type == "picoharp_t3" else "auto"
        ts, det, nano, meta, marker_ids = pqreader.load_ptu(str(path), ovcfunc=ovcfunc)
        det = det.astype(np.int64)
        photon = det < limit
        np.testing.assert_array_equal(ts[photon], stream.macrotime)
        np.testing.assert_array_equal(det[photon] - offset, stream.channel)
        assert meta["timestamps_unit"] == stream.macrotime_resolution_s
        if stream.is_t3:
            np.testing.assert_array_equal(nano[photon], stream.microtime)
            assert meta["nanotimes_unit"] == stream.microtime_resolution_s
        else:
            assert nano is None
        if path == plain:
            assert photon.all() and marker_ids.size == 0
            continue
        np.testing.assert_array_equal(
            ts[~photon], expected_ptu_markers(record_type, markers).macrotime
        )
        if record_type == "picoharp_t2":
            assert np.all(det[~photon] == 16)  # phconvert 0.10.2 loses the marker bits
        else:
            np.testing.assert_array_equal(det[~photon] - limit, markers.bits)
            np.testing.assert_array_equal(np.sort(marker_ids), np.unique(markers.bits) + limit)


def test_write_ptu_real_image_file_with_markers(tmp_path):
    """A SymPhoTime FLIM image (line/frame markers) survives read -> write_ptu -> read."""
    src = shared_file("napari_flim/ptu_stack_FLIM_z1.ptu")
    original = qdio.read(src, with_markers=True)
    assert len(original.markers) > 0
    path = qdio.write_ptu(
        tmp_path / "copy.ptu", original.stream, record_type="picoharp_t3",
        markers=original.markers,
    )  # fmt: skip
    got = qdio.read(path, with_markers=True)
    assert_same_stream(got.stream, original.stream)
    order = np.argsort(original.markers.macrotime, kind="stable")
    np.testing.assert_array_equal(got.markers.macrotime, original.markers.macrotime[order])
    np.testing.assert_array_equal(got.markers.bits, original.markers.bits[order])


# ------------------------------------------ Photon-HDF5: round trip --


@st.composite
def any_streams(draw) -> qdio.PhotonStream:
    """Streams of every shape a PhotonStream allows (Photon-HDF5 holds them all)."""
    n = draw(st.integers(0, 80))
    channel = np.asarray(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), np.uint8)
    start = draw(st.integers(-(2**40), 2**62))
    gaps = draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n))
    macro = start + np.cumsum(np.asarray(gaps, np.int64))
    macro_res = draw(st.floats(1e-15, 1e-3))
    if draw(st.booleans()):
        return qdio.PhotonStream(channel, macro, None, macro_res)
    nbins = draw(st.one_of(st.sampled_from([1, 4096, 65536, 65537]), st.integers(1, 2**31 - 1)))
    micro = draw(st.lists(st.integers(0, nbins - 1), min_size=n, max_size=n))
    return qdio.PhotonStream(
        channel, macro, np.asarray(micro, np.int32), macro_res,
        draw(st.floats(1e-15, 1e-6)), nbins,
    )  # fmt: skip


@HYPOTHESIS
@given(data=st.data())
def test_write_photon_hdf5_roundtrip(data):
    stream = data.draw(any_streams(), label="stream")
    markers = None
    if data.draw(st.booleans(), label="with markers"):
        n = data.draw(st.integers(0, 10))
        times = data.draw(st.lists(st.integers(-(2**40), 2**62), min_size=n, max_size=n))
        bits = data.draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))
        markers = qdio.Markers(np.sort(np.asarray(times, np.int64)), np.asarray(bits, np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        path = qdio.write_photon_hdf5(Path(tmp) / "x.h5", stream, markers=markers)
        assert qdio.detect_format(path) == "Photon-HDF5"
        got = qdio.read(path, with_markers=True)
        chunks = list(qdio.iter_chunks(path, max_records=9, with_markers=True))
    assert_same_stream(got.stream, stream)
    assert_same_markers(got.markers, qdio.Markers.empty() if markers is None else markers)
    assert_same_stream(qdio.concatenate([c.stream for c in chunks]), stream)
    assert sum(len(c.markers) for c in chunks) == (0 if markers is None else len(markers))


# --------------------------------------- Photon-HDF5: oracles --


def _phconvert_open(path: Path):
    """Open and validate with phconvert (it rejects files that break the spec).

    ``warnings=False`` only silences its notes about optional fields qdio
    cannot know (excitation/detection wavelengths, author); any other
    warning (a non-standard field) is an error under pytest.
    """
    return phconvert.hdf5.load_photon_hdf5(str(path), warnings=False, require_rootformat=True)


def example_h5_stream(t3: bool) -> qdio.PhotonStream:
    rng = np.random.default_rng(7 if t3 else 8)
    n = 3000
    channel = rng.integers(0, 4, n).astype(np.uint8)
    macro = np.cumsum(rng.integers(0, 5000, n)) + 123
    if not t3:
        return qdio.PhotonStream(channel, macro, None, 1e-12)
    micro = rng.integers(0, 4096, n)
    return qdio.PhotonStream(channel, macro, micro, 12.5e-9, 16e-12, 4096)


@pytest.mark.parametrize("t3", [True, False], ids=["T3", "T2"])
def test_write_photon_hdf5_oracle_phconvert(tmp_path, t3):
    stream = example_h5_stream(t3)
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream, description="test stream")
    h5 = _phconvert_open(path)
    try:
        pd = h5.root.photon_data
        np.testing.assert_array_equal(pd.timestamps.read(), stream.macrotime)
        np.testing.assert_array_equal(pd.detectors.read(), stream.channel)
        assert pd.timestamps_specs.timestamps_unit.read() == stream.macrotime_resolution_s
        assert pd.measurement_specs.measurement_type.read() == b"generic"
        assert h5.root.description.read() == b"test stream"
        assert h5.root.setup.lifetime.read() == int(t3)
        assert h5.root.identity.software.read() == b"qdlight"
        if t3:
            np.testing.assert_array_equal(pd.nanotimes.read(), stream.microtime)
            assert pd.nanotimes_specs.tcspc_unit.read() == stream.microtime_resolution_s
            assert pd.nanotimes_specs.tcspc_num_bins.read() == stream.n_microtime_bins
            assert pd.nanotimes_specs.tcspc_range.read() == pytest.approx(4096 * 16e-12)
            rate = pd.measurement_specs.laser_repetition_rate.read()
            assert rate == pytest.approx(80e6)
            np.testing.assert_allclose(h5.root.setup.laser_repetition_rates.read(), [80e6])
        else:
            assert "nanotimes" not in pd
        det = h5.root.setup.detectors
        counts = dict(zip(det.id.read().tolist(), det.counts.read().tolist(), strict=True))
        assert counts == stream.counts_per_channel()
    finally:
        h5.close()


def test_write_photon_hdf5_markers_oracle_phconvert(tmp_path):
    stream = example_h5_stream(True)
    markers = qdio.Markers(stream.macrotime[[5, 100, 2000]], np.array([1, 2, 12], np.uint8))
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream, markers=markers)
    h5 = _phconvert_open(path)
    try:
        pd = h5.root.photon_data
        ids = pd.measurement_specs.detectors_specs.non_photon_id1.read()
        np.testing.assert_array_equal(
            ids, [16 + 1, 16 + 2, 16 + 12]
        )  # 2**k above channel 3, bits 12
        det, ts = pd.detectors.read(), pd.timestamps.read()
        is_marker = np.isin(det, ids)
        np.testing.assert_array_equal(ts[is_marker], markers.macrotime)
        np.testing.assert_array_equal(det[is_marker] - 16, markers.bits)
        np.testing.assert_array_equal(ts[~is_marker], stream.macrotime)
        np.testing.assert_array_equal(pd.nanotimes.read()[~is_marker], stream.microtime)
        assert det.dtype == np.uint8
        assert set(h5.root.setup.detectors.id.read()) == {0, 1, 2, 3, *ids.tolist()}
    finally:
        h5.close()


@pytest.mark.parametrize("t3", [True, False], ids=["T3", "T2"])
def test_write_photon_hdf5_oracle_tttrlib(tmp_path, t3):
    stream = example_h5_stream(t3)
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream)
    t = _tttrlib(path, "PHOTON-HDF5")
    np.testing.assert_array_equal(t.get_macro_times(), stream.macrotime)
    np.testing.assert_array_equal(t.get_routing_channel(), stream.channel)
    assert t.header.macro_time_resolution == stream.macrotime_resolution_s
    if t3:
        np.testing.assert_array_equal(t.get_micro_times(), stream.microtime)
        assert t.header.micro_time_resolution == stream.microtime_resolution_s
        assert t.header.number_of_micro_time_channels == stream.n_microtime_bins
    else:
        assert not np.any(t.get_micro_times())  # tttrlib fills zeros without nanotimes
    # tttrlib ignores non-photon IDs: markers come back as events on their ID
    markers = qdio.Markers(stream.macrotime[[5, 100]], np.array([1, 3], np.uint8))
    path = qdio.write_photon_hdf5(tmp_path / "m.h5", stream, markers=markers)
    t = _tttrlib(path, "PHOTON-HDF5")
    route = t.get_routing_channel()
    assert len(t) == len(stream) + len(markers)
    np.testing.assert_array_equal(t.get_macro_times()[route >= 4], markers.macrotime)
    np.testing.assert_array_equal(route[route >= 4] - 4, markers.bits)  # 2**k above 3


def test_ptu_to_photon_hdf5_real_file(tmp_path):
    """A real HydraHarp T2 PTU -> Photon-HDF5 -> read back, with provenance."""
    src = shared_file("libpicoquant/hydraharp_v30_t2.ptu")
    stream = qdio.read(src)
    path = qdio.write_photon_hdf5(tmp_path / "t2.h5", stream)
    got = qdio.read(path)
    assert_same_stream(got, stream)
    assert got.attrs["provenance"]["filename"] == src.name
    assert got.attrs["provenance"]["software"] == stream.attrs["creating_software"]
    assert got.attrs["instrument"] == stream.attrs["instrument"]
    assert got.attrs["measurement_mode"] == "T2"
    h5 = _phconvert_open(path)
    try:
        np.testing.assert_array_equal(h5.root.photon_data.timestamps.read(), stream.macrotime)
    finally:
        h5.close()


def test_ptu_markers_to_photon_hdf5_real_file(tmp_path):
    """Line/frame markers of a real FLIM PTU travel through Photon-HDF5 non-photon IDs."""
    original = qdio.read(shared_file("napari_flim/ptu_stack_FLIM_z1.ptu"), with_markers=True)
    path = qdio.write_photon_hdf5(tmp_path / "flim.h5", original.stream, markers=original.markers)
    got = qdio.read(path, with_markers=True)
    assert_same_stream(got.stream, original.stream)
    order = np.argsort(original.markers.macrotime, kind="stable")
    np.testing.assert_array_equal(got.markers.macrotime, original.markers.macrotime[order])
    np.testing.assert_array_equal(got.markers.bits, original.markers.bits[order])
    _phconvert_open(path).close()


# ---------------------------------------------------------- atomicity --


def _write(kind: str, path: Path) -> Path:
    stream = example_h5_stream(True)
    if kind == "ptu":
        return qdio.write_ptu(path, stream, record_type="picoharp_t3")
    return qdio.write_photon_hdf5(path, stream)


WRITERS = ["ptu", "photon_hdf5"]


@pytest.mark.parametrize("kind", WRITERS)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_writer_failure_leaves_nothing(tmp_path, monkeypatch, kind, existing):
    """A failure after the data went to disk (at fsync) leaves no file, no temp file."""
    path = tmp_path / "out.bin"
    if existing:
        path.write_bytes(b"previous contents")

    def boom(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        _write(kind, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.bin"] if existing else [])
    if existing:
        assert path.read_bytes() == b"previous contents"


def test_photon_hdf5_failure_mid_write(tmp_path, monkeypatch):
    """An exception while the HDF5 content is being written removes the temp file."""
    path = tmp_path / "out.h5"
    path.write_bytes(b"previous contents")
    real = photon_hdf5._write_file

    def half(h5, *args, **kwargs):
        real(h5, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(photon_hdf5, "_write_file", half)
    with pytest.raises(KeyboardInterrupt):
        _write("photon_hdf5", path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]
    assert path.read_bytes() == b"previous contents"


def test_ptu_failure_mid_write(tmp_path, monkeypatch):
    """An exception between the header and the records removes the temp file."""
    path = tmp_path / "out.ptu"
    path.write_bytes(b"previous contents")

    def interrupted(obj):
        raise RuntimeError("interrupted")

    # write_ptu writes the header, then memoryview(records): fail in between
    monkeypatch.setattr("qdio.ptu.memoryview", interrupted, raising=False)
    with pytest.raises(RuntimeError, match="interrupted"):
        _write("ptu", path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.ptu"]
    assert path.read_bytes() == b"previous contents"


@pytest.mark.parametrize("kind", WRITERS)
def test_writer_replaces_existing_file(tmp_path, kind):
    path = tmp_path / "out.bin"
    path.write_bytes(b"previous contents")
    _write(kind, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_stream(qdio.read(path), example_h5_stream(True))
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
