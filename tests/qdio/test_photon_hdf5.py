"""Photon-HDF5 reader and writer (qdio.photon_hdf5).

The real file is ``derived/topfluorPE_2_1_1_1_photon-hdf5.h5`` (written by
phconvert from a PicoHarp PT3), compared element-wise with phconvert and
tttrlib.  Hand-built files (h5py) cover the specification's corners and the
errors for files that are HDF5 but not Photon-HDF5.  Round trips and the
oracle checks of files qdio writes are in ``test_roundtrip.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import qdio
from qdio import photon_hdf5
from qdio.photon_hdf5 import iter_photon_hdf5, read_photon_hdf5, sniff_hdf5

from conftest import shared_file

REAL = "derived/topfluorPE_2_1_1_1_photon-hdf5.h5"


def _stream(t3: bool = True, n: int = 200, seed: int = 0) -> qdio.PhotonStream:
    rng = np.random.default_rng(seed)
    channel = rng.integers(0, 2, n).astype(np.uint8)
    macro = np.cumsum(rng.integers(0, 1000, n))
    if not t3:
        return qdio.PhotonStream(channel, macro, None, 1e-12)
    return qdio.PhotonStream(channel, macro, rng.integers(0, 4096, n), 12.5e-9, 16e-12, 4096)


def _minimal(path: Path, *, timestamps, detectors=None, unit=1e-8, **datasets) -> Path:
    """A bare Photon-HDF5-like file: only what the arguments say."""
    with h5py.File(path, "w") as f:
        pd = f.create_group("photon_data")
        pd["timestamps"] = np.asarray(timestamps)
        if unit is not None:
            pd["timestamps_specs/timestamps_unit"] = unit
        if detectors is not None:
            pd["detectors"] = np.asarray(detectors)
        for name, value in datasets.items():
            f[name.replace("__", "/")] = value
    return path


# ------------------------------------------------------------ real file --


@pytest.mark.realdata
def test_real_file_matches_phconvert():
    phconvert = pytest.importorskip("phconvert")
    path = shared_file(REAL)
    got = qdio.read(path, with_markers=True)
    s = got.stream
    with warnings.catch_warnings():
        # the file has no measurement_specs and no author: phconvert warns
        warnings.simplefilter("ignore", UserWarning)
        h5 = phconvert.hdf5.load_photon_hdf5(str(path))
    try:
        pd = h5.root.photon_data
        np.testing.assert_array_equal(s.macrotime, pd.timestamps.read())
        np.testing.assert_array_equal(s.channel, pd.detectors.read())
        np.testing.assert_array_equal(s.microtime, pd.nanotimes.read())
        assert s.macrotime_resolution_s == pd.timestamps_specs.timestamps_unit.read()
        assert s.microtime_resolution_s == pd.nanotimes_specs.tcspc_unit.read()
        assert s.n_microtime_bins == pd.nanotimes_specs.tcspc_num_bins.read() == 4096
        assert s.attrs["acquisition_time_s"] == h5.root.acquisition_duration.read()
    finally:
        h5.close()
    # PROVENANCE.md: 973,337 photons, detectors 1 and 2 kept as stored (no
    # remapping to 0-based), 12.80 ns sync, 16 ps bins
    assert len(s) == 973_337
    assert s.counts_per_channel() == {1: 482_775, 2: 490_562}
    assert s.macrotime_resolution_s == pytest.approx(12.80e-9, rel=1e-3)
    assert s.microtime_resolution_s == pytest.approx(16e-12, rel=1e-6)
    assert len(got.markers) == 0
    assert s.attrs["format"] == "Photon-HDF5"
    assert s.attrs["format_version"] == "0.5"
    assert s.attrs["creating_software"] == "phconvert 0.10.2"
    assert s.attrs["measurement_mode"] == "T3"
    assert "PicoHarp 300 PT3" in s.attrs["description"]
    assert s.attrs["created"].year >= 2020


@pytest.mark.realdata
def test_real_file_matches_tttrlib():
    tttrlib = pytest.importorskip("tttrlib")
    path = shared_file(REAL)
    s = qdio.read(path)
    with contextlib.redirect_stdout(io.StringIO()):
        t = tttrlib.TTTR(str(path), "PHOTON-HDF5")
    np.testing.assert_array_equal(s.macrotime, t.get_macro_times())
    np.testing.assert_array_equal(s.microtime, t.get_micro_times())
    np.testing.assert_array_equal(s.channel, t.get_routing_channel())
    assert s.macrotime_resolution_s == t.header.macro_time_resolution
    assert s.microtime_resolution_s == t.header.micro_time_resolution


@pytest.mark.realdata
def test_real_file_in_chunks():
    path = shared_file(REAL)
    whole = qdio.read(path)
    chunks = list(qdio.iter_chunks(path, max_records=100_000))
    assert len(chunks) == 10
    assert [c.attrs["chunk_first_record"] for c in chunks] == list(range(0, 1_000_000, 100_000))
    joined = qdio.concatenate(chunks)
    np.testing.assert_array_equal(joined.macrotime, whole.macrotime)
    np.testing.assert_array_equal(joined.microtime, whole.microtime)
    np.testing.assert_array_equal(joined.channel, whole.channel)


@pytest.mark.realdata
def test_hdf5_that_is_not_photon_hdf5():
    path = shared_file("full_sms/IRF_680nm.h5")  # Full SMS's own HDF5 layout
    assert qdio.detect_format(path) == "Photon-HDF5"  # HDF5 signature
    with pytest.raises(qdio.QdioError, match="no /photon_data/timestamps") as err:
        qdio.read(path)
    assert str(path) in str(err.value)
    assert "Particle 1" in str(err.value)  # says what the file holds instead


# ------------------------------------------------------------- sniffing --


def test_sniff_signature_and_user_block(tmp_path):
    stream = _stream()
    for userblock in (0, 512, 4096):
        path = tmp_path / f"ub{userblock}.h5"
        with h5py.File(path, "w", userblock_size=userblock or None) as f:
            f["photon_data/timestamps"] = stream.macrotime
            f["photon_data/timestamps_specs/timestamps_unit"] = 1e-8
        assert qdio.detect_format(path) == "Photon-HDF5"
        np.testing.assert_array_equal(qdio.read(path).macrotime, stream.macrotime)
    assert not sniff_hdf5(b"PQTTTR\0\0" + bytes(1016), None)
    assert not sniff_hdf5(b"\x89HDF", None)


def test_truncated_hdf5_raises(tmp_path):
    good = qdio.write_photon_hdf5(tmp_path / "good.h5", _stream())
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(qdio.QdioError, match="not a readable HDF5 file") as err:
        qdio.read(bad)
    assert str(bad) in str(err.value)


# ------------------------------------------------ layout and mapping --


def test_detector_ids_kept_as_stored(tmp_path):
    path = _minimal(
        tmp_path / "x.h5", timestamps=[1, 5, 9], detectors=np.array([7, 255, 7], np.uint8)
    )
    s = qdio.read(path)
    np.testing.assert_array_equal(s.channel, [7, 255, 7])
    assert s.microtime is None and s.microtime_resolution_s is None
    assert s.attrs["measurement_mode"] == "T2"


def test_detector_id_above_255_raises(tmp_path):
    path = _minimal(
        tmp_path / "x.h5", timestamps=[1, 5, 9], detectors=np.array([1, 300, 1], np.uint16)
    )
    with pytest.raises(qdio.QdioError, match=r"detector ID 300 \(row 1.*0\.\.255"):
        qdio.read(path)


def test_no_detectors_array_single_detector(tmp_path):
    path = _minimal(tmp_path / "a.h5", timestamps=[1, 2], setup__detectors__id=np.array([3]))
    np.testing.assert_array_equal(qdio.read(path).channel, [3, 3])
    path = _minimal(tmp_path / "b.h5", timestamps=[1, 2])
    np.testing.assert_array_equal(qdio.read(path).channel, [0, 0])


def test_per_detector_tcspc_specs(tmp_path):
    """Without nanotimes_specs, /setup/detectors/tcspc_* (v0.5) give the resolution."""
    kw = dict(timestamps=[1, 2], detectors=[0, 1], photon_data__nanotimes=[5, 6])
    path = _minimal(
        tmp_path / "a.h5", **kw,
        setup__detectors__tcspc_unit=[1e-11, 1e-11], setup__detectors__tcspc_num_bins=[64, 64],
    )  # fmt: skip
    s = qdio.read(path)
    assert (s.microtime_resolution_s, s.n_microtime_bins) == (1e-11, 64)
    path = _minimal(
        tmp_path / "b.h5", **kw,
        setup__detectors__tcspc_unit=[1e-11, 2e-11], setup__detectors__tcspc_num_bins=[64, 64],
    )  # fmt: skip
    with pytest.raises(qdio.QdioError, match="tcspc_unit differs between detectors"):
        qdio.read(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(unit=None), "timestamps_unit = None"),
        (dict(unit=-1.0), "timestamps_unit = -1.0"),
        (dict(detectors=[0, 1]), "detectors has 2 rows, /photon_data/timestamps has 3"),
        (dict(detectors=np.zeros((3, 2), np.uint8)), "n-tuple detector IDs"),
        (dict(timestamps=[1.0, 2.0, 3.0]), "timestamps has dtype float64"),
        (dict(photon_data__nanotimes=[1, 2, 3]), "nanotimes_specs/tcspc_unit = None"),
        (
            dict(
                photon_data__nanotimes=[1, 2, 300],
                photon_data__nanotimes_specs__tcspc_unit=1e-11,
                photon_data__nanotimes_specs__tcspc_num_bins=256,
            ),
            r"nanotimes values 1\.\.300 outside \[0, tcspc_num_bins=256\)",
        ),
    ],
)
def test_broken_files_raise(tmp_path, kwargs, message):
    kwargs = {"timestamps": [1, 2, 3], **kwargs}
    path = _minimal(tmp_path / "x.h5", **kwargs)
    with pytest.raises(qdio.QdioError, match=message) as err:
        qdio.read(path)
    assert str(path) in str(err.value)


def test_tcspc_num_bins_from_range(tmp_path):
    path = _minimal(
        tmp_path / "x.h5", timestamps=[1, 2], photon_data__nanotimes=[0, 9],
        photon_data__nanotimes_specs__tcspc_unit=1e-11,
        photon_data__nanotimes_specs__tcspc_range=1.28e-9,
    )  # fmt: skip
    assert qdio.read(path).n_microtime_bins == 128


def test_unsorted_timestamps(tmp_path):
    path = _minimal(tmp_path / "x.h5", timestamps=[5, 3, 9], detectors=[0, 1, 2])
    with pytest.warns(qdio.QdioWarning, match="not in time order"):
        s = qdio.read(path)
    np.testing.assert_array_equal(s.macrotime, [3, 5, 9])
    np.testing.assert_array_equal(s.channel, [1, 0, 2])
    with pytest.raises(qdio.QdioError, match=r"rows 0\.\.2 of /photon_data are not a valid stream"):
        list(qdio.iter_chunks(path, max_records=2))
    path = _minimal(tmp_path / "y.h5", timestamps=[1, 5, 3], detectors=[0, 1, 2])
    with pytest.raises(qdio.QdioError, match="go back in time at row 2"):
        list(qdio.iter_chunks(path, max_records=2))


def test_multi_spot(tmp_path):
    path = tmp_path / "spots.h5"
    with h5py.File(path, "w") as f:
        for spot in (0, 1):
            f[f"photon_data{spot}/timestamps"] = np.arange(3) + 10 * spot
            f[f"photon_data{spot}/timestamps_specs/timestamps_unit"] = 1e-8
    with pytest.raises(qdio.QdioError, match=r"multi-spot.*/photon_data0, /photon_data1.*spot="):
        qdio.read(path)
    s = read_photon_hdf5(path, spot=1)
    np.testing.assert_array_equal(s.stream.macrotime, [10, 11, 12])
    assert s.stream.attrs["photon_data_group"] == "/photon_data1"
    chunks = list(iter_photon_hdf5(path, 2, spot=0))
    assert [len(c.stream) for c in chunks] == [2, 1]
    with pytest.raises(qdio.QdioError, match="no /photon_data5"):
        read_photon_hdf5(path, spot=5)


# --------------------------------------------------------------- markers --


def test_markers_from_non_photon_ids(tmp_path):
    """Rows whose ID is listed in detectors_specs/non_photon_idN are markers."""
    path = _minimal(
        tmp_path / "x.h5",
        timestamps=[1, 2, 3, 4, 5, 6],
        detectors=np.array([0, 17, 1, 24, 0, 17], np.uint8),
        photon_data__measurement_specs__detectors_specs__non_photon_id1=[17],
        photon_data__measurement_specs__detectors_specs__non_photon_id2=[24],
    )
    r = qdio.read(path, with_markers=True)
    np.testing.assert_array_equal(r.stream.macrotime, [1, 3, 5])
    np.testing.assert_array_equal(r.stream.channel, [0, 1, 0])
    np.testing.assert_array_equal(r.markers.macrotime, [2, 4, 6])
    np.testing.assert_array_equal(r.markers.bits, [1, 8, 1])  # 16 + 1, 16 + 8
    assert r.stream.attrs["non_photon_ids"] == [17, 24]
    chunks = list(qdio.iter_chunks(path, max_records=4, with_markers=True))
    assert [len(c.markers) for c in chunks] == [2, 1]


def test_markers_written_by_phconvert(tmp_path):
    """phconvert's PTU -> Photon-HDF5 conversion stores markers as 64 + bits: read them back."""
    phconvert = pytest.importorskip("phconvert")
    rng = np.random.default_rng(3)
    n = 500
    # phconvert.loader.nsalex_pq writes tcspc_num_bins=4096 whatever the record type
    stream = qdio.PhotonStream(
        rng.integers(0, 2, n).astype(np.uint8), np.sort(rng.integers(0, 10**7, n)),
        rng.integers(0, 4096, n), 12.5e-9, 16e-12, 4096,
    )  # fmt: skip
    markers = qdio.Markers(np.sort(rng.integers(0, 10**7, 6)), np.array([1, 2, 4, 1, 8, 3]))
    ptu = qdio.write_ptu(tmp_path / "m.ptu", stream, record_type="hydraharp_v2_t3", markers=markers)
    with contextlib.redirect_stdout(io.StringIO()):
        data, _ = phconvert.loader.nsalex_pq(str(ptu))
        data["description"] = "phconvert conversion of a qdio PTU"
        data["identity"] = dict(author="qdio tests", author_affiliation="none")
        phconvert.hdf5.save_photon_hdf5(data, h5_fname=str(tmp_path / "m.h5"))
    got = qdio.read(tmp_path / "m.h5", with_markers=True)
    assert got.stream.attrs["non_photon_ids"] == [65, 66, 67, 68, 72]
    np.testing.assert_array_equal(got.markers.macrotime, markers.macrotime)
    np.testing.assert_array_equal(got.markers.bits, markers.bits)
    np.testing.assert_array_equal(got.stream.macrotime, stream.macrotime)
    np.testing.assert_array_equal(got.stream.channel, stream.channel)
    np.testing.assert_array_equal(got.stream.microtime, stream.microtime)
    assert got.stream.attrs["measurement_type"] == "smFRET-nsALEX"


