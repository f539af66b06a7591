"""PhotonStream: the event format every qdlight package speaks.

One row per detected photon, in time order.  The stream stores the integers
the instrument counts (channel, macrotime, microtime) together with their
resolutions; physical times are computed on request.  Overflow records never
appear (readers resolve them) and markers travel beside the stream in a
:class:`Markers` table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numba
import numpy as np

__all__ = [
    "Markers",
    "PhotonStream",
    "concatenate",
    "select_channels",
    "time_slice",
]


@numba.njit(cache=True, nogil=True)
def _first_decrease(values: np.ndarray) -> int:
    """Index of the first element smaller than its predecessor, or -1."""
    for i in range(1, values.shape[0]):
        if values[i] < values[i - 1]:
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def _count_u8(values: np.ndarray) -> np.ndarray:
    """Occurrences of each value 0..255 (np.bincount would widen to int64 first)."""
    counts = np.zeros(256, np.int64)
    for v in values:
        counts[v] += 1
    return counts


def _readonly(values: np.ndarray) -> np.ndarray:
    view = values.view()
    view.flags.writeable = False
    return view


def _as_column(name: str, values: Any, dtype: type, length: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"PhotonStream.{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"PhotonStream.{name} has {arr.shape[0]} rows, channel has {length}")
    if arr.dtype == dtype:
        return arr
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"PhotonStream.{name} must hold integers, got dtype {arr.dtype}")
    if arr.size:
        info = np.iinfo(dtype)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise ValueError(
                f"PhotonStream.{name} values {lo}..{hi} do not fit {np.dtype(dtype).name}"
            )
    return arr.astype(dtype)


def _check_positive(name: str, value: float | None, *, required: bool) -> float | None:
    if value is None:
        if required:
            raise ValueError(f"PhotonStream.{name} is required, got None")
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"PhotonStream.{name}={value!r} must be a finite number > 0")
    return value


@dataclass(frozen=True, eq=False)
class PhotonStream:
    """Detected photons of one acquisition (or a selection of them), in time order.

    Parameters
    ----------
    channel : ndarray of uint8, shape (N,)
        Detector / routing channel, 0-based.
    macrotime : ndarray of int64, shape (N,)
        T3: laser sync periods since the start; T2: time tags.  Non-decreasing.
    microtime : ndarray of int32, shape (N,), or None
        T3: TCSPC bins after the sync; None for T2 data.
    macrotime_resolution_s : float
        Seconds per macrotime unit (the sync period in T3 mode).
    microtime_resolution_s : float or None
        Seconds per microtime bin (T3), None for T2.
    n_microtime_bins : int or None
        Range of the microtime (every value is below it), None for T2.
    attrs : mapping
        Provenance: source file, format, header tags, instrument, or the
        simulation setup and seed.  Stored read-only.

    Notes
    -----
    The arrays are stored as read-only views; the caller's arrays stay
    writable.  Integer arrays of other dtypes are converted when their values
    fit.  Operations (:func:`select_channels`, :func:`time_slice`,
    :func:`concatenate`) return new streams.

    Examples
    --------
    >>> import numpy as np
    >>> s = PhotonStream(np.array([0, 1], np.uint8), np.array([3, 7]),
    ...                  np.array([10, 20]), 400e-9, 128e-12, 4096)
    >>> len(s), s.duration_s
    (2, 1.6e-06)
    """

    channel: np.ndarray
    macrotime: np.ndarray
    microtime: np.ndarray | None
    macrotime_resolution_s: float
    microtime_resolution_s: float | None = None
    n_microtime_bins: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        channel = _as_column("channel", self.channel, np.uint8, None)
        n = channel.shape[0]
        macrotime = _as_column("macrotime", self.macrotime, np.int64, n)
        first = _first_decrease(macrotime) if n > 1 else -1
        if first >= 0:
            raise ValueError(
                f"PhotonStream.macrotime must be non-decreasing: row {first} "
                f"({macrotime[first]}) < row {first - 1} ({macrotime[first - 1]})"
            )
        _check_positive("macrotime_resolution_s", self.macrotime_resolution_s, required=True)
        set_ = object.__setattr__
        set_(self, "macrotime_resolution_s", float(self.macrotime_resolution_s))
        if self.microtime is None:
            if self.microtime_resolution_s is not None or self.n_microtime_bins is not None:
                raise ValueError(
                    "PhotonStream without microtime (T2) must have "
                    "microtime_resolution_s=None and n_microtime_bins=None"
                )
            microtime = None
        else:
            microtime = _as_column("microtime", self.microtime, np.int32, n)
            res = _check_positive(
                "microtime_resolution_s", self.microtime_resolution_s, required=True
            )
            set_(self, "microtime_resolution_s", res)
            nbins = self.n_microtime_bins
            ok = isinstance(nbins, (int, np.integer)) or (
                isinstance(nbins, float) and math.isfinite(nbins) and nbins.is_integer()
            )
            if not ok or int(nbins) < 1:
                raise ValueError(f"PhotonStream.n_microtime_bins={nbins!r} must be an int >= 1")
            set_(self, "n_microtime_bins", int(nbins))
            if n:
                lo, hi = int(microtime.min()), int(microtime.max())
                if lo < 0 or hi >= nbins:
                    raise ValueError(
                        f"PhotonStream.microtime values {lo}..{hi} outside "
                        f"[0, n_microtime_bins={nbins})"
                    )
            microtime = _readonly(microtime)
        set_(self, "channel", _readonly(channel))
        set_(self, "macrotime", _readonly(macrotime))
        set_(self, "microtime", microtime)
        set_(self, "attrs", MappingProxyType(dict(self.attrs)))

    @classmethod
    def _trusted(
        cls, channel, macrotime, microtime, macrotime_resolution_s,
        microtime_resolution_s, n_microtime_bins, attrs,
    ) -> PhotonStream:  # fmt: skip
        """Build from columns a decoder has already checked (dtypes, time order,
        microtime range), skipping the O(N) checks of ``__post_init__``."""
        self = object.__new__(cls)
        set_ = object.__setattr__
        set_(self, "channel", _readonly(channel))
        set_(self, "macrotime", _readonly(macrotime))
        set_(self, "microtime", None if microtime is None else _readonly(microtime))
        res = _check_positive("macrotime_resolution_s", macrotime_resolution_s, required=True)
        set_(self, "macrotime_resolution_s", res)
        set_(
            self,
            "microtime_resolution_s",
            _check_positive(
                "microtime_resolution_s", microtime_resolution_s, required=microtime is not None
            ),
        )
        set_(self, "n_microtime_bins", None if n_microtime_bins is None else int(n_microtime_bins))
        set_(self, "attrs", MappingProxyType(dict(attrs)))
        return self

    # -- derived values ---------------------------------------------------
    def __len__(self) -> int:
        return int(self.channel.shape[0])

    def __repr__(self) -> str:
        mode = "T2" if self.microtime is None else "T3"
        return (
            f"PhotonStream({len(self)} photons, {mode}, channels {self.channels.tolist()}, "
            f"{self.duration_s:.6g} s)"
        )

    @property
    def is_t3(self) -> bool:
        """True when the stream has microtimes (T3 mode)."""
        return self.microtime is not None

    @property
    def sync_rate_hz(self) -> float | None:
        """Laser sync rate (T3: 1 / macrotime resolution), None for T2."""
        return 1.0 / self.macrotime_resolution_s if self.is_t3 else None

    @property
    def laser_period_s(self) -> float | None:
        """Laser repetition period (T3), the period the microtime repeats with.

        The macrotime resolution, except where the file records a different
        sync rate in ``attrs["sync_rate_hz"]`` (more than 1 % off): TimeHarp
        200 T3R files count a 100 ns clock, and a sync divider makes the
        macrotime tick several laser periods.  None for T2.
        """
        if self.microtime is None:
            return None
        rate = self.attrs.get("sync_rate_hz")
        if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0:
            if abs(rate * self.macrotime_resolution_s - 1.0) > 0.01:
                return 1.0 / rate
        return self.macrotime_resolution_s

    @property
    def channels(self) -> np.ndarray:
        """Sorted channel numbers that occur in the stream."""
        return np.flatnonzero(_count_u8(self.channel))

    @property
    def duration_s(self) -> float:
        """Time from the first to the last photon's macrotime, in seconds."""
        if len(self) < 2:
            return 0.0
        return float(self.macrotime[-1] - self.macrotime[0]) * self.macrotime_resolution_s

    def counts_per_channel(self) -> dict[int, int]:
        """Number of photons for each channel that occurs."""
        counts = _count_u8(self.channel)
        return {int(c): int(counts[c]) for c in np.flatnonzero(counts)}

    def microtime_s(self) -> np.ndarray:
        """Delay after the sync, in seconds (float64, T3 only)."""
        if self.microtime is None:
            raise ValueError("microtime_s() needs a T3 stream; this one has no microtime")
        return self.microtime * self.microtime_resolution_s

    def arrival_time_s(self) -> np.ndarray:
        """Absolute detection time in seconds (float64): macrotime plus microtime (T3)."""
        t = self.macrotime * self.macrotime_resolution_s
        if self.microtime is not None:
            t += self.microtime * self.microtime_resolution_s
        return t

    def take(self, index: np.ndarray | slice) -> PhotonStream:
        """Rows selected by a boolean mask, sorted integer indices or a slice."""
        if isinstance(index, np.ndarray) and index.dtype != bool:
            if index.size > 1 and _first_decrease(np.asarray(index, np.int64)) >= 0:
                raise ValueError("take(): integer indices must be sorted to keep time order")
        return self._with(
            self.channel[index],
            self.macrotime[index],
            None if self.microtime is None else self.microtime[index],
        )

    def _with(self, channel, macrotime, microtime, attrs=None) -> PhotonStream:
        return PhotonStream(
            channel,
            macrotime,
            microtime,
            self.macrotime_resolution_s,
            self.microtime_resolution_s,
            self.n_microtime_bins,
            self.attrs if attrs is None else attrs,
        )


