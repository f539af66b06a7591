"""Shared helpers of the qdinfer estimators: time bases, the time a selection covers.

Private module.  Two things every estimator needs:

* :class:`TimeBase`: how photon arrival times are represented for pair
  counting.  Integer ticks when they can be (exact lags), float64 seconds
  otherwise.
* :func:`time_support`: the acquisition time a selection covers, as sorted
  disjoint ``[start, stop)`` intervals, used to turn counts into rates and to
  normalise g2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qdio import PhotonStream

from .selection import Intervals, Selection, _Combined, _Not

__all__ = [
    "TimeBase",
    "check_positive",
    "intersect",
    "interval_labels",
    "stream_span_s",
    "support_duration_s",
    "time_support",
]

#: Relative tolerance under which a float ratio counts as a whole number.
_INT_TOL = 1e-9


def check_positive(name: str, value: float) -> float:
    """``value`` as a float, or ValueError naming ``name`` when not finite and > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}={value!r} must be a number") from exc
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    return value


def whole(x: float) -> int | None:
    """``round(x)`` when ``x`` is a whole number within a relative 1e-9, else None."""
    r = round(x)
    if r != 0 and abs(x - r) <= _INT_TOL * abs(x):
        return int(r)
    return None


@dataclass(frozen=True)
class TimeBase:
    """How arrival times are represented for pair counting.

    ``kind == "int"``: int64 ticks of ``tick_s`` seconds (T2: the macrotime
    unit; T3: the microtime bin when the sync period is a whole number
    ``ratio`` of bins, ticks = macrotime * ratio + microtime).  Lags are exact.

    ``kind == "pulse"``: the index of the laser pulse each photon belongs to
    (``tick_s`` = the laser period), for pulsed g2(0) by pulse.

    ``kind == "float"``: float64 seconds since macrotime ``origin``
    (T3 streams whose sync period is not a whole number of microtime bins).
    Over 1e4 s the float64 spacing is 1.8e-12 s, so lags carry an error of
    a few ps at most: negligible for bins of 10 ps and more, but pairs within
    a few ps of a bin edge may land in the neighbouring bin.
    """

    kind: str
    tick_s: float
    ratio: int = 1
    origin: int = 0
    t3: bool = True
    microtime_resolution_s: float = 0.0
    macrotime_resolution_s: float = 0.0

    @classmethod
    def for_stream(cls, stream: PhotonStream) -> TimeBase:
        """The exact integer time base when one exists, else float seconds."""
        if not stream.is_t3:
            return cls(
                "int",
                stream.macrotime_resolution_s,
                1,
                0,
                False,
                0.0,
                stream.macrotime_resolution_s,
            )
        res = stream.microtime_resolution_s
        ratio = whole(stream.macrotime_resolution_s / res)
        origin = int(stream.macrotime[0]) if len(stream) else 0
        if ratio is not None:
            return cls("int", res, ratio, 0, True, res, stream.macrotime_resolution_s)
        return cls("float", 1.0, 1, origin, True, res, stream.macrotime_resolution_s)

    def check_compatible(self, stream: PhotonStream) -> None:
        """ValueError when ``stream`` has other resolutions than this time base."""
        same = stream.is_t3 == self.t3 and math.isclose(
            stream.macrotime_resolution_s, self.macrotime_resolution_s, rel_tol=1e-12
        )
        if self.t3 and same:
            same = math.isclose(
                stream.microtime_resolution_s, self.microtime_resolution_s, rel_tol=1e-12
            )
        if not same:
            raise ValueError(
                "chunks must share mode and resolutions: got macrotime_resolution_s="
                f"{stream.macrotime_resolution_s!r}, expected {self.macrotime_resolution_s!r}"
            )

    def times(self, stream: PhotonStream) -> np.ndarray:
        """Arrival times of every photon of ``stream`` in this time base."""
        mac = stream.macrotime
        if self.kind == "int":
            if not self.t3:
                return mac
            if len(mac) and int(mac[-1]) > (2**62) // self.ratio:
                raise ValueError(
                    f"macrotime {int(mac[-1])} x {self.ratio} microtime bins per period "
                    "overflows int64 ticks"
                )
            return mac * self.ratio + stream.microtime
        t = (mac - self.origin).astype(np.float64) * self.macrotime_resolution_s
        t += stream.microtime * self.microtime_resolution_s
        return t

    def lower_bound(self, macrotime: int) -> int | float:
        """Smallest time a photon with macrotime >= ``macrotime`` can have."""
        if self.kind == "pulse":
            return macrotime - 1
        if self.kind == "int":
            return macrotime * self.ratio if self.t3 else macrotime
        return float(macrotime - self.origin) * self.macrotime_resolution_s

    def to_units(self, seconds: float) -> float:
        """A duration in seconds expressed in this time base's units."""
        return seconds / self.tick_s


