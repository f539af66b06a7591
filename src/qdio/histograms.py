"""TCSPC histogram files: PicoQuant PHU, legacy PHD (PicoHarp 300) and THD (TimeHarp 200).

These files hold finished histograms (counts per TCSPC bin, one curve per
measurement or detector), not photon records, so they are read with
:func:`read_histograms` into a :class:`Histograms`; :func:`qdio.read` refuses
them with a message pointing here.

Layouts (all little-endian):

* **PHU** (``PQHISTO``): the PicoQuant tag header of PTU files (parsed by
  :func:`qdio.ptu.parse_tags`); curve ``i`` has ``HistResDscr_HistogramBins(i)``
  uint32 bins at byte ``HistResDscr_DataOffset(i)``, bin width
  ``HistResDscr_MDescResolution(i)`` [PQ-doc ``apx_tagdictionary.html``,
  ``PHU/Python/Read_PHU.py``; ptufile ``PhuFile.histograms``].
* **PHD** (PicoHarp 300, format 2.0): 328-byte text header, 208-byte binary
  header (``MeasMode`` = 0 at offset 348 tells it from PT2/PT3 files, which
  share the ident), 156 bytes per board, then 172 bytes per curve header
  whose ``DataOffset`` points at ``Channels`` uint32 bins [PQ demo
  ``legacy/PicoHarp filedemos/phd/c/phdemo.c``; libpicoquant ``ph_v20.h``].
* **THD** (TimeHarp 200, formats 3.0, 5.0 and 6.0): text header (328 bytes in
  6.0, 304 in 3.0/5.0), 212-byte binary header (``MeasurementMode`` = 0;
  T3R files share the ident and have 2), one board block (48 / 24 bytes),
  then for each curve a 100-byte header followed by ``NumberOfChannels``
  uint32 bins [libpicoquant ``th_v60.h``, ``th_v50.h``, ``th_v30.h``,
  ``th_v60_interactive.c``].

Legacy resolutions are float32 nanoseconds and offsets integer nanoseconds;
everything is converted to seconds here.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ._errors import QdioError
from ._formats import FileFormat, detect
from ._util import scaled_decimal

__all__ = ["FORMATS", "Histograms", "read_histograms"]

PHU_MAGIC = b"PQHISTO\0"
_MAX_CURVES = 65536
_MAX_BINS = 1 << 24


@dataclass(frozen=True, eq=False)
class Histograms:
    """TCSPC histograms read from a file: one row of counts per curve.

    Parameters
    ----------
    counts : ndarray of int64, shape (n_curves, n_bins)
        Counts per TCSPC bin.  Curves shorter than the longest one are padded
        with zeros; their true lengths are ``attrs["n_bins_per_curve"]``.
    resolution_s : ndarray of float64, shape (n_curves,)
        Bin width of each curve, in seconds.
    offset_s : ndarray of float64, shape (n_curves,), or None
        Time of the start of bin 0 of each curve, in seconds, where the format
        records one (the acquisition's delay offset); None otherwise.
    attrs : mapping
        ``source``, ``format``, ``format_version``, ``instrument``, ``created``
        (datetime or None), ``comment``, ``creating_software``,
        ``measurement_mode``, ``n_bins_per_curve``, ``curves`` (one mapping per
        curve: ``channel``, ``sync_rate_hz``, ``count_rate_hz``,
        ``acquisition_time_s``, ``integral_count``, ``time_of_recording``,
        ... and the raw curve ``header``) and the raw file ``header`` or
        ``tags``.  Stored read-only.

    Examples
    --------
    >>> import numpy as np
    >>> h = Histograms(np.array([[0, 5, 2]]), np.array([1e-9]), None)
    >>> h.n_curves, h.n_bins, h.time_s(0).tolist()
    (1, 3, [0.0, 1e-09, 2e-09])
    """

    counts: np.ndarray
    resolution_s: np.ndarray
    offset_s: np.ndarray | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts)
        if counts.ndim != 2:
            raise ValueError(
                f"Histograms.counts must be 2-D (n_curves, n_bins), got shape {counts.shape}"
            )
        if counts.size and counts.dtype.kind not in "iu":
            raise TypeError(f"Histograms.counts must hold integers, got dtype {counts.dtype}")
        counts = counts.astype(np.int64, copy=counts.dtype != np.int64)
        n = counts.shape[0]
        res = np.asarray(self.resolution_s, np.float64).reshape(-1)
        if res.shape != (n,):
            raise ValueError(
                f"Histograms.resolution_s must have one value per curve ({n}), got "
                f"shape {res.shape}"
            )
        if n and not (np.all(np.isfinite(res)) and np.all(res > 0)):
            raise ValueError(f"Histograms.resolution_s must be finite and > 0, got {res}")
        offset = self.offset_s
        if offset is not None:
            offset = np.asarray(offset, np.float64).reshape(-1)
            if offset.shape != (n,):
                raise ValueError(
                    f"Histograms.offset_s must have one value per curve ({n}), got "
                    f"shape {offset.shape}"
                )
            offset = _readonly(offset)
        set_ = object.__setattr__
        set_(self, "counts", _readonly(counts))
        set_(self, "resolution_s", _readonly(res))
        set_(self, "offset_s", offset)
        set_(self, "attrs", MappingProxyType(dict(self.attrs)))

    @property
    def n_curves(self) -> int:
        """Number of curves (rows of ``counts``)."""
        return int(self.counts.shape[0])

    @property
    def n_bins(self) -> int:
        """Number of bins per row of ``counts``."""
        return int(self.counts.shape[1])

    def __len__(self) -> int:
        return self.n_curves

    def __repr__(self) -> str:
        fmt = self.attrs.get("format", "?")
        return f"Histograms({self.n_curves} curves x {self.n_bins} bins, {fmt})"

    def time_s(self, curve: int = 0) -> np.ndarray:
        """Start time of every bin of ``curve``, in seconds (float64, shape (n_bins,)).

        ``offset_s[curve] + k * resolution_s[curve]`` for bin ``k`` (offset 0
        where the format has none).
        """
        if isinstance(curve, bool) or int(curve) != curve:
            raise TypeError(f"curve must be an int, got {curve!r}")
        curve = int(curve)
        if not -self.n_curves <= curve < self.n_curves:
            raise IndexError(f"curve={curve} out of range for {self.n_curves} curves")
        start = 0.0 if self.offset_s is None else float(self.offset_s[curve])
        return start + np.arange(self.n_bins) * float(self.resolution_s[curve])

    def total_counts(self) -> np.ndarray:
        """Sum of the counts of each curve (int64, shape (n_curves,))."""
        return self.counts.sum(axis=1)


def _readonly(values: np.ndarray) -> np.ndarray:
    view = values.view()
    view.flags.writeable = False
    return view


# ------------------------------------------------------------------ helpers --


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("windows-1252", "replace").strip()


def _legacy_file_time(text: str) -> _dt.datetime | None:
    """The FileTime string of a legacy header, as a naive local datetime.

    PicoQuant's Windows software writes ``dd/mm/yy hh:mm:ss`` (checked
    against the curves' UTC time stamps in the real files); LabVIEW writers
    use a four-digit year.  None when it matches neither.
    """
    for fmt in ("%d/%m/%y %H:%M:%S", "%d/%m/%Y %H:%M:%S"):
        try:
            return _dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def _unix_time(seconds: int) -> _dt.datetime | None:
    """A curve's 32-bit ``time_t`` (seconds since 1970, UTC), None when zero."""
    if seconds <= 0:
        return None
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC)