@dataclass(frozen=True, eq=False)
class Markers:
    """External marker events (line / frame clocks, shutters), beside a stream.

    Parameters
    ----------
    macrotime : ndarray of int64, shape (M,)
        Time of each marker in the stream's macrotime units.  Markers have a
        coarser resolution than photons and may be slightly out of order.
    bits : ndarray of uint8, shape (M,)
        Marker bit field (bit k set = marker input k+1).  ``bits == 0`` marks
        a sync event of a HydraHarp-family T2 file.
    """

    macrotime: np.ndarray
    bits: np.ndarray

    def __post_init__(self) -> None:
        macrotime = _as_column("macrotime", self.macrotime, np.int64, None)
        bits = _as_column("bits", self.bits, np.uint8, macrotime.shape[0])
        object.__setattr__(self, "macrotime", _readonly(macrotime))
        object.__setattr__(self, "bits", _readonly(bits))

    def __len__(self) -> int:
        return int(self.macrotime.shape[0])

    @classmethod
    def empty(cls) -> Markers:
        return cls(np.empty(0, np.int64), np.empty(0, np.uint8))

    def counts_per_bit(self) -> dict[int, int]:
        """Number of markers with each bit set (keys are bit numbers 0..7)."""
        return {
            b: int(np.count_nonzero(self.bits & (1 << b)))
            for b in range(8)
            if np.any(self.bits & (1 << b))
        }


