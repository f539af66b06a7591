"""Second-order correlation g2: exact pair histograms, pulsed g2(0), normalised g2.

Every function counts pairs of photons (one on channel a, one on channel b)
by the difference of their arrival times, ``lag = t_b - t_a``, with a numba
two-pointer loop (:mod:`qdinfer._g2_numba`; large inputs in parallel blocks,
with integer sums that do not depend on the number of threads): no pair is
binned twice and no time is rounded to a coarser clock first.

* :func:`g2_histogram`: coincidence counts over ``[-max_lag_s, max_lag_s)``
  in bins of ``bin_width_s`` (edges at whole multiples of the bin width, so
  lag 0 is an edge), with the counts expected for uncorrelated photons, hence
  the normalised g2 for T2 / continuous-wave data (:attr:`G2Histogram.g2`).
* :func:`pulsed_g2_zero`: pulsed g2(0) = centre-peak area / mean side-peak
  area with its Poisson uncertainty, near or far side peaks, and the
  background correction of MODEL.md section 3.
* :func:`g2_zero_vs_gate`: pulsed g2(0) for a series of microtime gates
  (lifetime-gated g2).
* ``within=``: state-resolved g2 that counts only pairs whose two photons
  fall inside the same interval (e.g. one visit to the bright state).

Times are exact integers (ticks of the microtime bin, or of the T2 time tag)
whenever the sync period is a whole number of microtime bins; otherwise float64
seconds, good to a few ps over hours (see :class:`qdinfer._common.TimeBase`).

The same pair counter accumulates over the chunks of a file
(:class:`qdinfer.G2Accumulator`): pairs across chunk borders are counted
exactly by keeping the photons of the previous chunk that are still within
the largest lag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qdio import PhotonStream

from . import _g2_numba as _k
from ._common import (
    TimeBase,
    check_positive,
    intersect,
    interval_labels,
    time_support,
)
from .selection import Intervals, Selection, everything, select

__all__ = [
    "G2Histogram",
    "PulsedG2",
    "correct_g2_background",
    "g2_histogram",
    "g2_zero_vs_gate",
    "pulsed_g2_zero",
    "signal_fractions",
]


# -- results --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class G2Histogram:
    """Coincidence histogram ``counts[k]`` of lags in ``[edges_s[k], edges_s[k+1])``.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_bins,)
        Pairs (photon on ``channels[0]``, photon on ``channels[1]``) per lag bin.
    edges_s : ndarray of float64, shape (n_bins + 1,)
        Lag bin edges in seconds, lag = t(channel b) - t(channel a).
    channels : tuple of int
        (a, b).
    n_a, n_b : int
        Photons of each channel that were correlated (after the selection).
    duration_s : float
        Acquisition time the selection covers, used for the normalisation.
    expected : ndarray of float64, shape (n_bins,)
        Counts expected for uncorrelated photons at constant rates:
        ``n_a n_b / T^2 * bin_width * overlap(lag)``, where ``overlap`` is the
        time both photons can be observed (``T - |lag|`` for one window); with
        ``within`` intervals, the sum of that over the intervals with each
        interval's own rates.
    """

    counts: np.ndarray
    edges_s: np.ndarray
    channels: tuple[int, int]
    n_a: int
    n_b: int
    duration_s: float
    expected: np.ndarray = field(repr=False)

    @property
    def bin_width_s(self) -> float:
        """Width of the lag bins, in seconds."""
        return float(self.edges_s[1] - self.edges_s[0])

    @property
    def centers_s(self) -> np.ndarray:
        """Lag bin centres, in seconds."""
        return 0.5 * (self.edges_s[1:] + self.edges_s[:-1])

    @property
    def defined(self) -> np.ndarray:
        """True for the bins where uncorrelated photons could give pairs (``expected > 0``)."""
        return self.expected > 0

    @property
    def g2(self) -> np.ndarray:
        """Normalised g2: ``counts / expected`` (1 for uncorrelated photons).

        Bins with ``expected == 0`` (lags longer than every observed window)
        hold NaN; :attr:`defined` marks the others.
        """
        out = np.full(self.counts.shape, np.nan)
        ok = self.defined
        out[ok] = self.counts[ok] / self.expected[ok]
        return out

    @property
    def g2_stderr(self) -> np.ndarray:
        """Poisson standard error of :attr:`g2`: ``sqrt(max(counts, 1)) / expected``."""
        out = np.full(self.counts.shape, np.nan)
        ok = self.defined
        out[ok] = np.sqrt(np.maximum(self.counts[ok], 1)) / self.expected[ok]
        return out


@dataclass(frozen=True, eq=False)
class PulsedG2:
    """Pulsed g2(0): centre-peak area over the mean side-peak area.

    Attributes
    ----------
    value, stderr : float
        g2(0) and its standard error; background-corrected when
        ``signal_fraction`` is set, else equal to ``raw_value`` / ``raw_stderr``.
    raw_value, raw_stderr : float
        Uncorrected ratio ``C / mean(S_k / w_k)`` and
        ``raw_value * sqrt(1/C + 1/sum(S_k))`` (Poisson counts; with C = 0 the
        error uses one count).
    centre_counts : int
        Pairs in the centre peak (k = 0).
    side_counts : ndarray of int64
        Pairs in each side peak k of ``side_peaks``.
    side_peaks : ndarray of int64
        Peak indices k of the side peaks used.
    side_weights : ndarray of float64
        ``w_k``: pairs expected in side peak k relative to the centre for
        uncorrelated photons (1 but for finite acquisitions, time windows and
        ``within`` intervals: ``(T - |k| P) / T`` for one window of length T).
    period_s : float
        Laser period P.
    channels : tuple of int
    n_a, n_b : int
        Photons correlated on each channel.
    side : str
        "near", "far" or "custom".
    windows : str
        "pulse": peak k holds the pairs whose photons belong to pulses k
        apart; "lag": pairs with lag in ``[(k - 1/2) P, (k + 1/2) P)``.
    lag_offset_s : float
        Where the peaks sit: peak k is centred near ``k P + lag_offset_s``
        (the difference of the two channels' pulse starts; 0 for "lag").
    signal_fraction : tuple of float, or None
        (rho_a, rho_b) = S / (S + B) per channel used for the correction.
    side_uniformity_pvalue : float
        Chi-square p-value that all side peaks (weighted) share one mean.
        Small values flag uneven side peaks: blinking bunching (near peaks
        high) or detector / TCSPC dead time (near peaks low).
    """

    value: float
    stderr: float
    raw_value: float
    raw_stderr: float
    centre_counts: int
    side_counts: np.ndarray
    side_peaks: np.ndarray
    side_weights: np.ndarray
    period_s: float
    channels: tuple[int, int]
    n_a: int
    n_b: int
    side: str
    windows: str = "lag"
    lag_offset_s: float = 0.0
    signal_fraction: tuple[float, float] | None = None
    side_uniformity_pvalue: float = 1.0

    @property
    def mean_side_counts(self) -> float:
        """Mean side-peak area, each peak divided by its weight (the normalisation)."""
        return float(np.mean(self.side_counts / self.side_weights))


# -- lag specifications ---------------------------------------------------


@dataclass(frozen=True)
class _LagSpec:
    """Bins ``[lo_s + k w_s, lo_s + (k+1) w_s)``, k = 0..nbins-1."""

    lo_s: float
    w_s: float
    nbins: int


def _rational(values: Sequence[float], max_scale: int = 4096) -> int | None:
    """Smallest scale making every value (in ticks) a whole number, or None."""
    for scale in range(1, max_scale + 1):
        ok = True
        for v in values:
            x = v * scale
            if abs(x - round(x)) > 1e-11 * abs(x) + 1e-7:
                ok = False
                break
        if ok:
            return scale
    return None


class _Kernel:
    """One lag specification compiled for a time base."""

    def __init__(self, spec: _LagSpec, tb: TimeBase) -> None:
        self.spec = spec
        self.nbins = spec.nbins
        lo_t = spec.lo_s / tb.tick_s
        w_t = spec.w_s / tb.tick_s
        self.mode = "float"
        self.scale = None
        if tb.kind in ("int", "pulse"):
            scale = _rational([lo_t, w_t])
            if scale is not None and w_t * scale >= 0.5:
                self.mode = "int"
                self.scale = scale
                self.lo_num = round(lo_t * scale)
                self.w_num = round(w_t * scale)
                hi_num = self.lo_num + self.nbins * self.w_num
                self.reach = max(abs(self.lo_num), abs(hi_num)) // scale + 2
                return
        self.lo = lo_t
        self.inv_w = 1.0 / w_t
        hi = lo_t + self.nbins * w_t
        self.reach = max(abs(lo_t), abs(hi)) * (1 + 1e-9) + (1e-12 if tb.kind == "float" else 2)

    def count(self, ta, la, tb, lb, use_labels: bool, same: bool, out: np.ndarray) -> None:
        if len(ta) == 0 or len(tb) == 0:
            return
        if self.mode == "int" and not use_labels and len(ta) > 100_000:
            _k.count_pairs_int_par(
                ta, tb, same, self.scale, self.lo_num, self.w_num, self.nbins, out
            )
        elif self.mode == "int":
            _k.count_pairs_int(
                ta,
                la,
                tb,
                lb,
                use_labels,
                same,
                self.scale,
                self.lo_num,
                self.w_num,
                self.nbins,
                out,
            )
        else:
            fa = ta if ta.dtype == np.float64 else ta.astype(np.float64)
            fb = fa if same else (tb if tb.dtype == np.float64 else tb.astype(np.float64))
            _k.count_pairs_float(
                fa, la, fb, lb, use_labels, same, self.lo, self.inv_w, self.nbins, out
            )


_NO_LABELS = np.empty(0, np.int64)


class _PairCounter:
    """Pair counts for several lag specifications, accumulated over time-ordered chunks."""

    def __init__(
        self,
        channels: tuple[int, int],
        specs: Sequence[_LagSpec],
        selection: Selection | None,
        within: Intervals | None,
        pulse_refs: dict[int, float] | None = None,
        single: bool = False,
    ) -> None:
        a, b = _check_channels(channels)
        self.pulse_refs = pulse_refs
        self.single = single  # one add() only (in-memory): no tail kept
        self.channels = (a, b)
        self.same = a == b
        self.specs = list(specs)
        self.selection = selection
        self.within = within
        if within is not None and not isinstance(within, Intervals):
            raise TypeError(
                "within= must be an Intervals selection (qdinfer.state_intervals or "
                f"qdinfer.time_window), got {type(within).__name__}"
            )
        self.tb: TimeBase | None = None
        self.kernels: list[_Kernel] = []
        self.counts = [np.zeros(s.nbins, np.int64) for s in self.specs]
        self.n = {a: 0, b: 0}
        n_int = len(within.starts_s) if within is not None else 0
        self.label_counts = {a: np.zeros(n_int, np.int64), b: np.zeros(n_int, np.int64)}
        self.tail: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.first_macrotime: int | None = None
        self.last_macrotime: int | None = None
        self.macrotime_resolution_s: float | None = None
        self.reach = 0.0

    def add(self, chunk: PhotonStream) -> None:
        if len(chunk) == 0:
            return
        if self.tb is None:
            self.tb = TimeBase.for_stream(chunk)
            if self.pulse_refs is not None:
                if not chunk.is_t3:
                    raise ValueError("pulse windows need T3 data (microtimes); use windows='lag'")
                period = chunk.macrotime_resolution_s
                self.tb = TimeBase(
                    "pulse", period, 1, 0, True, self.tb.microtime_resolution_s, period
                )
            self.kernels = [_Kernel(s, self.tb) for s in self.specs]
            self.reach = max(k.reach for k in self.kernels)
            self.macrotime_resolution_s = chunk.macrotime_resolution_s
            self.first_macrotime = int(chunk.macrotime[0])
        else:
            self.tb.check_compatible(chunk)
        self.last_macrotime = int(chunk.macrotime[-1])
        sel = select(chunk, self.selection)
        a, b = self.channels
        if self._add_direct(sel):
            return
        new: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c, (t, lab, is_sorted) in self._split(sel).items():
            self.n[c] += int(t.shape[0])
            if len(lab):
                ok = lab >= 0
                nl = len(self.label_counts[c])
                self.label_counts[c] += np.bincount(lab[ok], minlength=nl)[:nl]
            old_t, old_l = self.tail.get(c, (t[:0], lab[:0]))
            if len(old_t):
                is_sorted = is_sorted and (len(t) == 0 or old_t[-1] <= t[0])
                t = np.concatenate([old_t, t])
                lab = np.concatenate([old_l, lab]) if self.within is not None else lab
            if not is_sorted:
                order = np.argsort(t, kind="stable")
                t = t[order]
                if len(lab):
                    lab = lab[order]
            new[c] = (t, lab)
        use_labels = self.within is not None
        for kern, out in zip(self.kernels, self.counts, strict=True):
            ta, la = new[a]
            tb, lb = new[b]
            kern.count(ta, la, tb, lb, use_labels, self.same, out)
            if a in self.tail:  # pairs between two tail photons were counted before
                sub = np.zeros_like(out)
                ta, la = self.tail[a]
                tb, lb = self.tail[b]
                kern.count(ta, la, tb, lb, use_labels, self.same, sub)
                out -= sub
        bound = self.tb.lower_bound(self.last_macrotime) - self.reach
        for c, (t_all, l_all) in new.items():
            start = int(np.searchsorted(t_all, bound, side="left"))
            self.tail[c] = (t_all[start:].copy(), l_all[start:].copy() if len(l_all) else l_all)

    def _add_direct(self, sel: PhotonStream) -> bool:
        """Fast path for one in-memory stream with integer times already in order:
        pairs are counted straight from the stream's columns (no per-channel
        copies).  False when it does not apply."""
        tb_ = self.tb
        if not self.single or self.tail or self.within is not None or tb_.kind != "int":
            return False
        if any(k.mode != "int" for k in self.kernels) or len(sel) == 0:
            return False
        has_mic = sel.microtime is not None
        mic = sel.microtime if has_mic else np.zeros(1, np.int32)
        if has_mic and int(sel.macrotime[-1]) > (2**62) // tb_.ratio:
            return False
        if not _k.ticks_sorted(sel.macrotime, mic, has_mic, tb_.ratio):
            return False
        a, b = self.channels
        # photons of the stream within one lag window of a photon: the direct
        # kernel visits them all (both channels), the split one only channel b
        span = int(sel.macrotime[-1] - sel.macrotime[0]) * sel.macrotime_resolution_s
        window = max(k.nbins * k.w_num / k.scale for k in self.kernels) * tb_.tick_s
        if span <= 0 or len(sel) * window / span > 1.0:
            return False
        for kern, out in zip(self.kernels, self.counts, strict=True):
            na, nb = _k.count_pairs_stream_int_par(
                sel.macrotime,
                mic,
                sel.channel,
                has_mic,
                tb_.ratio,
                a,
                b,
                kern.scale,
                kern.lo_num,
                kern.w_num,
                kern.nbins,
                out,
            )
        self.n[a] += int(na)
        if b != a:
            self.n[b] += int(nb)
        return True

    def _split(self, sel: PhotonStream) -> dict[int, tuple[np.ndarray, np.ndarray, bool]]:
        """channel -> (times, interval labels or empty, times already sorted)."""
        a, b = self.channels
        tb_ = self.tb
        if self.within is not None:
            if tb_.kind == "pulse":
                times = self._pulse_times(sel)
            else:
                times = tb_.times(sel) if len(sel) else np.empty(0)
            labels = interval_labels(sel, self.within)
            out = {}
            for c in dict.fromkeys((a, b)):
                m = sel.channel == c
                t = times[m]
                out[c] = (t, labels[m], bool(_k.is_sorted(t)))
            return out
        mic = sel.microtime if sel.microtime is not None else np.zeros(1, np.int32)
        if tb_.kind == "pulse":
            ref = self.pulse_refs
            ta, tb, sa, sb = _k.split_pulses(
                sel.macrotime,
                mic,
                sel.channel,
                ref.get(a, 0.0),
                ref.get(b, 0.0),
                tb_.microtime_resolution_s,
                tb_.tick_s,
                a,
                b,
            )
        elif tb_.kind == "int":
            if tb_.t3 and len(sel) and int(sel.macrotime[-1]) > (2**62) // tb_.ratio:
                raise ValueError(
                    f"macrotime {int(sel.macrotime[-1])} x {tb_.ratio} microtime bins per "
                    "period overflows int64 ticks"
                )
            split = _k.split_times_int_par if len(sel) > 200_000 else _k.split_times_int
            ta, tb, sa, sb = split(
                sel.macrotime, mic, sel.channel, sel.microtime is not None, tb_.ratio, a, b
            )
        else:
            ta, tb, sa, sb = _k.split_times_float(
                sel.macrotime,
                mic,
                sel.channel,
                tb_.origin,
                tb_.macrotime_resolution_s,
                tb_.microtime_resolution_s,
                a,
                b,
            )
        if a == b:
            return {a: (ta, _NO_LABELS, bool(sa))}
        return {a: (ta, _NO_LABELS, bool(sa)), b: (tb, _NO_LABELS, bool(sb))}

    def _pulse_times(self, sel: PhotonStream) -> np.ndarray:
        ref = np.zeros(256)
        for c, r in self.pulse_refs.items():
            ref[c] = r
        res, period = self.tb.microtime_resolution_s, self.tb.tick_s
        shift = np.floor((sel.microtime * res - ref[sel.channel]) / period).astype(np.int64)
        return sel.macrotime + shift

    def span_s(self) -> tuple[float, float]:
        if self.first_macrotime is None:
            return 0.0, 0.0
        res = self.macrotime_resolution_s
        return self.first_macrotime * res, (self.last_macrotime + 1) * res


def _check_channels(channels) -> tuple[int, int]:
    try:
        a, b = (int(c) for c in channels)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"channels={channels!r} must be a pair of channel numbers") from exc
    for c in (a, b):
        if not 0 <= c <= 255:
            raise ValueError(f"channels={channels!r}: channel numbers must be in 0..255")
    return a, b


def _require_photons(counter: _PairCounter, what: str) -> None:
    for c in counter.channels:
        if counter.n[c] == 0:
            raise ValueError(
                f"{what}: channel {c} has no photons after the selection "
                f"(channels={counter.channels}); nothing to correlate"
            )


# -- normalisation --------------------------------------------------------


def _overlap(support: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Measure of ``S ∩ (S + lag)`` for a union S of sorted disjoint intervals."""
    lags = np.abs(lags)
    reach = float(lags.max()) if lags.size else 0.0
    out = np.zeros(lags.shape)
    a, b = support[:, 0], support[:, 1]
    for i in range(len(support)):
        hi = int(np.searchsorted(a, b[i] + reach, side="right"))
        for j in range(i, hi):
            # interval j shifted back by lag, overlapped with interval i
            ov = np.minimum(b[i], b[j] - lags) - np.maximum(a[i], a[j] - lags)
            out += np.maximum(ov, 0.0)  # for lag >= 0 only j >= i can overlap
    return out


