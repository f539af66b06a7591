"""Photon-HDF5 files: reading them as PhotonStreams and writing streams as them.

Photon-HDF5 (Ingargiola et al. 2016, doi:10.1016/j.bpj.2015.11.013;
https://photon-hdf5.readthedocs.io, format version 0.5) is an HDF5 layout
for timestamp data: ``/photon_data/timestamps`` (integers) with
``timestamps_specs/timestamps_unit`` (seconds), ``detectors`` (detector ID per
timestamp) and, for TCSPC data, ``nanotimes`` with ``nanotimes_specs``
(``tcspc_unit``, ``tcspc_num_bins``, ``tcspc_range``).  Metadata lives in
``/setup``, ``/identity``, ``/provenance``, ``/sample`` and ``/user``.

The column mapping is direct: ``channel = detectors`` (the detector IDs as
stored: no remapping), ``macrotime = timestamps``, ``microtime = nanotimes``
(None when absent), ``macrotime_resolution_s = timestamps_unit``,
``microtime_resolution_s = tcspc_unit``, ``n_microtime_bins =
tcspc_num_bins``.

Markers.  Photon-HDF5 0.5 stores non-photon events (markers, sync) in the
same ``detectors`` array under *non-photon IDs*, listed in
``/photon_data/measurement_specs/detectors_specs/non_photon_id1``,
``non_photon_id2``, ...  The specification leaves their meaning open;
phconvert, when it converts PicoQuant or Becker & Hickl files, stores a
marker as ``ID = 2**k + bits`` with ``2**k`` above every detector ID and
every marker bit field, so the reader recovers the marker bits by clearing
the highest set bit of each non-photon ID.  qdio writes markers the same
way, with ``2**k`` the smallest such power of two (``detectors`` becomes
uint16 only when an ID exceeds 255).

Only h5py is used; phconvert (which validates files against the
specification) and tttrlib serve as oracles in the tests.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._errors import QdioError, QdioWarning
from ._formats import FileFormat
from ._records import ReadResult
from ._util import atomic_path
from .stream import Markers, PhotonStream

__all__ = [
    "FORMATS",
    "FORMAT_VERSION",
    "iter_photon_hdf5",
    "read_photon_hdf5",
    "sniff_hdf5",
    "write_photon_hdf5",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMAT_NAME = "Photon-HDF5"
FORMAT_VERSION = "0.5"
FORMAT_URL = "http://photon-hdf5.org/"
_MAX_USERBLOCK_PROBE = 1 << 16

# Official field descriptions: every Photon-HDF5 node carries its field's
# description in the TITLE attribute, verbatim (photon-hdf5 specs JSON, as
# shipped with phconvert 0.10.2, which rejects files whose titles differ).
_TITLES: dict[str, str] = {
    "/": "A file format for photon-counting detector based single-molecule "
    "spectroscopy experiments.",
    "/acquisition_duration": "Measurement duration in seconds.",
    "/description": "A user-defined comment describing the data file.",
    "/format_name": "Name of the file format.",
    "/format_version": "Version for the Photon-HDF5 format.",
    "/photon_data": "Group containing arrays of photon-data.",
    "/photon_data/timestamps": "Array of photon timestamps. Units specified in "
    "timestamps_units (defined in timestamps_specs/).",
    "/photon_data/detectors": "Array of pixel IDs for each timestamp.",
    "/photon_data/nanotimes": "TCSPC photon arrival time (nanotimes). Units and "
    "other specifications are in nanotimes_specs group.",
    "/photon_data/timestamps_specs": "Specifications for timestamps.",
    "/photon_data/timestamps_specs/timestamps_unit": "Value of 1-unit "
    "timestamp-increment in seconds.",
    "/photon_data/nanotimes_specs": "Group for nanotime-specific data.",
    "/photon_data/nanotimes_specs/tcspc_unit": "Value of 1-unit nanotime-increment "
    "in seconds (TCSPC bin size).",
    "/photon_data/nanotimes_specs/tcspc_num_bins": "Number of TCSPC bins.",
    "/photon_data/nanotimes_specs/tcspc_range": "TCSPC full-scale range in seconds.",
    "/photon_data/measurement_specs": "Metadata necessary for interpretation of "
    "the particular type of measurement.",
    "/photon_data/measurement_specs/measurement_type": "Name of the measurement "
    "the data represents.",
    "/photon_data/measurement_specs/laser_repetition_rate": "Repetition rate of "
    "the pulsed excitation laser (in Hertz).",
    "/photon_data/measurement_specs/detectors_specs": "Mapping between the pixel "
    "IDs and the detection channels.",
    "/photon_data/measurement_specs/detectors_specs/non_photon_id1": "Detector ids "
    "of non photon events as they apppear in /photon_data/detectors",
    "/setup": "Information about the experimental setup.",
    "/setup/num_pixels": "Total number of detector pixels.",
    "/setup/num_spots": 'Number of excitation (or detection) "spots" in the sample.',
    "/setup/num_spectral_ch": "Number of distinct spectral bands which are acquired.",
    "/setup/num_polarization_ch": "Number of distinct polarization states which are acquired.",
    "/setup/num_split_ch": "Number of distinct detection channels detecting the "
    "same spectral band and polarization. This value is > 1 when using a "
    "non-polarizing beam splitter.",
    "/setup/modulated_excitation": "True (i.e. 1) if there is any form of "
    "excitation modulation of excitation wavelength (as in us-ALEX or PAX) or "
    "polarization. This field is also True for pulse-interleaved excitation "
    "(PIE) or ns-ALEX measurements.",
    "/setup/excitation_alternated": "New in version 0.5. Indicates whether each "
    "excitation source is alternated (True, or 1) or not alternated (False, or 0).",
    "/setup/lifetime": "True (i.e. 1) if the measurement includes a nanotimes "
    "array of photon arrival times with respect to a laser pulse (as in TCSPC "
    "measurements).",
    "/setup/excitation_cw": "For each excitation source, this field indicates "
    "whether excitation is continuous wave (CW), True (i.e. 1), or pulsed, False "
    "(i.e. 0).",
    "/setup/laser_repetition_rates": "Repetition rates in Hz for each laser. CW "
    "lasers have a value of 0.",
    "/setup/detectors": "Metadata relative to each detector's pixel. Each field is "
    "an array with size equal to the number of the detectors.",
    "/setup/detectors/id": "Detector IDs as they appear on /photon_data/detectors.",
    "/setup/detectors/counts": "Total number of counts detected by each detector.",
    "/identity": "Information about the Photon-HDF5 data file.",
    "/identity/filename": "Original file name of the current Photon-HDF5 file "
    "(i.e. file name at creation time).",
    "/identity/filename_full": "Original file name (with full path) of the current "
    "Photon-HDF5 file (i.e. full file name at creation time).",
    "/identity/creation_time": "Creation time of the current Photon-HDF5 file.",
    "/identity/software": "Name of the software used to create the current Photon-HDF5 file.",
    "/identity/software_version": "Version of the software used to create current "
    "the Photon-HDF5 file.",
    "/identity/format_name": "Name of the file format.",
    "/identity/format_version": "Version for the Photon-HDF5 format.",
    "/identity/format_url": "Official URL for the Photon-HDF5 format.",
    "/provenance": "Information about the original data file.",
    "/provenance/filename": "File name of the original data file before conversion to Photon-HDF5.",
    "/provenance/filename_full": "File name (with full path) of the original data "
    "file before conversion to Photon-HDF5.",
    "/provenance/creation_time": "Creation time of the original data file.",
    "/provenance/software": "Software used to save the original data file.",
}


# ---------------------------------------------------------------- reader --


def sniff_hdf5(head: bytes, path: Path | None = None) -> bool:
    """True when the bytes (and, for a larger user block, the file) are HDF5.

    The HDF5 superblock signature is at offset 0, or after a user block at
    512, 1024, 2048, ... bytes.  ``head`` is the start of the file; offsets
    beyond it are read from ``path`` when one is given.
    """
    offset = 0
    while offset < len(head):
        if head[offset : offset + 8] == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    if path is None or len(head) < offset:
        return False
    try:
        with open(path, "rb") as f:
            while offset <= _MAX_USERBLOCK_PROBE:
                f.seek(offset)
                sig = f.read(8)
                if len(sig) < 8:
                    return False
                if sig == HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


def _text(value: Any) -> Any:
    """HDF5 strings (bytes, numpy bytes, 0-d arrays) as str; other values as Python."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            value = value[()]
        elif value.dtype.kind in "SO":
            return [_text(v) for v in value.tolist()]
        else:
            return value.tolist()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _group_values(group: h5py.Group | None, *, max_size: int = 4096) -> dict[str, Any]:
    """Small datasets of a group (not recursive) as Python values."""
    out: dict[str, Any] = {}
    if group is None:
        return out
    for name, node in group.items():
        if isinstance(node, h5py.Dataset) and node.size <= max_size:
            out[name] = _text(node[()])
    return out


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise QdioError(f"{path}: not a readable HDF5 file ({exc})") from exc