def test_unsorted_markers_are_written_in_time_order(tmp_path):
    stream = _stream()
    markers = qdio.Markers(np.array([900, 10, 500, 10]), np.array([1, 2, 3, 4], np.uint8))
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream, markers=markers)
    got = qdio.read(path, with_markers=True).markers
    np.testing.assert_array_equal(got.macrotime, [10, 10, 500, 900])
    np.testing.assert_array_equal(got.bits, [2, 4, 3, 1])


def test_marker_ids_above_photon_channels(tmp_path):
    """Marker IDs 2**k + bits lie above every channel; uint16 when they pass 255."""
    n = 5
    stream = qdio.PhotonStream(np.array([0, 200, 1, 2, 3], np.uint8), np.arange(n), None, 1e-9)
    markers = qdio.Markers(np.array([2]), np.array([0], np.uint8))  # a sync event
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream, markers=markers)
    with h5py.File(path) as f:
        assert f["photon_data/detectors"].dtype == np.uint16
        ids = f["photon_data/measurement_specs/detectors_specs/non_photon_id1"][()]
        np.testing.assert_array_equal(ids, [256])
        text = f["user/experimental_settings/non_photon_id/id1"][()].decode()
        assert "256 + b" in text
    got = qdio.read(path, with_markers=True)
    np.testing.assert_array_equal(got.markers.bits, [0])
    np.testing.assert_array_equal(got.stream.channel, stream.channel)