def _expected_at(
    counter: _PairCounter, centers: np.ndarray, width: np.ndarray
) -> tuple[np.ndarray, float]:
    """Uncorrelated pair counts in bins of ``width`` at lags ``centers``, and the
    duration the selection covers."""
    start, stop = counter.span_s()
    support = time_support(counter.selection, start, stop)
    duration = float(np.sum(support[:, 1] - support[:, 0]))
    a, b = counter.channels
    if counter.within is None:
        if duration <= 0:
            return np.zeros(len(centers)), 0.0
        ov = _overlap(support, centers)
        return counter.n[a] * counter.n[b] / duration**2 * width * ov, duration
    within = np.column_stack([counter.within.starts_s, counter.within.stops_s])
    expected = np.zeros(len(centers))
    total = 0.0
    abs_c = np.abs(centers)
    for i, (lo, hi) in enumerate(within):
        part = intersect(support, np.array([[lo, hi]]))
        length = float(np.sum(part[:, 1] - part[:, 0]))
        if length <= 0:
            continue
        total += length
        na, nb = counter.label_counts[a][i], counter.label_counts[b][i]
        if na and nb:
            ov = _overlap(part, abs_c) if len(part) > 1 else np.maximum(length - abs_c, 0.0)
            expected += na * nb / length**2 * width * ov
    return expected, total


