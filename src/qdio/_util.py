"""Small file helpers shared by the writers: write beside, then rename into place."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_path", "atomic_write", "scaled_decimal"]


def _file_mode(path: Path) -> int:
    """Permissions for the new file: the replaced file's, else 0666 less the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` on success.

    The temporary file is fsynced and given the permissions the replaced file
    had (or the usual default) before the rename.  On any exception it is
    removed and ``path`` is untouched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp made it private (0600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; rename it onto ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def scaled_decimal(value: float, exponent: int, *, float32: bool = False) -> float:
    """``value * 10**exponent``, rounded through the value's shortest decimal text.

    Header fields in ns or ps become exact-looking seconds (16 ps -> 1.6e-11,
    not 1.6000000000000003e-11).  ``float32``: the field was stored as a
    float32, so use the shortest decimal that round-trips the float32
    (0.128 ns, not 0.12800000607967377 ns).

    >>> scaled_decimal(16.0, -12), scaled_decimal(1e-05, -9)
    (1.6e-11, 1e-14)
    >>> scaled_decimal(0.128, -9, float32=True)
    1.28e-10
    """
    import numpy as np

    text = str(np.float32(value)) if float32 else repr(float(value))
    return float(Decimal(text).scaleb(exponent))
