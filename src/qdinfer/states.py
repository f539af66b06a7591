"""Emission states (blinking): bright, grey and dark periods of a single emitter.

This module owns the classification of an acquisition into emission states
and the measurements made per state:

* :class:`StateTrajectory`: the result every classifier returns: intervals
  ``[start_s, stop_s)`` on the macrotime clock, each with a state index;
  states are ordered by intensity and labelled ``"dark" < "grey" < "bright"``.
  ``trajectory.selection("bright")`` is a :func:`qdinfer.state_intervals`
  selection, so "select photons, then measure" works per state.
* :func:`threshold_states`: thresholds on the histogram of binned counts
  (a negative-binomial mixture fitted by EM, or Otsu's method).
* :func:`change_points` and :func:`cluster_levels` (together
  :func:`change_point_states`): Watkins & Yang's change-point detection on
  photon arrival times, then agglomerative clustering of the segments, EM
  refinement and the number of levels by BIC.
* :func:`qdinfer.hmm.hmm_states` (module :mod:`qdinfer.hmm`): a hidden Markov model
  with Poisson emissions over binned counts.
* :func:`state_resolved`: rate, decay and lifetime, and g2(0) per state.
* :func:`time_agreement`: the fraction of time two trajectories agree.

Clocks: bins and interval boundaries use the macrotime clock
(``macrotime * macrotime_resolution_s``), the clock
:class:`~qdinfer.selection.Intervals` selects photons with; change points
are located with the full arrival times (macrotime plus microtime).

Examples
--------
>>> import numpy as np, qdio
>>> t = np.sort(np.r_[np.linspace(0, 1, 2000, endpoint=False),
...                   np.linspace(1, 2, 50, endpoint=False)])
>>> s = qdio.PhotonStream(np.zeros(t.size, np.uint8), np.round(t / 1e-6).astype(np.int64),
...                       None, 1e-6)
>>> res = threshold_states(s, bin_width_s=0.1, n_states=2)
>>> res.trajectory.labels
('dark', 'bright')
>>> res.trajectory.intervals("dark")[0].round(3).tolist()
[1.0]

References
----------
L. P. Watkins and H. Yang, J. Phys. Chem. B 109, 617 (2005),
doi:10.1021/jp0467548.
N. Otsu, IEEE Trans. Syst. Man Cybern. 9, 62 (1979), doi:10.1109/TSMC.1979.4310076.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from qdio import PhotonStream

from . import _changepoint, _changepoint_table, _levels
from .decay import (
    DecayFit,
    DecayHistogram,
    MeanArrivalTime,
    decay_histogram,
    fit_decay,
    mean_arrival_time,
)
from .g2 import G2Histogram, PulsedG2, g2_histogram, pulsed_g2_zero
from .selection import Intervals, Selection, select, state_intervals

__all__ = [
    "ChangePoints",
    "LevelClustering",
    "StateMeasurement",
    "StateResolved",
    "StateTrajectory",
    "ThresholdStates",
    "binned_counts",
    "change_point_states",
    "change_points",
    "changepoint_critical_value",
    "cluster_levels",
    "state_labels",
    "state_resolved",
    "threshold_states",
    "time_agreement",
]


def state_labels(n_states: int) -> tuple[str, ...]:
    """Labels of ``n_states`` states ordered by intensity.

    >>> state_labels(2), state_labels(3)
    (('dark', 'bright'), ('dark', 'grey', 'bright'))
    >>> state_labels(5)
    ('dark', 'grey1', 'grey2', 'grey3', 'bright')
    >>> state_labels(1)
    ('single',)
    """
    if n_states < 1:
        raise ValueError(f"n_states={n_states} must be >= 1")
    if n_states == 1:
        return ("single",)
    if n_states == 2:
        return ("dark", "bright")
    if n_states == 3:
        return ("dark", "grey", "bright")
    return ("dark", *(f"grey{i}" for i in range(1, n_states - 1)), "bright")


def _readonly(a: Any, dtype: Any) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True).reshape(-1)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class StateTrajectory:
    """Emission-state intervals of an acquisition, ordered in time.

    Parameters
    ----------
    start_s, stop_s : ndarray of float64, shape (M,)
        Interval bounds ``[start_s, stop_s)`` on the macrotime clock, in
        seconds; sorted, non-overlapping, ``stop_s > start_s``.  Adjacent
        intervals have different states (see :meth:`build`).
    state : ndarray of int64, shape (M,)
        State index of each interval, ``0 .. n_states - 1`` (0 = dimmest).
    n_photons : ndarray of int64, shape (M,)
        Photons of the analysed selection inside each interval.
    labels : tuple of str
        Label of each state, ordered by intensity (:func:`state_labels`).
    level_intensity_hz : ndarray of float64, shape (n_states,)
        Intensity of each state, in photons/s, as the method estimated it
        (mixture component, level or HMM emission rate).
    method : str
        Which classifier made it.
    info : mapping
        Method-specific extras.
    """

    start_s: np.ndarray
    stop_s: np.ndarray
    state: np.ndarray
    n_photons: np.ndarray
    labels: tuple[str, ...]
    level_intensity_hz: np.ndarray
    method: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        start = _readonly(self.start_s, np.float64)
        stop = _readonly(self.stop_s, np.float64)
        state = _readonly(self.state, np.int64)
        nph = _readonly(self.n_photons, np.int64)
        level = _readonly(self.level_intensity_hz, np.float64)
        labels = tuple(str(x) for x in self.labels)
        m = start.size
        if not (stop.size == state.size == nph.size == m):
            raise ValueError(
                f"StateTrajectory: start_s, stop_s, state, n_photons need equal lengths, got "
                f"{start.size}, {stop.size}, {state.size}, {nph.size}"
            )
        if not labels or level.size != len(labels):
            raise ValueError(
                f"StateTrajectory: {len(labels)} labels and {level.size} level intensities "
                "must match and be >= 1"
            )
        if m and (np.any(~(stop > start)) or np.any(start[1:] < stop[:-1])):
            raise ValueError("StateTrajectory: intervals must be sorted, disjoint, stop > start")
        if m and (state.min() < 0 or state.max() >= len(labels)):
            raise ValueError(
                f"StateTrajectory: state indices {state.min()}..{state.max()} outside "
                f"0..{len(labels) - 1}"
            )
        set_(self, "start_s", start)
        set_(self, "stop_s", stop)
        set_(self, "state", state)
        set_(self, "n_photons", nph)
        set_(self, "labels", labels)
        set_(self, "level_intensity_hz", level)
        set_(self, "info", MappingProxyType(dict(self.info)))

    @classmethod
    def build(
        cls,
        start_s: Sequence[float] | np.ndarray,
        stop_s: Sequence[float] | np.ndarray,
        state: Sequence[int] | np.ndarray,
        labels: Sequence[str] | None = None,
        *,
        photon_times_s: np.ndarray | None = None,
        level_intensity_hz: Sequence[float] | np.ndarray | None = None,
        method: str = "",
        info: Mapping[str, Any] | None = None,
    ) -> StateTrajectory:
        """A trajectory from raw intervals: empty intervals dropped, touching same-state merged.

        Parameters
        ----------
        start_s, stop_s, state : array_like, shape (M,)
            Intervals in time order, and their state indices.
        labels : sequence of str, optional
            State labels; default :func:`state_labels` of ``max(state) + 1``.
        photon_times_s : ndarray of float64, optional
            Macrotime-clock times of the analysed photons (sorted): fills
            ``n_photons``.  Without it ``n_photons`` is 0.
        level_intensity_hz : array_like, optional
            Intensity of each state; default: photons / time spent in the
            state (0 without ``photon_times_s`` or for a state never visited).

        >>> tr = StateTrajectory.build([0, 1, 2, 3], [1, 2, 3, 4], [1, 1, 0, 1])
        >>> tr.start_s.tolist(), tr.stop_s.tolist(), tr.state.tolist(), tr.labels
        ([0.0, 2.0, 3.0], [2.0, 3.0, 4.0], [1, 0, 1], ('dark', 'bright'))
        """
        start = np.asarray(start_s, np.float64).reshape(-1)
        stop = np.asarray(stop_s, np.float64).reshape(-1)
        st = np.asarray(state, np.int64).reshape(-1)
        if not (start.size == stop.size == st.size):
            raise ValueError("StateTrajectory.build: start_s, stop_s and state need equal lengths")
        keep = stop > start
        start, stop, st = start[keep], stop[keep], st[keep]
        if labels is None:
            labels = state_labels(int(st.max()) + 1 if st.size else 1)
        if start.size:
            new_run = np.ones(start.size, bool)
            new_run[1:] = (st[1:] != st[:-1]) | (start[1:] != stop[:-1])
            first = np.flatnonzero(new_run)
            last = np.r_[first[1:] - 1, start.size - 1]
            start, stop, st = start[first], stop[last], st[first]
        if photon_times_s is not None:
            tt = np.asarray(photon_times_s, np.float64)
            nph = np.searchsorted(tt, stop, "left") - np.searchsorted(tt, start, "left")
        else:
            nph = np.zeros(start.size, np.int64)
        k = len(labels)
        if level_intensity_hz is None:
            level = np.zeros(k)
            for j in range(k):
                sel = st == j
                dur = float(np.sum(stop[sel] - start[sel]))
                level[j] = float(np.sum(nph[sel])) / dur if dur > 0 else 0.0
        else:
            level = np.asarray(level_intensity_hz, np.float64)
        return cls(start, stop, st, nph, tuple(labels), level, method, info or {})

    # -- derived values ---------------------------------------------------
    @property
    def n_states(self) -> int:
        """Number of states (including states never visited)."""
        return len(self.labels)

    def __len__(self) -> int:
        return int(self.start_s.size)

    def __repr__(self) -> str:
        frac = ", ".join(
            f"{lab} {f:.0%} @ {i:.4g}/s"
            for lab, f, i in zip(
                self.labels, self.time_fraction(), self.level_intensity_hz, strict=True
            )
        )
        return f"StateTrajectory({self.method or 'states'}: {len(self)} intervals; {frac})"

    @property
    def durations_s(self) -> np.ndarray:
        """Length of each interval, in seconds."""
        return self.stop_s - self.start_s

    @property
    def intensity_hz(self) -> np.ndarray:
        """Photons per second in each interval (``n_photons / duration``)."""
        return self.n_photons / self.durations_s

    @property
    def span_s(self) -> tuple[float, float]:
        """(first start, last stop), in seconds; (0, 0) when empty."""
        if not len(self):
            return 0.0, 0.0
        return float(self.start_s[0]), float(self.stop_s[-1])

    def index(self, key: str | int) -> int:
        """State index of a label (``"bright"``) or an index (checked)."""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not 0 <= int(key) < self.n_states:
                raise ValueError(f"state index {key} outside 0..{self.n_states - 1}")
            return int(key)
        if isinstance(key, str):
            if key not in self.labels:
                raise ValueError(f"state {key!r} not in this trajectory's labels {self.labels}")
            return self.labels.index(key)
        raise TypeError(f"state must be a label (str) or an index (int), got {type(key).__name__}")

    def intervals(self, key: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, stops) of the intervals in one state, in seconds."""
        sel = self.state == self.index(key)
        return self.start_s[sel].copy(), self.stop_s[sel].copy()

    def selection(self, key: str | int) -> Intervals:
        """The photons detected while the emitter was in state ``key``.

        Returns :func:`qdinfer.state_intervals` of :meth:`intervals`, labelled
        with the state's label: combine it with gates and channels.
        """
        starts, stops = self.intervals(key)
        return state_intervals(starts, stops, label=self.labels[self.index(key)])

    def state_at(self, times_s: np.ndarray | float) -> np.ndarray:
        """State index at each time (macrotime clock, seconds); -1 outside every interval."""
        t = np.asarray(times_s, np.float64)
        if not len(self):
            return np.full(t.shape, -1, np.int64)
        idx = np.searchsorted(self.start_s, t, side="right") - 1
        ok = idx >= 0
        ok[ok] = t[ok] < self.stop_s[idx[ok]]
        return np.where(ok, self.state[np.maximum(idx, 0)], -1).astype(np.int64)

    def time_in_state_s(self) -> np.ndarray:
        """Total time spent in each state, in seconds, shape (n_states,)."""
        return np.bincount(self.state, weights=self.durations_s, minlength=self.n_states)

    def time_fraction(self) -> np.ndarray:
        """Fraction of the classified time spent in each state (zeros when empty)."""
        tot = self.time_in_state_s()
        s = tot.sum()
        return tot / s if s > 0 else tot

    def dwell_times_s(self, key: str | int) -> np.ndarray:
        """Durations of the visits to one state, in seconds (the first and last are censored)."""
        starts, stops = self.intervals(key)
        return stops - starts

    def coarsened(self, n_states: int) -> StateTrajectory:
        """The same intervals with the states grouped into ``n_states`` (by intensity).

        States are merged by the agglomerative Poisson-likelihood rule of
        :func:`cluster_levels` applied to their total photons and times, so
        neighbours in intensity join first.  Useful to map many change-point
        levels onto dark / grey / bright.
        """
        if n_states >= self.n_states:
            return self
        if n_states < 1:
            raise ValueError(f"coarsened: n_states={n_states} must be >= 1")
        nph = np.bincount(self.state, weights=self.n_photons, minlength=self.n_states)
        tim = self.time_in_state_s()
        visited = tim > 0
        mapping = np.zeros(self.n_states, np.int64)
        vis_idx = np.flatnonzero(visited)
        if vis_idx.size <= n_states:
            mapping[vis_idx] = np.arange(vis_idx.size)
            k = max(vis_idx.size, 1)
        else:
            groups = _levels.agglomerate(nph[vis_idx], tim[vis_idx], n_states)[n_states - 1]
            mapping[vis_idx] = groups
            k = n_states
        # unvisited states go with the nearest visited one in intensity
        for j in np.flatnonzero(~visited):
            near = (
                vis_idx[
                    np.argmin(np.abs(self.level_intensity_hz[vis_idx] - self.level_intensity_hz[j]))
                ]
                if vis_idx.size
                else 0
            )
            mapping[j] = mapping[near]
        new_state = mapping[self.state]
        level = np.array(
            [
                nph[mapping == g].sum() / tim[mapping == g].sum()
                if tim[mapping == g].sum() > 0
                else 0.0
                for g in range(k)
            ]
        )
        out = StateTrajectory.build(
            self.start_s,
            self.stop_s,
            new_state,
            state_labels(k),
            level_intensity_hz=level,
            method=f"{self.method} coarsened",
            info={"from": self.labels, "mapping": mapping},
        )
        # photons per merged interval: sum of the parts
        starts = np.searchsorted(self.start_s, out.start_s, "left")
        stops = np.searchsorted(self.stop_s, out.stop_s, "right")
        cum = np.r_[0, np.cumsum(self.n_photons)]
        return StateTrajectory(
            out.start_s,
            out.stop_s,
            out.state,
            cum[stops] - cum[starts],
            out.labels,
            out.level_intensity_hz,
            out.method,
            out.info,
        )