# what h5py raises on damaged files (bad B-trees, heaps, filters, shapes)
_H5_ERRORS = (
    OSError, RuntimeError, KeyError, TypeError, ValueError, IndexError, OverflowError,
    MemoryError,
)  # fmt: skip


@contextlib.contextmanager
def _hdf5_errors(path: Path) -> Iterator[None]:
    """Turn the errors h5py raises on a damaged file into QdioError."""
    try:
        yield
    except QdioError:
        raise
    except _H5_ERRORS as exc:
        raise QdioError(
            f"{path}: damaged HDF5 file, its content cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


@dataclass
class _Layout:
    """Where the photons of one Photon-HDF5 spot are and what they mean."""

    path: Path
    group: str
    n_rows: int
    default_channel: int
    non_photon_ids: np.ndarray
    macrotime_resolution_s: float
    microtime_resolution_s: float | None
    n_microtime_bins: int | None
    attrs: dict[str, Any] = field(default_factory=dict)


def _photon_groups(f: h5py.File) -> list[str]:
    names = [
        n for n in f if n == "photon_data" or (n.startswith("photon_data") and n[11:].isdigit())
    ]
    return sorted(names, key=lambda n: -1 if n == "photon_data" else int(n[11:]))


def _choose_group(f: h5py.File, path: Path, spot: int | None) -> str:
    groups = _photon_groups(f)
    if spot is None:
        if "photon_data" in groups:
            return "photon_data"
        if groups:
            raise QdioError(
                f"{path}: multi-spot Photon-HDF5 file ({', '.join('/' + g for g in groups)}) "
                f"and no /photon_data; read one spot with "
                f"qdio.photon_hdf5.read_photon_hdf5(path, spot=N)"
            )
        names = sorted(f)
        top = ", ".join(names[:10]) or "nothing"
        if len(names) > 10:
            top += f" and {len(names) - 10} more"
        fmt = _text(f.attrs.get("format_name", b"")) or None
        raise QdioError(
            f"{path}: an HDF5 file but not Photon-HDF5: no /photon_data/timestamps "
            f"(top level holds {top}; root attribute format_name={fmt!r}, expected "
            f"{FORMAT_NAME!r})"
        )
    name = f"photon_data{int(spot)}"
    if name not in f:
        raise QdioError(
            f"{path}: no /{name} (spot={spot}); the file holds "
            f"{', '.join('/' + g for g in groups) or 'no photon_data group'}"
        )
    return name


def _scalar_float(group: h5py.Group | None, name: str, path: Path, where: str) -> float | None:
    if group is None or name not in group:
        return None
    try:
        value = float(np.asarray(group[name][()]).reshape(-1)[0])
    except (TypeError, ValueError, IndexError) as exc:
        raise QdioError(f"{path}: {where}/{name} is not a number ({exc})") from exc
    return value


def _check_column(ds: Any, name: str, n: int | None, path: Path, where: str) -> None:
    if not isinstance(ds, h5py.Dataset):
        raise QdioError(f"{path}: {where}/{name} is not a dataset")
    # a damaged header can claim any shape: refuse more rows than the file can
    # hold even at deflate's best ratio (~1032:1), before anything is allocated
    limit = 1100 * os.path.getsize(path) + (1 << 20)
    if ds.ndim >= 1 and ds.size * ds.dtype.itemsize > limit:
        raise QdioError(
            f"{path}: {where}/{name} claims shape {ds.shape}, more data than a file of "
            f"{os.path.getsize(path)} bytes can hold"
        )
    if ds.ndim != 1:
        raise QdioError(
            f"{path}: {where}/{name} has shape {ds.shape}; qdio reads 1-D arrays only "
            f"(n-tuple detector IDs are not supported)"
        )
    if ds.dtype.kind not in "iu":
        raise QdioError(f"{path}: {where}/{name} has dtype {ds.dtype}, expected integers")
    if n is not None and ds.shape[0] != n:
        raise QdioError(
            f"{path}: {where}/{name} has {ds.shape[0]} rows, {where}/timestamps has {n}"
        )


def _per_detector_tcspc(f: h5py.File, path: Path) -> tuple[float | None, int | None]:
    """tcspc unit and bins from /setup/detectors when nanotimes_specs is absent."""
    det = f.get("setup/detectors")
    if not isinstance(det, h5py.Group):
        return None, None
    units = det.get("tcspc_unit", det.get("tcspc_units"))
    bins = det.get("tcspc_num_bins")
    unit = nb = None
    if units is not None:
        vals = np.unique(np.asarray(units[()], float))
        vals = vals[vals > 0]
        if vals.size > 1:
            raise QdioError(
                f"{path}: /setup/detectors/tcspc_unit differs between detectors "
                f"({vals.tolist()}); a PhotonStream has one microtime resolution"
            )
        unit = float(vals[0]) if vals.size else None
    if bins is not None:
        vals = np.unique(np.asarray(bins[()], np.int64))
        vals = vals[vals > 0]
        if vals.size > 1:
            raise QdioError(
                f"{path}: /setup/detectors/tcspc_num_bins differs between detectors "
                f"({vals.tolist()}); a PhotonStream has one microtime range"
            )
        nb = int(vals[0]) if vals.size else None
    return unit, nb


def _parse_time(value: Any) -> _dt.datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return _dt.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    return None


def _layout(f: h5py.File, path: Path, spot: int | None) -> _Layout:
    gname = _choose_group(f, path, spot)
    where = f"/{gname}"
    g = f[gname]
    if not isinstance(g, h5py.Group) or "timestamps" not in g:
        raise QdioError(
            f"{path}: no {where}/timestamps ({where} is not a Photon-HDF5 photon_data group)"
        )
    ts = g["timestamps"]
    _check_column(ts, "timestamps", None, path, where)
    n = int(ts.shape[0])
    specs = g.get("timestamps_specs")
    unit = _scalar_float(specs, "timestamps_unit", path, f"{where}/timestamps_specs")
    if unit is None or not math.isfinite(unit) or unit <= 0:
        raise QdioError(
            f"{path}: {where}/timestamps_specs/timestamps_unit = {unit!r}; expected the "
            f"timestamp unit in seconds (> 0)"
        )
    if "detectors" in g:
        _check_column(g["detectors"], "detectors", n, path, where)
    setup = f.get("setup")
    default_channel = 0
    if "detectors" not in g and isinstance(setup, h5py.Group) and "detectors/id" in setup:
        ids = np.asarray(setup["detectors/id"][()]).reshape(-1)
        if ids.size == 1 and 0 <= int(ids[0]) <= 255:
            default_channel = int(ids[0])
    # non-photon (marker) IDs
    mspecs = g.get("measurement_specs")
    dspecs = mspecs.get("detectors_specs") if isinstance(mspecs, h5py.Group) else None
    np_ids: list[int] = []
    if isinstance(dspecs, h5py.Group):
        for key in dspecs:
            if key.startswith("non_photon_id") and key[13:].isdigit():
                np_ids.extend(int(v) for v in np.asarray(dspecs[key][()]).reshape(-1))
    non_photon_ids = np.unique(np.asarray(np_ids, np.int64))
    # TCSPC
    micro = nbins = None
    if "nanotimes" in g:
        _check_column(g["nanotimes"], "nanotimes", n, path, where)
        nspecs = g.get("nanotimes_specs")
        micro = _scalar_float(nspecs, "tcspc_unit", path, f"{where}/nanotimes_specs")
        nb = _scalar_float(nspecs, "tcspc_num_bins", path, f"{where}/nanotimes_specs")
        rng = _scalar_float(nspecs, "tcspc_range", path, f"{where}/nanotimes_specs")
        if micro is None or nb is None:
            d_unit, d_bins = _per_detector_tcspc(f, path)
            micro = micro if micro is not None else d_unit
            nb = nb if nb is not None else d_bins
        if nb is None and micro and rng and math.isfinite(rng / micro):
            nb = round(rng / micro)
        if micro is None or not math.isfinite(micro) or micro <= 0:
            raise QdioError(
                f"{path}: {where}/nanotimes present but {where}/nanotimes_specs/tcspc_unit "
                f"= {micro!r}; expected the TCSPC bin width in seconds (> 0)"
            )
        if nb is None or not math.isfinite(nb) or nb != int(nb) or nb < 1:
            raise QdioError(
                f"{path}: {where}/nanotimes present but {where}/nanotimes_specs/"
                f"tcspc_num_bins = {nb!r}; expected a positive number of TCSPC bins"
            )
        nbins = int(nb)
    identity = _group_values(f.get("identity"))
    provenance = _group_values(f.get("provenance"))
    setup_vals = _group_values(setup if isinstance(setup, h5py.Group) else None)
    mvals = _group_values(mspecs if isinstance(mspecs, h5py.Group) else None)
    rep = mvals.get("laser_repetition_rate")
    if isinstance(rep, list):
        rep = rep[0] if rep else None
    if rep is None and isinstance(setup_vals.get("laser_repetition_rates"), list):
        rates = [r for r in setup_vals["laser_repetition_rates"] if r]
        rep = rates[0] if rates else None
    duration = _text(f["acquisition_duration"][()]) if "acquisition_duration" in f else None
    software = identity.get("software")
    if software and identity.get("software_version"):
        software = f"{software} {identity['software_version']}"
    user_qdio = _group_values(f.get("user/qdio"))
    attrs = {
        "source": str(path),
        "format": FORMAT_NAME,
        "format_version": _text(f.attrs.get("format_version", b""))
        or identity.get("format_version"),
        "photon_data_group": where,
        "description": _text(f["description"][()]) if "description" in f else None,
        "instrument": user_qdio.get("instrument"),
        "record_type": None,
        "measurement_mode": "T3" if nbins is not None else "T2",
        "measurement_type": mvals.get("measurement_type"),
        "sync_rate_hz": float(rep) if isinstance(rep, (int, float)) and rep > 0 else None,
        "created": _parse_time(identity.get("creation_time")),
        "creating_software": software,
        "acquisition_time_s": float(duration) if isinstance(duration, (int, float)) else None,
        "n_records": n,
        "non_photon_ids": non_photon_ids.tolist(),
        "identity": identity,
        "provenance": provenance,
        "setup": setup_vals,
    }
    return _Layout(
        path=path,
        group=gname,
        n_rows=n,
        default_channel=default_channel,
        non_photon_ids=non_photon_ids,
        macrotime_resolution_s=unit,
        microtime_resolution_s=micro,
        n_microtime_bins=nbins,
        attrs=attrs,
    )


def _marker_bits(ids: np.ndarray, lay: _Layout) -> np.ndarray:
    """Marker bits of non-photon detector IDs: the ID with its highest set bit cleared."""
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise QdioError(f"{lay.path}: non-photon detector ID {int(ids.min())} is negative")
    top = np.zeros_like(ids)
    pos = ids > 0
    top[pos] = np.left_shift(1, np.floor(np.log2(ids[pos])).astype(np.int64))
    bits = ids - top
    if bits.size and bits.max() > 255:
        raise QdioError(
            f"{lay.path}: non-photon detector ID {int(ids[bits.argmax()])} gives marker "
            f"bits {int(bits.max())}, more than the 8 bits a Markers table holds"
        )
    return bits.astype(np.uint8)


def _read_rows(
    f: h5py.File, lay: _Layout, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Markers]:
    """Rows ``start:stop`` of the photon_data group, split into photons and markers."""
    g = f[lay.group]
    where = f"/{lay.group}"
    ts = g["timestamps"][start:stop]
    if ts.dtype != np.int64:
        if ts.size and ts.dtype.kind == "u" and int(ts.max()) > np.iinfo(np.int64).max:
            raise QdioError(f"{lay.path}: {where}/timestamps exceed the int64 range")
        ts = ts.astype(np.int64)
    if "detectors" in g:
        det = g["detectors"][start:stop]
    else:
        det = np.full(ts.shape[0], lay.default_channel, np.uint8)
    nano = g["nanotimes"][start:stop] if lay.n_microtime_bins is not None else None
    if lay.non_photon_ids.size:
        is_marker = np.isin(det, lay.non_photon_ids)
        photon = ~is_marker
        markers = Markers(ts[is_marker], _marker_bits(det[is_marker], lay))
        ts, det = ts[photon], det[photon]
        if nano is not None:
            nano = nano[photon]
    else:
        markers = Markers.empty()
    if det.size and (int(det.min()) < 0 or int(det.max()) > 255):
        bad = int(det.min()) if int(det.min()) < 0 else int(det.max())
        row = start + int(np.flatnonzero(det == bad)[0])
        raise QdioError(
            f"{lay.path}: {where}/detectors holds detector ID {bad} (row {row}, not a "
            f"non-photon ID); qdio channels are uint8, expected 0..255"
        )
    channel = det.astype(np.uint8)
    micro = None
    if nano is not None:
        if nano.size and (int(nano.min()) < 0 or int(nano.max()) >= lay.n_microtime_bins):
            raise QdioError(
                f"{lay.path}: {where}/nanotimes values {int(nano.min())}..{int(nano.max())} "
                f"outside [0, tcspc_num_bins={lay.n_microtime_bins})"
            )
        micro = nano.astype(np.int32)
    return channel, ts, micro, markers


def _stream(lay: _Layout, channel, macro, micro, attrs) -> PhotonStream:
    return PhotonStream(
        channel, macro, micro,
        lay.macrotime_resolution_s, lay.microtime_resolution_s, lay.n_microtime_bins,
        attrs,
    )  # fmt: skip


def read_photon_hdf5(path: str | os.PathLike, *, spot: int | None = None) -> ReadResult:
    """Read a Photon-HDF5 file into a stream and its markers.

    Parameters
    ----------
    path : path-like
        Photon-HDF5 file (any version with ``/photon_data/timestamps``).
    spot : int, optional
        For multi-spot files (``/photon_data0``, ``/photon_data1``, ...): the
        spot to read.  Without it, ``/photon_data`` is read, and a multi-spot
        file raises :class:`~qdio.QdioError` listing its spots.

    Returns
    -------
    ReadResult
        ``stream``: photons in file order.  ``channel`` holds the detector
        IDs exactly as stored (no remapping: a file with detectors 1 and 2
        gives channels 1 and 2); a file without a ``detectors`` array (one
        detector) gives the single ID of ``/setup/detectors/id`` or 0.
        ``microtime`` is the ``nanotimes`` array, or None when the file has
        none (T2-like data).  ``markers``: rows whose detector ID is a
        non-photon ID (see the module notes), empty otherwise.

    Raises
    ------
    QdioError
        Not an HDF5 file, an HDF5 file that is not Photon-HDF5 (no
        ``/photon_data/timestamps``), a missing ``timestamps_unit`` or
        ``tcspc_unit``, detector IDs above 255, columns of different
        lengths, or nanotimes outside ``[0, tcspc_num_bins)``.

    Notes
    -----
    Timestamps out of order (which the format does not allow) are sorted,
    with a :class:`~qdio.QdioWarning`.
    """
    path = Path(path)
    with _hdf5_errors(path), _open(path) as f:
        lay = _layout(f, path, spot)
        channel, macro, micro, markers = _read_rows(f, lay, 0, lay.n_rows)
    try:
        return ReadResult(_stream(lay, channel, macro, micro, lay.attrs), markers)
    except ValueError as exc:
        if "non-decreasing" not in str(exc):
            raise QdioError(f"{path}: photon data is not a valid stream: {exc}") from exc
    order = np.argsort(macro, kind="stable")
    warnings.warn(
        f"{path}: /{lay.group}/timestamps are not in time order; "
        f"{int(np.count_nonzero(order != np.arange(order.size)))} photons were sorted",
        QdioWarning,
        stacklevel=2,
    )
    return ReadResult(
        _stream(
            lay, channel[order], macro[order], None if micro is None else micro[order], lay.attrs
        ),
        markers,
    )


def iter_photon_hdf5(
    path: str | os.PathLike, max_records: int, *, spot: int | None = None
) -> Iterator[ReadResult]:
    """Read a Photon-HDF5 file in slices of at most ``max_records`` rows.

    Each slice is read with h5py slicing, so memory is bounded by the slice
    size.  Rows are photons and non-photon (marker) events alike; every
    chunk carries the file's attrs plus ``chunk_first_record`` (row index).
    Concatenating the chunks gives :func:`read_photon_hdf5`'s stream.

    Raises
    ------
    QdioError
        As :func:`read_photon_hdf5`; also when timestamps go back in time
        (read the whole file with :func:`read_photon_hdf5` to sort them).
    """
    if int(max_records) != max_records or max_records < 1:
        raise ValueError(f"{max_records=} must be a positive integer")
    max_records = int(max_records)
    path = Path(path)
    with _hdf5_errors(path), _open(path) as f:
        lay = _layout(f, path, spot)
        last = None
        for first in range(0, max(lay.n_rows, 1), max_records):
            stop = min(first + max_records, lay.n_rows)
            channel, macro, micro, markers = _read_rows(f, lay, first, stop)
            if last is not None and macro.size and macro[0] < last:
                raise QdioError(
                    f"{path}: /{lay.group}/timestamps go back in time at row {first}; "
                    f"read the file whole with qdio.read() to sort them"
                )
            try:
                stream = _stream(
                    lay, channel, macro, micro, dict(lay.attrs, chunk_first_record=first)
                )
            except ValueError as exc:
                raise QdioError(
                    f"{path}: rows {first}..{stop} of /{lay.group} are not a valid stream: {exc}"
                ) from exc
            if macro.size:
                last = int(macro[-1])
            yield ReadResult(stream, markers)


def _read(path: Path) -> ReadResult:
    return read_photon_hdf5(path)


def _iterate(path: Path, max_records: int) -> Iterator[ReadResult]:
    return iter_photon_hdf5(path, max_records)


FORMATS = [FileFormat(FORMAT_NAME, sniff_hdf5, read=_read, iterate=_iterate)]


# ---------------------------------------------------------------- writer --


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qdlight")
    except PackageNotFoundError:
        return "0+unknown"


def _title(node: h5py.HLObject, key: str) -> None:
    node.attrs["TITLE"] = np.bytes_(_TITLES[key].encode("ascii"))


def _group(parent: h5py.Group, name: str, key: str) -> h5py.Group:
    g = parent.create_group(name)
    _title(g, key)
    return g


def _pytables_flavor(ds: h5py.Dataset) -> None:
    # PyTables (used by phconvert) returns 0-d datasets as numpy arrays unless
    # they say they hold a Python value: add the attributes PyTables writes.
    ds.attrs["CLASS"] = np.bytes_(b"ARRAY")
    ds.attrs["VERSION"] = np.bytes_(b"2.4")
    ds.attrs["FLAVOR"] = np.bytes_(b"python" if ds.ndim == 0 else b"numpy")


def _string(parent: h5py.Group, name: str, value: str, key: str) -> None:
    raw = str(value).encode("utf-8") or b" "
    ds = parent.create_dataset(name, data=np.bytes_(raw))
    _pytables_flavor(ds)
    _title(ds, key)


def _value(parent: h5py.Group, name: str, value: Any, key: str) -> None:
    ds = parent.create_dataset(name, data=value)
    _pytables_flavor(ds)
    _title(ds, key)


def _column(parent: h5py.Group, name: str, values: np.ndarray, key: str) -> None:
    if values.size:
        ds = parent.create_dataset(
            name, data=values, chunks=(min(values.size, 1 << 18),),
            compression="gzip", compression_opts=4, shuffle=True, fletcher32=True,
        )  # fmt: skip
    else:
        ds = parent.create_dataset(name, data=values)
    _title(ds, key)


def _time_text(value: Any) -> str | None:
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str) and value:
        return value
    return None


