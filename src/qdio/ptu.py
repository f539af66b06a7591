"""PicoQuant tagged files: the PTU/PHU tag header, the PTU reader and writer.

The tag header (``../shared/ptu_format.md`` section 1) is parsed defensively:
every length is checked against the file size before anything is allocated,
and every problem raises :class:`~qdio.QdioError` naming the file, the byte
offset and the tag.  Record decoding is shared with the legacy formats
(:mod:`qdio._records`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import struct
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, BinaryIO

import numba
import numpy as np

from ._errors import QdioError, QdioWarning
from ._formats import FileFormat
from ._records import RecordSource, count_records
from ._util import atomic_path
from .stream import Markers, PhotonStream

__all__ = [
    "PTU_RECORD_TYPES",
    "RECORD_TYPES",
    "TagType",
    "parse_tags",
    "ptu_source",
    "write_ptu",
]

PTU_MAGIC = b"PQTTTR\0\0"
_TAG = struct.Struct("<32siI8s")
_MAX_TAGS = 1_000_000
_DELPHI_EPOCH = _dt.datetime(1899, 12, 30)
_FILETIME_EPOCH = _dt.datetime(1601, 1, 1)


class TagType(IntEnum):
    """PTU tag type codes."""

    Empty8 = 0xFFFF0008
    Bool8 = 0x00000008
    Int8 = 0x10000008
    BitSet64 = 0x11000008
    Color8 = 0x12000008
    Float8 = 0x20000008
    TDateTime = 0x21000008
    Float8Array = 0x2001FFFF
    AnsiString = 0x4001FFFF
    WideString = 0x4002FFFF
    BinaryBlob = 0xFFFFFFFF


_PAYLOAD_TYPES = {
    TagType.Float8Array,
    TagType.AnsiString,
    TagType.WideString,
    TagType.BinaryBlob,
}


@dataclass(frozen=True)
class RecordType:
    """One ``TTResultFormat_TTTRRecType`` code and what it means."""

    code: int
    instrument: str
    mode: str  # "T2" or "T3"
    layout: str  # key of qdio._decode.LAYOUTS
    version: int  # overflow semantics: 1 (one wrap per record) or 2 (counted)


RECORD_TYPES: dict[int, RecordType] = {
    rt.code: rt
    for rt in (
        RecordType(0x00010303, "PicoHarp 300", "T3", "picoharp_t3", 1),
        RecordType(0x00010203, "PicoHarp 300", "T2", "picoharp_t2", 1),
        RecordType(0x00010304, "HydraHarp 400 (v1)", "T3", "hydraharp_t3", 1),
        RecordType(0x00010204, "HydraHarp 400 (v1)", "T2", "hydraharp_t2", 1),
        RecordType(0x01010304, "HydraHarp 400 (v2)", "T3", "hydraharp_t3", 2),
        RecordType(0x01010204, "HydraHarp 400 (v2)", "T2", "hydraharp_t2", 2),
        RecordType(0x00010305, "TimeHarp 260 N", "T3", "hydraharp_t3", 2),
        RecordType(0x00010205, "TimeHarp 260 N", "T2", "hydraharp_t2", 2),
        RecordType(0x00010306, "TimeHarp 260 P", "T3", "hydraharp_t3", 2),
        RecordType(0x00010206, "TimeHarp 260 P", "T2", "hydraharp_t2", 2),
        RecordType(0x00010307, "MultiHarp / PicoHarp 330 (generic)", "T3", "hydraharp_t3", 2),
        RecordType(0x00010207, "MultiHarp / PicoHarp 330 (generic)", "T2", "hydraharp_t2", 2),
    )
}

# the record types qdio writes: name -> (code, HW_Type written)
PTU_RECORD_TYPES: dict[str, tuple[int, str]] = {
    "picoharp_t3": (0x00010303, "PicoHarp 300"),
    "hydraharp_v2_t3": (0x01010304, "HydraHarp"),
    "generic_t3": (0x00010307, "MultiHarp"),
    "picoharp_t2": (0x00010203, "PicoHarp 300"),
    "hydraharp_v2_t2": (0x01010204, "HydraHarp"),
}


def delphi_to_datetime(days: float) -> _dt.datetime | None:
    """A TDateTime (days since 1899-12-30) as a datetime, None if out of range."""
    try:
        return _DELPHI_EPOCH + _dt.timedelta(days=float(days))
    except (OverflowError, ValueError):
        return None


def _creation_datetime(value: Any) -> _dt.datetime | None:
    """File_CreatingTime as a datetime, whichever way the writer encoded it.

    PicoQuant software writes a TDateTime; SymPhoTime 64 writes a Float8 of
    about 1.33e10, which matches seconds since 1601-01-01 (Windows FILETIME
    epoch, in seconds).
    """
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, float) and math.isfinite(value):
        if value > 1e8:
            try:
                return _FILETIME_EPOCH + _dt.timedelta(seconds=value)
            except OverflowError:
                return None
        return delphi_to_datetime(value)
    return None


def _decode_text(raw: bytes, encoding: str) -> str:
    if encoding == "utf-16-le":
        text = raw.decode("utf-16-le", errors="replace")
    else:
        text = raw.decode("windows-1252", errors="replace")
    return text.split("\0", 1)[0]


def parse_tags(
    f: BinaryIO, path: Path | str, *, magic: bytes
) -> tuple[dict[str, Any], dict[str, int], int]:
    """Parse a PicoQuant tag header from an open file positioned at 0.

    Returns
    -------
    tags : dict
        Tag name -> value.  Indexed tags (``Tag_Idx >= 0``) become lists in
        index order.  Values have Python types: bool, int, float, datetime
        (TDateTime), str, ndarray (Float8Array), bytes (blob), None (Empty8).
    types : dict
        Tag name -> type code, as found in the file.
    data_offset : int
        Byte offset just after ``Header_End``.

    Raises
    ------
    QdioError
        Wrong magic, a tag that runs past the end of the file, an unknown
        type code, or no ``Header_End``.
    """
    size = os.fstat(f.fileno()).st_size
    head = f.read(16)
    if len(head) < 16 or head[:8] != magic:
        raise QdioError(
            f"{path}: expected magic {magic.rstrip(b'\0')!r} at offset 0, got {head[:8]!r}"
        )
    tags: dict[str, Any] = {}
    types: dict[str, int] = {}
    tags["_tag_version"] = head[8:16].rstrip(b"\0 ").decode("ascii", "replace")
    offset = 16
    for _ in range(_MAX_TAGS):
        raw = f.read(_TAG.size)
        if len(raw) < _TAG.size:
            raise QdioError(
                f"{path}: tag header ends at offset {offset} without Header_End "
                f"(file is {size} bytes)"
            )
        ident_b, idx, typ, value_b = _TAG.unpack(raw)
        ident = ident_b.split(b"\0", 1)[0].decode("ascii", "replace")
        if not ident.isprintable():  # SymPhoTime 64 writes stray control bytes in a few
            ident = "".join(c for c in ident if c.isprintable())
        if not ident:
            raise QdioError(f"{path}: unreadable tag name {ident_b!r} at offset {offset}")
        where = f"{path}: tag {ident!r} at offset {offset}"
        offset += _TAG.size
        try:
            ttype = TagType(typ)
        except ValueError:
            raise QdioError(f"{where}: unknown tag type code 0x{typ:08X}") from None
        if ttype in _PAYLOAD_TYPES:
            length = struct.unpack("<q", value_b)[0]
            if length < 0 or offset + length > size:
                raise QdioError(
                    f"{where}: payload of {length} bytes runs past the end of the "
                    f"file ({size} bytes)"
                )
            payload = f.read(length)
            offset += length
            if ttype is TagType.Float8Array:
                value: Any = np.frombuffer(payload[: length // 8 * 8], "<f8").copy()
            elif ttype is TagType.AnsiString:
                value = _decode_text(payload, "windows-1252")
            elif ttype is TagType.WideString:
                value = _decode_text(payload, "utf-16-le")
            else:
                value = payload
        elif ttype is TagType.Empty8:
            value = None
        elif ttype is TagType.Bool8:
            value = struct.unpack("<q", value_b)[0] != 0
        elif ttype in (TagType.Float8, TagType.TDateTime):
            value = struct.unpack("<d", value_b)[0]
            if ttype is TagType.TDateTime:
                value = delphi_to_datetime(value)
        else:
            value = struct.unpack("<q", value_b)[0]
        types[ident] = int(ttype)
        if idx >= 0:
            if idx > 65535:
                raise QdioError(f"{where}: array index {idx} is implausible (> 65535)")
            lst = tags.get(ident)
            if not isinstance(lst, list):
                lst = tags[ident] = [] if lst is None else [lst]
            lst.extend([None] * (idx + 1 - len(lst)))
            lst[idx] = value
        else:
            tags[ident] = value
        if ident == "Header_End":
            return tags, types, offset
    raise QdioError(f"{path}: more than {_MAX_TAGS} tags without Header_End")


def _tag_float(tags: Mapping[str, Any], name: str, path: Path) -> float | None:
    value = tags.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def ptu_source(path: Path) -> RecordSource:
    """Parse a PTU file's header into a :class:`RecordSource`."""
    with open(path, "rb") as f:
        tags, types, data_offset = parse_tags(f, path, magic=PTU_MAGIC)
    code = tags.get("TTResultFormat_TTTRRecType")
    if not isinstance(code, int) or code not in RECORD_TYPES:
        shown = f"0x{code:08X}" if isinstance(code, int) else repr(code)
        raise QdioError(
            f"{path}: tag 'TTResultFormat_TTTRRecType' = {shown} is not a known "
            f"PicoQuant record type (expected one of "
            f"{', '.join(f'0x{c:08X}' for c in RECORD_TYPES)})"
        )
    rt = RECORD_TYPES[code]
    bits = tags.get("TTResultFormat_BitsPerRecord", 32)
    if bits != 32:
        raise QdioError(f"{path}: tag 'TTResultFormat_BitsPerRecord' = {bits!r}, expected 32")
    header_records = tags.get("TTResult_NumberOfRecords")
    n_records = count_records(
        path, data_offset, header_records if isinstance(header_records, int) else None,
        what="PTU",
    )  # fmt: skip
    glob = _tag_float(tags, "MeasDesc_GlobalResolution", path)
    sync_rate = _tag_float(tags, "TTResult_SyncRate", path)
    if rt.mode == "T3":
        if glob is None and sync_rate is not None:
            glob = 1.0 / sync_rate
        micro = _tag_float(tags, "MeasDesc_Resolution", path)
        if micro is None:
            raise QdioError(
                f"{path}: tag 'MeasDesc_Resolution' = {tags.get('MeasDesc_Resolution')!r}; "
                f"a T3 file needs a positive TCSPC bin width in seconds"
            )
        nbins = 1 << (12 if rt.layout == "picoharp_t3" else 15)
    else:
        micro = None
        nbins = None
    if glob is None:
        raise QdioError(
            f"{path}: tag 'MeasDesc_GlobalResolution' = "
            f"{tags.get('MeasDesc_GlobalResolution')!r}; expected a positive time "
            f"resolution in seconds"
        )
    created = _creation_datetime(tags.get("File_CreatingTime"))
    hw = tags.get("HW_Type")
    hw_name = hw[0] if isinstance(hw, list) and hw else hw
    attrs = {
        "instrument": hw_name if isinstance(hw_name, str) and hw_name else rt.instrument,
        "record_type": f"{rt.instrument} {rt.mode} (0x{rt.code:08X})",
        "measurement_mode": rt.mode,
        "sync_rate_hz": sync_rate,
        "created": created,
        "creating_software": tags.get("CreatorSW_Name"),
        "acquisition_time_s": (
            tags["MeasDesc_AcquisitionTime"] * 1e-3
            if isinstance(tags.get("MeasDesc_AcquisitionTime"), int)
            else None
        ),
        "header_records": header_records,
        "tags": tags,
        "tag_types": types,
    }
    return RecordSource(
        path=path,
        format="PTU",
        layout=rt.layout,
        version=rt.version,
        data_offset=data_offset,
        n_records=n_records,
        macrotime_resolution_s=glob,
        microtime_resolution_s=micro,
        n_microtime_bins=nbins,
        attrs=attrs,
    )


