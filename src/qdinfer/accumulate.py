"""One-pass analysis of files larger than memory: accumulators over ``qdio.iter_chunks``.

Each accumulator takes time-ordered chunks (:meth:`add`) and gives the same
result as the in-memory estimator on the concatenated stream
(:meth:`result`):

* :class:`DecayAccumulator` -> :func:`qdinfer.decay_histogram` (per channel),
* :class:`TraceAccumulator` -> :func:`qdinfer.intensity_trace`,
* :class:`G2Accumulator` -> :func:`qdinfer.g2_histogram`; pairs across chunk
  borders are counted exactly (the photons of the previous chunks that are
  still within the largest lag are kept),
* :class:`PulsedG2Accumulator` -> :func:`qdinfer.pulsed_g2_zero`.

IRF-relative gates are pinned to the IRF peaks of the first chunk
(:func:`qdinfer.resolve_irf_peaks`).  :func:`analyze_file` runs decay, trace,
rates and g2 in one pass with memory bounded by the chunk size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qdio import PhotonStream

from ._common import check_positive, support_duration_s, whole
from .decay import DecayHistogram, _tick_histograms, decay_from_ticks
from .g2 import (
    G2Histogram,
    PulsedG2,
    _check_channels,
    _check_windows,
    _histogram_result,
    _histogram_spec,
    _PairCounter,
    _peak_specs,
    _period_s,
    _pulse_refs,
    _pulsed_result,
    _resolve_signal_fraction,
    _rho_from_histograms,
    _side_peak_indices,
)
from .intensity import CountRates, IntensityTrace, trace_bin_index
from .selection import Intervals, Selection, gate, resolve_irf_peaks, select

__all__ = [
    "AnalysisAccumulator",
    "DecayAccumulator",
    "FileAnalysis",
    "G2Accumulator",
    "PulsedG2Accumulator",
    "TraceAccumulator",
    "analyze_file",
]


class _Base:
    """Selection pinned on the first chunk, resolutions checked on every chunk."""

    def __init__(self, selection: Selection | None) -> None:
        self.selection = selection
        self._first: PhotonStream | None = None
        self._last_macrotime: int | None = None

    def _start(self, chunk: PhotonStream) -> bool:
        """Bookkeeping; False for an empty chunk."""
        if len(chunk) == 0:
            return False
        if self._first is None:
            self._first = chunk
            self.selection = resolve_irf_peaks(self.selection, chunk)
        else:
            f = self._first
            if (
                chunk.macrotime_resolution_s != f.macrotime_resolution_s
                or chunk.microtime_resolution_s != f.microtime_resolution_s
                or chunk.n_microtime_bins != f.n_microtime_bins
            ):
                raise ValueError("chunks must share mode and resolutions")
            if int(chunk.macrotime[0]) < self._last_macrotime:
                raise ValueError(
                    f"chunks must be in time order: macrotime {int(chunk.macrotime[0])} "
                    f"follows {self._last_macrotime}"
                )
        self._last_macrotime = int(chunk.macrotime[-1])
        return True

    def _require_data(self, what: str) -> PhotonStream:
        if self._first is None:
            raise ValueError(f"{what}: no photons were added")
        return self._first


def _per_channel_ticks(stream: PhotonStream) -> dict[int, np.ndarray]:
    """Photons per microtime bin of each channel, in one pass (int64)."""
    nb = stream.n_microtime_bins
    top = int(stream.channel.max()) + 1
    idx = stream.channel.astype(np.int64) * nb + stream.microtime
    hist = np.bincount(idx, minlength=top * nb).reshape(top, nb)
    return {c: hist[c].astype(np.int64) for c in range(top) if hist[c].any()}


class DecayAccumulator(_Base):
    """Decay histograms per channel over chunks.

    Parameters
    ----------
    selection : Selection, optional
        Photons to count (e.g. a gate or a state).
    """

    def __init__(self, selection: Selection | None = None) -> None:
        super().__init__(selection)
        self.ticks: dict[int, np.ndarray] = {}

    def add(self, chunk: PhotonStream) -> None:
        """Count the selected photons of ``chunk``."""
        if not self._start(chunk):
            return
        if not chunk.is_t3:
            raise ValueError("DecayAccumulator needs T3 chunks (with microtimes)")
        sel = select(chunk, self.selection)
        if len(sel) == 0:
            return
        for c, h in _per_channel_ticks(sel).items():
            if c in self.ticks:
                self.ticks[c] += h
            else:
                self.ticks[c] = h

    def result(
        self, *, channel: int | Sequence[int] | None = None, bin_width_s: float | None = None
    ) -> DecayHistogram:
        """The decay of one channel, several (summed) or all (None)."""
        first = self._require_data("DecayAccumulator")
        if channel is None:
            chans = sorted(self.ticks)
        else:
            chans = [int(c) for c in np.atleast_1d(channel)]
        total = np.zeros(first.n_microtime_bins, np.int64)
        for c in chans:
            if c in self.ticks:
                total += self.ticks[c]
        return decay_from_ticks(
            total,
            tick_s=first.microtime_resolution_s,
            period_s=first.laser_period_s,
            bin_width_s=bin_width_s,
            channels=[c for c in chans if c in self.ticks],
        )

    def per_channel(self, *, bin_width_s: float | None = None) -> dict[int, DecayHistogram]:
        """Decay of every channel that had photons."""
        return {c: self.result(channel=c, bin_width_s=bin_width_s) for c in sorted(self.ticks)}


class TraceAccumulator(_Base):
    """Intensity trace (and photons per channel) over chunks.

    Parameters
    ----------
    bin_width_s : float
        Trace bin width (default 10 ms).
    selection : Selection, optional
    """

    def __init__(self, bin_width_s: float = 10e-3, selection: Selection | None = None) -> None:
        super().__init__(selection)
        self.bin_width_s = check_positive("bin_width_s", bin_width_s)
        self.counts = np.zeros(0, np.int64)
        self.per_channel: dict[int, int] = {}

    def add(self, chunk: PhotonStream) -> None:
        """Count the selected photons of ``chunk`` into the trace bins."""
        if not self._start(chunk):
            return
        sel = select(chunk, self.selection)
        for c, n in sel.counts_per_channel().items():
            self.per_channel[c] = self.per_channel.get(c, 0) + n
        if len(sel) == 0:
            return
        idx = trace_bin_index(sel.macrotime, chunk.macrotime_resolution_s, self.bin_width_s)
        top = int(idx[-1]) + 1
        if top > len(self.counts):
            grown = np.zeros(max(top, 2 * len(self.counts)), np.int64)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        self.counts[:top] += np.bincount(idx, minlength=top)[:top]

    def span_s(self) -> tuple[float, float]:
        first = self._require_data("TraceAccumulator")
        res = first.macrotime_resolution_s
        return float(first.macrotime[0]) * res, float(self._last_macrotime + 1) * res

    def result(self) -> IntensityTrace:
        """The trace up to the last complete bin before the last photon."""
        if self._first is None:
            return IntensityTrace(np.zeros(0, np.int64), np.zeros(1))
        _, stop = self.span_s()
        n_bins = max(0, math.floor(stop / self.bin_width_s + 1e-9))
        counts = np.zeros(n_bins, np.int64)
        m = min(n_bins, len(self.counts))
        counts[:m] = self.counts[:m]
        return IntensityTrace(counts, np.arange(n_bins + 1) * self.bin_width_s)

    def rates(self, *, duration_s: float | None = None) -> CountRates:
        """Photon rate per channel (see :func:`qdinfer.count_rates`)."""
        if duration_s is None:
            start, stop = self.span_s()
            duration = support_duration_s(self.selection, start, stop)
        else:
            duration = check_positive("duration_s", duration_s)
        if duration <= 0:
            raise ValueError("rates: the selection covers no time")
        counts = dict(sorted(self.per_channel.items()))
        return CountRates(
            counts,
            duration,
            {c: n / duration for c, n in counts.items()},
            {c: math.sqrt(n) / duration for c, n in counts.items()},
        )


class G2Accumulator:
    """:func:`qdinfer.g2_histogram` over chunks (exact across chunk borders)."""

    def __init__(
        self,
        *,
        channels: tuple[int, int] = (0, 1),
        max_lag_s: float | None = None,
        bin_width_s: float,
        selection: Selection | None = None,
        within: Intervals | None = None,
        lag_range_s: tuple[float, float] | None = None,
    ) -> None:
        self.spec = _histogram_spec(max_lag_s, bin_width_s, lag_range_s)
        self.counter = _PairCounter(channels, [self.spec], selection, within)
        self._pinned = False

    def add(self, chunk: PhotonStream) -> None:
        """Count the pairs that involve photons of ``chunk``."""
        if len(chunk) and not self._pinned:
            self.counter.selection = resolve_irf_peaks(self.counter.selection, chunk)
            self._pinned = True
        self.counter.add(chunk)

    def result(self) -> G2Histogram:
        return _histogram_result(self.counter, self.spec, self.counter.counts[0])


class PulsedG2Accumulator:
    """:func:`qdinfer.pulsed_g2_zero` over chunks (same parameters)."""

    def __init__(
        self,
        *,
        channels: tuple[int, int] = (0, 1),
        selection: Selection | None = None,
        side_peaks: str | Sequence[int] = "near",
        n_side_peaks: int = 10,
        far_lag_s: float = 1e-4,
        signal_fraction: str | tuple[float, float] | None = None,
        period_s: float | None = None,
        within: Intervals | None = None,
        windows: str = "auto",
        pulse_start_s: float | dict[int, float] | None = None,
    ) -> None:
        self._args = (side_peaks, n_side_peaks, far_lag_s)
        self.windows = windows
        self.pulse_start_s = pulse_start_s
        self.period_s = None if period_s is None else check_positive("period_s", period_s)
        self.channels = channels
        self.selection = selection
        self.within = within
        self.signal_fraction = signal_fraction
        if isinstance(signal_fraction, str) and signal_fraction != "auto":
            raise ValueError(
                f"signal_fraction={signal_fraction!r}: use None, 'auto' or (rho_a, rho_b)"
            )
        self.counter: _PairCounter | None = None
        self._full: dict[int, np.ndarray] = {}
        self._sel: dict[int, np.ndarray] = {}
        self._first: PhotonStream | None = None

    def add(self, chunk: PhotonStream) -> None:
        """Count the pairs that involve photons of ``chunk``."""
        if len(chunk) == 0:
            return
        if self.counter is None:
            self._first = chunk
            self.period_s = _period_s(chunk, self.period_s)
            self.selection = resolve_irf_peaks(self.selection, chunk)
            self.peaks, self.side = _side_peak_indices(*self._args, self.period_s)
            self.specs = _peak_specs(self.peaks, self.period_s)
            self.windows = _check_windows(self.windows, chunk)
            refs = None
            self.lag_offset_s = 0.0
            chans = _check_channels(self.channels)
            if self.windows == "pulse":
                # pulse starts from the IRF peaks of the first chunk
                refs = _pulse_refs(chunk, chans, self.pulse_start_s)
                self.lag_offset_s = refs[chans[1]] - refs[chans[0]]
            self.counter = _PairCounter(
                chans, self.specs, self.selection, self.within, pulse_refs=refs
            )
        self.counter.add(chunk)
        if self.signal_fraction == "auto":
            if not chunk.is_t3:
                raise ValueError("signal_fraction='auto' needs T3 data (microtimes)")
            for c in dict.fromkeys(self.counter.channels):
                full = chunk.take(chunk.channel == c)
                sel = select(full, self.selection)
                for store, s in ((self._full, full), (self._sel, sel)):
                    h = _tick_histograms(s)
                    store[c] = store[c] + h if c in store else h

    def result(self) -> PulsedG2:
        if self.counter is None:
            raise ValueError("PulsedG2Accumulator: no photons were added")
        rho = None
        if self.signal_fraction == "auto":
            a, b = self.counter.channels
            r = {}
            for c in (a, b):
                if c not in self._full:
                    raise ValueError(f"pulsed g2(0): channel {c} has no photons")
                r[c] = _rho_from_histograms(self._full[c], self._sel[c], self._first)
            rho = (r[a], r[b])
        elif self.signal_fraction is not None:
            rho = _resolve_signal_fraction(self.signal_fraction, None, self.channels, None)
        return _pulsed_result(
            self.counter,
            self.specs,
            self.peaks,
            self.side,
            self.period_s,
            rho,
            self.windows,
            self.lag_offset_s,
        )


# -- one pass over a file ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class FileAnalysis:
    """Everything :func:`analyze_file` measured in its one pass.

    Attributes
    ----------
    path : str
    attrs : dict
        Header facts of the first chunk (format, instrument, ...).
    is_t3 : bool
    n_photons : int
    rates : CountRates
        Photons and rate per channel.
    trace : IntensityTrace
        All photons.
    decays : dict
        channel -> DecayHistogram (T3 only; empty for T2).
    gated_decays : dict
        channel -> DecayHistogram of the gated photons (when a gate is set).
    g2 : G2Histogram or None
        Between ``g2_channels``; None with the reason in ``skipped``.
    g2_gated : G2Histogram or None
    g2_zero, g2_zero_gated : PulsedG2 or None
        Pulsed g2(0) (T3), ungated and gated, near side peaks.
    g2_channels : tuple of int, or None
    gate : Selection or None
        The gate, with its IRF peaks pinned.
    skipped : dict
        What was not measured, and why.
    first_chunk_photons : int
        Photons of the first chunk, from which the gate's IRF peaks, the
        default g2 channels and the pulse starts were taken.
    """

    path: str
    attrs: dict[str, Any]
    is_t3: bool
    n_photons: int
    rates: CountRates
    trace: IntensityTrace
    decays: dict[int, DecayHistogram] = field(default_factory=dict)
    gated_decays: dict[int, DecayHistogram] = field(default_factory=dict)
    g2: G2Histogram | None = None
    g2_gated: G2Histogram | None = None
    g2_zero: PulsedG2 | None = None
    g2_zero_gated: PulsedG2 | None = None
    g2_channels: tuple[int, int] | None = None
    gate: Selection | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    first_chunk_photons: int = 0


def _default_g2_window(stream: PhotonStream) -> tuple[float, float]:
    """(max_lag_s, bin_width_s): max(3.5 periods, 1 us) in ~period/100 bins (T3),
    1 us in 1 ns bins (T2)."""
    if stream.is_t3:
        period = stream.laser_period_s
        tick = stream.microtime_resolution_s
        k = max(1, round(period / 100 / tick))
        return max(3.5 * period, 1e-6), k * tick
    tick = stream.macrotime_resolution_s
    k = whole(1e-9 / tick) or max(1, round(1e-9 / tick))
    return 1e-6, k * tick


class AnalysisAccumulator:
    """Decay, trace, rates and g2 over time-ordered chunks, readable at any time.

    The one pass of :func:`analyze_file` as an object: :meth:`add` chunks as
    they come (from :func:`qdio.iter_chunks`, or from a :class:`qdio.PtuFollower`
    on a file still being written) and call :meth:`result` whenever an
    up-to-date :class:`FileAnalysis` is wanted; it equals :func:`analyze_file`
    of the photons added so far.  What depends on the data (the gate's IRF
    peaks, the default g2 channels and window, the pulse starts of pulsed
    g2(0)) is fixed on the first chunk.

    Parameters
    ----------
    gate_s, gate_relative_to, g2_channels, trace_bin_width_s, g2_max_lag_s, g2_bin_width_s
        As for :func:`analyze_file`.
    min_first_photons : int
        Photons the first chunk must hold (default 0: the first non-empty
        chunk).  Smaller chunks are held back and joined until there are this
        many, so that IRF peaks and pulse starts are not taken from a handful
        of photons (a live file's first poll); :meth:`flush` takes whatever
        arrived, for data that end early.
    path : str
        Named in messages and in the result.
    """

    def __init__(
        self,
        *,
        gate_s: float | None = None,
        gate_relative_to: str = "irf_peak",
        g2_channels: tuple[int, int] | None = None,
        trace_bin_width_s: float = 10e-3,
        g2_max_lag_s: float | None = None,
        g2_bin_width_s: float | None = None,
        min_first_photons: int = 0,
        path: str | os.PathLike = "",
    ) -> None:
        if int(min_first_photons) != min_first_photons or min_first_photons < 0:
            raise ValueError(f"{min_first_photons=} must be an integer >= 0")
        self.path = os.fspath(path)
        self.gate_s = gate_s
        self.gate = None if gate_s is None else gate(min_s=gate_s, relative_to=gate_relative_to)
        self.g2_channels = g2_channels
        self.g2_window = (g2_max_lag_s, g2_bin_width_s)
        self.min_first_photons = int(min_first_photons)
        self.trace = TraceAccumulator(trace_bin_width_s)
        self.decay = DecayAccumulator()
        self.gated_decay = DecayAccumulator(self.gate) if self.gate is not None else None
        self.g2: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.first: PhotonStream | None = None
        self._pending: list[PhotonStream] = []
        self._n_pending = 0

    @property
    def started(self) -> bool:
        """True once the first chunk was taken (results are available)."""
        return self.first is not None

    @property
    def n_pending(self) -> int:
        """Photons held back until ``min_first_photons`` arrive."""
        return self._n_pending

    @property
    def n_photons(self) -> int:
        """Photons counted so far (held-back ones excluded)."""
        return int(sum(self.trace.per_channel.values()))

    def add(self, chunk: PhotonStream) -> None:
        """Count ``chunk`` (it must follow the previous chunks in time)."""
        if len(chunk) == 0:
            return
        if self.first is None:
            self._pending.append(chunk)
            self._n_pending += len(chunk)
            if self._n_pending >= self.min_first_photons:
                self.flush()
            return
        self._add(chunk)

    def flush(self) -> None:
        """Take the held-back photons as the first chunk, however few they are."""
        if self.first is not None or not self._pending:
            return
        import qdio

        pending, self._pending, self._n_pending = self._pending, [], 0
        first = pending[0] if len(pending) == 1 else qdio.concatenate(pending)
        self._start(first)
        self._add(first)

    def _start(self, chunk: PhotonStream) -> None:
        if self.gate is not None:
            if not chunk.is_t3:
                raise ValueError(f"gate_s={self.gate_s!r}: a microtime gate needs T3 data")
            if self.gate_s >= chunk.macrotime_resolution_s:
                raise ValueError(
                    f"gate_s={self.gate_s!r} lies beyond the sync period "
                    f"{chunk.macrotime_resolution_s!r} s"
                )
            self.gate = resolve_irf_peaks(self.gate, chunk)
            self.gated_decay.selection = self.gate
        self.g2 = _make_g2_accumulators(
            chunk, self.g2_channels, self.gate, *self.g2_window, self.skipped
        )
        self.first = chunk

    def _add(self, chunk: PhotonStream) -> None:
        self.trace.add(chunk)
        if chunk.is_t3:
            self.decay.add(chunk)
            if self.gated_decay is not None:
                self.gated_decay.add(chunk)
        for acc in self.g2.values():
            acc.add(chunk)

    def result(self) -> FileAnalysis:
        """Everything measured so far (call :meth:`flush` first if data ended early)."""
        if self.first is None:
            if self._pending:
                raise ValueError(
                    f"{self.path}: {self._n_pending} photons held back until "
                    f"min_first_photons={self.min_first_photons} arrive; call flush() first"
                )
            raise ValueError(f"{self.path}: the file holds no photons")
        skipped = dict(self.skipped)
        results: dict[str, Any] = {}
        for name, acc in self.g2.items():
            try:
                results[name] = acc.result()
            except ValueError as exc:
                skipped[name] = str(exc)
        first = self.first
        return FileAnalysis(
            path=self.path,
            attrs=dict(first.attrs),
            is_t3=first.is_t3,
            n_photons=self.n_photons,
            rates=self.trace.rates(),
            trace=self.trace.result(),
            decays=self.decay.per_channel() if first.is_t3 else {},
            gated_decays=self.gated_decay.per_channel() if self.gated_decay is not None else {},
            g2=results.get("g2"),
            g2_gated=results.get("g2_gated"),
            g2_zero=results.get("g2_zero"),
            g2_zero_gated=results.get("g2_zero_gated"),
            g2_channels=_g2_pair(self.g2),
            gate=self.gate,
            skipped=skipped,
            first_chunk_photons=len(first),
        )


def analyze_file(
    path: str | os.PathLike,
    *,
    gate_s: float | None = None,
    gate_relative_to: str = "irf_peak",
    g2_channels: tuple[int, int] | None = None,
    trace_bin_width_s: float = 10e-3,
    g2_max_lag_s: float | None = None,
    g2_bin_width_s: float | None = None,
    max_records: int = 1 << 21,
    progress: bool = False,
    chunks: Iterable[PhotonStream] | None = None,
) -> FileAnalysis:
    """Decay, trace, rates and g2 of a file in one pass over its chunks.

    Parameters
    ----------
    path : path-like
        Any file :func:`qdio.read` understands.
    gate_s : float, optional
        Also measure with the gate ``t >= gate_s`` after each channel's IRF
        peak (``gate_relative_to="sync"``: after the sync).
    g2_channels : (int, int), optional
        Channels to correlate (default: the two with the most photons in the
        first chunk).
    trace_bin_width_s : float
        Intensity-trace bin (default 10 ms).
    g2_max_lag_s, g2_bin_width_s : float, optional
        g2 histogram window and bins (default: ±3.5 periods in bins of about
        a hundredth of the period for T3; ±1 us in 1 ns bins for T2).
    max_records : int
        Records per chunk; memory grows with it (a 1 GB PTU at the default
        2**21 peaked at 320 MiB resident, 177 MiB above the imports).
    progress : bool
        Show a tqdm progress bar.
    chunks : iterable of PhotonStream, optional
        Use these chunks instead of reading ``path`` (tests, simulations).

    Returns
    -------
    FileAnalysis

    See Also
    --------
    AnalysisAccumulator : the same pass, chunk by chunk, readable at any time.
    """
    if chunks is None:
        import qdio

        chunks = qdio.iter_chunks(path, max_records=max_records)
    acc = AnalysisAccumulator(
        gate_s=gate_s,
        gate_relative_to=gate_relative_to,
        g2_channels=g2_channels,
        trace_bin_width_s=trace_bin_width_s,
        g2_max_lag_s=g2_max_lag_s,
        g2_bin_width_s=g2_bin_width_s,
        path=path,
    )
    bar = None
    try:
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            if bar is None and progress and chunk.attrs.get("n_records"):
                from tqdm import tqdm

                bar = tqdm(total=chunk.attrs["n_records"], unit="rec", unit_scale=True, leave=False)
            if bar is not None:
                bar.n = int(chunk.attrs.get("chunk_first_record", 0))
                bar.refresh()
            acc.add(chunk)
    finally:
        if bar is not None:
            bar.close()
    return acc.result()


def _g2_pair(accs: dict[str, Any]) -> tuple[int, int] | None:
    acc = accs.get("g2")
    return None if acc is None else acc.counter.channels


def _make_g2_accumulators(first, g2_channels, gate_sel, max_lag_s, bin_width_s, skipped):
    if g2_channels is None:
        counts = first.counts_per_channel()
        if len(counts) < 2:
            skipped["g2"] = (
                f"only channel {list(counts)} has photons in the first chunk; "
                "g2 needs two channels (g2_channels=, or --channels A,B on the command line)"
            )
            return {}
        busiest = sorted(counts, key=lambda c: (-counts[c], c))[:2]
        g2_channels = tuple(sorted(busiest))
    default_lag, default_bin = _default_g2_window(first)
    max_lag_s = default_lag if max_lag_s is None else max_lag_s
    bin_width_s = default_bin if bin_width_s is None else bin_width_s
    accs: dict[str, Any] = {
        "g2": G2Accumulator(channels=g2_channels, max_lag_s=max_lag_s, bin_width_s=bin_width_s)
    }
    if gate_sel is not None:
        accs["g2_gated"] = G2Accumulator(
            channels=g2_channels, max_lag_s=max_lag_s, bin_width_s=bin_width_s, selection=gate_sel
        )
    if first.is_t3:
        accs["g2_zero"] = PulsedG2Accumulator(channels=g2_channels)
        if gate_sel is not None:
            accs["g2_zero_gated"] = PulsedG2Accumulator(channels=g2_channels, selection=gate_sel)
    return accs
