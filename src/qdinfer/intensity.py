"""Intensity: binned traces, their histograms, and photon rates per channel.

Times count from macrotime zero (the start of the acquisition), on the
macrotime clock, as :func:`qdinfer.time_window` does, so traces of different
selections of one file line up bin for bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qdio import PhotonStream

from ._common import check_positive, stream_span_s, support_duration_s, whole
from .selection import Selection, select

__all__ = [
    "CountRates",
    "IntensityHistogram",
    "IntensityTrace",
    "count_rates",
    "intensity_histogram",
    "intensity_trace",
    "trace_bin_index",
]


@dataclass(frozen=True, eq=False)
class IntensityTrace:
    """Photons per time bin.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_bins,)
        Photons detected in ``[edges_s[k], edges_s[k+1])``.
    edges_s : ndarray of float64, shape (n_bins + 1,)
        Bin edges in seconds from the start of the acquisition.
    """

    counts: np.ndarray
    edges_s: np.ndarray

    @property
    def bin_width_s(self) -> float:
        return float(self.edges_s[1] - self.edges_s[0]) if len(self.edges_s) > 1 else math.nan

    @property
    def centers_s(self) -> np.ndarray:
        return 0.5 * (self.edges_s[1:] + self.edges_s[:-1])

    @property
    def rate_hz(self) -> np.ndarray:
        """Counts per second in each bin."""
        return self.counts / self.bin_width_s

    def __len__(self) -> int:
        return int(self.counts.shape[0])


MAX_TRACE_BINS = 50_000_000  # 400 MB of int64 counts


def trace_bin_index(macrotime: np.ndarray, resolution_s: float, bin_width_s: float) -> np.ndarray:
    """Trace bin of each macrotime: exact integer division when the bin is a whole
    number of macrotime units, else ``floor(macrotime * resolution / bin_width)``.

    Raises ValueError when the trace would need more than MAX_TRACE_BINS bins."""
    if len(macrotime):
        n_bins = float(macrotime[-1]) * resolution_s / bin_width_s
        if n_bins > MAX_TRACE_BINS:
            raise ValueError(
                f"trace bin_width_s={bin_width_s!r} would need {n_bins:.3g} bins to reach "
                f"{float(macrotime[-1]) * resolution_s:.4g} s (at most {MAX_TRACE_BINS:,}); "
                f"use a wider bin"
            )
    k = whole(bin_width_s / resolution_s)
    if k is not None:
        return macrotime // k
    return np.floor(macrotime * (resolution_s / bin_width_s)).astype(np.int64)


def intensity_trace(
    stream: PhotonStream,
    *,
    bin_width_s: float = 10e-3,
    selection: Selection | None = None,
    stop_s: float | None = None,
) -> IntensityTrace:
    """Photons of the selection per ``bin_width_s`` bin, from the acquisition start.

    Parameters
    ----------
    stream : PhotonStream
    bin_width_s : float
        Bin width in seconds (default 10 ms).
    selection : Selection, optional
    stop_s : float, optional
        End of the trace; by default the last complete bin before the last
        photon of ``stream`` (not of the selection, so traces of different
        selections line up).  Photons after the last complete bin are left out.

    Returns
    -------
    IntensityTrace
        Empty (no bins) when the stream is shorter than one bin.

    Examples
    --------
    >>> import numpy as np, qdio
    >>> s = qdio.PhotonStream(np.zeros(5, np.uint8), np.array([0, 1, 5, 6, 12]), None, 1e-3)
    >>> intensity_trace(s, bin_width_s=5e-3).counts.tolist()
    [2, 2]
    """
    bin_width_s = check_positive("bin_width_s", bin_width_s)
    res = stream.macrotime_resolution_s
    if stop_s is None:
        _, stop = stream_span_s(stream)
    else:
        stop = float(stop_s)
    n_bins = max(0, math.floor(stop / bin_width_s + 1e-9))
    sel = select(stream, selection)
    idx = trace_bin_index(sel.macrotime, res, bin_width_s)
    idx = idx[idx < n_bins]
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)[:n_bins]
    return IntensityTrace(counts, np.arange(n_bins + 1) * bin_width_s)


@dataclass(frozen=True, eq=False)
class IntensityHistogram:
    """How many trace bins held a given number of photons.

    Attributes
    ----------
    occurrences : ndarray of int64, shape (n,)
        Trace bins per photon-count bin.
    edges : ndarray of float64, shape (n + 1,)
        Photon-count bin edges (photons per trace bin).
    bin_width_s : float
        The trace's bin width (to convert counts to rates).
    """

    occurrences: np.ndarray
    edges: np.ndarray
    bin_width_s: float

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def intensity_histogram(trace: IntensityTrace, *, bins: int | None = None) -> IntensityHistogram:
    """Histogram of the photons per bin of a trace.

    ``bins=None`` gives one bin per photon count (0, 1, 2, ... max);
    an int groups them into that many equal bins.

    >>> t = IntensityTrace(np.array([0, 2, 2, 3]), np.arange(5) * 0.01)
    >>> intensity_histogram(t).occurrences.tolist()
    [1, 0, 2, 1]
    """
    counts = trace.counts
    top = int(counts.max()) if len(counts) else 0
    if bins is None:
        occ = np.bincount(counts, minlength=top + 1).astype(np.int64)
        edges = np.arange(top + 2) - 0.5
    else:
        if int(bins) < 1:
            raise ValueError(f"bins={bins!r} must be >= 1")
        occ, edges = np.histogram(counts, bins=int(bins), range=(-0.5, top + 0.5))
        occ = occ.astype(np.int64)
    return IntensityHistogram(occ, edges.astype(np.float64), trace.bin_width_s)


@dataclass(frozen=True, eq=False)
class CountRates:
    """Photon detection rate per channel.

    Attributes
    ----------
    counts : dict
        channel -> photons of the selection.
    duration_s : float
        Acquisition time the selection covers.
    rate_hz, rate_stderr_hz : dict
        channel -> counts / duration and its Poisson error sqrt(counts) / duration.
    """

    counts: dict[int, int]
    duration_s: float
    rate_hz: dict[int, float] = field(default_factory=dict)
    rate_stderr_hz: dict[int, float] = field(default_factory=dict)

    @property
    def total_hz(self) -> float:
        return float(sum(self.rate_hz.values()))


def count_rates(
    stream: PhotonStream,
    *,
    selection: Selection | None = None,
    duration_s: float | None = None,
) -> CountRates:
    """Photons per second for each channel of the selection.

    The duration is the stream's span (first to last macrotime) cut to the
    time windows / state intervals in ``selection``; pass ``duration_s`` to
    use the header's acquisition time instead.

    Raises
    ------
    ValueError
        When the duration is zero (fewer than two distinct macrotimes and no
        ``duration_s``).
    """
    sel = select(stream, selection)
    counts = sel.counts_per_channel()
    if duration_s is None:
        if len(stream) < 2 or stream.macrotime[0] == stream.macrotime[-1]:
            raise ValueError(
                f"count_rates: {len(stream)} photons span no time (fewer than two distinct "
                f"macrotimes); pass duration_s="
            )
        start, stop = stream_span_s(stream)
        duration = support_duration_s(selection, start, stop)
    else:
        duration = check_positive("duration_s", duration_s)
    if duration <= 0:
        raise ValueError(
            f"count_rates: the selection covers no time ({len(stream)} photons); pass duration_s="
        )
    rate = {c: n / duration for c, n in counts.items()}
    err = {c: math.sqrt(n) / duration for c, n in counts.items()}
    return CountRates(counts, duration, rate, err)
