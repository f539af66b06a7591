"""The one exception type for unreadable input, and warnings for damaged input."""

from __future__ import annotations

__all__ = ["QdioError", "QdioWarning"]


class QdioError(ValueError):
    """A file (or byte string) that qdio cannot read.

    The message names the file, where in it the problem is (byte offset or
    header tag) and what was expected instead.
    """


class QdioWarning(UserWarning):
    """Input that was read, but not as its header describes it.

    Examples: a truncated last record that was dropped, a header record
    count that disagrees with the file size, records out of time order.
    """