def _expected(counter: _PairCounter, edges: np.ndarray) -> tuple[np.ndarray, float]:
    """Uncorrelated pair counts per lag bin, and the duration used."""
    return _expected_at(counter, 0.5 * (edges[1:] + edges[:-1]), np.diff(edges))


def _histogram_result(counter: _PairCounter, spec: _LagSpec, counts: np.ndarray) -> G2Histogram:
    _require_photons(counter, "g2_histogram")
    edges = spec.lo_s + spec.w_s * np.arange(spec.nbins + 1)
    expected, duration = _expected(counter, edges)
    a, b = counter.channels
    return G2Histogram(
        counts.copy(), edges, counter.channels, counter.n[a], counter.n[b], duration, expected
    )


def _histogram_spec(
    max_lag_s: float | None, bin_width_s: float, lag_range_s: tuple[float, float] | None = None
) -> _LagSpec:
    bin_width_s = check_positive("bin_width_s", bin_width_s)
    if (max_lag_s is None) == (lag_range_s is None):
        raise ValueError("give exactly one of max_lag_s= and lag_range_s=")
    if lag_range_s is not None:
        try:
            start, stop = (float(x) for x in lag_range_s)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"lag_range_s={lag_range_s!r} must be (start_s, stop_s)") from exc
        if not (math.isfinite(start) and math.isfinite(stop) and stop > start):
            raise ValueError(f"lag_range_s={lag_range_s!r} needs finite start_s < stop_s")
        n = math.ceil((stop - start) / bin_width_s - 1e-9)
        lo = start
    else:
        max_lag_s = check_positive("max_lag_s", max_lag_s)
        n_side = math.ceil(max_lag_s / bin_width_s - 1e-9)
        n = 2 * n_side
        lo = -n_side * bin_width_s
    if n > 100_000_000:
        raise ValueError(f"{n} lag bins of {bin_width_s!r} s are too many; use wider bins")
    return _LagSpec(lo, bin_width_s, n)