def time_agreement(a: StateTrajectory, b: StateTrajectory, *, by: str = "label") -> float:
    """Fraction of the time covered by both trajectories during which they agree.

    Parameters
    ----------
    a, b : StateTrajectory
    by : {"label", "index"}
        Compare state labels (``"bright"`` == ``"bright"``) or state indices.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        When the trajectories share no time.

    >>> a = StateTrajectory.build([0, 1], [1, 2], [0, 1])
    >>> b = StateTrajectory.build([0, 1.5], [1.5, 2], [0, 1])
    >>> time_agreement(a, b)
    0.75
    """
    if by not in ("label", "index"):
        raise ValueError(f"time_agreement: by={by!r} must be 'label' or 'index'")
    edges = np.unique(np.concatenate([a.start_s, a.stop_s, b.start_s, b.stop_s]))
    if edges.size < 2:
        raise ValueError("time_agreement: the trajectories share no time")
    mid = 0.5 * (edges[1:] + edges[:-1])
    w = np.diff(edges)
    sa, sb = a.state_at(mid), b.state_at(mid)
    both = (sa >= 0) & (sb >= 0)
    total = float(w[both].sum())
    if total <= 0:
        raise ValueError("time_agreement: the trajectories share no time")
    if by == "index":
        same = sa == sb
    else:
        la = np.asarray(a.labels, dtype=object)[np.maximum(sa, 0)]
        lb = np.asarray(b.labels, dtype=object)[np.maximum(sb, 0)]
        same = la == lb
    return float(w[both & same].sum() / total)