def _ns_float(value: float, where: str, field_: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise QdioError(f"{where}: field {field_!r} = {value!r}, expected a bin width > 0 ns")
    return scaled_decimal(value, -9, float32=True)


def _read_exact(f, offset: int, size: int, path: Path, what: str) -> bytes:
    f.seek(offset)
    raw = f.read(size)
    if len(raw) < size:
        raise QdioError(
            f"{path}: file ends at offset {offset + len(raw)} inside the {what} "
            f"({size} bytes from offset {offset})"
        )
    return raw


def _assemble(curves: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    lengths = [int(c.shape[0]) for c in curves]
    counts = np.zeros((len(curves), max(lengths, default=0)), np.int64)
    for i, c in enumerate(curves):
        counts[i, : c.shape[0]] = c
    return counts, lengths


# ---------------------------------------------------------------------- PHU --


def _tag_at(tags: Mapping[str, Any], name: str, i: int) -> Any:
    value = tags.get(name)
    if isinstance(value, list):
        return value[i] if i < len(value) else None
    return None


def _read_phu(path: Path) -> Histograms:
    from .ptu import _creation_datetime, parse_tags

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        tags, types, data_offset = parse_tags(f, path, magic=PHU_MAGIC)
        n = tags.get("HistoResult_NumberOfCurves")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _MAX_CURVES:
            raise QdioError(
                f"{path}: tag 'HistoResult_NumberOfCurves' = {n!r}, expected an "
                f"integer 0..{_MAX_CURVES}"
            )
        curves, res, offsets, infos = [], [], [], []
        for i in range(n):
            where = f"{path}: curve {i}"
            nbins = _tag_at(tags, "HistResDscr_HistogramBins", i)
            start = _tag_at(tags, "HistResDscr_DataOffset", i)
            width = _tag_at(tags, "HistResDscr_MDescResolution", i)
            if isinstance(nbins, bool) or not isinstance(nbins, int) or not 0 <= nbins <= _MAX_BINS:
                raise QdioError(
                    f"{where}: tag 'HistResDscr_HistogramBins({i})' = {nbins!r}, expected "
                    f"an integer 0..{_MAX_BINS}"
                )
            if isinstance(start, bool) or not isinstance(start, int) or start < data_offset:
                raise QdioError(
                    f"{where}: tag 'HistResDscr_DataOffset({i})' = {start!r}, expected a "
                    f"byte offset >= {data_offset} (end of the tag header)"
                )
            if start + 4 * nbins > size:
                raise QdioError(
                    f"{where}: {nbins} bins at offset {start} (tag "
                    f"'HistResDscr_DataOffset({i})') run past the end of the file "
                    f"({size} bytes): truncated file?"
                )
            if isinstance(width, bool) or not isinstance(width, (int, float)):
                raise QdioError(
                    f"{where}: tag 'HistResDscr_MDescResolution({i})' = {width!r}, expected "
                    f"a bin width in seconds"
                )
            width = float(width)
            if not math.isfinite(width) or width <= 0:
                raise QdioError(
                    f"{where}: tag 'HistResDscr_MDescResolution({i})' = {width!r}, expected "
                    f"a bin width > 0"
                )
            # PicoQuant software writes seconds (as MeasDesc_Resolution); the tag
            # dictionary says [ps].  No TCSPC bin is >= 1 us wide, so a value that
            # large can only be picoseconds.
            res.append(width / 1e12 if width >= 1e-6 else width)
            raw = _read_exact(f, start, 4 * nbins, path, f"curve {i} bins")
            curves.append(np.frombuffer(raw, "<u4"))
            off_ns = _tag_at(tags, "HistResDscr_MDescOffset", i)
            offsets.append(off_ns / 1e9 if isinstance(off_ns, (int, float)) else None)
            infos.append(_phu_curve_info(tags, i))
    counts, lengths = _assemble(curves)
    have_offset = n > 0 and all(o is not None for o in offsets)
    hw = tags.get("HW_Type", _tag_at(tags, "HistResDscr_HWType", 0))
    if isinstance(hw, list):
        hw = hw[0] if hw else None
    mode = tags.get("Measurement_Mode")
    attrs = {
        "source": str(path),
        "format": "PHU",
        "format_version": tags.get("_tag_version"),
        "instrument": hw if isinstance(hw, str) and hw else None,
        "created": _creation_datetime(tags.get("File_CreatingTime")),
        "comment": tags.get("File_Comment"),
        "creating_software": tags.get("CreatorSW_Name"),
        "measurement_mode": {0: "histogram", 8: "continuous"}.get(mode, mode),
        "n_bins_per_curve": tuple(lengths),
        "curves": tuple(infos),
        "tags": tags,
        "tag_types": types,
    }
    return Histograms(counts, np.array(res), np.array(offsets) if have_offset else None, attrs)


def _phu_curve_info(tags: Mapping[str, Any], i: int) -> Mapping[str, Any]:
    def get(name: str) -> Any:
        return _tag_at(tags, "HistResDscr_" + name, i)

    def scaled(name: str, divisor: float) -> float | None:
        v = get(name)
        return v / divisor if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    acq = scaled("MDescAcquisTime", 1e3)
    if acq is None:
        acq = scaled("MDescStopAfter", 1e3)
    header = {
        k.removeprefix("HistResDscr_"): v[i]
        for k, v in tags.items()
        if k.startswith("HistResDscr_") and isinstance(v, list) and i < len(v)
    }
    return MappingProxyType(
        {
            "curve_index": get("CurveIndex"),
            "channel": get("HWInpChanIdx"),
            "sync_rate_hz": scaled("SyncRate", 1),
            "count_rate_hz": scaled("InputRate", 1),
            "sync_divider": get("HWSyncDivider"),
            "acquisition_time_s": acq,
            "integral_count": get("IntegralCount"),
            "time_of_recording": get("TimeOfRecording"),
            "header": MappingProxyType(header),
        }
    )


# ---------------------------------------------------------------------- PHD --

_TXT = struct.Struct("<16s6s18s12s18s2s256s")  # 328 bytes, PHD and THD 6.0
_TXT_OLD = struct.Struct("<16s6s6s18s2s256s")  # 304 bytes, THD 3.0 / 5.0
_PHD_BIN = struct.Struct("<18i16i9f4i20s")  # 208 bytes
_PHD_BIN_NAMES = (
    "Curves BitsPerHistoBin RoutingChannels NumberOfBoards ActiveCurve MeasMode "
    "SubMode RangeNo Offset Tacq StopAt StopOnOvfl Restart DispLinLog DispTimeFrom "
    "DispTimeTo DispCountsFrom DispCountsTo"
).split()
_PHD_BOARD = struct.Struct("<16s8s6if2i24i")  # 156 bytes
_PHD_CURVE = struct.Struct("<iI16s8s11i3fif7iqii2i6i")  # 172 bytes
_PHD_CURVE_NAMES = (
    "CurveIndex TimeOfRecording HardwareIdent HardwareVersion HardwareSerial "
    "SyncDivider CFDZeroCross0 CFDLevel0 CFDZeroCross1 CFDLevel1 Offset "
    "RoutingChannel ExtDevices MeasMode SubMode P1 P2 P3 RangeNo Resolution "
    "Channels Tacq StopAfter StopReason InpRate0 InpRate1 HistCountRate "
    "IntegralCount reserved DataOffset RouterModelCode RouterEnabled "
    "RtChan_InputType RtChan_InputLevel RtChan_InputEdge RtChan_CFDPresent "
    "RtChan_CFDLevel RtChan_CFDZeroCross"
).split()
_PHD_MODE_AT = _TXT.size + 5 * 4  # MeasMode, 348
_TXT_NAMES = "Ident FormatVersion CreatorName CreatorVersion FileTime CRLF Comment".split()


def _legacy_version(head: bytes) -> str:
    return head[16:22].split(b"\0", 1)[0].decode("ascii", "replace").strip()


def _sniff_phd(head: bytes, path: Path) -> bool:
    return (
        head[:12] == b"PicoHarp 300"
        and len(head) >= _PHD_MODE_AT + 4
        and _legacy_version(head) == "2.0"
        and struct.unpack_from("<i", head, _PHD_MODE_AT)[0] == 0
    )


def _txt_header(raw: bytes, layout: struct.Struct, names: list[str]) -> dict[str, str]:
    return {k: _text(v) for k, v in zip(names, layout.unpack(raw), strict=True) if k != "CRLF"}


def _read_phd(path: Path) -> Histograms:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = _read_exact(f, 0, _TXT.size + _PHD_BIN.size, path, "PHD header")
        txt = _txt_header(head[: _TXT.size], _TXT, _TXT_NAMES)
        if txt["FormatVersion"] != "2.0":
            raise QdioError(
                f"{path}: PHD field 'FormatVersion' at offset 16 = "
                f"{txt['FormatVersion']!r}; only format 2.0 is supported"
            )
        vals = _PHD_BIN.unpack_from(head, _TXT.size)
        binhdr = dict(zip(_PHD_BIN_NAMES, vals[:18], strict=True))
        n_curves, n_boards = binhdr["Curves"], binhdr["NumberOfBoards"]
        hdr = f"{path}: PHD binary header at offset {_TXT.size}"
        if binhdr["MeasMode"] != 0:
            raise QdioError(
                f"{hdr}: field 'MeasMode' = {binhdr['MeasMode']}, expected 0 "
                f"(histogram); 2/3 are T2/T3 photon files (qdio.read)"
            )
        if not 0 <= n_curves <= 512:
            raise QdioError(f"{hdr}: field 'Curves' = {n_curves}, expected 0..512")
        if binhdr["BitsPerHistoBin"] != 32:
            raise QdioError(
                f"{hdr}: field 'BitsPerHistoBin' = {binhdr['BitsPerHistoBin']}, expected 32"
            )
        if not 1 <= n_boards <= 16:
            raise QdioError(f"{hdr}: field 'NumberOfBoards' = {n_boards}, expected 1..16")
        pos = _TXT.size + _PHD_BIN.size
        boards = []
        for b in range(n_boards):
            raw = _read_exact(f, pos, _PHD_BOARD.size, path, f"board {b} header")
            bv = _PHD_BOARD.unpack(raw)
            boards.append(
                {
                    "HardwareIdent": _text(bv[0]),
                    "HardwareVersion": _text(bv[1]),
                    "HardwareSerial": bv[2],
                    "SyncDivider": bv[3],
                    "Resolution": bv[8],
                    "RouterModelCode": bv[9],
                    "RouterEnabled": bv[10],
                }
            )
            pos += _PHD_BOARD.size
        curves, res, offsets, infos = [], [], [], []
        headers_end = pos + n_curves * _PHD_CURVE.size
        for i in range(n_curves):
            raw = _read_exact(f, pos, _PHD_CURVE.size, path, f"curve {i} header")
            ch = dict(zip(_PHD_CURVE_NAMES, _PHD_CURVE.unpack(raw), strict=True))
            ch["HardwareIdent"] = _text(ch["HardwareIdent"])
            ch["HardwareVersion"] = _text(ch["HardwareVersion"])
            where = f"{path}: PHD curve {i} header at offset {pos}"
            nbins, start = ch["Channels"], ch["DataOffset"]
            if not 1 <= nbins <= 65536:
                raise QdioError(f"{where}: field 'Channels' = {nbins}, expected 1..65536")
            if start < headers_end:
                raise QdioError(
                    f"{where}: field 'DataOffset' = {start}, expected >= {headers_end} "
                    f"(end of the curve headers)"
                )
            if start + 4 * nbins > size:
                raise QdioError(
                    f"{where}: {nbins} bins at offset {start} (field 'DataOffset') run "
                    f"past the end of the file ({size} bytes): truncated file?"
                )
            res.append(_ns_float(ch["Resolution"], where, "Resolution"))
            offsets.append(ch["Offset"] / 1e9)
            cur = f.tell()
            curves.append(
                np.frombuffer(_read_exact(f, start, 4 * nbins, path, f"curve {i}"), "<u4")
            )
            f.seek(cur)
            infos.append(
                MappingProxyType(
                    {
                        "curve_index": ch["CurveIndex"],
                        "channel": ch["RoutingChannel"],
                        "sync_rate_hz": float(ch["InpRate0"]),
                        "count_rate_hz": float(ch["InpRate1"]),
                        "sync_divider": ch["SyncDivider"],
                        "acquisition_time_s": ch["Tacq"] / 1e3,
                        "integral_count": ch["IntegralCount"],
                        "time_of_recording": _unix_time(ch["TimeOfRecording"]),
                        "header": MappingProxyType(ch),
                    }
                )
            )
            pos += _PHD_CURVE.size
    counts, lengths = _assemble(curves)
    attrs = {
        "source": str(path),
        "format": "PHD",
        "format_version": txt["FormatVersion"],
        "instrument": txt["Ident"],
        "created": _legacy_file_time(txt["FileTime"]),
        "comment": txt["Comment"],
        "creating_software": f"{txt['CreatorName']} {txt['CreatorVersion']}".strip(),
        "measurement_mode": "histogram",
        "acquisition_time_s": binhdr["Tacq"] / 1e3,
        "n_bins_per_curve": tuple(lengths),
        "curves": tuple(infos),
        "header": {**txt, **binhdr, "ScriptName": _text(vals[-1]), "boards": boards},
    }
    return Histograms(counts, np.array(res), np.array(offsets), attrs)


# ---------------------------------------------------------------------- THD --

_THD_BIN = struct.Struct("<19i16i9f4i20s")  # 212 bytes
_THD_BIN_NAMES = (
    "NumberOfChannels NumberOfCurves BitsPerChannel RoutingChannels NumberOfBoards "
    "ActiveCurve MeasurementMode SubMode RangeNo Offset AcquisitionTime StopAt "
    "StopOnOvfl Restart DisplayLinLog DisplayTimeAxisFrom DisplayTimeAxisTo "
    "DisplayCountAxisFrom DisplayCountAxisTo"
).split()
_THD_BOARD_V6 = struct.Struct("<16s8s5if")  # 48 bytes
_THD_BOARD_OLD = struct.Struct("<5if")  # 24 bytes
_THD_CURVE = struct.Struct("<iI8i3f9if2i")  # 100 bytes
_THD_CURVE_NAMES = (
    "CurveIndex TimeOfRecording BoardSerial CFDZeroCross CFDDiscrMin SyncLevel "
    "CurveOffset RoutingChannel SubMode MeasMode P1 P2 P3 RangeNo Offset "
    "AcquisitionTime StopAfter StopReason SyncRate CFDCountRate TDCCountRate "
    "IntegralCount Resolution ExtDevices Reserved"
).split()
# format version -> (text header layout, its field names, board layout)
_THD_LAYOUTS: dict[str, tuple[struct.Struct, list[str], struct.Struct]] = {
    "6.0": (_TXT, _TXT_NAMES, _THD_BOARD_V6),
    "5.0": (_TXT_OLD, "Ident FormatVersion HardwareVersion FileTime CRLF Comment".split(),
            _THD_BOARD_OLD),
    "3.0": (_TXT_OLD, "Ident FormatVersion HardwareVersion FileTime CRLF Comment".split(),
            _THD_BOARD_OLD),
}  # fmt: skip


def _sniff_thd(head: bytes, path: Path) -> bool:
    if head[:12] != b"TimeHarp 200":
        return False
    layout = _THD_LAYOUTS.get(_legacy_version(head))
    if layout is None:
        return False
    at = layout[0].size + 6 * 4  # MeasurementMode
    return len(head) >= at + 4 and struct.unpack_from("<i", head, at)[0] == 0


def _read_thd(path: Path) -> Histograms:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(22)
        version = _legacy_version(head)
        if head[:12] != b"TimeHarp 200" or version not in _THD_LAYOUTS:
            raise QdioError(
                f"{path}: THD field 'FormatVersion' at offset 16 = {version!r}; "
                f"supported: {', '.join(sorted(_THD_LAYOUTS))}"
            )
        txt_layout, txt_names, board_layout = _THD_LAYOUTS[version]
        raw = _read_exact(f, 0, txt_layout.size + _THD_BIN.size, path, "THD header")
        txt = _txt_header(raw[: txt_layout.size], txt_layout, txt_names)
        vals = _THD_BIN.unpack_from(raw, txt_layout.size)
        binhdr = dict(zip(_THD_BIN_NAMES, vals[:19], strict=True))
        hdr = f"{path}: THD binary header at offset {txt_layout.size}"
        nch, n_curves = binhdr["NumberOfChannels"], binhdr["NumberOfCurves"]
        n_boards = binhdr["NumberOfBoards"]
        if binhdr["MeasurementMode"] != 0:
            raise QdioError(
                f"{hdr}: field 'MeasurementMode' = {binhdr['MeasurementMode']}, expected 0 "
                f"(interactive histogram); 2 is a T3R photon file (qdio.read)"
            )
        if not 1 <= nch <= 65536:
            raise QdioError(f"{hdr}: field 'NumberOfChannels' = {nch}, expected 1..65536")
        if not 0 <= n_curves <= 512:
            raise QdioError(f"{hdr}: field 'NumberOfCurves' = {n_curves}, expected 0..512")
        if binhdr["BitsPerChannel"] != 32:
            raise QdioError(
                f"{hdr}: field 'BitsPerChannel' = {binhdr['BitsPerChannel']}, expected 32"
            )
        if not 1 <= n_boards <= 16:
            raise QdioError(f"{hdr}: field 'NumberOfBoards' = {n_boards}, expected 1..16")
        pos = txt_layout.size + _THD_BIN.size
        boards = []
        for b in range(n_boards):
            bv = board_layout.unpack(_read_exact(f, pos, board_layout.size, path, f"board {b}"))
            if len(bv) == 8:
                boards.append({"HardwareIdent": _text(bv[0]), "HardwareVersion": _text(bv[1]),
                               "BoardSerial": bv[2], "Resolution": bv[7]})  # fmt: skip
            else:
                boards.append({"BoardSerial": bv[0], "Resolution": bv[5]})
            pos += board_layout.size
        need = pos + n_curves * (_THD_CURVE.size + 4 * nch)
        if need > size:
            done = (size - pos) // (_THD_CURVE.size + 4 * nch)
            raise QdioError(
                f"{path}: THD header announces {n_curves} curves of {nch} bins "
                f"({need} bytes in all), the file has {size} bytes: curve {done} "
                f"(offset {pos + done * (_THD_CURVE.size + 4 * nch)}) is incomplete; "
                f"truncated file?"
            )
        curves, res, offsets, infos = [], [], [], []
        for i in range(n_curves):
            ch = dict(
                zip(
                    _THD_CURVE_NAMES,
                    _THD_CURVE.unpack(_read_exact(f, pos, _THD_CURVE.size, path, f"curve {i}")),
                    strict=True,
                )
            )
            where = f"{path}: THD curve {i} header at offset {pos}"
            res.append(_ns_float(ch["Resolution"], where, "Resolution"))
            offsets.append(ch["Offset"] / 1e9)
            pos += _THD_CURVE.size
            curves.append(np.frombuffer(_read_exact(f, pos, 4 * nch, path, f"curve {i}"), "<u4"))
            pos += 4 * nch
            infos.append(
                MappingProxyType(
                    {
                        "curve_index": ch["CurveIndex"],
                        "channel": ch["RoutingChannel"],
                        "sync_rate_hz": float(ch["SyncRate"]),
                        "count_rate_hz": float(ch["CFDCountRate"]),
                        "acquisition_time_s": ch["AcquisitionTime"] / 1e3,
                        "integral_count": ch["IntegralCount"],
                        "time_of_recording": _unix_time(ch["TimeOfRecording"]),
                        "header": MappingProxyType(ch),
                    }
                )
            )
    counts, lengths = _assemble(curves)
    software = f"{txt.get('CreatorName', '')} {txt.get('CreatorVersion', '')}".strip()
    attrs = {
        "source": str(path),
        "format": "THD",
        "format_version": version,
        "instrument": txt["Ident"],
        "created": _legacy_file_time(txt["FileTime"]),
        "comment": txt["Comment"],
        "creating_software": software or None,
        "measurement_mode": "histogram",
        "acquisition_time_s": binhdr["AcquisitionTime"] / 1e3,
        "n_bins_per_curve": tuple(lengths),
        "curves": tuple(infos),
        "header": {**txt, **binhdr, "ScriptName": _text(vals[-1]), "boards": boards},
    }
    return Histograms(counts, np.array(res), np.array(offsets), attrs)


# ----------------------------------------------------------------- dispatch --

_READERS: dict[str, Callable[[Path], Histograms]] = {
    "PHU": _read_phu,
    "PHD": _read_phd,
    "THD": _read_thd,
}

FORMATS = [
    FileFormat("PHU", lambda head, path: head[:8] == PHU_MAGIC, histograms=True),
    FileFormat("PHD", _sniff_phd, histograms=True),
    FileFormat("THD", _sniff_thd, histograms=True),
]


def read_histograms(path: str | os.PathLike) -> Histograms:
    """Read every TCSPC histogram of a PHU, PHD or THD file.

    The format is recognised from the file's content, not its name.

    Parameters
    ----------
    path : path-like
        PicoQuant PHU (any instrument), PicoHarp 300 PHD (format 2.0) or
        TimeHarp 200 THD (formats 3.0, 5.0, 6.0).

    Returns
    -------
    Histograms
        Counts (int64, one row per curve), bin widths and offsets in seconds,
        header fields in ``attrs``.

    Raises
    ------
    QdioError
        The file is a photon (TTTR) file, of unknown format, or damaged: a
        truncated curve or an implausible header field, named with its byte
        offset.

    Examples
    --------
    >>> h = read_histograms("decay.phu")   # doctest: +SKIP
    >>> t, c = h.time_s(0), h.counts[0]    # doctest: +SKIP
    """
    path, fmt = detect(path)
    if not fmt.histograms:
        raise QdioError(
            f"{path}: a {fmt.name} file holds photon records, not histograms; use qdio.read()"
        )
    return _READERS[fmt.name](path)