# ---------------------------------------------------------------- writer --


def _titles(path: Path) -> dict[str, str]:
    out = {}
    with h5py.File(path) as f:
        out["/"] = f.attrs["TITLE"].decode()

        def visit(name, node):
            if not name.startswith("user"):
                out["/" + name] = node.attrs["TITLE"].decode()

        f.visititems(visit)
    return out


def test_writer_layout_t3(tmp_path):
    stream = _stream(t3=True)
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream)
    titles = _titles(path)
    for key, title in titles.items():
        assert title == photon_hdf5._TITLES[key], key
    with h5py.File(path) as f:
        assert f.attrs["format_name"] == b"Photon-HDF5"
        assert f.attrs["format_version"] == b"0.5"
        assert f["identity/format_name"][()] == b"Photon-HDF5"
        assert f["identity/software"][()] == b"qdlight"
        assert f["identity/filename"][()] == b"x.h5"
        assert f["photon_data/timestamps"].dtype == np.int64
        assert f["photon_data/detectors"].dtype == np.uint8
        assert f["photon_data/nanotimes"].dtype == np.uint16
        assert f["photon_data/measurement_specs/measurement_type"][()] == b"generic"
        assert f["photon_data/measurement_specs/laser_repetition_rate"][()] == pytest.approx(80e6)
        assert f["photon_data/nanotimes_specs/tcspc_range"][()] == pytest.approx(4096 * 16e-12)
        assert f["setup/lifetime"][()] == 1
        assert f["setup/num_pixels"][()] == 2
        np.testing.assert_array_equal(f["setup/excitation_cw"][()], [0])
        np.testing.assert_array_equal(f["setup/detectors/id"][()], [0, 1])
        assert f["acquisition_duration"][()] == pytest.approx(stream.macrotime[-1] * 12.5e-9)
        assert "provenance" not in f  # no source file
        assert f["description"][()].startswith(b"Photon stream written by qdlight")
    got = qdio.read(path)
    assert got.attrs["sync_rate_hz"] == pytest.approx(80e6)
    assert got.attrs["creating_software"].startswith("qdlight")