# ---------------------------------------------------------------------------
# binned counts
# ---------------------------------------------------------------------------
def _selected(stream: PhotonStream, selection: Selection | None, what: str) -> PhotonStream:
    if not isinstance(stream, PhotonStream):
        raise TypeError(f"{what}: stream must be a qdio.PhotonStream, got {type(stream).__name__}")
    s = select(stream, selection)
    if len(s) == 0:
        raise ValueError(f"{what}: the selection holds no photons")
    return s


def _macro_times(s: PhotonStream) -> np.ndarray:
    return s.macrotime.astype(np.float64) * s.macrotime_resolution_s


def binned_counts(
    stream: PhotonStream, bin_width_s: float, selection: Selection | None = None, *, what: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photon counts in consecutive bins from the first photon on.

    Bins are ``[t0 + i w, t0 + (i + 1) w)`` on the macrotime clock, ``t0``
    the first selected photon; only complete bins before the last photon are
    kept (photons after the last complete bin are not counted).

    Returns
    -------
    counts : ndarray of int64, shape (B,)
    edges_s : ndarray of float64, shape (B + 1,)
    times_s : ndarray of float64
        Macrotime-clock times of the selected photons.
    """
    what = what or "binned_counts"
    if (
        not (isinstance(bin_width_s, (int, float)) and math.isfinite(bin_width_s))
        or bin_width_s <= 0
    ):
        raise ValueError(f"{what}: bin_width_s={bin_width_s!r} must be a finite number > 0")
    s = _selected(stream, selection, what)
    t = _macro_times(s)
    n_bins = math.floor((t[-1] - t[0]) / bin_width_s)
    if n_bins < 2:
        raise ValueError(
            f"{what}: the selected photons span {t[-1] - t[0]:.4g} s, fewer than 2 bins of "
            f"bin_width_s={bin_width_s:.4g} s"
        )
    edges = t[0] + bin_width_s * np.arange(n_bins + 1)
    idx = np.searchsorted(t, edges, "left")
    return np.diff(idx).astype(np.int64), edges, t


# ---------------------------------------------------------------------------
# thresholds on the intensity histogram
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ThresholdStates:
    """Result of :func:`threshold_states`.

    Attributes
    ----------
    trajectory : StateTrajectory
    thresholds_counts : ndarray of int64, shape (K - 1,)
        A bin with ``counts >= thresholds_counts[j]`` is in a state above ``j``.
    thresholds_hz : ndarray of float64, shape (K - 1,)
        The same in photons/s (``thresholds_counts / bin_width_s``).
    bin_width_s : float
    counts : ndarray of int64, shape (B,)
        Photons per bin.
    bin_edges_s : ndarray of float64, shape (B + 1,)
    bin_state : ndarray of int64, shape (B,)
    method : str
        ``"mixture"`` or ``"otsu"``.
    model : dict or None
        Mixture components (``weight``, ``mean`` in counts per bin, ``r``
        shape; ``r = 1e8`` means Poisson) for the chosen number of states.
    bic : dict
        BIC of each number of states tried (mixture only).
    """

    trajectory: StateTrajectory
    thresholds_counts: np.ndarray
    thresholds_hz: np.ndarray
    bin_width_s: float
    counts: np.ndarray
    bin_edges_s: np.ndarray
    bin_state: np.ndarray
    method: str
    model: dict | None
    bic: dict


def threshold_states(
    stream: PhotonStream,
    *,
    bin_width_s: float = 10e-3,
    n_states: int | str = 2,
    method: str = "mixture",
    max_states: int = 3,
    selection: Selection | None = None,
) -> ThresholdStates:
    """Emission states from thresholds on the histogram of binned counts.

    Parameters
    ----------
    stream : PhotonStream
    bin_width_s : float
        Bin width, in seconds (10 ms by default).
    n_states : int or "auto"
        Number of states (1-3 for ``"otsu"``, any for ``"mixture"``), or
        ``"auto"``: the number of mixture components (1..``max_states``)
        with the lowest BIC.
    method : {"mixture", "otsu"}
        ``"mixture"``: EM fit of a mixture of negative-binomial (Poisson-gamma)
        distributions to the counts; a component's shape ``r`` lets its
        variance exceed the Poisson value (``mean + mean^2 / r``, with ``r``
        in [1, 1e8], 1e8 being Poisson), which absorbs the slow intensity
        fluctuations of real bright states.  Between neighbouring states a
        "switching bin" component (counts of a bin during which the emitter
        switched: a Poisson mean uniform between the two states' means) takes
        up the bins with intermediate counts, so they are not mistaken for an
        extra state.  Threshold ``j`` is the smallest count above state
        ``j``'s mean where state ``j + 1``'s weighted probability is the
        larger.  EM starts from the k-means centres of the counts and from
        means spaced geometrically across them; the better fit is kept.
        ``"otsu"``: the thresholds that
        maximise the between-class variance (Otsu 1979).
    max_states : int
        Largest number of states ``"auto"`` tries.
    selection : Selection, optional
        Photons to analyse (e.g. ``channels(1)`` to drop a dark detector).

    Returns
    -------
    ThresholdStates

    Raises
    ------
    ValueError
        Empty selection, fewer than 2 bins, or a bad argument.

    Notes
    -----
    Bins that straddle a switch have intermediate counts; the classification
    error is about one bin per switch.  Choose the bin width well below the
    dwell times and large enough that the states' counts separate
    (several photons per bin in the dimmest state that is not dark).

    References
    ----------
    N. Otsu, IEEE Trans. Syst. Man Cybern. 9, 62 (1979), doi:10.1109/TSMC.1979.4310076.
    """
    what = "threshold_states"
    if method not in ("mixture", "otsu"):
        raise ValueError(f"{what}: method={method!r} must be 'mixture' or 'otsu'")
    counts, edges, t = binned_counts(stream, bin_width_s, selection, what=what)
    values, mult = np.unique(counts, return_counts=True)
    bic: dict[int, float] = {}
    model = None
    if n_states == "auto":
        if method != "mixture":
            raise ValueError(f"{what}: n_states='auto' needs method='mixture'")
        if not isinstance(max_states, int) or max_states < 1:
            raise ValueError(f"{what}: max_states={max_states!r} must be an int >= 1")
        fits = {}
        for k in range(1, min(max_states, values.size) + 1):
            fits[k] = _levels.nb_mixture_best(values, mult, k)
            bic[k] = float(fits[k]["bic"])
        k = min(bic, key=bic.get)
        model = fits[k]
    else:
        if (
            not isinstance(n_states, (int, np.integer))
            or isinstance(n_states, bool)
            or n_states < 1
        ):
            raise ValueError(f"{what}: n_states={n_states!r} must be an int >= 1 or 'auto'")
        k = int(n_states)
        if method == "otsu" and k > 3:
            raise ValueError(f"{what}: method='otsu' supports n_states <= 3, got {k}")
        if k > values.size:
            raise ValueError(
                f"{what}: n_states={k} but the counts take only {values.size} distinct values"
            )
        if method == "mixture":
            model = _levels.nb_mixture_best(values, mult, k)
            bic[k] = float(model["bic"])
    if k == 1:
        th = np.empty(0, np.int64)
    elif method == "mixture":
        th = _levels.mixture_thresholds(model, int(values.max()))
    else:
        th = _levels.multi_otsu(counts, k)
    bin_state = np.searchsorted(th, counts, side="right").astype(np.int64)
    level = np.zeros(k)
    for j in range(k):
        sel = bin_state == j
        if np.any(sel):
            level[j] = counts[sel].mean() / bin_width_s
        elif model is not None:
            level[j] = model["mean"][j] / bin_width_s
    traj = StateTrajectory.build(
        edges[:-1],
        edges[1:],
        bin_state,
        state_labels(k),
        photon_times_s=t,
        level_intensity_hz=level,
        method=f"threshold ({method})",
        info={"bin_width_s": bin_width_s, "thresholds_hz": th / bin_width_s},
    )
    clean_model = None
    if model is not None:
        clean_model = {key: np.asarray(model[key]) for key in ("weight", "mean", "r")}
        clean_model["loglik"] = float(model["loglik"])
    return ThresholdStates(
        traj,
        th.astype(np.int64),
        th / bin_width_s,
        float(bin_width_s),
        counts,
        edges,
        bin_state,
        method,
        clean_model,
        bic,
    )


# ---------------------------------------------------------------------------
# change points (Watkins & Yang 2005)
# ---------------------------------------------------------------------------
def changepoint_critical_value(n_intervals: int, alpha: float = 0.05) -> float:
    """Critical value of Watkins & Yang's weighted statistic for one segment.

    Interpolated (linear in ``ln ln N``) in the Monte Carlo table of
    :mod:`qdinfer._changepoint_table`; beyond its last point (1e6 intervals)
    extrapolated linearly in ``ln ln N``.

    Parameters
    ----------
    n_intervals : int
        Inter-photon intervals in the segment (photons - 1), >= 2.
    alpha : float
        Type-I error: one of ``qdinfer._changepoint_table.ALPHAS``
        (0.01, 0.05, 0.10, 0.31).

    >>> round(changepoint_critical_value(1000, 0.05), 1)
    6.1
    """
    i = _alpha_row(alpha, "changepoint_critical_value")
    if n_intervals < 2:
        raise ValueError(f"n_intervals={n_intervals} must be >= 2")
    grid_n = np.asarray(_changepoint_table.GRID_N, np.float64)
    tau = np.asarray(_changepoint_table.TAU[i], np.float64)
    return float(_changepoint._crit(float(n_intervals), grid_n, tau))


def _alpha_row(alpha: float, what: str) -> int:
    for i, a in enumerate(_changepoint_table.ALPHAS):
        if math.isclose(alpha, a, rel_tol=1e-9):
            return i
    raise ValueError(
        f"{what}: alpha={alpha!r} has no tabulated critical values; use one of "
        f"{_changepoint_table.ALPHAS} (or generate a table with "
        "qdinfer._changepoint.critical_value_table_mc)"
    )


def _ci_drops(confidence: float, what: str) -> np.ndarray:
    """Drops of 2 ln L per bin of the change's strength L* (CI_LSTAR_EDGES)."""
    for b, d in zip(_changepoint_table.CI_BETAS, _changepoint_table.CI_DROP, strict=True):
        if math.isclose(confidence, b, rel_tol=1e-9):
            return np.asarray(d, np.float64)
    raise ValueError(
        f"{what}: confidence={confidence!r} must be one of {_changepoint_table.CI_BETAS}"
    )


@dataclass(frozen=True, eq=False)
class ChangePoints:
    """Result of :func:`change_points`.

    Photon indices refer to the *selected* photons (in time order).

    Attributes
    ----------
    index : ndarray of int64, shape (C,)
        The rate changes after photon ``index[j]`` (that photon ends the
        earlier segment and starts the next one).
    time_s : ndarray of float64, shape (C,)
        Arrival time of those photons (macrotime plus microtime), seconds.
    ci_index : ndarray of int64, shape (C, 2)
        First and last photon index of the confidence region (level
        ``confidence``): the change points within the data between the
        neighbouring change points whose likelihood is within the
        Monte Carlo drop of the maximum.
    ci_s : ndarray of float64, shape (C, 2)
        The same as arrival times, seconds.
    segment_start_s, segment_stop_s : ndarray of float64, shape (C + 1,)
        Segment bounds on the macrotime clock (the last stop is one
        macrotime unit after the last photon).
    segment_n_intervals : ndarray of int64, shape (C + 1,)
        Inter-photon intervals in each segment.
    segment_duration_s : ndarray of float64, shape (C + 1,)
        Arrival-time span of each segment, seconds.
    segment_intensity_hz : ndarray of float64, shape (C + 1,)
        Maximum-likelihood intensity ``n_intervals / duration``, photons/s.
    alpha, confidence : float
    n_photons : int
        Photons analysed.
    photon_times_s : ndarray of float64
        Macrotime-clock times of the analysed photons.
    """

    index: np.ndarray
    time_s: np.ndarray
    ci_index: np.ndarray
    ci_s: np.ndarray
    segment_start_s: np.ndarray
    segment_stop_s: np.ndarray
    segment_n_intervals: np.ndarray
    segment_duration_s: np.ndarray
    segment_intensity_hz: np.ndarray
    alpha: float
    confidence: float
    n_photons: int
    photon_times_s: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return int(self.index.size)


def _strictly_increasing(t: np.ndarray, eps: float) -> np.ndarray:
    """Times nudged by at most ``eps`` per tie so that they strictly increase."""
    if t.size < 2 or np.all(np.diff(t) > 0):
        return t
    i = np.arange(t.size) * eps
    return np.maximum.accumulate(t - i) + i


def change_points(
    stream: PhotonStream,
    *,
    alpha: float = 0.01,
    confidence: float = 0.95,
    selection: Selection | None = None,
    max_change_points: int = 100_000,
) -> ChangePoints:
    """Intensity change points on photon arrival times (Watkins & Yang 2005).

    Binary segmentation: in a segment of ``N`` inter-photon intervals the
    weighted, standardised log-likelihood ratio ``Z_k`` of one rate change
    (see :mod:`qdinfer._changepoint`) is maximised over ``k``; when the
    maximum exceeds the critical value for ``N`` and ``alpha`` the segment
    splits at the maximum-likelihood change point and both halves are
    searched again.  Finally every change point is re-tested (and
    re-located) between its neighbours until nothing changes.

    Parameters
    ----------
    stream : PhotonStream
    alpha : float
        Type-I error of each test: 0.01 (default), 0.05, 0.10 or 0.31
        (tabulated by Monte Carlo, :mod:`qdinfer._make_changepoint_table`).
        Every false change point splits a level into two segments whose
        intensities are pushed apart, which can make :func:`cluster_levels`
        add a level; 0.01 keeps them rare (about one per hundred tests).
    confidence : float
        Level of the confidence regions: 0.69 or 0.95.
    selection : Selection, optional
        Photons to analyse (e.g. ``channels(1)``).
    max_change_points : int
        Safety limit.

    Returns
    -------
    ChangePoints

    Raises
    ------
    ValueError
        Fewer than 2 photons, an alpha or confidence without a table.

    Notes
    -----
    Confidence regions: the true change point's log-likelihood lies below
    the maximum by ``D``.  For a well-resolved change ``2 D`` tends to
    ``2 max(E1, E2)`` with ``E1, E2`` standard exponential (two-sided
    Brownian motion with drift), whose quantile ``beta`` is
    ``-2 ln(1 - sqrt(beta))``: 3.55 (0.69) and 7.35 (0.95); for barely
    significant changes it is larger.  The region keeps every ``k`` whose
    ``2 (max l - l_k)`` is below the Monte Carlo quantile for the change's
    strength ``L* = 2 (max l - l_0)`` (:mod:`qdinfer._changepoint_table`),
    computed between the neighbouring change points.  Ties in arrival time
    are split by 1 ps.

    References
    ----------
    L. P. Watkins and H. Yang, J. Phys. Chem. B 109, 617 (2005),
    doi:10.1021/jp0467548.
    """
    what = "change_points"
    row = _alpha_row(alpha, what)
    drops = _ci_drops(confidence, what)
    lstar_edges = np.asarray(_changepoint_table.CI_LSTAR_EDGES, np.float64)
    s = _selected(stream, selection, what)
    if len(s) < 2:
        raise ValueError(f"{what}: need at least 2 photons, the selection holds {len(s)}")
    t_arr = _strictly_increasing(s.arrival_time_s(), 1e-12)
    tm = _macro_times(s)
    cps = _changepoint.find_change_points(
        t_arr,
        np.asarray(_changepoint_table.GRID_N, np.float64),
        np.asarray(_changepoint_table.TAU[row], np.float64),
        max_change_points=max_change_points,
    )
    n = len(s)
    bounds = np.r_[0, cps, n - 1].astype(np.int64)
    ci = np.empty((cps.size, 2), np.int64)
    for j, c in enumerate(cps):
        a, b = int(bounds[j]), int(bounds[j + 2])
        prof = _changepoint.lr_profile(t_arr, a, b)
        nab = b - a
        lstar = 2.0 * (prof.max() - nab * math.log(nab / (t_arr[b] - t_arr[a])))
        drop = drops[max(int(np.searchsorted(lstar_edges, lstar, "right")) - 1, 0)]
        inside = np.flatnonzero(2.0 * (prof.max() - prof) <= drop)
        ci[j] = (a + inside[0], a + inside[-1]) if inside.size else (c, c)
    seg_n = np.diff(bounds)
    seg_dur = np.diff(t_arr[bounds])
    with np.errstate(divide="ignore", invalid="ignore"):
        seg_int = np.where(seg_dur > 0, seg_n / np.where(seg_dur > 0, seg_dur, 1.0), 0.0)
    res = s.macrotime_resolution_s
    seg_start = np.r_[tm[0], tm[cps]]
    seg_stop = np.r_[tm[cps], (float(s.macrotime[-1]) + 1.0) * res]
    return ChangePoints(
        index=cps,
        time_s=t_arr[cps],
        ci_index=ci,
        ci_s=t_arr[ci] if ci.size else np.empty((0, 2)),
        segment_start_s=seg_start,
        segment_stop_s=seg_stop,
        segment_n_intervals=seg_n,
        segment_duration_s=seg_dur,
        segment_intensity_hz=seg_int,
        alpha=float(alpha),
        confidence=float(confidence),
        n_photons=n,
        photon_times_s=tm,
    )


@dataclass(frozen=True, eq=False)
class LevelClustering:
    """Result of :func:`cluster_levels`.

    Attributes
    ----------
    trajectory : StateTrajectory
        Segments labelled by level (0 = dimmest); touching segments of the
        same level merged.
    n_levels : int
        Number of levels chosen (largest BIC, or as requested).
    level_intensity_hz : ndarray of float64, shape (n_levels,)
        EM intensities of the levels, photons/s.
    level_weight : ndarray of float64, shape (n_levels,)
        Fraction of segments in each level (EM mixing weights).
    segment_level : ndarray of int64, shape (S,)
        Level of each change-point segment.
    bic : dict
        ``{n_levels: BIC}`` for every number tried (larger is better).
    penalty : str
        The BIC penalty used.
    change_points : ChangePoints
    """

    trajectory: StateTrajectory
    n_levels: int
    level_intensity_hz: np.ndarray
    level_weight: np.ndarray
    segment_level: np.ndarray
    bic: dict
    penalty: str
    change_points: ChangePoints


def _level_bic(loglik: float, k: int, n_seg: int, n_photons: int, penalty: str) -> float:
    ls, ln = math.log(max(n_seg, 1)), math.log(max(n_photons, 1))
    if penalty == "watkins-yang":
        return 2.0 * loglik - (2 * k - 1) * ls - n_seg * ln
    return 2.0 * loglik - k * ln - (k - 1) * ls - n_seg * ln


def cluster_levels(
    cps: ChangePoints,
    *,
    max_levels: int = 8,
    n_levels: int | None = None,
    penalty: str = "photons",
) -> LevelClustering:
    """Group change-point segments into intensity levels (Watkins & Yang 2005).

    1. Agglomerative hierarchical clustering: start with one group per
       segment and repeatedly merge the two groups whose merger lowers the
       Poisson log-likelihood ``sum_g n_g ln(n_g / T_g)`` least.
    2. For each number of levels ``G = 1 .. max_levels`` refine the grouping
       by EM for a mixture of Poisson intensities over segments
       (segment ``j`` holds ``n_j`` intervals in ``T_j`` seconds).
    3. Choose ``G`` by the Bayesian information criterion (larger is
       better), ``S`` segments, ``N`` photons:

       * ``penalty="photons"`` (default):
         ``BIC = 2 ln L_EM - G ln N - (G - 1) ln S - S ln N``: each level
         intensity is estimated from photons, so its Laplace (BIC) penalty
         grows with ``ln N``; the ``G - 1`` weights are estimated from the
         ``S`` segments.
       * ``penalty="watkins-yang"``: their
         ``BIC = 2 ln L_EM - (2 G - 1) ln S - S ln N``.  With few segments,
         or with a few false change points splitting a long level (each
         split pushes the two parts' intensities apart), it often adds a
         level: on simulated 2- and 3-state traces it chose the true number
         in 25 of 32 cases at alpha = 0.05 and 30 of 32 at 0.01, against
         30 and 31 of 32 for ``"photons"``.

    Parameters
    ----------
    cps : ChangePoints
        From :func:`change_points`.
    max_levels : int
        Largest number of levels tried.
    n_levels : int, optional
        Force this number of levels instead of choosing by BIC.
    penalty : {"photons", "watkins-yang"}
        The BIC penalty (above).

    Returns
    -------
    LevelClustering
    """
    if not isinstance(cps, ChangePoints):
        raise TypeError(f"cluster_levels: need ChangePoints, got {type(cps).__name__}")
    if penalty not in ("photons", "watkins-yang"):
        raise ValueError(f"cluster_levels: penalty={penalty!r} must be 'photons' or 'watkins-yang'")
    if not isinstance(max_levels, (int, np.integer)) or max_levels < 1:
        raise ValueError(f"cluster_levels: max_levels={max_levels!r} must be an int >= 1")
    n = cps.segment_n_intervals.astype(np.float64)
    dur = np.maximum(cps.segment_duration_s, 1e-15)
    n_seg = n.size
    top = int(min(max_levels if n_levels is None else max(n_levels, 1), n_seg))
    if n_levels is not None and not 1 <= n_levels <= n_seg:
        raise ValueError(
            f"cluster_levels: n_levels={n_levels} must be in 1..{n_seg} (the number of segments)"
        )
    table = _levels.agglomerate(n, dur, top)
    fits: dict[int, dict] = {}
    bic: dict[int, float] = {}
    ks = range(1, top + 1) if n_levels is None else [int(n_levels)]
    for k in ks:
        fit = _levels.poisson_segment_em(n, dur, table[k - 1], k)
        fits[k] = fit
        bic[k] = _level_bic(float(fit["loglik"]), k, n_seg, cps.n_photons, penalty)
    k = max(bic, key=bic.get) if n_levels is None else int(n_levels)
    fit = fits[k]
    seg_level = np.asarray(fit["assign"], np.int64)
    # levels that no segment ends up in are dropped, the rest renumbered
    used = np.unique(seg_level)
    remap = np.full(k, -1, np.int64)
    remap[used] = np.arange(used.size)
    seg_level = remap[seg_level]
    level_int = np.asarray(fit["intensity_hz"])[used]
    level_w = np.asarray(fit["weight"])[used]
    traj = StateTrajectory.build(
        cps.segment_start_s,
        cps.segment_stop_s,
        seg_level,
        state_labels(used.size),
        photon_times_s=cps.photon_times_s,
        level_intensity_hz=level_int,
        method="change points + levels",
        info={
            "alpha": cps.alpha,
            "n_change_points": len(cps),
            "bic": dict(bic),
            "penalty": penalty,
        },
    )
    return LevelClustering(traj, int(used.size), level_int, level_w, seg_level, bic, penalty, cps)


def change_point_states(
    stream: PhotonStream,
    *,
    alpha: float = 0.01,
    confidence: float = 0.95,
    max_levels: int = 8,
    n_levels: int | None = None,
    penalty: str = "photons",
    selection: Selection | None = None,
) -> LevelClustering:
    """:func:`change_points` then :func:`cluster_levels`: levels of an acquisition.

    Parameters are those of the two functions.  The levels' trajectory is
    ``result.trajectory``; ``result.trajectory.coarsened(3)`` maps many
    levels onto dark / grey / bright.
    """
    cps = change_points(stream, alpha=alpha, confidence=confidence, selection=selection)
    return cluster_levels(cps, max_levels=max_levels, n_levels=n_levels, penalty=penalty)


# ---------------------------------------------------------------------------
# state-resolved measurements (the paper's Figure 5)
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class StateMeasurement:
    """Measurements on the photons of one emission state.

    Attributes
    ----------
    label : str
    index : int
    time_s : float
        Time spent in the state, seconds.
    n_photons : int
        Photons of the selection detected in the state.
    rate_hz, rate_stderr_hz : float
        ``n_photons / time_s`` and its Poisson error ``sqrt(n) / time_s``
        (0 and 0 for a state never visited).
    decay : DecayHistogram or None
        Microtime histogram (None for T2 data).
    lifetime : DecayFit or None
        :func:`qdinfer.fit_decay` of ``decay`` (None when there are too few
        photons or the fit failed: see ``notes``).
    mean_arrival : MeanArrivalTime or None
        :func:`qdinfer.mean_arrival_time` of ``decay``: the model-free
        lifetime ``mean_arrival.tau_s`` with ``stderr_s``.
    g2 : PulsedG2 or None
        Pulsed g2(0) from pairs inside the same visit to the state.
    g2_histogram : G2Histogram or None
        Coincidences within the same visit, over a few laser periods.
    notes : tuple of str
        Why a measurement is missing.
    """

    label: str
    index: int
    time_s: float
    n_photons: int
    rate_hz: float
    rate_stderr_hz: float
    decay: DecayHistogram | None
    lifetime: DecayFit | None
    mean_arrival: MeanArrivalTime | None
    g2: PulsedG2 | None
    g2_histogram: G2Histogram | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class StateResolved:
    """Result of :func:`state_resolved`: one :class:`StateMeasurement` per state."""

    states: tuple[StateMeasurement, ...]
    trajectory: StateTrajectory

    def __getitem__(self, key: str | int) -> StateMeasurement:
        return self.states[self.trajectory.index(key)]

    def __len__(self) -> int:
        return len(self.states)

    def table(self) -> list[dict[str, Any]]:
        """One plain dict per state (label, time, photons, rate, lifetime, g2(0))."""
        rows = []
        for m in self.states:
            rows.append(
                {
                    "state": m.label,
                    "time_s": m.time_s,
                    "n_photons": m.n_photons,
                    "rate_hz": m.rate_hz,
                    "rate_stderr_hz": m.rate_stderr_hz,
                    "tau_s": None if m.lifetime is None else float(m.lifetime.tau_s[0]),
                    "tau_stderr_s": (
                        None if m.lifetime is None else float(m.lifetime.tau_stderr_s[0])
                    ),
                    "tau_mean_arrival_s": (
                        None if m.mean_arrival is None else m.mean_arrival.tau_s
                    ),
                    "tau_mean_arrival_stderr_s": (
                        None if m.mean_arrival is None else m.mean_arrival.stderr_s
                    ),
                    "g2_zero": None if m.g2 is None else m.g2.value,
                    "g2_zero_stderr": None if m.g2 is None else m.g2.stderr,
                    "notes": "; ".join(m.notes),
                }
            )
        return rows


def _noted(notes: list[str], what: str, fn: Any) -> Any:
    """``fn()``; its failure (ValueError, arithmetic) or warnings go to ``notes``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn()
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            notes.append(f"no {what}: {exc}")
            out = None
    for w in caught:
        notes.append(f"{what} warned: {w.message}")
    return out


def state_resolved(
    stream: PhotonStream,
    trajectory: StateTrajectory,
    *,
    selection: Selection | None = None,
    g2_channels: tuple[int, int] | None = (0, 1),
    decay_bin_width_s: float | None = None,
    n_exp: int = 1,
    irf: Any = None,
    min_photons: int = 100,
    g2_side_peaks: str = "near",
    g2_n_periods: int = 3,
    g2_bins_per_period: int = 40,
) -> StateResolved:
    """Rate, decay, lifetime and g2(0) of each emission state.

    The photons of state ``k`` are those inside ``trajectory.selection(k)``
    (and ``selection``).  g2 counts only pairs inside the same visit to the
    state (``within=``), so the switching itself adds no correlations.

    Parameters
    ----------
    stream : PhotonStream
        The photons (both HBT channels for g2).
    trajectory : StateTrajectory
        From :func:`threshold_states`, :func:`change_point_states` or
        :func:`qdinfer.hmm_states`, possibly :meth:`~StateTrajectory.coarsened`.
    selection : Selection, optional
        Further selection (a gate, channels) applied to every measurement.
    g2_channels : (int, int) or None
        The HBT channels; None skips g2.
    decay_bin_width_s : float, optional
        Decay histogram bin (default: the TCSPC bin).
    n_exp : int
        Exponentials in the lifetime fit (:func:`qdinfer.fit_decay`).
    irf : optional
        IRF for the fit (see :func:`qdinfer.fit_decay`; None estimates one).
    min_photons : int
        States with fewer photons get no lifetime fit and no g2.
    g2_side_peaks : str
        ``side_peaks`` of :func:`qdinfer.pulsed_g2_zero`.
    g2_n_periods, g2_bins_per_period : int
        Extent (periods each side) and resolution of the g2 histograms.

    Returns
    -------
    StateResolved
        ``result["bright"].lifetime.tau_s``, ``result.table()``.

    Notes
    -----
    A missing measurement is None with the reason in ``notes``; a state
    never visited has rate 0 and nothing else.  Nothing is NaN.  Warnings
    raised by the lifetime fit or the mean arrival time of one state are
    recorded in that state's ``notes`` instead of being emitted, so that one
    dim state does not interrupt the others: read ``notes`` (or
    ``table()["notes"]``) before trusting a lifetime.
    """
    if not isinstance(trajectory, StateTrajectory):
        raise TypeError(
            f"state_resolved: trajectory must be a StateTrajectory, got {type(trajectory).__name__}"
        )
    if not isinstance(stream, PhotonStream):
        raise TypeError(
            f"state_resolved: stream must be a PhotonStream, got {type(stream).__name__}"
        )
    times = trajectory.time_in_state_s()
    out = []
    for k, label in enumerate(trajectory.labels):
        notes: list[str] = []
        visits = trajectory.selection(k)
        sel: Selection = visits if selection is None else (visits & selection)
        n = int(np.count_nonzero(sel.mask(stream))) if len(stream) else 0
        t_k = float(times[k])
        rate = n / t_k if t_k > 0 else 0.0
        rate_err = math.sqrt(n) / t_k if t_k > 0 else 0.0
        if t_k <= 0:
            notes.append("state never visited")
        decay = fit = mat = g2 = g2h = None
        if stream.is_t3 and n > 0:
            decay = decay_histogram(stream, selection=sel, bin_width_s=decay_bin_width_s)
            if n >= min_photons:
                fit = _noted(
                    notes,
                    "lifetime fit",
                    lambda d=decay: fit_decay(d, n_exp=n_exp, irf=irf, min_photons=min_photons),
                )
                mat = _noted(notes, "mean arrival time", lambda d=decay: mean_arrival_time(d))
            else:
                notes.append(f"no lifetime fit: {n} photons < min_photons={min_photons}")
        elif not stream.is_t3:
            notes.append("no decay: T2 stream")
        if g2_channels is not None and n >= min_photons:
            period = stream.macrotime_resolution_s if stream.is_t3 else None
            try:
                g2 = pulsed_g2_zero(
                    stream,
                    channels=g2_channels,
                    selection=sel,
                    within=visits,
                    side_peaks=g2_side_peaks,
                )
                if period is not None:
                    width = period / g2_bins_per_period
                    g2h = g2_histogram(
                        stream,
                        channels=g2_channels,
                        max_lag_s=(g2_n_periods + 0.5) * period,
                        bin_width_s=width,
                        selection=sel,
                        within=visits,
                    )
            except ValueError as exc:
                notes.append(f"no g2: {exc}")
        elif g2_channels is not None and n > 0:
            notes.append(f"no g2: {n} photons < min_photons={min_photons}")
        out.append(
            StateMeasurement(
                label, k, t_k, n, rate, rate_err, decay, fit, mat, g2, g2h, tuple(notes)
            )
        )
    return StateResolved(tuple(out), trajectory)
