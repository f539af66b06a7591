"""Photon selections: "select photons, then measure".

A :class:`Selection` maps a :class:`~qdio.PhotonStream` to a boolean mask
over its photons.  Selections compose with ``&``, ``|`` and ``~`` and every
estimator takes ``selection=``.  They hold no data of their own beyond their
parameters, so the same selection applies to every chunk of a file.

>>> import numpy as np, qdio
>>> s = qdio.PhotonStream(np.array([0, 1, 0], np.uint8), np.array([0, 1, 2]),
...                       np.array([5, 50, 500]), 4e-7, 1e-10, 4096)
>>> sel = gate(min_s=1e-9) & channels(0)
>>> sel.mask(s).tolist()
[False, False, True]
>>> select(s, ~sel).macrotime.tolist()
[0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qdio import PhotonStream

__all__ = [
    "Selection",
    "channels",
    "everything",
    "gate",
    "irf_peak_bins",
    "resolve_irf_peaks",
    "select",
    "state_intervals",
    "time_window",
]


class Selection:
    """Base class: a rule that keeps some photons of a stream."""

    def mask(self, stream: PhotonStream) -> np.ndarray:
        """Boolean array, True for the photons kept."""
        raise NotImplementedError(f"{type(self).__name__} must implement mask()")

    def __and__(self, other: Selection) -> Selection:
        return _Combined("&", (self, _check(other)))

    def __or__(self, other: Selection) -> Selection:
        return _Combined("|", (self, _check(other)))

    def __invert__(self) -> Selection:
        return _Not(self)


def _check(other: object) -> Selection:
    if not isinstance(other, Selection):
        raise TypeError(f"can only combine selections, got {type(other).__name__}")
    return other


@dataclass(frozen=True)
class _Combined(Selection):
    op: str
    parts: tuple[Selection, ...]

    def mask(self, stream: PhotonStream) -> np.ndarray:
        out = self.parts[0].mask(stream)
        for part in self.parts[1:]:
            out = (out & part.mask(stream)) if self.op == "&" else (out | part.mask(stream))
        return out

    def __repr__(self) -> str:
        return "(" + f" {self.op} ".join(map(repr, self.parts)) + ")"


@dataclass(frozen=True)
class _Not(Selection):
    inner: Selection

    def mask(self, stream: PhotonStream) -> np.ndarray:
        return ~self.inner.mask(stream)

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


@dataclass(frozen=True)
class _Everything(Selection):
    def mask(self, stream: PhotonStream) -> np.ndarray:
        return np.ones(len(stream), bool)


def everything() -> Selection:
    """The selection that keeps every photon."""
    return _Everything()


def irf_peak_bins(stream: PhotonStream, *, smooth_bins: int = 3) -> dict[int, int]:
    """Microtime bin of the decay maximum (the IRF peak) for each channel.

    The histogram is smoothed over ``smooth_bins`` bins so that one noisy bin
    does not win.  Channels differ by their cable delays, hence one per channel.
    """
    if stream.microtime is None:
        raise ValueError("irf_peak_bins needs a T3 stream (with microtimes)")
    peaks: dict[int, int] = {}
    kernel = np.ones(max(1, smooth_bins)) / max(1, smooth_bins)
    for c in stream.channels.tolist():
        hist = np.bincount(stream.microtime[stream.channel == c], minlength=1)
        peaks[int(c)] = int(np.argmax(np.convolve(hist, kernel, mode="same")))
    return peaks


@dataclass(frozen=True)
class Gate(Selection):
    """Microtime gate: keep ``min_s <= t < max_s`` after the sync or after the IRF peak.

    ``relative_to="irf_peak"`` measures delays from each channel's IRF peak
    (:func:`irf_peak_bins` of the stream being masked, unless ``peak_bins``
    fixes them, which is what chunked analyses do), wrapped around the laser
    period into [-0.05 P, 0.95 P): a photon whose delay carried it past the
    end of the period is a late photon, not an early one.
    """

    min_s: float = 0.0
    max_s: float | None = None
    relative_to: str = "sync"
    peak_bins: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.min_s):
            raise ValueError(f"gate min_s={self.min_s!r} must be finite")
        if self.max_s is not None and not self.max_s > self.min_s:
            raise ValueError(f"gate max_s={self.max_s!r} must be > min_s={self.min_s!r}")
        if self.relative_to not in ("sync", "irf_peak"):
            raise ValueError(f"gate relative_to={self.relative_to!r}: use 'sync' or 'irf_peak'")

    def mask(self, stream: PhotonStream) -> np.ndarray:
        if stream.microtime is None:
            raise ValueError("a microtime gate needs a T3 stream; this one is T2")
        res = stream.microtime_resolution_s
        period = stream.laser_period_s
        if self.relative_to == "sync" and self.min_s >= period:
            raise ValueError(
                f"gate min_s={self.min_s:.4g} s lies beyond the sync period {period:.4g} s"
            )
        t = stream.microtime.astype(np.float64) * res
        if self.relative_to == "irf_peak":
            peaks = dict(self.peak_bins) if self.peak_bins else irf_peak_bins(stream)
            offset = np.zeros(256)
            for c, b in peaks.items():
                offset[c] = b * res
            # delays from the peak, wrapped into [-5 % P, 95 % P): a late photon
            # whose delay carried it past the end of the period counts as late
            m = 0.05 * period
            t = (t - offset[stream.channel] + m) % period - m
        keep = t >= self.min_s
        if self.max_s is not None:
            keep &= t < self.max_s
        return keep


def gate(min_s: float = 0.0, max_s: float | None = None, *, relative_to: str = "sync") -> Gate:
    """Microtime gate selection (see :class:`Gate`).

    >>> gate(min_s=2.5e-9, relative_to="irf_peak")
    Gate(min_s=2.5e-09, max_s=None, relative_to='irf_peak', peak_bins=None)
    """
    return Gate(float(min_s), None if max_s is None else float(max_s), relative_to)


@dataclass(frozen=True)
class Channels(Selection):
    """Keep photons detected on any of these channels (a detector, or a spectral band)."""

    channels: tuple[int, ...]

    def mask(self, stream: PhotonStream) -> np.ndarray:
        lut = np.zeros(256, bool)
        lut[list(self.channels)] = True
        return lut[stream.channel]


def channels(*chans: int | Iterable[int]) -> Channels:
    """Channel selection: ``channels(0)``, ``channels(0, 1)`` or ``channels([2, 3])``."""
    flat: list[int] = []
    for c in chans:
        flat.extend([c] if isinstance(c, (int, np.integer)) else list(c))
    if not flat or any(not 0 <= int(c) <= 255 for c in flat):
        raise ValueError(f"channels{chans!r}: need channel numbers in 0..255")
    return Channels(tuple(sorted({int(c) for c in flat})))


@dataclass(frozen=True)
class Intervals(Selection):
    """Keep photons whose arrival falls inside any ``[start_s, stop_s)`` interval."""

    starts_s: tuple[float, ...]
    stops_s: tuple[float, ...]
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        a, b = np.asarray(self.starts_s), np.asarray(self.stops_s)
        if a.shape != b.shape or np.any(~(b > a)):
            raise ValueError("intervals need matching starts_s < stops_s")
        if a.size > 1 and np.any(a[1:] < b[:-1]):
            raise ValueError("intervals must be sorted and must not overlap")

    def mask(self, stream: PhotonStream) -> np.ndarray:
        t = stream.macrotime.astype(np.float64) * stream.macrotime_resolution_s
        if not self.starts_s:
            return np.zeros(len(stream), bool)
        idx = np.searchsorted(np.asarray(self.starts_s), t, side="right") - 1
        inside = idx >= 0
        stops = np.asarray(self.stops_s)
        inside[inside] = t[inside] < stops[idx[inside]]
        return inside


def time_window(start_s: float = 0.0, stop_s: float = math.inf) -> Intervals:
    """Photons detected between ``start_s`` and ``stop_s`` into the acquisition."""
    return Intervals((float(start_s),), (float(stop_s),), label="time window")


def state_intervals(
    starts_s: Sequence[float], stops_s: Sequence[float], *, label: str = ""
) -> Intervals:
    """Photons inside the given intervals (e.g. the periods classed as one emission state)."""
    return Intervals(
        tuple(float(x) for x in starts_s), tuple(float(x) for x in stops_s), label=label
    )


def select(stream: PhotonStream, selection: Selection | None) -> PhotonStream:
    """The photons of ``stream`` kept by ``selection`` (all of them for None)."""
    if selection is None:
        return stream
    return stream.take(_check(selection).mask(stream))


def resolve_irf_peaks(selection: Selection | None, stream: PhotonStream) -> Selection | None:
    """``selection`` with every IRF-relative gate pinned to the IRF peaks of ``stream``.

    Chunked analyses call this on the first chunk so that every later chunk
    is gated from the same peaks (a gate left unpinned would find its peaks
    again in each chunk).  Gates already pinned, and other selections, are
    kept as they are.

    >>> import numpy as np, qdio
    >>> s = qdio.PhotonStream(np.array([0, 0, 0, 0, 1], np.uint8), np.arange(5),
    ...                       np.array([6, 7, 7, 8, 9]), 4e-7, 1e-10, 4096)
    >>> resolve_irf_peaks(gate(min_s=1e-9, relative_to="irf_peak"), s).peak_bins
    ((0, 7), (1, 8))
    """
    if selection is None:
        return None
    if isinstance(selection, Gate):
        if selection.relative_to == "irf_peak" and selection.peak_bins is None:
            peaks = tuple(sorted(irf_peak_bins(stream).items()))
            return Gate(selection.min_s, selection.max_s, selection.relative_to, peaks)
        return selection
    if isinstance(selection, _Combined):
        return _Combined(selection.op, tuple(resolve_irf_peaks(p, stream) for p in selection.parts))
    if isinstance(selection, _Not):
        return _Not(resolve_irf_peaks(selection.inner, stream))
    return selection
