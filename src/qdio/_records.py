"""Reading the record block of any 32-bit TTTR file, whole or in chunks.

A format module parses its header into a :class:`RecordSource` (where the
records start, how many there are, their layout and resolutions); this
module does the rest for every format alike: it reads the file in bounded
blocks, decodes them with the numba kernels of :mod:`qdio._decode`, sizes the
output exactly (a counting pass first, so peak memory is the returned arrays
plus one block), drops a truncated last record with a warning, and resolves
records that are out of time order.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._decode import LAYOUTS, decode_block, new_state
from ._errors import QdioError, QdioWarning
from .stream import Markers, PhotonStream

__all__ = ["ReadResult", "RecordSource", "iter_source", "read_source"]

RECORD_BYTES = 4
BLOCK_RECORDS = 1 << 18  # 1 MiB of records per read


class ReadResult(NamedTuple):
    """A stream with the markers recorded beside it."""

    stream: PhotonStream
    markers: Markers


@dataclass(frozen=True)
class RecordSource:
    """Where and how the records of a file are stored (filled in by a header parser).

    ``header_records`` is what the header claims (None if it says nothing);
    ``n_records`` is what the reader will decode, derived from the file size.
    """

    path: Path
    format: str
    layout: str
    version: int
    data_offset: int
    n_records: int
    macrotime_resolution_s: float
    microtime_resolution_s: float | None
    n_microtime_bins: int | None
    attrs: dict[str, Any] = field(default_factory=dict)


def count_records(path: Path, data_offset: int, header_records: int | None, *, what: str) -> int:
    """Records actually present after ``data_offset``, warning where the header disagrees.

    The header's count is trusted only when it is positive and no larger
    than the file: it can be 0 (acquisition still running or aborted) or
    claim more records than were written (truncated copies).  Whole records
    beyond a trusted count are ignored with a warning; a partial trailing
    record after the last complete one is dropped with a warning.
    """
    size = os.path.getsize(path)
    if size < data_offset:
        raise QdioError(
            f"{path}: file is {size} bytes, shorter than its {what} header "
            f"({data_offset} bytes): no records"
        )
    available, extra = divmod(size - data_offset, RECORD_BYTES)
    if header_records is not None and 0 < header_records <= available:
        if header_records < available:
            warnings.warn(
                f"{path}: header says {header_records} records, the file holds "
                f"{available}: reading {header_records}, ignoring the rest from offset "
                f"{data_offset + header_records * RECORD_BYTES}",
                QdioWarning,
                stacklevel=4,
            )
        return header_records
    if extra:
        warnings.warn(
            f"{path}: {extra} trailing byte(s) after the last complete record at "
            f"offset {data_offset + available * RECORD_BYTES}: truncated record dropped",
            QdioWarning,
            stacklevel=4,
        )
    if header_records is not None and header_records > available:
        warnings.warn(
            f"{path}: header says {header_records} records, the file holds "
            f"{available}: reading {available}",
            QdioWarning,
            stacklevel=4,
        )
    return available


def _blocks(src: RecordSource, first: int, stop: int) -> Iterator[np.ndarray]:
    """Records ``first:stop`` of the file, as uint32 blocks of at most BLOCK_RECORDS."""
    buf = np.empty(min(BLOCK_RECORDS, max(stop - first, 1)), "<u4")
    with open(src.path, "rb") as f:
        f.seek(src.data_offset + first * RECORD_BYTES)
        pos = first
        while pos < stop:
            n = min(buf.shape[0], stop - pos)
            got = f.readinto(memoryview(buf[:n]).cast("B")) // RECORD_BYTES
            if got < n:
                raise QdioError(
                    f"{src.path}: file ended at record {pos + got} "
                    f"(offset {src.data_offset + (pos + got) * RECORD_BYTES}) while "
                    f"reading; it shrank while open?"
                )
            yield buf[:n]
            pos += n


def _decode_range(
    src: RecordSource, first: int, stop: int, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Markers]:
    """Records ``first:stop`` decoded in one pass.

    The photon columns are allocated for every record and shrunk in place at
    the end: pages past the last photon are never touched, so they never
    become resident, and the shrink (realloc) does not copy.
    """
    layout = LAYOUTS[src.layout]
    size = stop - first
    ch = np.empty(size, np.uint8)
    mac = np.empty(size, np.int64)
    mic = np.empty(size if layout.t3 else 0, np.int32)
    mk_t_scratch = np.empty(min(BLOCK_RECORDS, size), np.int64)
    mk_b_scratch = np.empty(min(BLOCK_RECORDS, size), np.uint8)
    mk_t: list[np.ndarray] = []
    mk_b: list[np.ndarray] = []
    i = 0
    for block in _blocks(src, first, stop):
        p, m = decode_block(
            layout, block, src.version, state,
            ch[i:], mac[i:], mic[i:] if layout.t3 else mic, mk_t_scratch, mk_b_scratch,
        )  # fmt: skip
        i += p
        if m:
            mk_t.append(mk_t_scratch[:m].copy())
            mk_b.append(mk_b_scratch[:m].copy())
    for column in (ch, mac, mic) if layout.t3 else (ch, mac):
        column.resize(i, refcheck=False)
    markers = Markers(np.concatenate(mk_t), np.concatenate(mk_b)) if mk_t else Markers.empty()
    return ch, mac, (mic if layout.t3 else None), markers


def _to_stream(src: RecordSource, ch, mac, mic, attrs, *, ordered: bool) -> PhotonStream:
    """The decoded columns as a stream; records out of time order are sorted, with a warning."""
    layout = LAYOUTS[src.layout]
    args = (src.macrotime_resolution_s, src.microtime_resolution_s, src.n_microtime_bins, attrs)
    if not ordered:
        order = np.argsort(mac, kind="stable")
        # records earlier than one before them (one corrupt record counts once)
        n_bad = int(np.count_nonzero(mac[1:] < np.maximum.accumulate(mac)[:-1]))
        warnings.warn(
            f"{src.path}: {n_bad} photon records are earlier than a record before them "
            f"(corrupt records?); the records were sorted by macrotime",
            QdioWarning,
            stacklevel=4,
        )
        ch, mac = ch[order], mac[order]
        mic = None if mic is None else mic[order]
    # the decoder checked time order, and the field widths bound the microtime
    fits = not layout.t3 or (src.n_microtime_bins or 0) >= (1 << layout.microtime_bits)
    try:
        if fits:
            return PhotonStream._trusted(ch, mac, mic, *args)
        return PhotonStream(ch, mac, mic, *args)
    except ValueError as exc:
        raise QdioError(f"{src.path}: decoded records are not a valid stream: {exc}") from exc


def _base_attrs(src: RecordSource) -> dict[str, Any]:
    return dict(
        src.attrs,
        source=str(src.path),
        format=src.format,
        record_layout=src.layout,
        n_records=src.n_records,
    )


def _warn_invalid(src: RecordSource, state: np.ndarray) -> None:
    if state[2] and LAYOUTS[src.layout].warn_invalid:
        warnings.warn(
            f"{src.path}: {int(state[2])} invalid {src.layout} records skipped",
            QdioWarning,
            stacklevel=4,
        )


def read_source(src: RecordSource) -> ReadResult:
    """Decode every record of ``src`` into one stream and its markers."""
    state = new_state()
    ch, mac, mic, markers = _decode_range(src, 0, src.n_records, state)
    ordered = state[4] == 0
    _warn_invalid(src, state)
    attrs = dict(
        _base_attrs(src), n_overflow_records=int(state[1]), n_invalid_records=int(state[2])
    )
    return ReadResult(_to_stream(src, ch, mac, mic, attrs, ordered=ordered), markers)


def iter_source(src: RecordSource, max_records: int) -> Iterator[ReadResult]:
    """Decode ``src`` in chunks of at most ``max_records`` records.

    Macrotimes continue across chunk borders (the overflow state is carried);
    memory is bounded by the chunk size.  Records out of time order are
    sorted within their chunk only (a corrupt record whose time falls into an
    earlier chunk stays in its own).  Every chunk carries the same attrs
    plus ``chunk_first_record``; its ``n_overflow_records`` and
    ``n_invalid_records`` count up to the end of that chunk, so the last
    chunk's equal :func:`read_source`'s.
    """
    if int(max_records) != max_records or max_records < 1:
        raise ValueError(f"{max_records=} must be a positive integer")
    max_records = int(max_records)
    state = new_state()
    attrs = _base_attrs(src)
    # an empty record block still gives one (empty) chunk, as read() gives an empty stream
    for first in range(0, max(src.n_records, 1), max_records):
        stop = min(first + max_records, src.n_records)
        unordered_before = int(state[4])
        ch, mac, mic, markers = _decode_range(src, first, stop, state)
        ordered = int(state[4]) == unordered_before
        chunk_attrs = dict(
            attrs,
            chunk_first_record=first,
            n_overflow_records=int(state[1]),
            n_invalid_records=int(state[2]),
        )
        if stop == src.n_records:
            _warn_invalid(src, state)
        stream = _to_stream(src, ch, mac, mic, chunk_attrs, ordered=ordered)
        del ch, mac, mic  # the chunk's arrays live only as long as the caller keeps it
        yield ReadResult(stream, markers)