# -- time covered by a selection ------------------------------------------


def stream_span_s(stream: PhotonStream) -> tuple[float, float]:
    """``[first, last + 1)`` macrotime units of ``stream``, in seconds."""
    if len(stream) == 0:
        return 0.0, 0.0
    res = stream.macrotime_resolution_s
    return float(stream.macrotime[0]) * res, float(stream.macrotime[-1] + 1) * res


def intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sorted disjoint interval sets, each of shape (n, 2)."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i, 0], b[j, 0])
        hi = min(a[i, 1], b[j, 1])
        if hi > lo:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.asarray(out, np.float64).reshape(-1, 2)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = np.concatenate([a, b])
    if len(both) == 0:
        return both
    both = both[np.argsort(both[:, 0], kind="stable")]
    out = [list(both[0])]
    for lo, hi in both[1:]:
        if lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return np.asarray(out, np.float64).reshape(-1, 2)


def _complement(a: np.ndarray) -> np.ndarray:
    edges = np.concatenate([[-math.inf], a.ravel(), [math.inf]])
    out = edges.reshape(-1, 2)
    return out[out[:, 1] > out[:, 0]]


_ALL = np.array([[-math.inf, math.inf]])


def _support(selection: Selection | None) -> tuple[np.ndarray, bool]:
    """(time set, True when the selection restricts photons by time only)."""
    if selection is None:
        return _ALL, False
    if isinstance(selection, Intervals):
        pairs = np.column_stack([selection.starts_s, selection.stops_s]).reshape(-1, 2)
        return pairs.astype(np.float64), True
    if isinstance(selection, _Combined):
        parts = [_support(p) for p in selection.parts]
        sets = [p[0] for p in parts]
        out = sets[0]
        for s in sets[1:]:
            out = intersect(out, s) if selection.op == "&" else _union(out, s)
        only_time = all(p[1] for p in parts)
        if selection.op == "|" and not only_time:
            return _ALL, False  # some photons at every time
        return out, only_time
    if isinstance(selection, _Not):
        inner, only_time = _support(selection.inner)
        return (_complement(inner), True) if only_time else (_ALL, False)
    return _ALL, False  # gates, channels, other photon-wise rules


def time_support(selection: Selection | None, start_s: float, stop_s: float) -> np.ndarray:
    """The parts of ``[start_s, stop_s)`` where ``selection`` can keep photons.

    Time windows and state intervals restrict the time; gates and channel
    selections thin the photons but keep the whole time.  Returns sorted
    disjoint intervals, shape (n, 2), in seconds.

    >>> from qdinfer import time_window, channels
    >>> time_support(time_window(1, 2) & channels(0), 0.0, 10.0).tolist()
    [[1.0, 2.0]]
    >>> time_support(~time_window(1, 2), 0.0, 10.0).tolist()
    [[0.0, 1.0], [2.0, 10.0]]
    """
    sup, _ = _support(selection)
    return intersect(sup, np.array([[start_s, stop_s]], np.float64))


def support_duration_s(selection: Selection | None, start_s: float, stop_s: float) -> float:
    """Total length of :func:`time_support`, in seconds."""
    sup = time_support(selection, start_s, stop_s)
    return float(np.sum(sup[:, 1] - sup[:, 0]))


def interval_labels(stream: PhotonStream, within: Intervals) -> np.ndarray:
    """Index of the ``within`` interval holding each photon (macrotime clock), -1 outside."""
    if not isinstance(within, Intervals):
        raise TypeError(
            f"within= must be an Intervals selection (state_intervals / time_window), "
            f"got {type(within).__name__}"
        )
    t = stream.macrotime.astype(np.float64) * stream.macrotime_resolution_s
    starts = np.asarray(within.starts_s, np.float64)
    stops = np.asarray(within.stops_s, np.float64)
    if starts.size == 0:
        return np.full(len(stream), -1, np.int64)
    idx = np.searchsorted(starts, t, side="right") - 1
    inside = idx >= 0
    inside[inside] = t[inside] < stops[idx[inside]]
    return np.where(inside, idx, -1).astype(np.int64)