def g2_histogram(
    stream: PhotonStream,
    *,
    channels: tuple[int, int] = (0, 1),
    max_lag_s: float | None = None,
    bin_width_s: float,
    selection: Selection | None = None,
    within: Intervals | None = None,
    lag_range_s: tuple[float, float] | None = None,
) -> G2Histogram:
    """Exact histogram of arrival-time differences between two channels.

    Parameters
    ----------
    stream : PhotonStream
        T2 or T3 photons.  T3 arrival times are macrotime x sync period +
        microtime x bin width.
    channels : (int, int)
        Channels (a, b); lag = t_b - t_a.  ``(c, c)`` gives the
        autocorrelation of one channel (a photon is never paired with itself).
    max_lag_s : float
        Lags in ``[-max_lag_s, max_lag_s)`` are counted, in seconds; rounded
        up to a whole number of bins.  Edges lie at whole multiples of the
        bin width (lag 0 is an edge).
    bin_width_s : float
        Bin width in seconds.  Binning is exact integer arithmetic when the
        width and the edges are rational multiples of the time tick
        (denominator up to 4096).
    selection : Selection, optional
        Photons to use (gate, state intervals, time window, ...).
    within : Intervals, optional
        Count only pairs whose two photons lie in the same interval (e.g.
        each visit to one emission state: state-resolved g2).
    lag_range_s : (float, float), optional
        Instead of ``max_lag_s``: any lag window ``[start_s, stop_s)``, with
        edges at ``start_s + k * bin_width_s`` (e.g. far lags only).

    Returns
    -------
    G2Histogram
        ``.counts`` (int64), ``.edges_s``, ``.expected`` and the normalised
        ``.g2``.

    Raises
    ------
    ValueError
        A channel with no photons after the selection, or bad lag settings.

    Examples
    --------
    >>> import numpy as np, qdio
    >>> s = qdio.PhotonStream(np.array([0, 1, 1, 0], np.uint8), np.array([0, 2, 5, 9]),
    ...                       None, 1e-9)
    >>> h = g2_histogram(s, max_lag_s=4e-9, bin_width_s=2e-9)
    >>> h.counts.tolist()  # lags 2 and -4 ns fall in [-4, 4) ns; 5 and -7 ns do not
    [1, 0, 0, 1]
    """
    spec = _histogram_spec(max_lag_s, bin_width_s, lag_range_s)
    counter = _PairCounter(channels, [spec], selection, within, single=True)
    counter.add(stream)
    return _histogram_result(counter, spec, counter.counts[0])


