"""Legacy fixed-header PicoQuant TTTR files: PT3, PT2, HT3, HT2 and T3R.

Before the tagged PTU format, each PicoQuant instrument wrote its own binary
header, a C struct dumped to disk (``../shared/ptu_format.md`` section 5):

========  ==============  ==================  ===================  ===============
format    Ident           FormatVersion       MeasurementMode      record layout
========  ==============  ==================  ===================  ===============
PT3       "PicoHarp 300"  2.0                 3 (T3)               picoharp_t3
PT2       "PicoHarp 300"  2.0                 2 (T2)               picoharp_t2
HT3       "HydraHarp"     1.0, 2.0            3 (T3)               hydraharp_t3
HT2       "HydraHarp"     1.0, 2.0            2 (T2)               hydraharp_t2
T3R       "TimeHarp 200"  5.0, 6.0            2 (TTTR)             timeharp_t3r
========  ==============  ==================  ===================  ===============

This module parses those headers (field layouts from PicoQuant's demo code,
``pt3demo.c`` / ``pt2demo.c``, cross-checked against phconvert's
``pqreader`` and libpicoquant's ``hh_v20.h`` / ``th_v50.h`` / ``th_v60.h``
and against the real files of ``../shared/data``) into a
:class:`~qdio._records.RecordSource`; :mod:`qdio._records` decodes the
records.  Files are recognised from their content (the Ident string and the
measurement-mode field), never from their extension.  The histogram files
that share these Idents (PHD, HHD, THD: measurement mode 0) are left to
:mod:`qdio.histograms`.

Quirks of real files handled here: LabVIEW writers pad the text fields with
spaces instead of NULs (``b'2.0   '``) and write 4-digit years; header record
counts may be 0 or far larger than the file (the count is then taken from the
file size, with a :class:`~qdio.QdioWarning`); HydraHarp file format 2.0 uses
counted overflow records (record version 2).

Units follow the rest of qdio: T3 macrotimes count sync periods
(``1 / SyncRate``); T2 time tags count the instrument's tag resolution
(PicoHarp 4 ps, HydraHarp ``BaseResolution``, 1 ps); TimeHarp 200 time tags
count its TTTR global clock (``TTTRGlobClock``, 100 ns), *not* sync periods,
so for T3R ``stream.sync_rate_hz`` is the clock rate and the laser rate is in
``attrs["sync_rate_hz"]``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ._errors import QdioError
from ._formats import FileFormat
from ._records import RecordSource, count_records
from ._util import scaled_decimal

__all__ = [
    "FORMATS",
    "LegacyHeader",
    "legacy_source",
    "parse_file_time",
    "parse_legacy_header",
]

# ------------------------------------------------------------ header layouts --
# All little-endian, packed (the C structs use 4-byte packing and every double
# happens to fall on an 8-byte boundary, so packed == aligned here).

_I4 = "<i4"


def _ints(*names: str) -> list[tuple[str, str]]:
    return [(n, _I4) for n in names]


# Text header shared by PicoHarp, HydraHarp and TimeHarp >= 6.0 (328 bytes).
_TEXT = [
    ("Ident", "S16"),
    ("FormatVersion", "S6"),
    ("CreatorName", "S18"),
    ("CreatorVersion", "S12"),
    ("FileTime", "S18"),
    ("CRLF", "S2"),
    ("Comment", "S256"),
]
# TimeHarp 200 format 5.0 (304 bytes): no creator fields.
_TEXT_TH5 = [
    ("Ident", "S16"),
    ("FormatVersion", "S6"),
    ("HardwareVersion", "S6"),
    ("FileTime", "S18"),
    ("CRLF", "S2"),
    ("Comment", "S256"),
]
# Display / parameter / repeat settings that end every binary header.
_DISPLAY = [
    ("DispCurves", [("MapTo", _I4), ("Show", _I4)], (8,)),
    ("Params", [("Start", "<f4"), ("Step", "<f4"), ("End", "<f4")], (3,)),
    *_ints("RepeatMode", "RepeatsPerCurve", "RepeatTime", "RepeatWaitTime"),
    ("ScriptName", "S20"),
]
_DISP_AXES = ("DispLinLog", "DispTimeFrom", "DispTimeTo", "DispCountsFrom", "DispCountsTo")

_BIN_PH = _ints(
    "NumberOfCurves", "BitsPerRecord", "RoutingChannels", "NumberOfBoards",
    "ActiveCurve", "MeasurementMode", "SubMode", "RangeNo", "Offset",
    "AcquisitionTime", "StopAt", "StopOnOvfl", "Restart", *_DISP_AXES,
) + _DISPLAY  # fmt: skip
_BOARD_PH = [
    ("HardwareIdent", "S16"),
    ("HardwareVersion", "S8"),
    *_ints("HardwareSerial", "SyncDivider", "CFDZeroCross0", "CFDLevel0"),
    *_ints("CFDZeroCross1", "CFDLevel1"),
    ("Resolution", "<f4"),  # [ns] TCSPC bin width
    *_ints("RouterModelCode", "RouterEnabled"),
    (
        "RouterChannels",
        _ints("InputType", "InputLevel", "InputEdge", "CFDPresent", "CFDLevel", "CFDZeroCross"),
        (4,),
    ),
]
_TTTR_PH = _ints(
    "ExtDevices", "Reserved1", "Reserved2", "CntRate0", "CntRate1",
    "StopAfter", "StopReason", "Records", "ImgHdrSize",
)  # fmt: skip

_BIN_HH = [
    *_ints("NumberOfCurves", "BitsPerRecord", "ActiveCurve", "MeasurementMode"),
    *_ints("SubMode", "Binning"),
    ("Resolution", "<f8"),  # [ps] TCSPC bin width
    *_ints("Offset", "AcquisitionTime", "StopAt", "StopOnOvfl", "Restart", *_DISP_AXES),
    *_DISPLAY,
]
_HW_HH = [
    ("HardwareIdent", "S16"),
    ("HardwarePartNo", "S8"),
    *_ints("HardwareSerial", "NumberOfModules"),
    ("ModuleInfo", _ints("ModelCode", "VersionCode"), (10,)),
    ("BaseResolution", "<f8"),  # [ps]
    ("InputsEnabled", "<u8"),
    *_ints("InpChansPresent", "RefClockSource", "ExtDevices", "MarkerSettings"),
    *_ints("SyncDivider", "SyncCFDLevel", "SyncCFDZeroCross", "SyncOffset"),
]
_INPCHAN_HH = _ints("ModuleIdx", "CFDLevel", "CFDZeroCross", "Offset")
_TTTR_HH = [*_ints("SyncRate", "StopAfter", "StopReason", "ImgHdrSize"), ("nRecords", "<i8")]

_BIN_TH = _ints(
    "NumberOfChannels", "NumberOfCurves", "BitsPerChannel", "RoutingChannels",
    "NumberOfBoards", "ActiveCurve", "MeasurementMode", "SubMode", "RangeNo",
    "Offset", "AcquisitionTime", "StopAt", "StopOnOvfl", "Restart", *_DISP_AXES,
) + _DISPLAY  # fmt: skip
_BOARD_TH5 = [
    *_ints("BoardSerial", "CFDZeroCross", "CFDDiscriminatorMin", "SYNCLevel", "CurveOffset"),
    ("Resolution", "<f4"),  # [ns]
]
_BOARD_TH6 = [("HardwareIdent", "S16"), ("HardwareVersion", "S8"), *_BOARD_TH5]
_TTTR_TH5 = [
    ("TTTRGlobClock", _I4),  # [ns] time-tag clock period
    ("Reserved", _I4, (6,)),
    *_ints("SyncRate", "AverageCFDRate", "StopAfter", "StopReason"),
    *_ints("NumberOfRecords", "SpecHeaderLength"),
]
_TTTR_TH6 = [
    *_ints("TTTRGlobClock", "ExtDevices"),
    ("Reserved", _I4, (5,)),
    *_ints("SyncRate", "AverageCFDRate", "StopAfter", "StopReason"),
    *_ints("NumberOfRecords", "SpecHeaderLength"),
]

_TEXT_SIZE = np.dtype(_TEXT).itemsize  # 328
_TEXT_TH5_SIZE = np.dtype(_TEXT_TH5).itemsize  # 304


def _offset_of(fields: list, name: str) -> int:
    return np.dtype(fields).fields[name][1]


# Byte offset of MeasurementMode, per family (used by the sniffers).
_MODE_OFFSET = {
    "PicoHarp": _TEXT_SIZE + _offset_of(_BIN_PH, "MeasurementMode"),  # 348
    "HydraHarp": _TEXT_SIZE + _offset_of(_BIN_HH, "MeasurementMode"),  # 340
    "TimeHarp": _TEXT_SIZE + _offset_of(_BIN_TH, "MeasurementMode"),  # 352
    "TimeHarp5": _TEXT_TH5_SIZE + _offset_of(_BIN_TH, "MeasurementMode"),  # 328
}

_IDENTS = {"PicoHarp 300": "PicoHarp", "HydraHarp": "HydraHarp", "TimeHarp 200": "TimeHarp"}
# (family, MeasurementMode) -> format name
_FORMAT_OF = {
    ("PicoHarp", 3): "PT3",
    ("PicoHarp", 2): "PT2",
    ("HydraHarp", 3): "HT3",
    ("HydraHarp", 2): "HT2",
    ("TimeHarp", 2): "T3R",
}
_VERSIONS = {"PicoHarp": ("2.0",), "HydraHarp": ("1.0", "2.0"), "TimeHarp": ("5.0", "6.0")}

# Hardware constants for T2 mode (PicoQuant pt2demo.c: RESOL 4E-12).
_PICOHARP_T2_RESOLUTION_S = 4e-12

# Bounds on header counts, so a corrupt header cannot cause a huge read.
_MAX_BOARDS = 16
_MAX_INPUT_CHANNELS = 64
_MAX_IMG_HDR_INTS = 1 << 20


# ------------------------------------------------------------------ helpers --


def _text(raw: bytes) -> str:
    """A fixed-width text field: up to the first NUL, trailing/leading blanks removed.

    LabVIEW writers pad with spaces instead of NULs; both are handled.
    """
    return raw.split(b"\0", 1)[0].decode("windows-1252", "replace").strip()


def _f4(value: np.floating) -> float:
    """A float32 header value as the decimal it was written as (0.004, not 0.00400000019)."""
    return float(str(np.float32(value)))


def _python(value: Any) -> Any:
    """Structured numpy header values as plain Python (str, int, float, dict, list)."""
    if isinstance(value, np.void) and value.dtype.names:
        return {n: _python(value[n]) for n in value.dtype.names}
    if isinstance(value, np.ndarray):
        return [_python(v) for v in value]
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, np.float32):
        return _f4(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


_DATE = re.compile(
    r"^\s*(\d{1,2})[./-](\d{1,2})[./-](\d{2}|\d{4})"
    r"(?:[\sT,]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?\s*$"
)


def parse_file_time(text: str) -> _dt.datetime | None:
    """The ``FileTime`` text of a legacy header as a datetime, or None.

    PicoQuant software writes ``dd/mm/yy HH:MM:SS`` and LabVIEW writers
    ``dd/mm/yyyy HH:MM``; a date that is impossible as day/month is read as
    month/day (US order); ``ctime``-style text (``Wed Aug 09 18:10:40 2023``)
    is accepted too.  Ambiguous dates (both numbers <= 12) are read day first,
    as every PicoQuant file seen does.

    >>> parse_file_time("18/10/13 14:34:28")
    datetime.datetime(2013, 10, 18, 14, 34, 28)
    >>> parse_file_time("10/03/2014 16:59")
    datetime.datetime(2014, 3, 10, 16, 59)
    >>> parse_file_time("10/18/2013 2:34:28 PM")
    datetime.datetime(2013, 10, 18, 14, 34, 28)
    >>> parse_file_time("garbage") is None
    True
    """
    m = _DATE.match(text)
    if m is None:
        try:
            return _dt.datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            return None
    a, b, year = int(m[1]), int(m[2]), int(m[3])
    if len(m[3]) == 2:
        year += 2000 if year < 70 else 1900
    hour, minute, second = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
    if m[7]:
        if hour > 12:
            return None
        hour = hour % 12 + (12 if m[7].lower() == "pm" else 0)
    for day, month in ((a, b), (b, a)):
        try:
            return _dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            continue
    return None


class _Cursor:
    """Reads consecutive header sections from a file, checking the file size first."""

    def __init__(self, f: BinaryIO, path: Path, fmt: str):
        self.f = f
        self.path = path
        self.fmt = fmt
        self.size = os.fstat(f.fileno()).st_size
        self.pos = 0

    def take(self, section: str, fields: list | str, count: int = 1) -> np.ndarray:
        dtype = np.dtype(fields)
        need = dtype.itemsize * count
        if self.pos + need > self.size:
            raise QdioError(self._truncated(section, dtype, count))
        raw = self.f.read(need)
        if len(raw) < need:  # the file shrank while open
            raise QdioError(self._truncated(section, dtype, count))
        self.pos += need
        return np.frombuffer(raw, dtype, count).copy()

    def _truncated(self, section: str, dtype: np.dtype, count: int) -> str:
        # name the field inside which the file ends, and its absolute offset
        index, within = divmod(max(self.size - self.pos, 0), dtype.itemsize)
        where, field_at = section, self.pos + index * dtype.itemsize
        if dtype.names:
            for name in dtype.names:
                sub, off = dtype.fields[name][:2]
                if off <= within < off + sub.itemsize:
                    where, field_at = name, field_at + off
                    break
            if count > 1:
                where = f"{section}[{index}].{where}"
        elif count > 1:
            where = f"{section}[{index}]"
        return (
            f"{self.path}: file is {self.size} bytes and ends inside the {self.fmt} header, "
            f"in field '{where}' at offset {field_at} (the {section} section starts at "
            f"offset {self.pos} and needs {dtype.itemsize * count} bytes): expected a "
            f"complete header, the file is truncated"
        )


@dataclass(frozen=True)
class LegacyHeader:
    """A parsed legacy header: what :func:`legacy_source` needs, plus every field.

    Attributes
    ----------
    format : str
        "PT3", "PT2", "HT3", "HT2" or "T3R".
    family : str
        "PicoHarp", "HydraHarp" or "TimeHarp".
    format_version : str
        The FormatVersion text ("2.0", ...), stripped.
    mode : str
        "T2" or "T3".
    fields : dict
        Every header field by its PicoQuant name; text decoded and stripped,
        repeated structs as lists of dicts (``Board``/``Boards``,
        ``InputChannels``, ``DispCurves``, ...), ``ImgHdr``/``SpecHeader``
        as lists of int.
    data_offset : int
        Byte offset of the first record.
    header_records : int
        Record count as the header states it (may be 0 or wrong).
    """

    format: str
    family: str
    format_version: str
    mode: str
    fields: dict[str, Any]
    data_offset: int
    header_records: int


def _family_of(path: Path, head: np.void) -> tuple[str, str]:
    ident = _text(head["Ident"])
    family = _IDENTS.get(ident)
    if family is None:
        raise QdioError(
            f"{path}: field 'Ident' at offset 0 is {bytes(head['Ident'])!r}; expected one of "
            f"{', '.join(repr(i) for i in _IDENTS)} (a legacy PicoQuant file)"
        )
    version = _text(head["FormatVersion"])
    if version not in _VERSIONS[family]:
        raise QdioError(
            f"{path}: field 'FormatVersion' at offset 16 is {version!r}; qdio reads "
            f"{ident} files of format version {' or '.join(_VERSIONS[family])}"
        )
    return family, version


def _check_count(path: Path, name: str, offset: int, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise QdioError(
            f"{path}: header field '{name}' at offset {offset} is {value}; expected {lo}..{hi}"
        )
    return int(value)


def parse_legacy_header(path: str | os.PathLike) -> LegacyHeader:
    """Parse the fixed header of a PT3, PT2, HT3, HT2 or T3R file.

    Parameters
    ----------
    path : path-like
        The file (opened read-only; never modified).

    Returns
    -------
    LegacyHeader
        Format, version, mode, every header field (text fields decoded and
        stripped; nested structs as dicts and lists), the byte offset of the
        first record and the header's record count.

    Raises
    ------
    QdioError
        Unknown Ident or format version, a measurement mode that is not a
        TTTR mode (histogram files), ``BitsPerRecord`` other than 32, an
        implausible count of boards / input channels / image-header words, or
        a file that ends inside the header.  The message names the file, the
        field and its byte offset, and what was expected.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        # Ident + FormatVersion decide the layout of everything else
        head_raw = f.read(22)
        if len(head_raw) < 22:
            raise QdioError(
                f"{path}: file is {size} bytes; a legacy PicoQuant header starts with "
                f"Ident (16 bytes) and FormatVersion (6 bytes)"
            )
        head = np.frombuffer(head_raw, [("Ident", "S16"), ("FormatVersion", "S6")])[0]
        family, version = _family_of(path, head)
        f.seek(0)
        if family == "PicoHarp":
            return _parse_picoharp(_Cursor(f, path, "PicoHarp 300"), version)
        if family == "HydraHarp":
            return _parse_hydraharp(_Cursor(f, path, "HydraHarp"), version)
        return _parse_timeharp(_Cursor(f, path, "TimeHarp 200"), version)


