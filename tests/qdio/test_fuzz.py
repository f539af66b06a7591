"""Fuzzing the readers: every damaged input gives a stream or a QdioError, nothing else.

Real files (their first 48 KiB, so that the header and a few thousand
records are covered quickly) are truncated, bit-flipped and have header
bytes overwritten; qdio must return a valid PhotonStream (possibly with a
QdioWarning) or raise QdioError, never crash, hang, allocate what a header
claims, or modify its input.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdio

from conftest import SHARED_DATA

PREFIX = 48 * 1024

SAMPLES = {
    "ptu_pt3": "napari_flim/ptu_stack_FLIM_z1.ptu",
    "ptu_ht2": "libpicoquant/hydraharp_v30_t2.ptu",
    "pt3_labview": "full_sms/trace0.pt3",
    "pt3": "fcs_point_correlator/topfluorPE_2_1_1_1.pt3",
    "ht3_v2": "libpicoquant/hydraharp_v20.ht3",
    "ht3_v1": "libpicoquant/hydraharp_v10.ht3",
    "t3r": "libpicoquant/timeharp_v50.t3r",
    "spc": "bh_spc/phconvert_test_noise.spc",
    "photon_hdf5": "derived/topfluorPE_2_1_1_1_photon-hdf5.h5",
}


def _load(name: str) -> tuple[bytes, Path]:
    path = SHARED_DATA / SAMPLES[name]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = path.read_bytes()
    # Photon-HDF5 cannot be cut short and stay HDF5: fuzz the whole (3 MB) file
    return (data if name == "photon_hdf5" else data[:PREFIX]), path


def _outcome(data: bytes, original: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / original.name
        target.write_bytes(data)
        companion = original.with_suffix(".set")
        if companion.exists():  # Becker & Hickl: the .set travels with the .spc
            shutil.copy(companion, Path(tmp) / companion.name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", qdio.QdioWarning)
                result = qdio.read(target, with_markers=True)
        except qdio.QdioError as exc:
            assert str(target) in str(exc) or target.name in str(exc)
        else:
            assert isinstance(result.stream, qdio.PhotonStream)
        assert target.read_bytes() == data, "reader modified its input"


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@FUZZ
@given(cut=st.floats(0.0, 1.0))
def test_truncation(name, cut):
    data, path = _load(name)
    _outcome(data[: int(cut * len(data))], path)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flips(name, flips):
    data, path = _load(name)
    buf = bytearray(data)
    for where, bit in flips:
        buf[min(int(where * len(buf)), len(buf) - 1)] ^= 1 << bit
    _outcome(bytes(buf), path)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@FUZZ
@given(
    where=st.integers(0, 4095),
    junk=st.binary(min_size=1, max_size=16)
    | st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff\xff\xff\xff\xff"]),
)
def test_corrupted_header_bytes(name, where, junk):
    """Overwrite bytes in the first 4 KiB, where tags, lengths and counts live."""
    data, path = _load(name)
    where = min(where, max(len(data) - len(junk), 0))
    _outcome(data[:where] + junk + data[where + len(junk) :], path)


def test_shared_data_copy_untouched():
    """The fuzzers work on copies; the originals keep their published checksums."""
    import hashlib

    sums = SHARED_DATA / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip("no SHA256SUMS in shared data")
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = SHARED_DATA / name.lstrip("./")
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
