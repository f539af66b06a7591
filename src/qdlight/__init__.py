"""qdlight: the command line and reports on top of qdio, qdsim and qdinfer."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qdlight")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