FORMATS = [FileFormat("PTU", lambda head, path: head[:8] == PTU_MAGIC, source=ptu_source)]

# ---------------------------------------------------------------- writer --


@numba.njit(cache=True, nogil=True)
def _encode(kind, times, chans, dtimes, is_marker, out, count_only, done):
    """Encode time-ordered events into records, inserting overflow records.

    kind: 0 PicoHarp T3, 1 HydraHarp v2 T3, 2 PicoHarp T2, 3 HydraHarp v2 T2.
    ``done``: wraps already written before this block.  Returns the number of
    records (written only when ``count_only`` is False) and the new ``done``.
    """
    if kind == 0:
        wrap, max_count = 65536, 1
    elif kind == 1:
        wrap, max_count = 1024, 1023
    elif kind == 2:
        wrap, max_count = 210698240, 1
    else:
        # the format allows counts up to 2**25 - 1, but ptufile (<= 2026.10)
        # multiplies the count by 2**25 in 32 bits: keep count * 2**25 < 2**32
        wrap, max_count = 33554432, 127
    n = 0
    for i in range(times.shape[0]):
        t = times[i]
        need = t // wrap - done
        while need > 0:
            c = need if need < max_count else max_count
            if not count_only:
                if kind == 0 or kind == 2:
                    out[n] = np.uint32(0xF0000000)
                else:
                    out[n] = np.uint32((1 << 31) | (63 << 25) | c)
            n += 1
            need -= c
            done += c
        if not count_only:
            low = t - done * wrap
            c = chans[i]
            if kind == 0:
                if is_marker[i]:
                    out[n] = np.uint32((15 << 28) | ((c & 0xF) << 16) | low)
                else:
                    out[n] = np.uint32(((c + 1) << 28) | (dtimes[i] << 16) | low)
            elif kind == 1:
                if is_marker[i]:
                    out[n] = np.uint32((1 << 31) | ((c & 0xF) << 25) | low)
                else:
                    out[n] = np.uint32((c << 25) | (dtimes[i] << 10) | low)
            elif kind == 2:
                if is_marker[i]:
                    out[n] = np.uint32((15 << 28) | (low & 0x0FFFFFF0) | (c & 0xF))
                else:
                    out[n] = np.uint32((c << 28) | low)
            else:
                if is_marker[i]:
                    out[n] = np.uint32((1 << 31) | ((c & 0xF) << 25) | low)
                else:
                    out[n] = np.uint32((c << 25) | low)
        n += 1
    return n, done


