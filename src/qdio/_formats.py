"""Which reader handles a file: sniffing magic bytes, then dispatching.

Each format module exposes a :class:`FileFormat`; :func:`detect` asks each
one, in order, whether the first bytes of the file are its own.  The file
name's extension is never used to decide (only to find a companion file,
such as the ``.set`` beside a Becker & Hickl ``.spc``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._errors import QdioError
from ._records import ReadResult, RecordSource, iter_source, read_source

__all__ = ["HEAD_BYTES", "FileFormat", "detect", "iter_any", "read_any"]

HEAD_BYTES = 1024


@dataclass(frozen=True)
class FileFormat:
    """A readable file format.

    Record-based formats give ``source`` (header -> RecordSource) and share
    the block decoder; others (Photon-HDF5) give ``read`` and ``iterate``.
    ``histograms`` formats hold TCSPC histograms, not photons.
    """

    name: str
    sniff: Callable[[bytes, Path], bool]
    source: Callable[[Path], RecordSource] | None = None
    read: Callable[[Path], ReadResult] | None = None
    iterate: Callable[[Path, int], Iterator[ReadResult]] | None = None
    histograms: bool = False


def _formats() -> list[FileFormat]:
    from . import bh_spc, histograms, legacy, photon_hdf5, ptu

    return [
        *ptu.FORMATS,
        *histograms.FORMATS,
        *legacy.FORMATS,
        *photon_hdf5.FORMATS,
        *bh_spc.FORMATS,
    ]


def detect(path: str | os.PathLike) -> tuple[Path, FileFormat]:
    """The format of ``path``, from its first bytes.

    Raises
    ------
    QdioError
        The file is empty, unreadable, or of no known format.
    FileNotFoundError
        The file does not exist.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head:
        raise QdioError(f"{path}: file is empty (0 bytes)")
    known = _formats()
    for fmt in known:
        if fmt.sniff(head, path):
            return path, fmt
    hint = ""
    if path.suffix.lower() == ".spc":
        hint = (
            "; a Becker & Hickl .spc file has no magic bytes and is recognised only "
            f"with its .set file ({path.with_suffix('.set').name}) beside it"
        )
    raise QdioError(
        f"{path}: unknown file format (first bytes {head[:16]!r}); qdio reads "
        f"{', '.join(f.name for f in known)}{hint}"
    )


def read_any(path: str | os.PathLike) -> ReadResult:
    path, fmt = detect(path)
    if fmt.histograms:
        raise QdioError(
            f"{path}: a {fmt.name} file holds TCSPC histograms, not photons; "
            f"use qdio.read_histograms()"
        )
    if fmt.source is not None:
        return read_source(fmt.source(path))
    return fmt.read(path)


def iter_any(path: str | os.PathLike, max_records: int) -> Iterator[ReadResult]:
    path, fmt = detect(path)
    if fmt.histograms:
        raise QdioError(f"{path}: a {fmt.name} file holds histograms, not photons")
    if fmt.source is not None:
        return iter_source(fmt.source(path), max_records)
    return fmt.iterate(path, max_records)
