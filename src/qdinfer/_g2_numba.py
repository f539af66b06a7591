"""numba kernels: histograms of arrival-time differences between two sorted time arrays.

Private module.  Both kernels walk the two arrays with a two-pointer loop: for
each photon of channel a, the first photon of channel b inside the lag window
is found by advancing a pointer that never moves back, then the photons of b
inside the window are binned.  Cost: O(N_a + N_b + pairs in the window).

Lag convention: ``lag = t_b - t_a``.  Counts are added to ``out`` in place.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "count_pairs_float",
    "count_pairs_int",
    "count_pairs_int_par",
    "count_pairs_stream_int",
    "count_pairs_stream_int_par",
    "is_sorted",
    "split_pulses",
    "split_times_float",
    "split_times_int",
    "split_times_int_par",
    "ticks_sorted",
]


@numba.njit(cache=True, nogil=True)
def is_sorted(t: np.ndarray) -> bool:
    """True when ``t`` is non-decreasing."""
    for i in range(1, t.shape[0]):
        if t[i] < t[i - 1]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def count_pairs_int(
    ta: np.ndarray,
    la: np.ndarray,
    tb: np.ndarray,
    lb: np.ndarray,
    use_labels: bool,
    same: bool,
    scale: int,
    lo_num: int,
    w_num: int,
    nbins: int,
    out: np.ndarray,
) -> None:
    """Integer lags: pair (i, j) goes to bin ``floor((d * scale - lo_num) / w_num)``.

    ``d = tb[j] - ta[i]`` in ticks; only bins ``0 <= bin < nbins`` count.
    ``same``: ``ta`` and ``tb`` are the same array and ``i == j`` is skipped.
    ``use_labels``: only pairs with ``la[i] == lb[j] >= 0`` count.
    """
    hi_num = lo_num + nbins * w_num
    # d * scale >= lo_num  <=>  d >= ceil(lo_num / scale); likewise for hi
    lo_tick = -((-lo_num) // scale)
    hi_tick = -((-hi_num) // scale)
    nb = tb.shape[0]
    j0 = 0
    for i in range(ta.shape[0]):
        t = ta[i]
        while j0 < nb and tb[j0] - t < lo_tick:
            j0 += 1
        lab = la[i] if use_labels else 0
        if use_labels and lab < 0:
            continue
        j = j0
        while j < nb:
            d = tb[j] - t
            if d >= hi_tick:
                break
            if not (same and i == j) and (not use_labels or lb[j] == lab):
                out[(d * scale - lo_num) // w_num] += 1
            j += 1


@numba.njit(cache=True, nogil=True)
def count_pairs_float(
    ta: np.ndarray,
    la: np.ndarray,
    tb: np.ndarray,
    lb: np.ndarray,
    use_labels: bool,
    same: bool,
    lo: float,
    inv_w: float,
    nbins: int,
    out: np.ndarray,
) -> None:
    """Float lags: pair (i, j) goes to bin ``floor(((tb[j] - ta[i]) - lo) * inv_w)``."""
    nb = tb.shape[0]
    j0 = 0
    for i in range(ta.shape[0]):
        t = ta[i]
        while j0 < nb and ((tb[j0] - t) - lo) * inv_w < 0.0:
            j0 += 1
        lab = la[i] if use_labels else 0
        if use_labels and lab < 0:
            continue
        j = j0
        while j < nb:
            x = ((tb[j] - t) - lo) * inv_w
            if x >= nbins:
                break
            if not (same and i == j) and (not use_labels or lb[j] == lab):
                k = int(x)
                if k >= nbins:
                    k = nbins - 1
                out[k] += 1
            j += 1


@numba.njit(cache=True, nogil=True)
def split_times_int(mac, mic, chan, has_mic, ratio, a, b):
    """Ticks ``mac * ratio + mic`` of the photons of channels a and b, and sortedness.

    Returns (t_a, t_b, sorted_a, sorted_b); with a == b, t_b is t_a.
    """
    n = mac.shape[0]
    na = 0
    nb = 0
    for i in range(n):
        c = chan[i]
        if c == a:
            na += 1
        elif c == b:
            nb += 1
    ta = np.empty(na, np.int64)
    tb = np.empty(nb, np.int64)
    ia = 0
    ib = 0
    sa = True
    sb = True
    for i in range(n):
        c = chan[i]
        if c != a and c != b:
            continue
        t = mac[i] * ratio + mic[i] if has_mic else mac[i]
        if c == a:
            if ia > 0 and t < ta[ia - 1]:
                sa = False
            ta[ia] = t
            ia += 1
        else:
            if ib > 0 and t < tb[ib - 1]:
                sb = False
            tb[ib] = t
            ib += 1
    return ta, tb, sa, sb


@numba.njit(cache=True, nogil=True)
def split_times_float(mac, mic, chan, origin, period, res, a, b):
    """Seconds ``(mac - origin) * period + mic * res`` of channels a and b, and sortedness."""
    n = mac.shape[0]
    na = 0
    nb = 0
    for i in range(n):
        c = chan[i]
        if c == a:
            na += 1
        elif c == b:
            nb += 1
    ta = np.empty(na, np.float64)
    tb = np.empty(nb, np.float64)
    ia = 0
    ib = 0
    sa = True
    sb = True
    for i in range(n):
        c = chan[i]
        if c != a and c != b:
            continue
        t = (mac[i] - origin) * period + mic[i] * res
        if c == a:
            if ia > 0 and t < ta[ia - 1]:
                sa = False
            ta[ia] = t
            ia += 1
        else:
            if ib > 0 and t < tb[ib - 1]:
                sb = False
            tb[ib] = t
            ib += 1
    return ta, tb, sa, sb


@numba.njit(cache=True, nogil=True)
def split_pulses(mac, mic, chan, ref_a, ref_b, res, period, a, b):
    """Laser-pulse index of the photons of channels a and b, and sortedness.

    A photon belongs to the pulse that starts at ``ref`` (seconds after its
    sync) before it: ``mac + floor((mic * res - ref) / period)``.
    """
    n = mac.shape[0]
    na = 0
    nb = 0
    for i in range(n):
        c = chan[i]
        if c == a:
            na += 1
        elif c == b:
            nb += 1
    pa = np.empty(na, np.int64)
    pb = np.empty(nb, np.int64)
    ia = 0
    ib = 0
    sa = True
    sb = True
    for i in range(n):
        c = chan[i]
        if c != a and c != b:
            continue
        ref = ref_a if c == a else ref_b
        p = mac[i] + np.int64(np.floor((mic[i] * res - ref) / period))
        if c == a:
            if ia > 0 and p < pa[ia - 1]:
                sa = False
            pa[ia] = p
            ia += 1
        else:
            if ib > 0 and p < pb[ib - 1]:
                sb = False
            pb[ib] = p
            ib += 1
    return pa, pb, sa, sb


@numba.njit(cache=True, nogil=True)
def ticks_sorted(mac, mic, has_mic, ratio):
    """True when ``mac * ratio + mic`` (or ``mac``) is non-decreasing."""
    n = mac.shape[0]
    if not has_mic:
        for i in range(1, n):
            if mac[i] < mac[i - 1]:
                return False
        return True
    prev = mac[0] * ratio + mic[0] if n else 0
    for i in range(1, n):
        t = mac[i] * ratio + mic[i]
        if t < prev:
            return False
        prev = t
    return True


@numba.njit(cache=True, nogil=True)
def count_pairs_stream_int(mac, mic, chan, has_mic, ratio, a, b, scale, lo_num, w_num, nbins, out):
    """Integer lags straight from a time-sorted stream (no per-channel copies).

    Times are ``mac * ratio + mic`` ticks (``mac`` alone without microtimes)
    and must be non-decreasing (:func:`ticks_sorted`).  For each photon on
    channel a, the photons of channel b (any other photon when a == b) with
    ``lo_num <= d * scale < lo_num + nbins * w_num`` are binned as in
    :func:`count_pairs_int`.  Returns the photons of channels a and b.
    """
    hi_num = lo_num + nbins * w_num
    lo_tick = -((-lo_num) // scale)
    hi_tick = -((-hi_num) // scale)
    n = mac.shape[0]
    j0 = 0
    na = 0
    nb = 0
    for i in range(n):
        c = chan[i]
        if c == b:
            nb += 1
        if c != a:
            continue
        na += 1
        t = mac[i] * ratio + mic[i] if has_mic else mac[i]
        lo_t = t + lo_tick
        while j0 < n:
            tj = mac[j0] * ratio + mic[j0] if has_mic else mac[j0]
            if tj >= lo_t:
                break
            j0 += 1
        hi_t = t + hi_tick
        j = j0
        while j < n:
            tj = mac[j] * ratio + mic[j] if has_mic else mac[j]
            if tj >= hi_t:
                break
            if chan[j] == b and j != i:
                out[((tj - t) * scale - lo_num) // w_num] += 1
            j += 1
    return na, nb


# -- parallel versions (blocks of photons per thread; integer sums, so the
# -- result does not depend on the number of threads) -------------------------

_BLOCKS = 16


@numba.njit(cache=True, nogil=True, parallel=True)
def count_pairs_int_par(ta, tb, same, scale, lo_num, w_num, nbins, out):
    """:func:`count_pairs_int` without labels, over blocks of ``ta`` in parallel."""
    hi_num = lo_num + nbins * w_num
    lo_tick = -((-lo_num) // scale)
    hi_tick = -((-hi_num) // scale)
    na = ta.shape[0]
    nb = tb.shape[0]
    outs = np.zeros((_BLOCKS, nbins), np.int64)
    for blk in numba.prange(_BLOCKS):
        i0 = na * blk // _BLOCKS
        i1 = na * (blk + 1) // _BLOCKS
        if i0 >= i1:
            continue
        local = outs[blk]
        j0 = np.searchsorted(tb, ta[i0] + lo_tick)
        for i in range(i0, i1):
            t = ta[i]
            lo_t = t + lo_tick
            while j0 < nb and tb[j0] < lo_t:
                j0 += 1
            hi_t = t + hi_tick
            j = j0
            while j < nb and tb[j] < hi_t:
                if not (same and i == j):
                    local[((tb[j] - t) * scale - lo_num) // w_num] += 1
                j += 1
    for blk in range(_BLOCKS):
        for k in range(nbins):
            out[k] += outs[blk, k]


@numba.njit(cache=True, nogil=True)
def _tick(mac, mic, has_mic, ratio, i):
    return mac[i] * ratio + mic[i] if has_mic else mac[i]


@numba.njit(cache=True, nogil=True)
def _first_at_least(mac, mic, has_mic, ratio, value):
    """First index whose tick is >= value (ticks non-decreasing)."""
    lo = 0
    hi = mac.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if _tick(mac, mic, has_mic, ratio, mid) < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, parallel=True)
def count_pairs_stream_int_par(
    mac, mic, chan, has_mic, ratio, a, b, scale, lo_num, w_num, nbins, out
):
    """:func:`count_pairs_stream_int` over blocks of the stream in parallel."""
    hi_num = lo_num + nbins * w_num
    lo_tick = -((-lo_num) // scale)
    hi_tick = -((-hi_num) // scale)
    n = mac.shape[0]
    outs = np.zeros((_BLOCKS, nbins), np.int64)
    counts = np.zeros((_BLOCKS, 2), np.int64)
    for blk in numba.prange(_BLOCKS):
        i0 = n * blk // _BLOCKS
        i1 = n * (blk + 1) // _BLOCKS
        if i0 >= i1:
            continue
        local = outs[blk]
        j0 = _first_at_least(
            mac, mic, has_mic, ratio, _tick(mac, mic, has_mic, ratio, i0) + lo_tick
        )
        na = 0
        nb = 0
        for i in range(i0, i1):
            c = chan[i]
            if c == b:
                nb += 1
            if c != a:
                continue
            na += 1
            t = _tick(mac, mic, has_mic, ratio, i)
            lo_t = t + lo_tick
            while j0 < n and _tick(mac, mic, has_mic, ratio, j0) < lo_t:
                j0 += 1
            hi_t = t + hi_tick
            j = j0
            while j < n:
                tj = _tick(mac, mic, has_mic, ratio, j)
                if tj >= hi_t:
                    break
                if chan[j] == b and j != i:
                    local[((tj - t) * scale - lo_num) // w_num] += 1
                j += 1
        counts[blk, 0] = na
        counts[blk, 1] = nb
    for blk in range(_BLOCKS):
        for k in range(nbins):
            out[k] += outs[blk, k]
    return counts[:, 0].sum(), counts[:, 1].sum()


@numba.njit(cache=True, nogil=True, parallel=True)
def split_times_int_par(mac, mic, chan, has_mic, ratio, a, b):
    """:func:`split_times_int` in parallel blocks (count, then fill at offsets)."""
    n = mac.shape[0]
    cnt = np.zeros((_BLOCKS, 2), np.int64)
    for blk in numba.prange(_BLOCKS):
        na = 0
        nb = 0
        for i in range(n * blk // _BLOCKS, n * (blk + 1) // _BLOCKS):
            c = chan[i]
            if c == a:
                na += 1
            elif c == b:
                nb += 1
        cnt[blk, 0] = na
        cnt[blk, 1] = nb
    off = np.zeros((_BLOCKS + 1, 2), np.int64)
    for blk in range(_BLOCKS):
        off[blk + 1, 0] = off[blk, 0] + cnt[blk, 0]
        off[blk + 1, 1] = off[blk, 1] + cnt[blk, 1]
    ta = np.empty(off[_BLOCKS, 0], np.int64)
    tb = np.empty(off[_BLOCKS, 1], np.int64)
    unsorted = np.zeros((_BLOCKS, 2), np.int64)
    for blk in numba.prange(_BLOCKS):
        ia = off[blk, 0]
        ib = off[blk, 1]
        for i in range(n * blk // _BLOCKS, n * (blk + 1) // _BLOCKS):
            c = chan[i]
            if c != a and c != b:
                continue
            t = mac[i] * ratio + mic[i] if has_mic else mac[i]
            if c == a:
                if ia > off[blk, 0] and t < ta[ia - 1]:
                    unsorted[blk, 0] = 1
                ta[ia] = t
                ia += 1
            else:
                if ib > off[blk, 1] and t < tb[ib - 1]:
                    unsorted[blk, 1] = 1
                tb[ib] = t
                ib += 1
    sa = unsorted[:, 0].sum() == 0
    sb = unsorted[:, 1].sum() == 0
    for blk in range(1, _BLOCKS):  # across block borders
        k = off[blk, 0]
        if 0 < k < ta.shape[0] and ta[k] < ta[k - 1]:
            sa = False
        k = off[blk, 1]
        if 0 < k < tb.shape[0] and tb[k] < tb[k - 1]:
            sb = False
    return ta, tb, sa, sb