# -- pulsed g2(0) ---------------------------------------------------------


def _period_s(stream: PhotonStream | None, period_s: float | None) -> float:
    if period_s is not None:
        return check_positive("period_s", period_s)
    if stream is None or not stream.is_t3:
        raise ValueError("pulsed g2(0) of a T2 stream needs period_s= (the laser period)")
    return stream.laser_period_s


def _side_peak_indices(
    side: str | Sequence[int], n_side_peaks: int, far_lag_s: float, period_s: float
) -> tuple[np.ndarray, str]:
    if isinstance(side, str):
        if n_side_peaks < 1:
            raise ValueError(f"n_side_peaks={n_side_peaks!r} must be >= 1")
        if side == "near":
            k = np.arange(1, n_side_peaks + 1)
        elif side == "far":
            far_lag_s = check_positive("far_lag_s", far_lag_s)
            k0 = max(1, math.ceil(far_lag_s / period_s - 1e-9))
            k = np.arange(k0, k0 + n_side_peaks)
        else:
            raise ValueError(f"side_peaks={side!r}: use 'near', 'far' or a list of peak indices")
        return np.concatenate([-k[::-1], k]).astype(np.int64), side
    k = np.unique(np.asarray(list(side), dtype=np.int64))
    if k.size == 0 or np.any(k == 0):
        raise ValueError(f"side_peaks={side!r} must be non-empty and must not contain 0")
    return k, "custom"