_KIND = {
    "picoharp_t3": 0,
    "hydraharp_v2_t3": 1,
    "generic_t3": 1,
    "picoharp_t2": 2,
    "hydraharp_v2_t2": 3,
}
_WRAP = {0: 65536, 1: 1024, 2: 210698240, 3: 33554432}
_MAX_CHANNEL = {0: 3, 1: 63, 2: 4, 3: 63}
_MAX_DTIME = {0: 4095, 1: 32767}
_ENCODE_BLOCK = 1 << 20  # events encoded at a time: bounded scratch memory


def _tag_bytes(name: str, value: Any, ttype: TagType, idx: int = -1) -> bytes:
    ident = name.encode("ascii")
    if len(ident) > 31:
        raise ValueError(f"PTU tag name {name!r} is longer than 31 characters")
    payload = b""
    if ttype in _PAYLOAD_TYPES:
        if ttype is TagType.AnsiString:
            payload = str(value).encode("windows-1252", "replace") + b"\0"
        elif ttype is TagType.WideString:
            payload = str(value).encode("utf-16-le") + b"\0\0"
        elif ttype is TagType.Float8Array:
            payload = np.asarray(value, "<f8").tobytes()
        else:
            payload = bytes(value)
        payload += b"\0" * (-len(payload) % 8)
        raw = struct.pack("<q", len(payload))
    elif ttype in (TagType.Float8, TagType.TDateTime):
        raw = struct.pack("<d", float(value))
    elif ttype is TagType.Empty8:
        raw = b"\0" * 8
    else:
        raw = struct.pack("<q", int(value))
    return _TAG.pack(ident, idx, int(ttype), raw) + payload