def _marker_shift(photon_ids: np.ndarray, bits: np.ndarray) -> int:
    """Smallest power of two above every photon channel and marker bit field."""
    top = max(int(photon_ids.max()) if photon_ids.size else 0, int(bits.max()))
    return 1 << top.bit_length()


def _write_file(
    h5: h5py.File,
    final: Path,
    stream: PhotonStream,
    description: str,
    markers: Markers | None,
) -> None:
    n = len(stream)
    photon_ids = stream.channels.astype(np.int64)
    counts = np.bincount(stream.channel, minlength=1)[photon_ids] if n else np.zeros(0, np.int64)
    times, dets = stream.macrotime, stream.channel
    micro = stream.microtime
    marker_ids = np.zeros(0, np.int64)
    shift = 0
    if markers is not None and len(markers):
        shift = _marker_shift(photon_ids, markers.bits)
        mk_ids = shift + markers.bits.astype(np.int64)
        marker_ids, mk_counts = np.unique(mk_ids, return_counts=True)
        times = np.concatenate([markers.macrotime, stream.macrotime])
        order = np.argsort(times, kind="stable")
        times = times[order]
        id_dtype = np.uint8 if marker_ids[-1] <= 255 else np.uint16
        dets = np.concatenate([mk_ids, stream.channel]).astype(id_dtype)[order]
        if micro is not None:
            micro = np.concatenate([np.zeros(len(markers), micro.dtype), micro])[order]
        counts = np.concatenate([counts, mk_counts])
    if micro is not None:
        micro = micro.astype(np.uint16 if stream.n_microtime_bins <= 1 << 16 else np.uint32)
    end = int(times[-1]) if len(times) else 0
    duration = max(end, 0) * stream.macrotime_resolution_s

    now = _dt.datetime.now()
    for name, value in (
        ("format_name", FORMAT_NAME),
        ("format_version", FORMAT_VERSION),
        ("format_url", FORMAT_URL),
    ):
        h5.attrs[name] = np.bytes_(value.encode("ascii"))
    _title(h5, "/")
    _value(h5, "acquisition_duration", np.float64(duration), "/acquisition_duration")
    _string(h5, "description", description, "/description")
    _string(h5, "format_name", FORMAT_NAME, "/format_name")
    _string(h5, "format_version", FORMAT_VERSION, "/format_version")

    pd = _group(h5, "photon_data", "/photon_data")
    _column(pd, "timestamps", np.ascontiguousarray(times, np.int64), "/photon_data/timestamps")
    _column(pd, "detectors", np.ascontiguousarray(dets), "/photon_data/detectors")
    tss = _group(pd, "timestamps_specs", "/photon_data/timestamps_specs")
    _value(
        tss, "timestamps_unit", np.float64(stream.macrotime_resolution_s),
        "/photon_data/timestamps_specs/timestamps_unit",
    )  # fmt: skip
    ms = _group(pd, "measurement_specs", "/photon_data/measurement_specs")
    _string(ms, "measurement_type", "generic", "/photon_data/measurement_specs/measurement_type")
    if stream.is_t3:
        _column(pd, "nanotimes", micro, "/photon_data/nanotimes")
        ns = _group(pd, "nanotimes_specs", "/photon_data/nanotimes_specs")
        key = "/photon_data/nanotimes_specs/"
        _value(ns, "tcspc_unit", np.float64(stream.microtime_resolution_s), key + "tcspc_unit")
        _value(ns, "tcspc_num_bins", np.int64(stream.n_microtime_bins), key + "tcspc_num_bins")
        _value(
            ns, "tcspc_range",
            np.float64(stream.microtime_resolution_s * stream.n_microtime_bins),
            key + "tcspc_range",
        )  # fmt: skip
        _value(
            ms, "laser_repetition_rate", np.float64(stream.sync_rate_hz),
            "/photon_data/measurement_specs/laser_repetition_rate",
        )  # fmt: skip
    ds = _group(ms, "detectors_specs", "/photon_data/measurement_specs/detectors_specs")
    if marker_ids.size:
        _value(
            ds, "non_photon_id1", marker_ids.astype(dets.dtype),
            "/photon_data/measurement_specs/detectors_specs/non_photon_id1",
        )  # fmt: skip

    setup = _group(h5, "setup", "/setup")
    for name, value in (
        ("num_pixels", photon_ids.size),
        ("num_spots", 1),
        ("num_spectral_ch", 1),
        ("num_polarization_ch", 1),
        ("num_split_ch", 1),
        ("modulated_excitation", 0),
        ("lifetime", int(stream.is_t3)),
    ):
        _value(setup, name, np.int64(value), f"/setup/{name}")
    _value(setup, "excitation_alternated", np.zeros(1, np.uint8), "/setup/excitation_alternated")
    _value(
        setup, "excitation_cw", np.array([0 if stream.is_t3 else 1], np.uint8),
        "/setup/excitation_cw",
    )  # fmt: skip
    if stream.is_t3:
        _value(
            setup, "laser_repetition_rates", np.array([stream.sync_rate_hz], np.float64),
            "/setup/laser_repetition_rates",
        )  # fmt: skip
    det = _group(setup, "detectors", "/setup/detectors")
    all_ids = np.concatenate([photon_ids, marker_ids])
    _value(det, "id", all_ids.astype(dets.dtype), "/setup/detectors/id")
    _value(det, "counts", np.asarray(counts, np.int64), "/setup/detectors/counts")

    ident = _group(h5, "identity", "/identity")
    for name, value in (
        ("filename", final.name),
        ("filename_full", str(final.resolve())),
        ("creation_time", now.strftime("%Y-%m-%d %H:%M:%S")),
        ("software", "qdlight"),
        ("software_version", _version()),
        ("format_name", FORMAT_NAME),
        ("format_version", FORMAT_VERSION),
        ("format_url", FORMAT_URL),
    ):
        _string(ident, name, value, f"/identity/{name}")

    attrs: Mapping[str, Any] = stream.attrs
    source = attrs.get("source")
    if isinstance(source, str) and source:
        prov = _group(h5, "provenance", "/provenance")
        _string(prov, "filename", Path(source).name, "/provenance/filename")
        _string(prov, "filename_full", source, "/provenance/filename_full")
        created = _time_text(attrs.get("created"))
        if created:
            _string(prov, "creation_time", created, "/provenance/creation_time")
        software = attrs.get("creating_software")
        if isinstance(software, str) and software:
            _string(prov, "software", software, "/provenance/software")

    # /user is free-form (ignored by the validator and by official readers)
    user = h5.create_group("user")
    qd = user.create_group("qdio")
    instrument = attrs.get("instrument")
    if isinstance(instrument, str) and instrument:
        qd.create_dataset("instrument", data=np.bytes_(instrument.encode("utf-8")))
    fmt = attrs.get("format")
    if isinstance(fmt, str) and fmt:
        qd.create_dataset("source_format", data=np.bytes_(fmt.encode("utf-8")))
    if marker_ids.size:
        exp = user.create_group("experimental_settings")
        npg = exp.create_group("non_photon_id")
        text = (
            f"External marker events (TCSPC marker inputs). Detector ID {shift} + b "
            f"is a marker whose bit field is b (bit k set = marker input k+1; b = 0 "
            f"is a sync event)."
        )
        npg.create_dataset("id1", data=np.bytes_(text.encode("ascii")))
        exp.create_dataset(
            "non_photon_id_explanation",
            data=np.bytes_(
                b"Written by qdlight (qdio.write_photon_hdf5) from a qdio.Markers table."
            ),
        )