def _peak_specs(peaks: np.ndarray, period_s: float) -> list[_LagSpec]:
    """Contiguous runs of peak indices (plus the centre) as lag specifications."""
    ks = np.unique(np.concatenate([[0], peaks]))
    specs = []
    start = ks[0]
    prev = ks[0]
    for k in [*list(ks[1:]), None]:
        if k is not None and k == prev + 1:
            prev = k
            continue
        specs.append(_LagSpec((start - 0.5) * period_s, period_s, int(prev - start + 1)))
        if k is not None:
            start = prev = k
    return specs


def _peak_counts(specs: list[_LagSpec], counts: list[np.ndarray], period_s: float) -> dict:
    out = {}
    for spec, c in zip(specs, counts, strict=True):
        k0 = round(spec.lo_s / period_s + 0.5)
        for i in range(spec.nbins):
            out[k0 + i] = int(c[i])
    return out


def correct_g2_background(
    g2_raw: float, rho_a: float, rho_b: float, stderr: float | None = None
) -> tuple[float, float | None]:
    """Background-corrected g2(0) of MODEL.md section 3.

    ``g2_corr = (g2_raw - (1 - rho_a rho_b)) / (rho_a rho_b)`` with
    ``rho = S / (S + B)`` per channel (uncorrelated background).  The
    standard error scales by ``1 / (rho_a rho_b)`` (rho taken as exact).

    >>> round(correct_g2_background(0.36, 0.8, 0.8)[0], 12)  # ideal emitter: 1 - rho^2
    0.0
    """
    for name, rho in (("rho_a", rho_a), ("rho_b", rho_b)):
        if not 0 < rho <= 1:
            raise ValueError(f"{name}={rho!r} must be in (0, 1]")
    p = rho_a * rho_b
    value = (g2_raw - (1 - p)) / p
    return value, None if stderr is None else stderr / p


def _pulsed_result(
    counter: _PairCounter,
    specs: list[_LagSpec],
    peaks: np.ndarray,
    side: str,
    period_s: float,
    rho: tuple[float, float] | None,
    windows: str,
    lag_offset_s: float,
) -> PulsedG2:
    _require_photons(counter, "pulsed_g2_zero")
    by_k = _peak_counts(specs, counter.counts, period_s)
    centre = by_k[0]
    side_counts = np.array([by_k[int(k)] for k in peaks], np.int64)
    total = int(side_counts.sum())
    if total == 0:
        raise ValueError(
            f"pulsed_g2_zero: no coincidences in the {len(peaks)} side peaks "
            f"(channels {counter.channels}: {counter.n[counter.channels[0]]} and "
            f"{counter.n[counter.channels[1]]} photons); too few photons to normalise"
        )
    lags = np.concatenate([[0.0], peaks * period_s]) + lag_offset_s
    expected, _ = _expected_at(counter, lags, np.full(len(lags), period_s))
    if expected[0] <= 0 or np.any(expected[1:] <= 0):
        far = peaks[expected[1:] <= 0]
        raise ValueError(
            f"pulsed_g2_zero: side peaks {far.tolist()} lie beyond the time the selection "
            "covers; use nearer side peaks"
        )
    weights = expected[1:] / expected[0]
    mean_side = float(np.mean(side_counts / weights))
    raw = centre / mean_side
    c_eff = max(centre, 1)  # C = 0: the error of one count
    raw_err = c_eff / mean_side * math.sqrt(1 / c_eff + 1 / total)
    value, err = raw, raw_err
    if rho is not None:
        value, err = correct_g2_background(raw, rho[0], rho[1], raw_err)
    a, b = counter.channels
    pvalue = 1.0
    if len(side_counts) > 1:
        from scipy.stats import chi2

        model = mean_side * weights
        stat = float(np.sum((side_counts - model) ** 2 / model))
        pvalue = float(chi2.sf(stat, len(side_counts) - 1))
    return PulsedG2(
        value=float(value),
        stderr=float(err),
        raw_value=float(raw),
        raw_stderr=float(raw_err),
        centre_counts=int(centre),
        side_counts=side_counts,
        side_peaks=peaks,
        side_weights=weights,
        period_s=period_s,
        channels=counter.channels,
        n_a=counter.n[a],
        n_b=counter.n[b],
        side=side,
        windows=windows,
        lag_offset_s=float(lag_offset_s),
        signal_fraction=None if rho is None else (float(rho[0]), float(rho[1])),
        side_uniformity_pvalue=pvalue,
    )