def _datetime_to_delphi(when: _dt.datetime) -> float:
    return (when.replace(tzinfo=None) - _DELPHI_EPOCH) / _dt.timedelta(days=1)


class PtuWriter:
    """Write a PTU file piece by piece: streams (and markers) in time order.

    The file is written to a temporary file beside ``path``; closing the
    writer patches the record count, acquisition time and channel count into
    the header and renames it into place.  An exception inside the ``with``
    block removes the temporary file and leaves ``path`` untouched.  Memory
    is bounded: records are encoded in blocks of about a million events.

    Example (a file larger than memory, converted chunk by chunk)::

        with PtuWriter("big.ptu", macrotime_resolution_s=4e-7,
                       microtime_resolution_s=1.28e-10) as w:
            for chunk in qdio.iter_chunks("huge.pt3"):
                w.write(chunk)

    Parameters
    ----------
    path : path-like
        Output file.
    record_type : str
        One of :data:`PTU_RECORD_TYPES` (see :func:`write_ptu`).
    macrotime_resolution_s : float
        Sync period (T3) or time-tag resolution (T2), in seconds.
    microtime_resolution_s : float or None
        TCSPC bin width (T3); None for T2 record types.
    comment : str
        ``File_Comment`` tag.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        record_type: str = "picoharp_t3",
        macrotime_resolution_s: float,
        microtime_resolution_s: float | None = None,
        comment: str = "",
    ) -> None:
        if record_type not in PTU_RECORD_TYPES:
            raise ValueError(f"{record_type=} must be one of {sorted(PTU_RECORD_TYPES)}")
        self.kind = _KIND[record_type]
        self.record_type = record_type
        code, hw_type = PTU_RECORD_TYPES[record_type]
        self.t3 = RECORD_TYPES[code].mode == "T3"
        if self.t3 != (microtime_resolution_s is not None):
            raise ValueError(
                f"{record_type=} is a {RECORD_TYPES[code].mode} format: "
                f"microtime_resolution_s={microtime_resolution_s!r} must be "
                f"{'a bin width in seconds' if self.t3 else 'None'}"
            )
        glob = float(macrotime_resolution_s)
        if not (math.isfinite(glob) and glob > 0):
            raise ValueError(f"{macrotime_resolution_s=} must be a finite number > 0")
        self.resolutions = (glob, microtime_resolution_s)
        self.n_records = 0
        self._done = 0  # overflow wraps written so far
        self._last_photon = -1
        self._last_time = 0
        self._max_channel = -1
        T = TagType
        g = os.urandom(16).hex().upper()
        guid = f"{{{g[:8]}-{g[8:12]}-{g[12:16]}-{g[16:20]}-{g[20:]}}}"  # {8-4-4-4-12}
        header = [
            ("File_GUID", guid, T.AnsiString),
            ("File_CreatingTime", _datetime_to_delphi(_dt.datetime.now()), T.TDateTime),
            ("File_Comment", comment, T.AnsiString),
            ("CreatorSW_Name", "qdlight", T.AnsiString),
            ("CreatorSW_Version", _version(), T.AnsiString),
            ("Measurement_Mode", 3 if self.t3 else 2, T.Int8),
            ("Measurement_SubMode", 0, T.Int8),
            ("HW_Type", hw_type, T.AnsiString),
            ("HW_InpChannels", 1, T.Int8),
            ("HWSync_Divider", 1, T.Int8),
            ("MeasDesc_BinningFactor", 1, T.Int8),
            ("MeasDesc_Resolution", microtime_resolution_s if self.t3 else glob, T.Float8),
            ("MeasDesc_GlobalResolution", glob, T.Float8),
            ("MeasDesc_AcquisitionTime", 0, T.Int8),
            ("TTResult_SyncRate", round(1.0 / glob) if self.t3 else 0, T.Int8),
            ("TTResult_StopReason", 0, T.Int8),
            ("TTResult_NumberOfRecords", 0, T.Int8),
            ("TTResultFormat_TTTRRecType", code, T.Int8),
            ("TTResultFormat_BitsPerRecord", 32, T.Int8),
            ("Header_End", None, T.Empty8),
        ]
        head = bytearray(PTU_MAGIC + b"1.0.00\0\0")
        self._patch_at: dict[str, int] = {}
        for tag in header:
            self._patch_at[tag[0]] = len(head) + 40  # offset of the 8-byte value
            head += _tag_bytes(*tag)
        self._stack = contextlib.ExitStack()
        try:
            tmp = self._stack.enter_context(atomic_path(path))
            self._f = self._stack.enter_context(open(tmp, "wb"))
            self._f.write(head)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self.path = Path(path)

    def __enter__(self) -> PtuWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stack.__exit__(exc_type, exc, tb)

    def write(self, stream: PhotonStream, markers: Markers | None = None) -> None:
        """Append a stream that continues in time from what was written before."""
        kind = self.kind
        if self.t3 != stream.is_t3:
            have = "T3" if stream.is_t3 else "T2"
            raise ValueError(f"record_type={self.record_type!r} cannot hold a {have} stream")
        given = (stream.macrotime_resolution_s, stream.microtime_resolution_s)
        if given != self.resolutions:
            raise ValueError(
                f"stream resolutions (macrotime, microtime) = {given} differ from the "
                f"file's {self.resolutions}"
            )
        n = len(stream)
        if n and int(stream.channel.max()) > _MAX_CHANNEL[kind]:
            raise ValueError(
                f"record_type={self.record_type!r} holds channels 0..{_MAX_CHANNEL[kind]}, "
                f"the stream has channel {int(stream.channel.max())}"
            )
        if stream.is_t3 and n and int(stream.microtime.max()) > _MAX_DTIME[kind]:
            raise ValueError(
                f"record_type={self.record_type!r} holds microtimes 0..{_MAX_DTIME[kind]}, "
                f"the stream has {int(stream.microtime.max())}"
            )
        if n and stream.macrotime[0] < max(self._last_photon, 0):
            raise ValueError(
                f"macrotime {int(stream.macrotime[0])} goes back before what was already "
                f"written ({max(self._last_photon, 0)}); PTU photons must be in time order"
            )
        m = 0 if markers is None else len(markers)
        if m:
            if np.any(markers.bits == 0) or np.any(markers.bits > 15):
                raise ValueError("markers.bits must be in 1..15 to be written to a PTU")
            base = self._done * _WRAP[kind]
            if markers.macrotime.min() < base:
                # markers may come slightly out of order (PicoQuant says so); one
                # that falls before an overflow already written is moved up to it
                early = markers.macrotime < base
                warnings.warn(
                    f"{self.path}: {int(early.sum())} marker(s) earlier than records "
                    f"already written moved to macrotime {base} (at most "
                    f"{int(base - markers.macrotime.min())} later)",
                    QdioWarning,
                    stacklevel=2,
                )
                markers = Markers(np.maximum(markers.macrotime, base), markers.bits)
        if m:
            order = np.argsort(markers.macrotime, kind="stable")
            mk_t = markers.macrotime[order]
            mk_b = markers.bits[order].astype(np.int64)
            # a marker goes before photons of the same macrotime
            insert_at = np.searchsorted(stream.macrotime, mk_t, side="left")
        for start in range(0, max(n, 1), _ENCODE_BLOCK):
            stop = min(start + _ENCODE_BLOCK, n)
            times = stream.macrotime[start:stop]
            chans = stream.channel[start:stop].astype(np.int64)
            if stream.is_t3:
                dtimes = stream.microtime[start:stop].astype(np.int64)
            else:
                dtimes = np.zeros(stop - start, np.int64)
            is_marker = np.zeros(stop - start, bool)
            if m:
                last = stop >= n
                lo = np.searchsorted(insert_at, start, side="left")
                hi = m if last else np.searchsorted(insert_at, stop, side="left")
                if hi > lo:
                    at = insert_at[lo:hi] - start
                    times = np.insert(times, at, mk_t[lo:hi])
                    chans = np.insert(chans, at, mk_b[lo:hi])
                    dtimes = np.insert(dtimes, at, 0)
                    is_marker = np.insert(is_marker, at, True)
            self._flush(times, chans, dtimes, is_marker)
        if n:
            self._last_photon = int(stream.macrotime[-1])
            self._max_channel = max(self._max_channel, int(stream.channel.max()))
        ends = [self._last_photon] + ([int(markers.macrotime.max())] if m else [])
        self._last_time = max(self._last_time, *ends)

    def _flush(self, times, chans, dtimes, is_marker) -> None:
        empty = np.empty(0, np.uint32)
        n_rec, _ = _encode(self.kind, times, chans, dtimes, is_marker, empty, True, self._done)
        records = np.empty(n_rec, "<u4")
        _, self._done = _encode(
            self.kind, times, chans, dtimes, is_marker, records, False, self._done
        )
        self._f.write(memoryview(records))
        self.n_records += n_rec

    def close(self) -> Path:
        """Patch the header, close and rename the file into place; returns its path."""
        if self._f.closed:
            return self.path
        glob = self.resolutions[0]
        patches = {
            "TTResult_NumberOfRecords": self.n_records,
            "MeasDesc_AcquisitionTime": round(self._last_time * glob * 1e3),
            "HW_InpChannels": max(self._max_channel + 1, 1),
        }
        try:
            for name, value in patches.items():
                self._f.seek(self._patch_at[name])
                self._f.write(struct.pack("<q", value))
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self._stack.close()
        return self.path


def write_ptu(
    path: str | os.PathLike,
    stream: PhotonStream,
    *,
    record_type: str = "picoharp_t3",
    markers: Markers | None = None,
    comment: str = "",
) -> Path:
    """Write a stream (and optional markers) as a PicoQuant PTU file.

    Parameters
    ----------
    path : path-like
        Output file.  It is written to a temporary file beside it and renamed
        into place, so a failure never leaves a half-written file.
    stream : PhotonStream
        T3 streams need a T3 ``record_type``, T2 streams a T2 one.
    record_type : {"picoharp_t3", "hydraharp_v2_t3", "generic_t3", "picoharp_t2", \
"hydraharp_v2_t2"}
        Record layout.  PicoHarp T3 holds channels 0..3 and 12-bit microtimes;
        HydraHarp v2 / generic T3 hold channels 0..63 and 15-bit microtimes.
    markers : Markers, optional
        Marker events to interleave (bits 1..15).
    comment : str
        Written as the ``File_Comment`` tag.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ValueError
        A stream the record type cannot hold (channel or microtime out of
        range, T2/T3 mismatch), naming the offending value.

    See Also
    --------
    PtuWriter : the same, chunk by chunk, for streams larger than memory.
    """
    if record_type not in PTU_RECORD_TYPES:
        raise ValueError(f"{record_type=} must be one of {sorted(PTU_RECORD_TYPES)}")
    code = PTU_RECORD_TYPES[record_type][0]
    if (RECORD_TYPES[code].mode == "T3") != stream.is_t3:
        have = "T3" if stream.is_t3 else "T2"
        raise ValueError(
            f"{record_type=} is a {RECORD_TYPES[code].mode} format but the stream is {have}"
        )
    with PtuWriter(
        path,
        record_type=record_type,
        macrotime_resolution_s=stream.macrotime_resolution_s,
        microtime_resolution_s=stream.microtime_resolution_s,
        comment=comment,
    ) as writer:
        writer.write(stream, markers)
    return Path(path)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qdlight")
    except PackageNotFoundError:
        return "0+unknown"