def write_photon_hdf5(
    path: str | os.PathLike,
    stream: PhotonStream,
    *,
    description: str | None = None,
    markers: Markers | None = None,
) -> Path:
    """Write a stream (and optional markers) as a Photon-HDF5 0.5 file.

    Parameters
    ----------
    path : path-like
        Output file.  It is written to a temporary file in the same folder and
        renamed into place, so a failure never leaves a partial file and an
        existing file at ``path`` stays untouched until the rename.
    stream : PhotonStream
        T3 streams give ``nanotimes`` (uint16, or uint32 above 65536 bins)
        with ``nanotimes_specs``, ``/setup/lifetime = 1``, one pulsed source
        whose repetition rate is ``1 / macrotime_resolution_s`` (in
        ``/setup/laser_repetition_rates`` and
        ``measurement_specs/laser_repetition_rate``).  T2 streams have no
        nanotimes, ``lifetime = 0`` and one source recorded as CW (a T2
        stream does not say how the sample was excited).
    description : str, optional
        ``/description``; by default names qdlight and the stream's source.
    markers : Markers, optional
        Written as non-photon IDs ``2**k + bits`` in ``/photon_data/detectors``
        (``2**k`` the smallest power of two above every channel and bit field,
        as phconvert does when it converts PicoQuant files), listed in
        ``measurement_specs/detectors_specs/non_photon_id1`` and explained in
        ``/user/experimental_settings``.  Markers are merged in time order
        with the photons.

    Returns
    -------
    Path
        The path written.

    Notes
    -----
    The measurement type is "generic" with one spot, one spectral band, one
    polarization and one split channel: qdio does not know how the optical
    path maps onto detectors, so the detectors are left unclassified
    (``num_pixels`` counts them).  Detector IDs are the stream's channels as
    they are.  ``/acquisition_duration`` is the time of the last event.
    When ``stream.attrs`` has a ``source`` (a file read by qdio), it is
    recorded in ``/provenance`` with the source's creation time and software.
    Arrays are gzip-compressed, with Fletcher-32 checksums so that damage is detected.

    Raises
    ------
    TypeError
        ``stream`` is not a PhotonStream or ``markers`` not a Markers table.
    """
    if not isinstance(stream, PhotonStream):
        raise TypeError(f"stream must be a qdio.PhotonStream, got {type(stream).__name__}")
    if markers is not None and not isinstance(markers, Markers):
        raise TypeError(f"markers must be a qdio.Markers or None, got {type(markers).__name__}")
    path = Path(path)
    if description is None:
        src = stream.attrs.get("source")
        description = f"Photon stream written by qdlight {_version()}" + (
            f" from {src}" if isinstance(src, str) and src else ""
        )
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        _write_file(h5, path, stream, description, markers)
    return path
