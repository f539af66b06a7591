"""Following a PTU file that is still being written (a live acquisition).

While PicoQuant software acquires, the PTU file grows: the tag header comes
first, then records are appended, and the header's record count stays 0 (or
is otherwise not final) until the measurement ends.  :class:`PtuFollower`
reads such a file incrementally: each :meth:`~PtuFollower.poll` decodes only
the complete records appended since the previous one (a record cut in the
middle stays for the next poll), carrying the decoder's overflow state so
that macrotimes continue across polls exactly as :func:`qdio.read` gives
them for the finished file.  :func:`follow` wraps it in a generator that
stops when the file stops growing.

The file is opened read-only and never modified.  A file that shrinks or is
replaced while it is followed raises :class:`~qdio.QdioError`.

>>> import qdio
>>> for chunk in qdio.follow("running.ptu", idle_timeout_s=10):   # doctest: +SKIP
...     print(len(chunk), "new photons")
"""

from __future__ import annotations

import os
import struct
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ._decode import LAYOUTS, decode_block, new_state
from ._errors import QdioError, QdioWarning
from ._records import RECORD_BYTES, ReadResult, RecordSource, _base_attrs, _to_stream
from .ptu import _PAYLOAD_TYPES, _TAG, PTU_MAGIC, ptu_source
from .stream import Markers, PhotonStream

__all__ = ["PtuFollower", "follow"]

DEFAULT_POLL_RECORDS = 1 << 21  # records decoded per poll at most (~27 MB of output)


