"""qdio: PicoQuant, Becker & Hickl and Photon-HDF5 files as PhotonStreams.

>>> import qdio
>>> stream = qdio.read("measurement.ptu")            # doctest: +SKIP
>>> for chunk in qdio.iter_chunks("huge.ptu"):       # doctest: +SKIP
...     ...

Every reader dispatches on the file's magic bytes.  Unreadable input raises
:class:`QdioError` (a ValueError) naming the file, the offset or tag, and
what was expected; damaged but readable input gives a :class:`QdioWarning`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Literal, overload

from ._errors import QdioError, QdioWarning
from ._formats import detect, iter_any, read_any
from ._records import ReadResult
from .follow import PtuFollower, follow
from .histograms import Histograms, read_histograms
from .photon_hdf5 import write_photon_hdf5
from .ptu import PtuWriter, write_ptu
from .stream import Markers, PhotonStream, concatenate, select_channels, time_slice

__all__ = [
    "DEFAULT_CHUNK_RECORDS",
    "Histograms",
    "Markers",
    "PhotonStream",
    "PtuFollower",
    "PtuWriter",
    "QdioError",
    "QdioWarning",
    "ReadResult",
    "concatenate",
    "detect_format",
    "follow",
    "iter_chunks",
    "read",
    "read_histograms",
    "select_channels",
    "time_slice",
    "write_photon_hdf5",
    "write_ptu",
]

DEFAULT_CHUNK_RECORDS = 1 << 21


@overload
def read(path: str | os.PathLike, *, with_markers: Literal[False] = ...) -> PhotonStream: ...
@overload
def read(path: str | os.PathLike, *, with_markers: Literal[True]) -> ReadResult: ...
def read(path, *, with_markers=False):
    """Read every photon of a TTTR file.

    Parameters
    ----------
    path : path-like
        PTU (PicoHarp 300/330, HydraHarp v1/v2, TimeHarp 260 N/P, MultiHarp;
        T2 or T3), legacy PT3/PT2/HT3/HT2/T3R, Becker & Hickl SPC (with its
        ``.set`` beside it) or Photon-HDF5.  The format is recognised from
        the file's content, not its name.
    with_markers : bool
        Also return the marker events, as ``ReadResult(stream, markers)``.

    Returns
    -------
    PhotonStream, or ReadResult when ``with_markers`` is True.

    Raises
    ------
    QdioError
        The file cannot be read (unknown format, corrupt header, ...).
    """
    result = read_any(path)
    return result if with_markers else result.stream


def iter_chunks(
    path: str | os.PathLike,
    *,
    max_records: int = DEFAULT_CHUNK_RECORDS,
    with_markers: bool = False,
) -> Iterator[PhotonStream] | Iterator[ReadResult]:
    """The photons of ``path`` in consecutive chunks of at most ``max_records`` records.

    Macrotimes continue across chunk borders, and concatenating the chunks
    gives exactly :func:`read`'s stream.  Memory is bounded by the chunk size:
    about 13 bytes per record for the chunk being decoded plus the one the
    caller still holds, and a 1 MiB read buffer (the default 2**21 records is
    about 27 MB per chunk), so files of any size can be processed.
    """
    it = iter_any(path, max_records)
    if with_markers:
        return it
    return (r.stream for r in it)


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path`` ("PTU", "PT3", "Photon-HDF5", ...)."""
    return detect(path)[1].name