def select_channels(stream: PhotonStream, channels: int | Sequence[int]) -> PhotonStream:
    """Photons detected on any of ``channels`` (0-based).

    >>> import numpy as np
    >>> s = PhotonStream(np.array([0, 1, 0], np.uint8), np.arange(3), None, 1e-12)
    >>> select_channels(s, 0).macrotime.tolist()
    [0, 2]
    """
    wanted = np.atleast_1d(np.asarray(channels))
    if wanted.size == 0:
        raise ValueError("select_channels: channels is empty; give at least one channel")
    if wanted.dtype.kind not in "iu" or np.any(wanted < 0) or np.any(wanted > 255):
        raise ValueError(f"channels={channels!r} must be integers in 0..255")
    lut = np.zeros(256, bool)
    lut[wanted] = True
    return stream.take(lut[stream.channel])


def _first_tick_at(t_s: float, res: float) -> int:
    """Smallest macrotime at or after ``t_s``; a time within rounding of a tick is that tick."""
    x = t_s / res
    nearest = round(x)
    if abs(x - nearest) <= 1e-9 * max(1.0, abs(x)):
        return int(nearest)
    return math.ceil(x)


def time_slice(
    stream: PhotonStream, start_s: float = 0.0, stop_s: float | None = None
) -> PhotonStream:
    """Photons whose macrotime falls in ``[start_s, stop_s)`` seconds.

    Times count from macrotime zero (the start of the acquisition), on the
    macrotime clock (whole sync periods in T3 mode).
    """
    if not math.isfinite(start_s) or (stop_s is not None and not stop_s > start_s):
        raise ValueError(f"time_slice: need finite start_s < stop_s, got {start_s=}, {stop_s=}")
    res = stream.macrotime_resolution_s
    lo = np.searchsorted(stream.macrotime, _first_tick_at(start_s, res), "left")
    if stop_s is None:
        hi = len(stream)
    else:
        hi = np.searchsorted(stream.macrotime, _first_tick_at(stop_s, res), "left")
    return stream.take(slice(int(lo), int(hi)))


def concatenate(streams: Sequence[PhotonStream]) -> PhotonStream:
    """Join streams that follow each other in time (for example chunks of a file).

    All streams must share resolutions, microtime range and mode; their
    macrotimes must continue without going back.  The result keeps the first
    stream's ``attrs``.
    """
    streams = list(streams)
    if not streams:
        raise ValueError("concatenate() needs at least one stream")
    first = streams[0]
    key = (first.macrotime_resolution_s, first.microtime_resolution_s, first.n_microtime_bins)
    for i, s in enumerate(streams[1:], 1):
        other = (s.macrotime_resolution_s, s.microtime_resolution_s, s.n_microtime_bins)
        if other != key:
            raise ValueError(
                f"concatenate(): stream {i} has (macrotime_resolution_s, "
                f"microtime_resolution_s, n_microtime_bins) = {other}, stream 0 has {key}"
            )
    microtime = None
    if first.is_t3:
        microtime = np.concatenate([s.microtime for s in streams])
    return first._with(
        np.concatenate([s.channel for s in streams]),
        np.concatenate([s.macrotime for s in streams]),
        microtime,
    )