def _fields(*sections: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arr in sections:
        rec = arr[0]
        for name in rec.dtype.names:
            out[name] = _python(rec[name])
    return out


def _mode_and_format(cur: _Cursor, family: str, mode_value: int, mode_offset: int) -> str:
    fmt = _FORMAT_OF.get((family, int(mode_value)))
    if fmt is None:
        expected = " or ".join(
            f"{m} ({name})" for (fam, m), name in _FORMAT_OF.items() if fam == family
        )
        what = " (a histogram file: use qdio.read_histograms)" if mode_value == 0 else ""
        raise QdioError(
            f"{cur.path}: header field 'MeasurementMode' at offset {mode_offset} is "
            f"{mode_value}{what}; expected {expected}, a time-tagged (TTTR) file"
        )
    cur.fmt = fmt
    return fmt


def _check_bits(cur: _Cursor, name: str, value: int, offset: int) -> None:
    if value != 32:
        raise QdioError(
            f"{cur.path}: header field '{name}' at offset {offset} is {value}; expected 32 "
            f"(32-bit TTTR records)"
        )


def _img_header(cur: _Cursor, name: str, n: int, offset: int) -> list[int]:
    n = _check_count(cur.path, name, offset, n, 0, _MAX_IMG_HDR_INTS)
    return cur.take("ImgHdr", _I4, n).tolist() if n else []


def _parse_picoharp(cur: _Cursor, version: str) -> LegacyHeader:
    text = cur.take("text", _TEXT)
    binary = cur.take("binary", _BIN_PH)
    mode_off = _MODE_OFFSET["PicoHarp"]
    fmt = _mode_and_format(cur, "PicoHarp", binary[0]["MeasurementMode"], mode_off)
    _check_bits(
        cur, "BitsPerRecord", binary[0]["BitsPerRecord"],
        _TEXT_SIZE + _offset_of(_BIN_PH, "BitsPerRecord"),
    )  # fmt: skip
    # pt3demo.c / pt2demo.c read exactly one board header (PicoHarp has one board)
    board = cur.take("board", _BOARD_PH)
    tttr_at = cur.pos
    tttr = cur.take("TTTR", _TTTR_PH)
    fields = _fields(text, binary)
    fields["Board"] = _fields(board)
    fields.update(_fields(tttr))
    img_off = tttr_at + _offset_of(_TTTR_PH, "ImgHdrSize")
    fields["ImgHdr"] = _img_header(cur, "ImgHdrSize", tttr[0]["ImgHdrSize"], img_off)
    return LegacyHeader(
        fmt, "PicoHarp", version, "T3" if fmt == "PT3" else "T2", fields,
        cur.pos, int(tttr[0]["Records"]),
    )  # fmt: skip


def _parse_hydraharp(cur: _Cursor, version: str) -> LegacyHeader:
    text = cur.take("text", _TEXT)
    binary = cur.take("binary", _BIN_HH)
    mode_off = _MODE_OFFSET["HydraHarp"]
    fmt = _mode_and_format(cur, "HydraHarp", binary[0]["MeasurementMode"], mode_off)
    _check_bits(
        cur, "BitsPerRecord", binary[0]["BitsPerRecord"],
        _TEXT_SIZE + _offset_of(_BIN_HH, "BitsPerRecord"),
    )  # fmt: skip
    hw_at = cur.pos
    hw = cur.take("hardware", _HW_HH)
    n_inp = _check_count(
        cur.path, "InpChansPresent", hw_at + _offset_of(_HW_HH, "InpChansPresent"),
        int(hw[0]["InpChansPresent"]), 0, _MAX_INPUT_CHANNELS,
    )  # fmt: skip
    # per-channel settings, then one int32 input rate per channel (ht3demo.c);
    # phconvert reads them interleaved, which gives the same size but mixes values
    channels = cur.take("InputChannels", _INPCHAN_HH, n_inp) if n_inp else None
    rates = cur.take("InputRates", _I4, n_inp) if n_inp else None
    tttr_at = cur.pos
    tttr = cur.take("TTTR", _TTTR_HH)
    fields = _fields(text, binary, hw)
    fields["InputChannels"] = [] if channels is None else _python(channels)
    fields["InputRates"] = [] if rates is None else rates.tolist()
    fields.update(_fields(tttr))
    img_off = tttr_at + _offset_of(_TTTR_HH, "ImgHdrSize")
    fields["ImgHdr"] = _img_header(cur, "ImgHdrSize", tttr[0]["ImgHdrSize"], img_off)
    return LegacyHeader(
        fmt, "HydraHarp", version, "T3" if fmt == "HT3" else "T2", fields,
        cur.pos, int(tttr[0]["nRecords"]),
    )  # fmt: skip


def _parse_timeharp(cur: _Cursor, version: str) -> LegacyHeader:
    v5 = version == "5.0"
    text_fields = _TEXT_TH5 if v5 else _TEXT
    text = cur.take("text", text_fields)
    bin_at = cur.pos
    binary = cur.take("binary", _BIN_TH)
    mode_off = _MODE_OFFSET["TimeHarp5" if v5 else "TimeHarp"]
    fmt = _mode_and_format(cur, "TimeHarp", binary[0]["MeasurementMode"], mode_off)
    _check_bits(
        cur, "BitsPerChannel", binary[0]["BitsPerChannel"],
        bin_at + _offset_of(_BIN_TH, "BitsPerChannel"),
    )  # fmt: skip
    n_boards = _check_count(
        cur.path, "NumberOfBoards", bin_at + _offset_of(_BIN_TH, "NumberOfBoards"),
        int(binary[0]["NumberOfBoards"]), 1, _MAX_BOARDS,
    )  # fmt: skip
    boards = cur.take("boards", _BOARD_TH5 if v5 else _BOARD_TH6, n_boards)
    tttr_fields = _TTTR_TH5 if v5 else _TTTR_TH6
    tttr_at = cur.pos
    tttr = cur.take("TTTR", tttr_fields)
    fields = _fields(text, binary)
    fields["Boards"] = _python(boards)
    fields.update(_fields(tttr))
    spec_off = tttr_at + _offset_of(tttr_fields, "SpecHeaderLength")
    fields["SpecHeader"] = _img_header(
        cur, "SpecHeaderLength", tttr[0]["SpecHeaderLength"], spec_off
    )
    return LegacyHeader(
        fmt, "TimeHarp", version, "T3", fields, cur.pos, int(tttr[0]["NumberOfRecords"])
    )


# ------------------------------------------------------------------- source --

_LAYOUT = {
    "PT3": "picoharp_t3",
    "PT2": "picoharp_t2",
    "HT3": "hydraharp_t3",
    "HT2": "hydraharp_t2",
    "T3R": "timeharp_t3r",
}
_N_MICROTIME_BINS = {"PT3": 4096, "HT3": 32768, "T3R": 4096}


def _positive(path: Path, name: str, value: float, unit: str, what: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise QdioError(
            f"{path}: header field '{name}' is {value!r}; expected a positive {what} in {unit}"
        )
    return value


def legacy_source(path: str | os.PathLike, *, expected: str | None = None) -> RecordSource:
    """Parse a legacy PicoQuant file's header into a :class:`~qdio._records.RecordSource`.

    Parameters
    ----------
    path : path-like
        A PT3, PT2, HT3, HT2 or T3R file (recognised from its content).
    expected : str, optional
        Format the caller sniffed ("PT3", ...); a different format in the
        header raises.

    Returns
    -------
    RecordSource
        Layout, record version, data offset, record count (from the file
        size where the header's count is 0 or too large, with a warning),
        resolutions in seconds and ``attrs`` (``header``: every header field;
        ``instrument``, ``record_type``, ``measurement_mode``,
        ``sync_rate_hz``, ``created``, ``creating_software``,
        ``acquisition_time_s``, ``header_records``, as for PTU files).

    Raises
    ------
    QdioError
        A header problem (see :func:`parse_legacy_header`), or a missing
        resolution (sync rate, bin width, clock) that the stream needs.
    """
    path = Path(path)
    hdr = parse_legacy_header(path)
    if expected is not None and hdr.format != expected:
        raise QdioError(f"{path}: expected a {expected} file, the header describes {hdr.format}")
    h = hdr.fields
    fmt = hdr.format
    version = 1
    micro: float | None = None
    nbins = _N_MICROTIME_BINS.get(fmt)
    if hdr.family == "PicoHarp":
        sync_rate = h["CntRate0"]
        instrument = h["Board"]["HardwareIdent"] or "PicoHarp 300"
        if fmt == "PT3":
            macro = 1.0 / _positive(path, "CntRate0", sync_rate, "Hz", "sync rate")
            micro = scaled_decimal(
                _positive(
                    path, "Board.Resolution", h["Board"]["Resolution"], "ns", "TCSPC bin width"
                ),
                -9,
            )
        else:
            macro = _PICOHARP_T2_RESOLUTION_S
    elif hdr.family == "HydraHarp":
        sync_rate = h["SyncRate"]
        instrument = h["HardwareIdent"] or "HydraHarp 400"
        version = 2 if hdr.format_version == "2.0" else 1
        if fmt == "HT3":
            macro = 1.0 / _positive(path, "SyncRate", sync_rate, "Hz", "sync rate")
            res_ps = _positive(path, "Resolution", h["Resolution"], "ps", "bin width")
            micro = scaled_decimal(res_ps, -12)
        else:
            # T2 time tags count the base resolution (1 ps on every HydraHarp 400)
            base = _positive(path, "BaseResolution", h["BaseResolution"], "ps", "resolution")
            macro = scaled_decimal(base, -12)
    else:
        sync_rate = h["SyncRate"]
        board = h["Boards"][0]
        instrument = board.get("HardwareIdent") or "TimeHarp 200"
        clock = _positive(path, "TTTRGlobClock", h["TTTRGlobClock"], "ns", "clock period")
        macro = scaled_decimal(clock, -9)
        micro = scaled_decimal(
            _positive(path, "Boards[0].Resolution", board["Resolution"], "ns", "TCSPC bin width"),
            -9,
        )
    creator = h.get("CreatorName") or None
    attrs = {
        "instrument": instrument,
        "record_type": (
            f"{instrument} {hdr.mode} ({fmt} file format {hdr.format_version}"
            + (f", record version {version})" if hdr.family == "HydraHarp" else ")")
        ),
        "measurement_mode": hdr.mode,
        "sync_rate_hz": float(sync_rate) if sync_rate > 0 else None,
        "created": parse_file_time(h["FileTime"]),
        "creating_software": creator,
        "creating_software_version": h.get("CreatorVersion") or None,
        "acquisition_time_s": h["AcquisitionTime"] / 1000 if h["AcquisitionTime"] > 0 else None,
        "stop_after_s": h["StopAfter"] / 1000 if h["StopAfter"] > 0 else None,
        "header_records": hdr.header_records,
        "format_version": hdr.format_version,
        "comment": h["Comment"],
        "header": h,
    }
    # sizes come from the file, never from the header's count alone
    n_records = count_records(path, hdr.data_offset, hdr.header_records, what=fmt)
    return RecordSource(
        path=path,
        format=fmt,
        layout=_LAYOUT[fmt],
        version=version,
        data_offset=hdr.data_offset,
        n_records=n_records,
        macrotime_resolution_s=macro,
        microtime_resolution_s=micro,
        n_microtime_bins=nbins,
        attrs=attrs,
    )


# ------------------------------------------------------------------- sniffs --


def _sniff_mode(head: bytes) -> tuple[str | None, int | None]:
    """(family, MeasurementMode) from the first bytes; mode None if the file is too short."""
    family = _IDENTS.get(_text(head[:16]))
    if family is None:
        return None, None
    offset = _MODE_OFFSET[family]
    if family == "TimeHarp" and _text(head[16:22]) == "5.0":
        offset = _MODE_OFFSET["TimeHarp5"]
    if len(head) < offset + 4:
        return family, None
    return family, struct.unpack_from("<i", head, offset)[0]


def _sniffer(fmt: str):
    family, mode = next(key for key, name in _FORMAT_OF.items() if name == fmt)

    def sniff(head: bytes, path: Path) -> bool:
        fam, got = _sniff_mode(head)
        if fam != family:
            return False
        # A file too short to hold the mode field is claimed by the T3 format
        # of its family, whose reader then says where the header ends.
        return got == mode or (got is None and fmt in ("PT3", "HT3", "T3R"))

    sniff.__name__ = f"sniff_{fmt.lower()}"
    sniff.__doc__ = f"True for a {fmt} file ({family} Ident, MeasurementMode {mode})."
    return sniff


FORMATS = [
    FileFormat(fmt, _sniffer(fmt), source=functools.partial(legacy_source, expected=fmt))
    for fmt in ("PT3", "PT2", "HT3", "HT2", "T3R")
]