def _pulse_refs(stream: PhotonStream, channels: tuple[int, int], pulse_start_s) -> dict[int, float]:
    """Where each channel's pulses start, in seconds after the sync."""
    from .selection import channels as _channels
    from .selection import irf_peak_bins

    period = stream.macrotime_resolution_s
    a, b = channels
    if pulse_start_s is None:
        peaks = irf_peak_bins(select(stream, _channels(a, b)))
        res = stream.microtime_resolution_s
        return {c: peaks.get(c, 0) * res - 0.05 * period for c in (a, b)}
    if isinstance(pulse_start_s, dict):
        return {c: float(pulse_start_s[c]) for c in (a, b)}
    return {a: float(pulse_start_s), b: float(pulse_start_s)}


def _check_windows(windows: str, stream: PhotonStream) -> str:
    # pulse windows count macrotimes as laser pulses: not when the macrotime clock
    # is another one (TimeHarp 200 T3R, sync divider; see PhotonStream.laser_period_s)
    pulses = stream.is_t3 and stream.laser_period_s == stream.macrotime_resolution_s
    if windows == "auto":
        return "pulse" if pulses else "lag"
    if windows not in ("pulse", "lag"):
        raise ValueError(f"windows={windows!r}: use 'auto', 'pulse' or 'lag'")
    if windows == "pulse" and not pulses:
        raise ValueError(
            "windows='pulse' needs T3 data whose macrotime counts laser pulses; use windows='lag'"
        )
    return windows


def pulsed_g2_zero(
    stream: PhotonStream,
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
) -> PulsedG2:
    """Pulsed g2(0) = centre-peak area / mean side-peak area.

    Parameters
    ----------
    stream : PhotonStream
        T3 photons (P = the sync period), or T2 photons with ``period_s``.
    channels : (int, int)
        The two HBT detectors.
    selection : Selection, optional
        E.g. ``qdinfer.gate(min_s=2.5e-9, relative_to="irf_peak")`` for the
        lifetime-gated g2(0).
    side_peaks : {"near", "far"} or sequence of int
        "near": peaks ±1..±n_side_peaks.  "far": ``n_side_peaks`` peaks on
        each side starting at the first one at or beyond ``far_lag_s``.
        Blinking raises the near side peaks (bunching on the blinking time
        scale), so "near" gives the g2(0) of the emitter while it emits and
        "far" the g2(0) relative to the mean intensity.  A sequence gives
        peak indices explicitly (e.g. ``[-3, -2, 2, 3]``).
    n_side_peaks : int
        Side peaks per side.
    far_lag_s : float
        Where "far" side peaks start, in seconds.
    signal_fraction : None, "auto" or (rho_a, rho_b)
        Background correction with rho = S / (S + B) per channel
        (:func:`correct_g2_background`).  "auto" estimates B from the flat
        pre-pulse level of each channel's decay (:func:`signal_fractions`).
    period_s : float, optional
        Laser period for T2 data (defaults to the T3 sync period).
    within : Intervals, optional
        Count only pairs inside the same interval (state-resolved g2(0)).
    windows : {"auto", "pulse", "lag"}
        How pairs are assigned to peaks.  "pulse" (the default for T3 data):
        each photon is assigned to the laser pulse that excited it (the last
        pulse start, ``pulse_start_s`` after a sync, before it) and peak k
        holds the pairs whose pulses are k apart; peaks never overlap, even
        when the lifetime is not short compared with the period.  "lag" (the
        only choice for T2): peak k holds the pairs with lag in
        ``[(k - 1/2) P, (k + 1/2) P)``; tails of long decays then spill into
        the neighbouring windows and bias g2(0) upwards (by about
        ``exp(-P / (2 tau))`` of a side peak).
    pulse_start_s : float or dict, optional
        Start of each pulse after the sync, per channel (dict) or for both.
        Default: 5 % of the period before each channel's IRF peak.

    Returns
    -------
    PulsedG2
        ``.value``, ``.stderr`` and the peak areas.

    Raises
    ------
    ValueError
        A channel without photons, no coincidences in the side peaks, side
        peaks beyond the data, a T2 stream without ``period_s``.

    Notes
    -----
    Each side peak is divided by its weight ``w_k`` (the pairs uncorrelated
    photons would give at lag kP relative to lag 0), so far side peaks of a
    finite acquisition are not underestimated.

    Examples
    --------
    >>> import numpy as np, qdio
    >>> # photons on channel 0 in pulses 0, 2, 3 and on channel 1 in pulses 1, 2, 4
    >>> s = qdio.PhotonStream(np.array([0, 1, 0, 1, 0, 1], np.uint8),
    ...                       np.array([0, 1, 2, 2, 3, 4]), np.array([5, 5, 5, 6, 5, 5]),
    ...                       1e-7, 1e-9, 100)
    >>> g = pulsed_g2_zero(s, side_peaks=[-1, 1], windows="lag")
    >>> g.centre_counts, g.side_counts.tolist()
    (1, [2, 2])
    """
    period_s = _period_s(stream, period_s)
    windows = _check_windows(windows, stream)
    peaks, side = _side_peak_indices(side_peaks, n_side_peaks, far_lag_s, period_s)
    specs = _peak_specs(peaks, period_s)
    refs = None
    offset = 0.0
    chans = _check_channels(channels)
    if windows == "pulse":
        refs = _pulse_refs(stream, chans, pulse_start_s)
        offset = refs[chans[1]] - refs[chans[0]]
    counter = _PairCounter(chans, specs, selection, within, pulse_refs=refs, single=True)
    counter.add(stream)
    rho = None
    if signal_fraction is not None:
        rho = _resolve_signal_fraction(signal_fraction, stream, counter.channels, selection)
    return _pulsed_result(counter, specs, peaks, side, period_s, rho, windows, offset)