def test_writer_layout_t2(tmp_path):
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", _stream(t3=False), description="dark counts")
    with h5py.File(path) as f:
        assert "nanotimes" not in f["photon_data"]
        assert "nanotimes_specs" not in f["photon_data"]
        assert "laser_repetition_rate" not in f["photon_data/measurement_specs"]
        assert f["setup/lifetime"][()] == 0
        np.testing.assert_array_equal(f["setup/excitation_cw"][()], [1])
        assert f["description"][()] == b"dark counts"
    assert qdio.read(path).attrs["description"] == "dark counts"


def test_writer_wide_microtimes(tmp_path):
    stream = qdio.PhotonStream(
        np.zeros(3, np.uint8), [1, 2, 3], [0, 70_000, 99_999], 1e-6, 1e-12, 100_000
    )
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream)
    with h5py.File(path) as f:
        assert f["photon_data/nanotimes"].dtype == np.uint32
    np.testing.assert_array_equal(qdio.read(path).microtime, stream.microtime)


def test_writer_provenance_from_source(tmp_path):
    src = qdio.write_ptu(tmp_path / "src.ptu", _stream(), record_type="picoharp_t3")
    stream = qdio.read(src)
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", stream)
    got = qdio.read(path)
    prov = got.attrs["provenance"]
    assert prov["filename"] == "src.ptu"
    assert prov["filename_full"] == str(src)
    assert prov["software"] == "qdlight"
    assert prov["creation_time"][:4].isdigit()
    assert got.attrs["instrument"] == stream.attrs["instrument"]
    assert "src.ptu" in got.attrs["description"]


