"""numba kernels of the simulator: photons of a block of pulses, blinking, dead time.

Every kernel takes a :class:`numpy.random.Generator` and draws from it in a
fixed order, so results depend only on the generator's seed (numba draws the
same numbers as NumPy and advances the same state; see PITFALLS.md).  Kernels
are ``nogil`` so blocks can run on threads; none uses ``prange`` (per-thread
streams would not be reproducible).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "assemble",
    "deadtime_pass",
    "guide_table",
    "irf_samples",
    "signal_block",
    "trajectory_kernel",
]

# process codes (qdsim.truth.Process)
X, BX, MX, SHELL = 0, 1, 2, 3

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _grow_f8(a, n):
    out = np.empty(n, np.float64)
    out[: a.shape[0]] = a
    return out


@_jit
def _grow_i8(a, n):
    out = np.empty(n, np.int64)
    out[: a.shape[0]] = a
    return out


@_jit
def _geometric(rng, log_q):
    """Trials up to the first success, success probability p = 1 - exp(log_q) (inversion)."""
    if log_q == -np.inf:
        return 1
    x = -rng.standard_exponential() / log_q
    if x > 4e18:  # p ~ 0: beyond any acquisition (and int64-safe)
        return 4_000_000_000_000_000_000
    k = math.ceil(x)
    return k if k >= 1 else 1


def guide_table(cdf: np.ndarray, size: int | None = None) -> np.ndarray:
    """Guide table of a cumulative distribution (last axis) for :func:`_guided_row`.

    ``guide[..., j]`` is the first index i with ``cdf[..., i] > j / size``
    (Chen and Asau's indexed search: about one comparison per draw).
    """
    cdf = np.asarray(cdf, float)
    size = cdf.shape[-1] if size is None else int(size)
    levels = np.arange(size) / size
    flat = cdf.reshape(-1, cdf.shape[-1])
    out = np.empty((flat.shape[0], size), np.int32)
    for r in range(flat.shape[0]):
        out[r] = np.minimum(np.searchsorted(flat[r], levels, side="right"), cdf.shape[-1] - 1)
    return out.reshape((*cdf.shape[:-1], size))


@_jit
def _guided_row(cdf, guide, r, u):
    """First index i with ``cdf[r, i] > u`` (indexed search in row r, no slicing)."""
    i = guide[r, int(u * guide.shape[1])]
    while cdf[r, i] <= u:
        i += 1
    return i


@_jit
def _irf(rng, c, kind, sigma, tail_frac, tail_tau, hist_cdf, hist_guide, hist_bin, hist_offset):
    """One timing-jitter draw of detector c, in seconds."""
    if kind[c] == 0:
        x = 0.0
        if sigma[c] > 0.0:
            x += sigma[c] * rng.standard_normal()
        if tail_frac[c] > 0.0 and rng.random() < tail_frac[c]:
            x += rng.exponential(tail_tau[c])
        return x
    u = rng.random()
    b = _guided_row(hist_cdf, hist_guide, c, u)
    lo = hist_cdf[c, b - 1] if b > 0 else 0.0
    return (b + (u - lo) / (hist_cdf[c, b] - lo)) * hist_bin[c] - hist_offset[c]


@_jit
def irf_samples(
    rng, c, count, kind, sigma, tail_frac, tail_tau, hist_cdf, hist_guide, hist_bin, hist_offset
):
    """``count`` timing-jitter draws of detector ``c`` (float64 seconds)."""
    out = np.empty(count, np.float64)
    for i in range(count):
        out[i] = _irf(
            rng, c, kind, sigma, tail_frac, tail_tau, hist_cdf, hist_guide, hist_bin, hist_offset
        )
    return out


@_jit
def signal_block(
    rng,
    period,
    first_pulse,
    iv_start,
    iv_end,
    iv_state,
    iv_resume,
    pos_resume,
    log_q_detect,
    m_cdf,
    m_guide,
    core,
    r_level,
    tau_level,
    q_core,
    r_shell,
    tau_shell,
    ch_cdf,
    line_index,
    wl_cdf,
    wl_guide,
    wl_min,
    wl_step,
    delay,
    pulse_sigma,
    irf_kind,
    irf_sigma,
    irf_tail_frac,
    irf_tail_tau,
    irf_hist_cdf,
    irf_hist_guide,
    irf_hist_bin,
    irf_hist_offset,
    t_out,
    c_out,
    p_out,
    s_out,
    w_out,
    e_out,
    k_out,
    a_out,
    n_out,
):
    """Detected emitter photons of one block of pulses, in generation order.

    The pulses ``[iv_start[i], iv_end[i])`` (relative to the block) are in
    state ``iv_state[i]``.  In each interval the pulses that give at least
    one detection are reached by geometric jumps (``log_q_detect[s]`` = log
    of the probability that a pulse gives none); for each of them the
    absorbed number m is drawn from ``P(m | >= 1 detection)`` (``m_cdf``),
    then the first detected photon slot exactly (core levels from the top,
    then shell carriers), the other slots independently, and only then the
    channel, wavelength and time of each detected photon.

    Photons are written to the ``*_out`` arrays from row ``n_out`` on: t (s
    since the block start, detection time), channel, process, state,
    wavelength (m), emission delay (s), pulse (absolute index), absorbed m.
    When the arrays could overflow the kernel stops before a pulse and
    returns ``(n_out, iv, pos, False)``; call it again with larger arrays
    and ``iv_resume=iv, pos_resume=pos`` to continue with the same draws.
    ``pos_resume = -2`` starts interval ``iv_resume`` afresh.  Returns
    ``(n_out, iv, pos, True)`` at the end of the block.
    """
    n_ch = delay.shape[0]
    m_top = m_cdf.shape[1] - 1
    cap = t_out.shape[0]
    hit = np.zeros(core + 1, np.bool_)
    for iv in range(iv_resume, iv_start.shape[0]):
        s = iv_state[iv]
        log_q = log_q_detect[s]
        if log_q >= 0.0:
            continue
        if iv == iv_resume and pos_resume > -2:
            pos = pos_resume
        else:
            pos = iv_start[iv] - 1
        end = iv_end[iv]
        rh = r_shell[s]
        log_qh = math.log1p(-rh) if rh < 1.0 else -np.inf
        while True:
            if n_out + m_top > cap:
                return n_out, iv, pos, False
            pos += _geometric(rng, log_q)
            if pos >= end:
                break
            # absorbed photons, given >= 1 detection
            m = _guided_row(m_cdf, m_guide, s, rng.random())
            if m > m_top:
                m = m_top
            n_core = m if m < core else core
            n_shell = m - n_core
            q_shell = math.exp(n_shell * log_qh) if n_shell > 0 else 1.0
            total = 1.0 - q_core[s, n_core] * q_shell
            # first detected slot: core levels n_core..1 (decay order), then shell
            u = rng.random() * total
            surv = 1.0
            first = 0
            for k in range(n_core, 0, -1):
                hit[k] = False
                if first == 0:
                    mass = surv * r_level[s, k]
                    if u < mass:
                        first = k
                    else:
                        u -= mass
                        surv *= 1.0 - r_level[s, k]
            n_shell_hit = 0
            if first > 0:
                hit[first] = True
                for k in range(first - 1, 0, -1):
                    hit[k] = rng.random() < r_level[s, k]
                if n_shell > 0 and rh > 0.0:
                    n_shell_hit = rng.binomial(n_shell, rh)
            elif n_shell > 0 and rh > 0.0:
                x = u / surv if surv > 0.0 else 1.0
                if x >= 1.0:
                    i = n_shell - 1
                else:
                    i = math.floor(math.log1p(-x) / log_qh) if rh < 1.0 else 0
                    if i > n_shell - 1:
                        i = n_shell - 1
                    if i < 0:
                        i = 0
                rest = n_shell - 1 - i
                n_shell_hit = 1
                if rest > 0:
                    n_shell_hit += rng.binomial(rest, rh)
            else:
                # rounding left u past the last core slot: take the lowest emitting level
                for k in range(1, n_core + 1):
                    if r_level[s, k] > 0.0:
                        hit[k] = True
                        break
            jitter = pulse_sigma * rng.standard_normal() if pulse_sigma > 0.0 else 0.0
            t_pulse = pos * period + jitter
            lowest = 0
            for k in range(1, n_core + 1):
                if hit[k]:
                    lowest = k
                    break
            j0 = n_out
            if lowest > 0:
                t_emit = 0.0
                for k in range(n_core, lowest - 1, -1):
                    t_emit += rng.exponential(tau_level[s, k])
                    if hit[k]:
                        e_out[n_out] = t_emit
                        p_out[n_out] = X if k == 1 else (BX if k == 2 else MX)
                        n_out += 1
            for _ in range(n_shell_hit):
                e_out[n_out] = rng.exponential(tau_shell)
                p_out[n_out] = SHELL
                n_out += 1
            # channel, wavelength and detection time of each photon of this pulse
            for j in range(j0, n_out):
                proc = p_out[j]
                u = rng.random()
                c = 0
                while c < n_ch - 1 and u >= ch_cdf[s, proc, c]:
                    c += 1
                r = line_index[s, proc] * n_ch + c
                u = rng.random()
                b = _guided_row(wl_cdf, wl_guide, r, u)
                lo = wl_cdf[r, b - 1] if b > 0 else 0.0
                w_out[j] = wl_min + (b + (u - lo) / (wl_cdf[r, b] - lo)) * wl_step
                # timing jitter, inlined (a call to _irf costs ~60 ns here);
                # the same draws as _irf
                jit = 0.0
                if irf_kind[c] == 0:
                    if irf_sigma[c] > 0.0:
                        jit = irf_sigma[c] * rng.standard_normal()
                    if irf_tail_frac[c] > 0.0 and rng.random() < irf_tail_frac[c]:
                        jit += rng.exponential(irf_tail_tau[c])
                else:
                    u = rng.random()
                    b = _guided_row(irf_hist_cdf, irf_hist_guide, c, u)
                    lo = irf_hist_cdf[c, b - 1] if b > 0 else 0.0
                    frac = (u - lo) / (irf_hist_cdf[c, b] - lo)
                    jit = (b + frac) * irf_hist_bin[c] - irf_hist_offset[c]
                t_out[j] = t_pulse + delay[c] + e_out[j] + jit
                c_out[j] = c
                s_out[j] = s
                k_out[j] = first_pulse + pos
                a_out[j] = m
    return n_out, iv_start.shape[0], -2, True


@_jit
def deadtime_pass(
    rng,
    t,
    det,
    i_start,
    t_end,
    det_dead,
    tcspc_dead,
    dead_s,
    p_ap,
    tau_ap,
    tcspc_dead_s,
    shared,
    pend_t,
    pend_c,
    n_pend,
    src,
    t_keep,
    c_keep,
    n_keep,
):
    """Detector dead time, afterpulsing and TCSPC dead time, in time order.

    ``t`` (sorted) and ``det`` are the candidate events of one block; events
    from ``i_start`` on and pending afterpulses with time ``< t_end`` are
    processed.  An event that finds its detector dead (``t < det_dead[c]``)
    is lost; otherwise the detector registers it, is dead until
    ``t + dead_s[c]`` (non-paralysable), and with probability ``p_ap[c]``
    schedules an afterpulse at ``t + dead_s[c] + Exp(tau_ap[c])`` (itself a
    candidate event, kept sorted in ``pend_t``/``pend_c``).  A registered
    event is recorded unless the TCSPC channel (or the shared TDC) is still
    dead; it stays dead for ``tcspc_dead_s`` after each recorded event.
    ``det_dead`` and ``tcspc_dead`` are updated in place.

    Recorded events go to ``src`` (index into the input, -1 for an
    afterpulse), ``t_keep`` and ``c_keep`` from row ``n_keep`` on.  Returns
    ``(n_keep, i, n_pend, status)``: status 0 when every event before
    ``t_end`` is done (``i`` is then the first input event not processed),
    1 when the output arrays are full and 2 when the pending list is full:
    grow them and call again with ``i_start=i`` to continue with the same
    draws.
    """
    n = t.shape[0]
    cap = src.shape[0]
    pend_cap = pend_t.shape[0]
    i = i_start
    while True:
        if n_keep == cap:
            return n_keep, i, n_pend, 1
        if n_pend == pend_cap:
            return n_keep, i, n_pend, 2
        tm = t[i] if i < n else np.inf
        tp = pend_t[0] if n_pend > 0 else np.inf
        if tm <= tp:
            if tm >= t_end:
                break
            te = tm
            c = det[i]
            index = i
            i += 1
        else:
            if tp >= t_end:
                break
            te = tp
            c = pend_c[0]
            index = -1
            for j in range(1, n_pend):
                pend_t[j - 1] = pend_t[j]
                pend_c[j - 1] = pend_c[j]
            n_pend -= 1
        if te < det_dead[c]:
            continue
        det_dead[c] = te + dead_s[c]
        if p_ap[c] > 0.0 and rng.random() < p_ap[c]:
            t_ap = te + dead_s[c]
            if tau_ap[c] > 0.0:
                t_ap += rng.exponential(tau_ap[c])
            j = n_pend
            while j > 0 and pend_t[j - 1] > t_ap:
                pend_t[j] = pend_t[j - 1]
                pend_c[j] = pend_c[j - 1]
                j -= 1
            pend_t[j] = t_ap
            pend_c[j] = c
            n_pend += 1
        tc = 0 if shared else c
        if te < tcspc_dead[tc]:
            continue
        tcspc_dead[tc] = te + tcspc_dead_s
        src[n_keep] = index
        t_keep[n_keep] = te
        c_keep[n_keep] = c
        n_keep += 1
    return n_keep, i, n_pend, 0


@_jit
def assemble(
    src,
    t_keep,
    n_keep,
    proc,
    state,
    wl,
    emit,
    pulse,
    absorbed,
    first,
    period,
    resolution,
    max_micro,
):
    """Rows of the recorded events: sync index (``first`` + periods), microtime, truth.

    ``src[j] >= 0`` takes the truth of input event ``src[j]``; -1 marks an
    afterpulse (process 5, no wavelength, delay, pulse or absorbed number;
    state 255 = to be filled from the trajectory).
    """
    sync = np.empty(n_keep, np.int64)
    micro = np.empty(n_keep, np.int32)
    p_o = np.empty(n_keep, np.uint8)
    s_o = np.empty(n_keep, np.uint8)
    w_o = np.empty(n_keep, np.float64)
    e_o = np.empty(n_keep, np.float64)
    k_o = np.empty(n_keep, np.int64)
    a_o = np.empty(n_keep, np.int16)
    for j in range(n_keep):
        i = src[j]
        if i >= 0:
            p_o[j] = proc[i]
            s_o[j] = state[i]
            w_o[j] = wl[i]
            e_o[j] = emit[i]
            k_o[j] = pulse[i]
            a_o[j] = absorbed[i]
        else:
            p_o[j] = 5
            s_o[j] = 255
            w_o[j] = np.nan
            e_o[j] = np.nan
            k_o[j] = -1
            a_o[j] = -1
        t = t_keep[j]
        k = math.floor(t / period)
        sync[j] = first + k
        mt = math.floor((t - k * period) / resolution)
        if mt > max_micro:
            mt = max_micro
        if mt < 0:
            mt = 0
        micro[j] = mt
    return sync, micro, p_o, s_o, w_o, e_o, k_o, a_o


@_jit
def _power_law_dwell(rng, alpha, t_min, t_cut):
    """One draw of p(t) ~ t^-alpha exp(-t / t_cut), t >= t_min (exact rejection)."""
    if alpha > 1.0:
        # Pareto proposal, accepted with exp(-(t - t_min) / t_cut)
        while True:
            t = t_min * (1.0 - rng.random()) ** (-1.0 / (alpha - 1.0))
            if not math.isfinite(t_cut):
                return t
            if rng.random() < math.exp(-(t - t_min) / t_cut):
                return t
    # alpha <= 1: log-uniform proposal on [t_min, t_min + 40 t_cut]
    t_max = t_min + 40.0 * t_cut
    span = math.log(t_max / t_min)
    t_star = max(t_min, (1.0 - alpha) * t_cut)
    log_max = (1.0 - alpha) * math.log(t_star) - t_star / t_cut
    while True:
        t = t_min * math.exp(rng.random() * span)
        log_r = (1.0 - alpha) * math.log(t) - t / t_cut
        if math.log(1.0 - rng.random()) < log_r - log_max:
            return t


@_jit
def trajectory_kernel(rng, duration, s0, kind, out_rate, jump_cdf, alpha, t_min, t_cut):
    """Switch times (s) and states of a semi-Markov blink trajectory on [0, duration).

    State s stays for Exp(1 / out_rate[s]) (``kind[s] == 0``) or a truncated
    power-law time (``kind[s] == 1``), then jumps to the state drawn from
    ``jump_cdf[s]``.  A state with no way out stays forever.
    """
    cap = 256
    starts = np.empty(cap, np.float64)
    states = np.empty(cap, np.int64)
    n = 0
    t = 0.0
    s = s0
    while t < duration:
        if n == cap:
            cap *= 2
            starts = _grow_f8(starts, cap)
            states = _grow_i8(states, cap)
        starts[n] = t
        states[n] = s
        n += 1
        if kind[s] == 1:
            dwell = _power_law_dwell(rng, alpha[s], t_min[s], t_cut[s])
        elif out_rate[s] > 0.0:
            dwell = rng.exponential(1.0 / out_rate[s])
        else:
            break
        t += dwell
        if t >= duration:
            break
        s = np.searchsorted(jump_cdf[s], rng.random(), side="right")
        if s >= jump_cdf.shape[1]:
            s = jump_cdf.shape[1] - 1
    return starts[:n].copy(), states[:n].copy()
