"""Becker & Hickl SPC FIFO files: the ``.spc`` photon records and the ``.set`` beside them.

A FIFO measurement of a B&H SPC card writes two files with the same stem:

* ``.spc``: 32-bit little-endian records.  The first record is a header
  written by the software: bits 0-23 the macrotime clock period in units of
  0.1 ns, bit 31 set, bits 27-30 the number of routing bits, bit 26 "raw
  data" (diagnostic mode), bit 25 "markers recorded".  Every later record is
  ``INVALID:1 MTOV:1 GAP:1 MARK:1 ADC:12 ROUT:4 MT:12`` (MSB first), decoded
  by the ``bh_spc`` layout of :mod:`qdio._decode`: microtime = 4095 - ADC
  (the cards time stop-start), MTOV adds one 4096-tick macrotime wrap before
  the record, ``INVALID + MTOV`` without MARK carries a count of wraps in bits
  0-27, MARK (with INVALID) is a marker whose ROUT bits are the marker mask,
  GAP flags data lost (FIFO overflow) before the record.
* ``.set``: a 42-byte binary header (``revision``: software revision in bits
  0-3, module type in bits 4-11), then ASCII ``*IDENTIFICATION ... *END``
  and ``*SETUP ... *END`` sections; the setup lines ``#SP [SP_TAC_R,F,5e-08]``
  give the TAC range, gain and ADC resolution.

Sources: B&H ``SPC_data_file_structure.h`` (SPCM 9.66+, as shipped in
jkriege2/QuickFit3), the bh TCSPC Handbook "FIFO files" chapter via
libtcspc ``bh_spc.hpp`` (marker + MTOV semantics), phconvert ``bhreader``
(``_sethead_dtype``, module codes), tttrlib ``ProcessSPC130``.

The ``.spc`` has no magic number: it is recognised by its header record
*and* a ``.set`` with the same stem beside it.  Without the ``.set`` the
microtime resolution and the card type are unknown, and qdio does not read
the file.  Only the 32-bit format of the SPC-130/134/140/150/160/180/830
family is read; SPC-600/630 (48/32-bit), DPC-230 and SPC-QC files raise a
:class:`~qdio.QdioError` naming the card.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import QdioError, QdioWarning
from ._formats import FileFormat
from ._records import RecordSource, count_records

__all__ = ["FORMATS", "SPC_MODULES", "bh_spc_source", "parse_set_file"]

#: .set ``revision`` bits 4-11 -> card (phconvert ``_spc_codes``, SPC_data_file_structure.h)
SPC_MODULES: dict[int, str] = {
    0x20: "SPC-130", 0x21: "SPC-600", 0x22: "SPC-630", 0x23: "SPC-700",
    0x24: "SPC-730", 0x25: "SPC-830", 0x26: "SPC-140", 0x27: "SPC-930",
    0x28: "SPC-150", 0x29: "DPC-230", 0x2A: "SPC-130EM", 0x2B: "SPC-160",
    0x2E: "SPC-150N", 0x80: "SPC-150NX", 0x81: "SPC-160X", 0x82: "SPC-160PCIE",
    0x83: "SPC-130EMN", 0x84: "SPC-180N", 0x85: "SPC-180NX", 0x86: "SPC-180NXX",
    0x87: "SPC-180N-USB", 0x88: "SPC-130IN", 0x89: "SPC-130INX", 0x8A: "SPC-130INXX",
    0x8B: "SPC-QC-104", 0x8C: "SPC-QC-004", 0x8D: "SPC-QC-106", 0x8E: "SPC-QC-006",
}  # fmt: skip

# cards whose FIFO files use the 32-bit record read here
_SPC_32BIT = {0x20, 0x25, 0x26, 0x28, 0x2A, 0x2B, 0x2E, *range(0x80, 0x8B)}
_UNSUPPORTED_WHY = {
    0x21: "SPC-600/630 FIFO files use 48-bit (or 8-bit-ADC 32-bit) records",
    0x22: "SPC-600/630 FIFO files use 48-bit (or 8-bit-ADC 32-bit) records",
    0x23: "this card has no FIFO mode",
    0x24: "this card has no FIFO mode",
    0x27: "this card has no FIFO mode",
    0x29: "DPC-230 files use a different (absolute-time) record format",
    **dict.fromkeys(range(0x8B, 0x8F), "SPC-QC cards use a different record format"),
}

_SET_HEADER = struct.Struct("<hihihihIihhHIHH")  # 42 bytes, bhfile_header
_SET_HEADER_NAMES = (
    "revision info_offs info_length setup_offs setup_length data_block_offs "
    "no_of_data_blocks data_block_length meas_desc_block_offs no_of_meas_desc_blocks "
    "meas_desc_block_length header_valid reserved1 reserved2 chksum"
).split()
_SETUP_LINE = re.compile(rb"#(\w+)\s*\[\s*(\w+)\s*,\s*(\w)\s*,([^\]\r\n]*)\]")
_SET_MAX_BYTES = 1 << 20  # .set files are ~10 KiB; never read more of one
_SET_SUFFIXES = (".set", ".SET", ".Set")
_SPC_SUFFIXES = (".spc", ".SPC", ".Spc")

_HDR_INVALID = 1 << 31
_HDR_RAW = 1 << 26
_HDR_MARKERS = 1 << 25
_GAP = 1 << 29
_SNIFF_SET_BYTES = 4096


# ----------------------------------------------------------------- .set file --


def _companion(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    """The file beside ``path`` with the same stem and one of ``suffixes``, if any."""
    for suffix in suffixes:
        other = path.with_suffix(suffix)
        if other != path and other.is_file():
            return other
    return None


def _module_code(revision: int) -> int | None:
    """Module type from the .set ``revision`` word, None for software before rev. 12."""
    rev = revision & 0xFFFF
    soft = rev & 0xF
    if soft >= 14:
        return (rev >> 4) & 0xFFF
    if soft >= 12:
        return (rev >> 4) & 0xFF
    return None


def _setup_value(kind: bytes, raw: bytes) -> Any:
    text = raw.strip().decode("windows-1252", "replace")
    try:
        if kind in b"IULH":
            return int(text)
        if kind == b"F":
            return float(text)
        if kind == b"B":
            return int(text) != 0
    except ValueError:
        return text
    return text


def _section(data: bytes, start_tag: bytes) -> bytes | None:
    i = data.find(start_tag)
    if i < 0:
        return None
    j = data.find(b"*END", i + len(start_tag))
    return data[i + len(start_tag) : j if j >= 0 else len(data)]


def parse_set_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a Becker & Hickl ``.set`` file.

    Returns
    -------
    dict
        ``header`` (the 42-byte bhfile_header fields), ``module_code`` (int or
        None), ``module`` (card name or None), ``identification`` (key ->
        text of the ``*IDENTIFICATION`` section) and ``setup`` (parameter ->
        int / float / bool / str from the ASCII ``*SETUP`` section, e.g.
        ``SP_TAC_R`` in seconds).

    Raises
    ------
    QdioError
        The file is shorter than its header or has no ``*IDENTIFICATION``
        section.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read(_SET_MAX_BYTES)
    if len(data) < _SET_HEADER.size:
        raise QdioError(
            f"{path}: .set file is {len(data)} bytes, shorter than its "
            f"{_SET_HEADER.size}-byte header"
        )
    header = dict(zip(_SET_HEADER_NAMES, _SET_HEADER.unpack_from(data), strict=True))
    ident_raw = _section(data, b"*IDENTIFICATION")
    if ident_raw is None:
        raise QdioError(
            f"{path}: no '*IDENTIFICATION' section in the first {len(data)} bytes: "
            f"not a Becker & Hickl .set file"
        )
    ident: dict[str, str] = {}
    key = None
    for line in ident_raw.decode("windows-1252", "replace").splitlines():
        text = line.replace("\x04", "").strip()
        if not text:
            continue
        if ":" in text:
            key, value = (s.strip() for s in text.split(":", 1))
            ident[key] = value
        elif key is not None:
            ident[key] = f"{ident[key]}\n{text}".strip()
    setup: dict[str, Any] = {}
    setup_raw = _section(data, b"*SETUP")
    if setup_raw is not None:
        ascii_part = setup_raw.split(b"BIN_PARA_BEGIN", 1)[0]
        for m in _SETUP_LINE.finditer(ascii_part):
            setup.setdefault(m.group(2).decode("ascii"), _setup_value(m.group(3), m.group(4)))
    code = _module_code(header["revision"])
    module = SPC_MODULES.get(code) if code is not None else None
    if module is None:  # older software: the module is named in the Contents text
        m = re.search(r"module\s+((?:SPC|DPC)-[\w-]+)", ident.get("Contents", ""))
        if m:
            module = m.group(1)
            code = next((c for c, n in SPC_MODULES.items() if n == module), code)
    return {
        "header": header,
        "module_code": code,
        "module": module,
        "identification": ident,
        "setup": setup,
    }


def _is_set_head(head: bytes) -> bool:
    return b"*IDENTIFICATION" in head and b"Setup Script File" in head


# ----------------------------------------------------------------- sniffing --


def _spc_header_ok(head: bytes) -> bool:
    if len(head) < 4:
        return False
    word = struct.unpack_from("<I", head)[0]
    return bool(word & _HDR_INVALID) and (word & 0xFFFFFF) > 0


def _sniff(head: bytes, path: Path) -> bool:
    """A .set file (claimed with its .spc) or a .spc whose header record looks right."""
    if len(head) >= _SET_HEADER.size and _is_set_head(head):
        return True
    companion = _companion(path, _SET_SUFFIXES)
    if companion is None:
        return False
    try:
        with open(companion, "rb") as f:
            set_head = f.read(_SNIFF_SET_BYTES)
    except OSError:
        return False
    if b"*IDENTIFICATION" not in set_head:
        return False
    if _spc_header_ok(head):
        return True
    # not a 32-bit SPC header, but the .set names a card we know: claim the file
    # so that reading it says which card it is and why it cannot be read
    if len(set_head) >= 2:
        code = _module_code(struct.unpack_from("<h", set_head)[0])
        return code in _UNSUPPORTED_WHY
    return False


# ------------------------------------------------------------------- reader --


def _count_gaps(path: Path, data_offset: int, n_records: int) -> tuple[int, int]:
    """Records with the GAP flag (data lost before them), and the index of the first."""
    n_gap, first = 0, -1
    block = 1 << 20
    with open(path, "rb") as f:
        f.seek(data_offset)
        done = 0
        while done < n_records:
            want = min(block, n_records - done)
            recs = np.frombuffer(f.read(4 * want), "<u4")
            hits = np.flatnonzero(recs & _GAP)
            if hits.size and first < 0:
                first = done + int(hits[0])
            n_gap += int(hits.size)
            done += recs.shape[0]
            if recs.shape[0] < want:
                break
    return n_gap, first


def _set_date(ident: dict[str, str]) -> _dt.datetime | None:
    text = f"{ident.get('Date', '')} {ident.get('Time', '')}".strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%m-%d-%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S"):
        try:
            return _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def bh_spc_source(path: Path) -> RecordSource:
    """Parse a ``.spc`` (or its ``.set``) into a :class:`~qdio._records.RecordSource`.

    Raises
    ------
    QdioError
        The companion file is missing, the .set names a card whose FIFO
        format is not the 32-bit one, the .set lacks the TAC parameters, or
        the .spc header record is not an SPC header.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_SNIFF_SET_BYTES)
    if _is_set_head(head):
        set_path = path
        spc = _companion(path, _SPC_SUFFIXES)
        if spc is None:
            raise QdioError(
                f"{path}: a Becker & Hickl .set file; its photon data file "
                f"{path.with_suffix('.spc').name} (same name, .spc) is not beside it"
            )
        spc_path = spc
    else:
        spc_path = path
        found = _companion(path, _SET_SUFFIXES)
        if found is None:
            raise QdioError(
                f"{path}: a Becker & Hickl .spc needs its .set file "
                f"({path.with_suffix('.set').name}) beside it"
            )
        set_path = found
    meta = parse_set_file(set_path)
    module, code = meta["module"], meta["module_code"]
    if code in _UNSUPPORTED_WHY:
        raise QdioError(
            f"{set_path}: .set field 'revision' = 0x{meta['header']['revision'] & 0xFFFF:04X} "
            f"names a {module} card: {_UNSUPPORTED_WHY[code]}; qdio reads only the "
            f"32-bit FIFO format of SPC-130/140/150/160/180/830 cards"
        )
    if code not in _SPC_32BIT and module is None:
        warnings.warn(
            f"{set_path}: the .set names no known SPC card (revision "
            f"0x{meta['header']['revision'] & 0xFFFF:04X}); reading {spc_path.name} as "
            f"the common 32-bit SPC-130/150 FIFO format",
            QdioWarning,
            stacklevel=4,
        )
    with open(spc_path, "rb") as f:
        first = f.read(4)
    if len(first) < 4:
        raise QdioError(
            f"{spc_path}: file is {len(first)} bytes, shorter than the 4-byte SPC header record"
        )
    word = struct.unpack("<I", first)[0]
    clock = word & 0xFFFFFF
    if not word & _HDR_INVALID or clock == 0:
        raise QdioError(
            f"{spc_path}: header record at offset 0 = 0x{word:08X}, expected bit 31 set "
            f"and a macrotime clock (bits 0-23, units of 0.1 ns) > 0"
        )
    if word & _HDR_RAW:
        raise QdioError(
            f"{spc_path}: header record at offset 0 = 0x{word:08X} has the 'raw data' "
            f"flag (bit 26): a diagnostic-mode FIFO dump, whose records are not "
            f"decodable as photons"
        )
    setup = meta["setup"]
    tac_range = setup.get("SP_TAC_R")
    tac_gain = setup.get("SP_TAC_G", 1)
    if not isinstance(tac_range, (int, float)) or isinstance(tac_range, bool) or tac_range <= 0:
        raise QdioError(
            f"{set_path}: setup parameter 'SP_TAC_R' = {tac_range!r}, expected the TAC "
            f"range in seconds (> 0) to give the microtime resolution"
        )
    if not isinstance(tac_gain, (int, float)) or isinstance(tac_gain, bool) or tac_gain <= 0:
        raise QdioError(
            f"{set_path}: setup parameter 'SP_TAC_G' = {tac_gain!r}, expected a TAC gain > 0"
        )
    if tac_range > 1e-3:  # older SPCM versions wrote the TAC range in ns (phconvert)
        tac_range /= 1e9
    # the FIFO record always holds a 12-bit ADC value: 4096 bins span range / gain
    micro = float(tac_range) / float(tac_gain) / 4096
    data_offset = 4
    n_records = count_records(spc_path, data_offset, None, what="SPC")
    n_gap, first_gap = _count_gaps(spc_path, data_offset, n_records)
    if n_gap:
        warnings.warn(
            f"{spc_path}: {n_gap} record(s) carry the GAP flag (FIFO overflow: photons "
            f"were lost before them), the first at offset {data_offset + 4 * first_gap}",
            QdioWarning,
            stacklevel=4,
        )
    ident = meta["identification"]
    attrs = {
        "instrument": f"Becker & Hickl {module}" if module else "Becker & Hickl SPC",
        "record_type": "Becker & Hickl SPC-130/150 FIFO (32-bit)",
        "measurement_mode": "T3",
        "created": _set_date(ident),
        "creating_software": "Becker & Hickl SPCM",
        "title": ident.get("Title"),
        "set_file": str(set_path),
        "macrotime_clock_s": clock / 1e10,
        "routing_bits": (word >> 27) & 0xF,
        "markers_enabled": bool(word & _HDR_MARKERS),
        "tac_range_s": float(tac_range),
        "tac_gain": tac_gain,
        "adc_resolution": setup.get("SP_ADC_RE"),
        "n_gap_records": n_gap,
        "header_record": word,
        "set": meta,
    }
    return RecordSource(
        path=spc_path,
        format="SPC",
        layout="bh_spc",
        version=1,
        data_offset=data_offset,
        n_records=n_records,
        macrotime_resolution_s=clock / 1e10,
        microtime_resolution_s=micro,
        n_microtime_bins=4096,
        attrs=attrs,
    )


FORMATS = [FileFormat("SPC", _sniff, source=bh_spc_source)]
