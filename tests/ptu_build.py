"""Build PTU files by hand (header tags + raw 32-bit records) for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qdio.ptu import PTU_MAGIC, TagType, _tag_bytes

T = TagType


def pt3(channel: int, dtime: int, nsync: int) -> int:
    """PicoHarp T3 record; channel is the raw 4-bit field (1..4 photon, 15 special)."""
    return (channel << 28) | (dtime << 16) | nsync


def ht3(special: int, channel: int, dtime: int, nsync: int) -> int:
    """HydraHarp T3 record."""
    return (special << 31) | (channel << 25) | (dtime << 10) | nsync


def ht2(special: int, channel: int, timetag: int) -> int:
    return (special << 31) | (channel << 25) | timetag


def pt2(channel: int, timetag: int) -> int:
    return (channel << 28) | timetag


def build_ptu(
    path: Path,
    records,
    *,
    rec_type: int = 0x00010303,
    n_records: int | None = None,
    glob_res: float = 400e-9,
    resolution: float = 128e-12,
    extra_tags=(),
    trailing: bytes = b"",
) -> Path:
    recs = np.asarray(records, "<u4")
    tags = [
        ("File_CreatingTime", 45000.5, T.TDateTime),
        ("CreatorSW_Name", "hand", T.AnsiString),
        ("MeasDesc_GlobalResolution", glob_res, T.Float8),
        ("MeasDesc_Resolution", resolution, T.Float8),
        ("TTResult_SyncRate", round(1 / glob_res), T.Int8),
        ("TTResult_NumberOfRecords", len(recs) if n_records is None else n_records, T.Int8),
        ("TTResultFormat_TTTRRecType", rec_type, T.Int8),
        ("TTResultFormat_BitsPerRecord", 32, T.Int8),
        *extra_tags,
        ("Header_End", None, T.Empty8),
    ]
    head = PTU_MAGIC + b"1.0.00\0\0" + b"".join(_tag_bytes(*t) for t in tags)
    path.write_bytes(head + recs.tobytes() + trailing)
    return path