def _resolve_signal_fraction(signal_fraction, stream, channels, selection):
    if isinstance(signal_fraction, str):
        if signal_fraction != "auto":
            raise ValueError(
                f"signal_fraction={signal_fraction!r}: use None, 'auto' or (rho_a, rho_b)"
            )
        rho = signal_fractions(stream, channels=channels, selection=selection)
        return rho[channels[0]], rho[channels[1]]
    try:
        ra, rb = (float(x) for x in signal_fraction)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"signal_fraction={signal_fraction!r} must be 'auto' or a pair of fractions"
        ) from exc
    for r in (ra, rb):
        if not 0 < r <= 1:
            raise ValueError(f"signal_fraction={signal_fraction!r}: each must be in (0, 1]")
    return ra, rb


def signal_fractions(
    stream: PhotonStream,
    *,
    channels: Sequence[int] = (0, 1),
    selection: Selection | None = None,
) -> dict[int, float]:
    """Signal fraction rho = S / (S + B) of the selected photons of each channel.

    The background B per microtime bin is the flat level before the rising
    edge of the channel's whole decay (:func:`qdinfer.estimate_background`),
    assumed uniform in time and microtime.  For each bin the selection is
    assumed to keep background and signal photons in the same proportion,
    ``B_sel = sum_bins B_bin * n_sel / n_all``: exact for gates and channels;
    for state or time selections pass rho explicitly if the intensity varies.

    Returns
    -------
    dict
        channel -> rho, clipped to [1e-6, 1].
    """
    from .decay import _tick_histograms

    if not stream.is_t3:
        raise ValueError("signal_fractions needs a T3 stream (microtimes) to see the background")
    out = {}
    for c in dict.fromkeys(int(x) for x in channels):
        full = _tick_histograms(select(stream, _channel_sel(c)))
        sel = _tick_histograms(select(stream, _channel_sel(c) & (selection or everything())))
        out[c] = _rho_from_histograms(full, sel, stream)
    return out


def _channel_sel(c: int) -> Selection:
    from .selection import channels as _channels

    return _channels(c)


def _rho_from_histograms(full: np.ndarray, sel: np.ndarray, stream_like) -> float:
    from .decay import background_per_tick

    n_sel = int(sel.sum())
    if n_sel == 0:
        raise ValueError("signal fraction: no photons selected on this channel")
    b = background_per_tick(
        full, stream_like.macrotime_resolution_s, stream_like.microtime_resolution_s
    )
    ratio = np.divide(sel, full, out=np.zeros(len(full)), where=full > 0)
    bg = float(np.sum(b * ratio))
    return float(min(1.0, max(1e-6, 1 - bg / n_sel)))


def g2_zero_vs_gate(
    stream: PhotonStream,
    gates_s: Sequence[float],
    *,
    channels: tuple[int, int] = (0, 1),
    relative_to: str = "irf_peak",
    selection: Selection | None = None,
    **kwargs,
) -> list[PulsedG2]:
    """Pulsed g2(0) for each microtime gate ``t >= gate`` (lifetime-gated g2).

    Gates are measured from each channel's IRF peak by default (see
    :func:`qdinfer.gate`); ``kwargs`` go to :func:`pulsed_g2_zero`.
    """
    from .selection import Gate, gate, irf_peak_bins

    out = []
    peaks = None
    if relative_to == "irf_peak":
        peaks = tuple(sorted(irf_peak_bins(select(stream, selection)).items()))
    for g in gates_s:
        sel = gate(min_s=g, relative_to=relative_to)
        if peaks is not None:
            sel = Gate(sel.min_s, sel.max_s, relative_to, peaks)
        if selection is not None:
            sel = selection & sel
        out.append(pulsed_g2_zero(stream, channels=channels, selection=sel, **kwargs))
    return out