class PtuFollower:
    """Incremental reader of a PTU file that is still growing.

    Parameters
    ----------
    path : path-like
        The PTU file (T2 or T3, any record type :func:`qdio.read` knows).
        It must exist; its header may still be incomplete.
    max_records : int
        Records decoded per :meth:`poll` at most (bounds memory when the
        follower starts on a large file or falls behind; the rest is left for
        the next polls, see :attr:`backlog_records`).
    with_markers : bool
        :meth:`poll` returns ``ReadResult(stream, markers)`` instead of the stream.

    Attributes
    ----------
    source : RecordSource or None
        The parsed header (None until the header is complete).
    offset : int
        Byte offset of the first record not yet read.
    n_records : int
        Records read so far (photons, overflows, markers).
    n_photons : int
        Photons returned so far.
    bytes_read : int
        Record bytes read so far: every byte after the header is read once.

    Examples
    --------
    ::

        with qdio.PtuFollower("running.ptu") as f:
            while not f.finished:
                chunk = f.poll()          # None: nothing new yet
                if chunk is not None:
                    ...
                time.sleep(0.5)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_records: int = DEFAULT_POLL_RECORDS,
        with_markers: bool = False,
    ) -> None:
        if int(max_records) != max_records or max_records < 1:
            raise ValueError(f"{max_records=} must be a positive integer")
        self.path = Path(path)
        self.max_records = int(max_records)
        self.with_markers = with_markers
        self._f = open(self.path, "rb", buffering=0)
        self._ino = os.fstat(self._f.fileno()).st_ino
        self.source: RecordSource | None = None
        self.offset = 0
        self.n_records = 0
        self.n_photons = 0
        self.bytes_read = 0
        self._state = new_state()
        self._size = 0
        self._grew_at = time.monotonic()
        self._count_at: int | None = None  # offset of TTResult_NumberOfRecords' value
        self._attrs: dict = {}

    # -- context manager -------------------------------------------------
    def __enter__(self) -> PtuFollower:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (polling afterwards raises ValueError)."""
        self._f.close()

    @property
    def closed(self) -> bool:
        return self._f.closed

    # -- state -----------------------------------------------------------
    @property
    def size(self) -> int:
        """File size in bytes at the last poll."""
        return self._size

    @property
    def idle_s(self) -> float:
        """Seconds since the file was last seen to grow (or since it was opened)."""
        return time.monotonic() - self._grew_at

    @property
    def backlog_records(self) -> int:
        """Complete records in the file (at the last poll) not yet read."""
        if self.source is None:
            return 0
        return max(0, (self._size - self.offset) // RECORD_BYTES)

    @property
    def header_records(self) -> int | None:
        """The header's record count as the file says now (0 while acquiring)."""
        if self._count_at is None or self._f.closed:
            return None
        raw = self._pread(8, self._count_at)
        return struct.unpack("<q", raw)[0] if len(raw) == 8 else None

    @property
    def finished(self) -> bool:
        """True once the header holds a final record count and every record was read."""
        count = self.header_records
        return (
            count is not None
            and count > 0
            and self.n_records >= count
            and self.backlog_records == 0
        )

    # -- reading ---------------------------------------------------------
    def _check_file(self) -> int:
        """Current size, after checking the file was neither replaced nor truncated."""
        if self._f.closed:
            raise ValueError(f"{self.path}: the follower is closed")
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            raise QdioError(f"{self.path}: file was deleted while being followed") from None
        if ino != self._ino:
            raise QdioError(
                f"{self.path}: file was replaced by another file while being followed "
                f"(after {self.n_records} records)"
            )
        size = os.fstat(self._f.fileno()).st_size
        if size < max(self.offset, self._size):
            raise QdioError(
                f"{self.path}: file shrank from {max(self.offset, self._size)} to {size} bytes "
                f"while being followed (truncated?)"
            )
        if size != self._size:
            self._size = size
            self._grew_at = time.monotonic()
        return size

    def _header_end(self, size: int) -> int | None:
        """Offset just after Header_End, or None while the header is incomplete."""
        head = self._pread(16, 0)
        n = min(len(head), len(PTU_MAGIC))
        if head[:n] != PTU_MAGIC[:n]:
            raise QdioError(f"{self.path}: {_not_ptu(self.path, head)}")
        pos = 16
        while pos + _TAG.size <= size:
            ident_b, _, typ, value_b = _TAG.unpack(self._pread(_TAG.size, pos))
            ident = ident_b.split(b"\0", 1)[0]
            if ident == b"TTResult_NumberOfRecords":
                self._count_at = pos + 40
            pos += _TAG.size
            if typ in _PAYLOAD_TYPES:
                length = struct.unpack("<q", value_b)[0]
                if length < 0:
                    raise QdioError(
                        f"{self.path}: tag {ident!r} at offset {pos - _TAG.size}: "
                        f"negative payload length {length}"
                    )
                pos += length
            if ident == b"Header_End":
                return pos if pos <= size else None
        return None

    def _pread(self, n: int, pos: int) -> bytes:
        self._f.seek(pos)
        return self._f.read(n) or b""

    def _open_header(self, size: int) -> bool:
        end = self._header_end(size)
        if end is None:
            return False
        with warnings.catch_warnings():
            # the record count of a growing file is not final: no warnings about it
            warnings.simplefilter("ignore", QdioWarning)
            src = ptu_source(self.path)
        if src.data_offset != end:  # pragma: no cover - both parse the same header
            raise QdioError(f"{self.path}: header changed while being parsed")
        self.source = src
        self.offset = src.data_offset
        self._attrs = dict(_base_attrs(src), live=True)
        return True

    def poll(self) -> PhotonStream | ReadResult | None:
        """The photons of the complete records appended since the last poll.

        Returns
        -------
        PhotonStream, ReadResult (``with_markers``) or None
            None when no new complete record is there yet (or the header is
            still incomplete).  At most ``max_records`` records are read;
            a stream may be empty (only overflow or marker records).

        Raises
        ------
        QdioError
            Not a PTU file, a corrupt header, or a file that was truncated,
            replaced or deleted while being followed.
        """
        size = self._check_file()
        if self.source is None and not self._open_header(size):
            return None
        n = min((size - self.offset) // RECORD_BYTES, self.max_records)
        if n <= 0:
            return None
        records = np.empty(n, "<u4")
        view = memoryview(records).cast("B")
        got = 0
        while got < view.nbytes:
            self._f.seek(self.offset + got)
            k = self._f.readinto(view[got:])
            if not k:
                raise QdioError(
                    f"{self.path}: file ended at offset {self.offset + got} while reading "
                    f"{view.nbytes} bytes from {self.offset} (truncated?)"
                )
            got += k
        return self._decode(records)

    def _decode(self, records: np.ndarray) -> PhotonStream | ReadResult:
        src = self.source
        layout = LAYOUTS[src.layout]
        n = len(records)
        ch = np.empty(n, np.uint8)
        mac = np.empty(n, np.int64)
        mic = np.empty(n if layout.t3 else 0, np.int32)
        mk_t = np.empty(n, np.int64)
        mk_b = np.empty(n, np.uint8)
        unordered_before = int(self._state[4])
        p, m = decode_block(layout, records, src.version, self._state, ch, mac, mic, mk_t, mk_b)
        for column in (ch, mac, mic) if layout.t3 else (ch, mac):
            column.resize(p, refcheck=False)
        first = self.n_records
        self.offset += n * RECORD_BYTES
        self.bytes_read += n * RECORD_BYTES
        self.n_records += n
        self.n_photons += p
        attrs = dict(
            self._attrs,
            n_records=self.n_records,
            chunk_first_record=first,
            n_overflow_records=int(self._state[1]),
            n_invalid_records=int(self._state[2]),
        )
        ordered = int(self._state[4]) == unordered_before
        stream = _to_stream(src, ch, mac, mic if layout.t3 else None, attrs, ordered=ordered)
        if not self.with_markers:
            return stream
        markers = Markers(mk_t[:m].copy(), mk_b[:m].copy()) if m else Markers.empty()
        return ReadResult(stream, markers)


def _not_ptu(path: Path, head: bytes) -> str:
    """Why a file cannot be followed: its format, when qdio knows it."""
    from ._formats import detect

    try:
        name = f"a {detect(path)[1].name} file"
    except (QdioError, OSError):
        name = f"first bytes {head[:8]!r}"
    return (
        f"not a PTU file ({name}, expected magic {PTU_MAGIC.rstrip(b'\0')!r}); "
        "only PTU files can be followed while they are written"
    )


def follow(
    path: str | os.PathLike,
    *,
    poll_interval_s: float = 0.5,
    idle_timeout_s: float | None = 10.0,
    max_records: int = DEFAULT_POLL_RECORDS,
    with_markers: bool = False,
) -> Iterator[PhotonStream] | Iterator[ReadResult]:
    """Yield the new photons of a growing PTU file until it stops growing.

    Parameters
    ----------
    path : path-like
        The PTU file being written.
    poll_interval_s : float
        Pause between polls that found nothing new.
    idle_timeout_s : float or None
        Stop once the file has not grown for this long (None or 0: never;
        stop the loop yourself).  The generator also stops as soon as the
        header holds a final record count and every record was read.
    max_records : int
        Records per yielded chunk at most (see :class:`PtuFollower`).
    with_markers : bool
        Yield ``ReadResult(stream, markers)``.

    Yields
    ------
    PhotonStream or ReadResult
        Chunks in time order; concatenated they equal :func:`qdio.read` of
        the finished file.

    Raises
    ------
    QdioError
        See :meth:`PtuFollower.poll`; also when the file stops growing before
        its header is complete.
    """
    if not poll_interval_s > 0:
        raise ValueError(f"{poll_interval_s=} must be > 0")
    if idle_timeout_s is not None and not idle_timeout_s >= 0:
        raise ValueError(f"{idle_timeout_s=} must be >= 0 (0 or None: no timeout)")
    with PtuFollower(path, max_records=max_records, with_markers=with_markers) as f:
        while True:
            chunk = f.poll()
            if chunk is not None:
                yield chunk
                continue  # read what is left before pausing
            if f.finished:
                return
            if idle_timeout_s and f.idle_s >= idle_timeout_s:
                if f.source is None:
                    raise QdioError(
                        f"{f.path}: no complete PTU header after {f.idle_s:.3g} s without "
                        f"growth (file is {f.size} bytes)"
                    )
                return
            time.sleep(poll_interval_s)