def test_writer_empty_stream(tmp_path):
    stream = qdio.PhotonStream(np.zeros(0, np.uint8), np.zeros(0, np.int64), None, 1e-12)
    got = qdio.read(qdio.write_photon_hdf5(tmp_path / "x.h5", stream))
    assert len(got) == 0 and got.microtime is None
    assert [len(c) for c in qdio.iter_chunks(tmp_path / "x.h5", max_records=10)] == [0]


def test_writer_file_permissions(tmp_path):
    """The temporary file is private; the written file gets the usual permissions."""
    path = qdio.write_photon_hdf5(tmp_path / "new.h5", _stream())
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    qdio.write_photon_hdf5(path, _stream())  # replacing keeps the old file's mode
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_writer_type_errors(tmp_path):
    with pytest.raises(TypeError, match="PhotonStream"):
        qdio.write_photon_hdf5(tmp_path / "x.h5", np.arange(3))
    with pytest.raises(TypeError, match="Markers"):
        qdio.write_photon_hdf5(tmp_path / "x.h5", _stream(), markers=[1, 2])
    assert not list(tmp_path.iterdir())


def test_iter_rejects_bad_chunk_size(tmp_path):
    path = qdio.write_photon_hdf5(tmp_path / "x.h5", _stream())
    with pytest.raises(ValueError, match="max_records"):
        list(iter_photon_hdf5(path, 0))
