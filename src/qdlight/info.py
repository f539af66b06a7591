"""``qdlight info``: what a TTTR file holds, read in bounded chunks.

:func:`describe` walks the file once with :func:`qdio.iter_chunks` (memory
bounded by the chunk size, so multi-GB files are fine) and returns a plain
dict; :func:`format_summary` and :func:`jsonable` render it.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import qdio
from qdio.units import format_quantity

__all__ = ["describe", "format_summary", "jsonable", "scan_record_type"]


def describe(path: str | os.PathLike, *, progress: bool = False, max_records: int | None = None):
    """Summarise a TTTR file: header facts, photons and markers per channel, duration.

    Returns
    -------
    dict
        Keys: file, size_bytes, format, instrument, record_type,
        measurement_mode, created, creating_software, sync_rate_hz,
        macrotime_resolution_s, microtime_resolution_s, n_microtime_bins,
        acquisition_time_s, duration_s, first_macrotime, last_macrotime,
        n_records, header_records, n_photons, photons_per_channel,
        rate_per_channel_hz, n_markers, markers_per_bit, sync_events,
        n_overflow_records, n_invalid_records, tags.
    """
    path = Path(path)
    kwargs = {} if max_records is None else {"max_records": max_records}
    photons: Counter[int] = Counter()
    marker_bits: Counter[int] = Counter()
    n_markers = n_sync = 0
    first = last = None
    attrs: dict[str, Any] = {}
    stream = None
    bar = None
    try:
        for chunk in qdio.iter_chunks(path, with_markers=True, **kwargs):
            stream, markers = chunk.stream, chunk.markers
            attrs = dict(stream.attrs)
            if progress and bar is None and attrs.get("n_records"):
                from tqdm import tqdm

                bar = tqdm(total=attrs["n_records"], unit="rec", unit_scale=True, leave=False)
            if bar is not None:
                bar.n = attrs.get("chunk_first_record", 0)
                bar.refresh()
            photons.update(stream.counts_per_channel())
            if len(stream):
                first = int(stream.macrotime[0]) if first is None else first
                last = int(stream.macrotime[-1])
            n_markers += len(markers)
            n_sync += int(np.count_nonzero(markers.bits == 0))
            for bit, count in markers.counts_per_bit().items():
                marker_bits[bit] += count
    finally:
        if bar is not None:
            bar.close()
    if stream is None:  # no chunk at all: an empty record block
        result = qdio.read(path, with_markers=True)
        stream = result.stream
        attrs = dict(stream.attrs)
    res = stream.macrotime_resolution_s
    duration = (last - first) * res if first is not None else 0.0
    n_photons = sum(photons.values())
    return {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "format": attrs.get("format"),
        "instrument": attrs.get("instrument"),
        "record_type": attrs.get("record_type"),
        "measurement_mode": attrs.get("measurement_mode", "T3" if stream.is_t3 else "T2"),
        "created": attrs.get("created"),
        "creating_software": attrs.get("creating_software"),
        "sync_rate_hz": attrs.get("sync_rate_hz") or stream.sync_rate_hz,
        "macrotime_resolution_s": res,
        "microtime_resolution_s": stream.microtime_resolution_s,
        "n_microtime_bins": stream.n_microtime_bins,
        # legacy headers hold the set time and, separately, when it actually stopped
        "acquisition_time_s": attrs.get("stop_after_s") or attrs.get("acquisition_time_s"),
        "duration_s": duration,
        "first_macrotime": first,
        "last_macrotime": last,
        "n_records": attrs.get("n_records"),
        "header_records": attrs.get("header_records"),
        "n_photons": n_photons,
        "photons_per_channel": dict(sorted(photons.items())),
        "rate_per_channel_hz": {
            c: (n / duration if duration > 0 else math.nan) for c, n in sorted(photons.items())
        },
        "n_markers": n_markers - n_sync,
        "markers_per_bit": dict(sorted(marker_bits.items())),
        "sync_events": n_sync,
        "n_overflow_records": attrs.get("n_overflow_records"),
        "n_invalid_records": attrs.get("n_invalid_records"),
        "tags": attrs.get("tags") or attrs.get("header") or {},
    }


def scan_record_type(path: str | os.PathLike) -> str:
    """The PTU record type to convert a file to: PicoHarp when its data fit, else HydraHarp v2.

    One pass over the file in chunks (bounded memory) finds the largest
    channel and microtime.
    """
    max_channel = max_micro = -1
    t3 = True
    for chunk in qdio.iter_chunks(path):
        t3 = chunk.is_t3
        if len(chunk):
            max_channel = max(max_channel, int(chunk.channel.max()))
            if t3:
                max_micro = max(max_micro, int(chunk.microtime.max()))
    if t3:
        return "picoharp_t3" if max_channel <= 3 and max_micro < 4096 else "hydraharp_v2_t3"
    return "picoharp_t2" if max_channel <= 4 else "hydraharp_v2_t2"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def jsonable(summary: dict[str, Any], *, tags: bool = True) -> dict[str, Any]:
    """The summary with only JSON types (datetimes as ISO strings, NaN as null)."""
    out = {k: v for k, v in summary.items() if tags or k != "tags"}
    return _plain(out)


def format_summary(summary: dict[str, Any], *, tags: bool = False) -> str:
    """Human-readable multi-line description."""

    def q(value, unit):
        return "?" if value is None else format_quantity(float(value), unit)

    lines = [
        f"file            {summary['file']} ({summary['size_bytes']:,} bytes)",
        f"format          {summary['format']}  {summary['record_type'] or ''}".rstrip(),
        f"instrument      {summary['instrument']}",
        f"created         {summary['created'] or '?'} by {summary['creating_software'] or '?'}",
        f"mode            {summary['measurement_mode']}",
    ]
    if summary["measurement_mode"] == "T3":
        lines += [
            f"sync rate       {q(summary['sync_rate_hz'], 'Hz')} "
            f"(period {q(summary['macrotime_resolution_s'], 's')})",
            f"microtime       {q(summary['microtime_resolution_s'], 's')} bins, "
            f"{summary['n_microtime_bins']} bins",
        ]
    else:
        lines.append(f"time tag        {q(summary['macrotime_resolution_s'], 's')}")
    acq = summary["acquisition_time_s"]
    lines.append(
        f"duration        {q(summary['duration_s'], 's')} first to last photon"
        + (f" (header: {q(acq, 's')})" if acq else "")
    )
    header = summary["header_records"]
    claimed = ""
    if isinstance(header, int) and header != summary["n_records"]:
        claimed = f" (header says {header:,})"
    lines.append(
        f"records         {summary['n_records']:,}{claimed}; overflow "
        f"{summary['n_overflow_records']}, invalid {summary['n_invalid_records']}"
    )
    lines.append(f"photons         {summary['n_photons']:,}")
    for c, n in summary["photons_per_channel"].items():
        rate = summary["rate_per_channel_hz"][c]
        shown = f"{rate:,.1f} /s" if math.isfinite(rate) else "-"
        lines.append(f"  channel {c:<3d}   {n:>12,}  {shown}")
    lines.append(f"markers         {summary['n_markers']:,}")
    for bit, n in summary["markers_per_bit"].items():
        lines.append(f"  marker bit {bit}  {n:>10,}")
    if summary["sync_events"]:
        lines.append(f"sync events     {summary['sync_events']:,}")
    if tags:
        lines.append("header tags")
        for name, value in summary["tags"].items():
            shown = value if not isinstance(value, bytes) else f"<{len(value)} bytes>"
            lines.append(f"  {name:<36s} {shown}")
    return "\n".join(lines)
