"""``qdlight plan``: what an experiment will show at a given power, before it is run.

From the closed forms of :mod:`qdsim.closed_forms` (MODEL.md section 3) and
the setup (a preset or a TOML configuration), :func:`predict` gives the
detected photon rate per channel and in total, the lifetimes of the emission
states, the pulsed g2(0) ungated and time-gated, and the standard error of
each from counting statistics over the acquisition time.  :func:`check`
simulates a short acquisition with :func:`qdsim.simulate` and measures it
with the :mod:`qdinfer` estimators, so the prediction is checked by an
independent implementation; :func:`sweep_figure` draws g2(0) and the rate
against power and gate.

Counting statistics of g2(0)
----------------------------
Per laser pulse let ``mu_c`` be the mean detected counts on channel c
(signal ``s_c`` plus background ``b_c``: dark counts and flat background
times the period, plus laser leakage) and ``M_ab`` the mean product of the
two channels' counts in one pulse.  With ``f_c`` the share of detected
emitter photons that go to channel c and ``F2`` the second factorial moment
of the detected emitter photons per pulse
(:func:`qdsim.closed_forms.photon_moments` with the yields times the
detection probability), ``M_ab = f_a f_b F2 + s_a b_b + b_a s_b + b_a b_b``.
A blinking emitter spends a share ``w_s`` of the time in state s (the
stationary law of its switching), and dwells far longer than the side peaks
used, so ``g2(0) = sum_s w_s M_ab,s / sum_s w_s mu_a,s mu_b,s``.  Over
``N_p = T f_rep`` pulses the centre peak holds ``C = N_p sum_s w_s M_ab,s``
coincidences and each side peak ``S = N_p sum_s w_s mu_a,s mu_b,s``, both
Poisson.  The estimator (:func:`qdinfer.pulsed_g2_zero`) divides the centre
by the mean of ``2 K`` side peaks (K = 10 per side), so

    stderr(g2(0)) = g2(0) sqrt(1 / C + 1 / (2 K S)),

the same propagation the estimator reports.  The gated g2(0) keeps photons
emitted later than the gate (:func:`qdsim.closed_forms.g2_zero_gated`, the
reduced X/BX model); its mean count uses the same survival probabilities, and
the background in the gate is the flat rate times the gated part of the
period.  The rate's error is ``sqrt(R T) / T`` (Poisson).

Afterpulses (probability ``p_ap`` per detection, some 280 ns later: in the
same period and behind any gate) add ``p_ap`` of the rate; ungated they
scale centre and side peaks alike, but behind a gate they pair photons that
arrive after the gate with early photons on the other detector, whose
afterpulses pass the gate: with ``n^g`` the gated and ``n`` all counts of a
pulse, the centre becomes ``E[n_a^g n_b^g] + p_b E[n_a^g n_b] + p_a E[n_a
n_b^g] + p_a p_b E[n_a n_b]`` (the mixed moments from the same per-photon
survival factors).  This raises the gated g2(0) at long gates and high
power.

Neglected (small for the presets, stated so a user can judge): detector and
TCSPC dead time (the rates are corrected with the non-paralysable formula,
g2 is not), the IRF and pulse width at the gate's edge, and X photons that
spill into the next laser period (``exp(-P / tau_X)``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qdio.units import format_quantity, parse_quantity

__all__ = [
    "N_SIDE_PEAKS",
    "Prediction",
    "add_parser",
    "check",
    "cmd_plan",
    "predict",
    "sweep_figure",
]

log = logging.getLogger("qdlight.plan")

N_SIDE_PEAKS = 10  # per side, as qdinfer.pulsed_g2_zero(side_peaks="near")
TAU_FIT_WINDOW_S = (20e-9, 200e-9)  # X-lifetime fit window after the IRF peak


def tail_fit_range_s(decay) -> tuple[float, float]:
    """The X-lifetime fit window of ``decay``: 20 to 200 ns after its IRF peak (in the period)."""
    import qdinfer

    peak = qdinfer.estimate_irf(decay).peak_s
    lo, hi = TAU_FIT_WINDOW_S
    return peak + lo, min(peak + hi, decay.period_s)


def tail_lifetime(data, *, channels: tuple[int, int] = (0, 1)):
    """One-exponential fit of the decay's tail, 20 to 200 ns after the IRF peak.

    By then the BX (ns) and shell (0.5 ns) photons are gone and only the X
    decay, a flat background (fitted) and, late in the period, afterpulses
    remain; the window ends before most afterpulses (about 280 ns after a
    detection).  ``data`` is a PhotonStream (the decay of ``channels``) or a
    DecayHistogram.  Returns a :class:`qdinfer.DecayFit`.
    """
    import qdinfer

    decay = data
    if not isinstance(data, qdinfer.DecayHistogram):
        decay = qdinfer.decay_histogram(data, selection=qdinfer.channels(channels))
    return qdinfer.fit_decay(decay, n_exp=1, fit_range_s=tail_fit_range_s(decay))


@dataclass(frozen=True)
class Prediction:
    """Closed-form expectations for one setup, power, gate and duration.

    Attributes
    ----------
    power_w, gate_s, duration_s : float
    mean_absorbed : float
        Mean absorbed photons per pulse, n.
    rep_rate_hz : float
    rate_hz : ndarray of float64, shape (C,)
        Detected counts per second on each channel (after dead time).
    rate_total_hz, rate_total_stderr_hz : float
        All channels, and the Poisson error over ``duration_s``.
    rate_gated_hz : float
        Counts per second inside the gate, all channels.
    signal_fraction : ndarray of float64, shape (C,)
        Emitter photons / all detected counts, per channel.
    state_names : tuple of str
    state_share : ndarray of float64, shape (S,)
        Share of time in each state at this power.
    tau_x_s, tau_bx_s : ndarray of float64, shape (S,)
        Exciton and biexciton lifetimes of each state.
    tau_h_s : float
        Shell emission time.
    g2_zero, g2_zero_stderr : float
        Pulsed g2(0) (near side peaks), with background, and its error.
    g2_zero_gated, g2_zero_gated_stderr : float
        The same for photons later than ``gate_s`` (NaN when the gated
        closed form does not apply: ladder model).
    g2_zero_signal, g2_zero_gated_signal : float
        Without background (the emitter alone).
    centre_counts, side_counts : float
        Expected coincidences in the centre peak and in one side peak.
    centre_counts_gated, side_counts_gated : float
    channels : tuple of int
        The two channels correlated.
    notes : tuple of str
    """

    power_w: float
    gate_s: float
    duration_s: float
    mean_absorbed: float
    rep_rate_hz: float
    rate_hz: np.ndarray
    rate_total_hz: float
    rate_total_stderr_hz: float
    rate_gated_hz: float
    signal_fraction: np.ndarray
    state_names: tuple[str, ...]
    state_share: np.ndarray
    tau_x_s: np.ndarray
    tau_bx_s: np.ndarray
    tau_h_s: float
    g2_zero: float
    g2_zero_stderr: float
    g2_zero_gated: float
    g2_zero_gated_stderr: float
    g2_zero_signal: float
    g2_zero_gated_signal: float
    centre_counts: float
    side_counts: float
    centre_counts_gated: float
    side_counts_gated: float
    channels: tuple[int, int] = (0, 1)
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (SI units)."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, float) and not math.isfinite(v):
                v = None
            out[k] = v
        return out


def _gated_moments(
    n: float, state, gate_s: float, *, eta_h: float, tau_h_s: float, d_core: float, d_shell: float
) -> tuple[float, float, float]:
    """Moments of the detected photons of one pulse that arrive later than ``gate_s``.

    Reduced model: ``m ~ Poisson(n)`` absorbed; m = 1 gives an X photon
    (yield eta_X, survival ``s_X1 = exp(-t_g / tau_X)``); m >= 2 an X photon
    after the BX one (survival ``s_X2`` of the sum of the two waits) and a
    BX photon (``s_BX``), the survival factors of
    :func:`qdsim.closed_forms.g2_zero_gated`; and ``m - 2`` shell carriers,
    each emitting with ``eta_h`` and surviving with ``exp(-t_g / tau_h)``.
    Photons are emitted independently given m, so with ``x_i`` = P(photon i
    detected and after the gate) and ``y_i`` = P(detected):

    - ``mean = E[sum x]``,
    - ``fact2 = E[(sum x)^2 - sum x^2]`` (pairs both after the gate), but for
      the X-BX pair, ``2 eta_X eta_BX s_BX``: the X photon comes after the
      BX photon, so both pass when the BX photon does,
    - ``mixed = E[sum x sum y - sum x y]`` (ordered pairs: one after the
      gate, the other anywhere; what afterpulses turn into gated pairs).

    ``d_core``, ``d_shell``: detection probability (all channels).
    """
    from qdsim import closed_forms as cf

    m_max = max(cf.poisson_cutoff(n), 2)
    pmf = cf.absorbed_pmf(n, m_max)
    m = np.arange(m_max + 1)
    tx, tb = state.tau_x_s, state.tau_bx_s
    s_x1 = math.exp(-gate_s / tx)
    s_bx = math.exp(-gate_s / tb)
    s_x2 = (1.0 + gate_s / tx) * s_x1 if tx == tb else (tx * s_x1 - tb * s_bx) / (tx - tb)
    s_h = math.exp(-gate_s / tau_h_s) if tau_h_s > 0 else 0.0
    ex, eb, eh = state.eta_x * d_core, state.eta_bx * d_core, eta_h * d_shell
    one, two = m == 1, m >= 2
    k = np.maximum(m - 2, 0).astype(float)
    # per m: sums over the photons of x, y, x^2, x y
    sx = one * ex * s_x1 + two * (ex * s_x2 + eb * s_bx) + k * eh * s_h
    sy = one * ex + two * (ex + eb) + k * eh
    sxx = one * (ex * s_x1) ** 2 + two * ((ex * s_x2) ** 2 + (eb * s_bx) ** 2) + k * (eh * s_h) ** 2
    sxy = one * ex**2 * s_x1 + two * (ex**2 * s_x2 + eb**2 * s_bx) + k * eh**2 * s_h
    mean = float(pmf @ sx)
    # the X photon follows the BX one: both pass the gate when the BX does (s_BX, not
    # s_X2 s_BX as for independent arrival times)
    pair = two * 2.0 * ex * eb * (s_bx - s_x2 * s_bx)
    fact2 = float(pmf @ (sx**2 - sxx + pair))
    mixed = float(pmf @ (sx * sy - sxy))
    return mean, fact2, mixed


def predict(
    setup,
    *,
    power_w: float,
    gate_s: float = 2.5e-9,
    duration_s: float = 60.0,
    channels: tuple[int, int] = (0, 1),
) -> Prediction:
    """Closed-form rate, lifetimes and g2(0) (ungated and gated) with counting errors.

    Parameters
    ----------
    setup : qdsim.Setup
    power_w : float
        Average laser power, in watts.
    gate_s : float
        Gate after the IRF peak for the gated g2(0), in seconds.
    duration_s : float
        Acquisition time for the counting errors, in seconds.
    channels : (int, int)
        The HBT channels.

    Returns
    -------
    Prediction

    Examples
    --------
    >>> import qdsim
    >>> p = predict(qdsim.presets.paper_qd(), power_w=0.17e-6, gate_s=2.5e-9, duration_s=60)
    >>> round(p.mean_absorbed, 2), round(p.rate_total_hz, -2)
    (1.06, 18600.0)
    >>> round(p.g2_zero, 3), round(p.g2_zero_gated, 3)
    (0.28, 0.14)
    """
    from qdsim import closed_forms as cf
    from qdsim.blinking import switching_law
    from qdsim.detector import leakage_per_pulse
    from qdsim.spectra import detection_tables

    setup = setup.validate()
    for name, value in (("power_w", power_w), ("gate_s", gate_s), ("duration_s", duration_s)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{name}={value!r} must be a number (SI units)")
    if not (math.isfinite(power_w) and power_w > 0):
        raise ValueError(f"{power_w=} must be > 0 (watts)")
    if not (math.isfinite(gate_s) and gate_s >= 0):
        raise ValueError(f"{gate_s=} must be >= 0 (seconds)")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"{duration_s=} must be > 0 (seconds)")
    det = setup.detection
    n_ch = len(det.detectors)
    a, b = channels
    if not (0 <= a < n_ch and 0 <= b < n_ch and a != b):
        raise ValueError(f"{channels=} must be two different channels of the setup's {n_ch}")
    f_rep = setup.excitation.rep_rate_hz
    period = setup.excitation.period_s
    n = float(setup.mean_absorbed(power_w))
    em = setup.emitter
    states = em.states
    share = switching_law(setup, n).stationary() if len(states) > 1 else np.ones(1)
    d = detection_tables(setup).d  # (S, 4 processes x/bx/mx/shell, C)
    notes: list[str] = []
    reduced = em.model == "reduced"
    if not reduced:
        notes.append("gated g2(0): closed form only for the reduced X/BX model")
    if len(states) > 1:
        notes.append(
            "blinking: the state shares over a finite acquisition fluctuate; the rate "
            "varies more than the Poisson error says"
        )
    noise = np.array([(x.dark_rate_hz + x.background_rate_hz) * period for x in det.detectors])
    leak = leakage_per_pulse(setup, power_w)
    # the gate starts gate_s after the IRF peak (detector delay); flat noise inside it
    gated_part = np.array([max(0.0, period - x.delay_s - gate_s) / period for x in det.detectors])
    sig = np.zeros(n_ch)
    sig_g = np.zeros(n_ch)
    gated_noise = np.zeros(n_ch)
    ap = np.array([x.afterpulse_probability for x in det.detectors])
    centre = side = centre_g = side_g = 0.0
    centre_s = side_s = centre_gs = side_gs = 0.0
    for s, state in enumerate(states):
        n_s = n * state.excitation_efficiency
        dx = d[s, 0].sum()
        frac = d[s, 0] / dx if dx > 0 else np.full(n_ch, 1.0 / n_ch)
        m_max = cf.poisson_cutoff(n_s)
        core = em.core_capacity(m_max)
        eta, _ = em.levels(state, max(core, 2))
        dproc = np.array([d[s, min(k, 2)].sum() for k in range(len(eta))])
        mean, fact2 = cf.photon_moments(
            n_s, eta * dproc, eta_h=em.eta_h * d[s, 3].sum(), core_capacity=core
        )
        s_ch = frac * mean
        m_sig = frac[a] * frac[b] * fact2
        mu = s_ch + noise + leak
        w = share[s]
        sig += w * s_ch
        centre += w * (m_sig + s_ch[a] * (noise + leak)[b] + (noise + leak)[a] * s_ch[b]
                       + (noise + leak)[a] * (noise + leak)[b])  # fmt: skip
        side += w * mu[a] * mu[b]
        centre_s += w * m_sig
        side_s += w * s_ch[a] * s_ch[b]
        if reduced:
            mean_g, fact2_g, mixed_g = _gated_moments(
                n_s,
                state,
                gate_s,
                eta_h=em.eta_h,
                tau_h_s=em.tau_h_s,
                d_core=dx,
                d_shell=d[s, 3].sum(),
            )
            sg = frac * mean_g
            bg = noise * gated_part
            m_g = frac[a] * frac[b] * fact2_g
            # afterpulses (about 280 ns after a detection: behind any gate) of every count
            nb = noise + leak
            mix_ab = frac[a] * frac[b] * mixed_g + sg[a] * nb[b] + bg[a] * s_ch[b] + bg[a] * nb[b]
            mix_ba = frac[a] * frac[b] * mixed_g + s_ch[a] * bg[b] + nb[a] * sg[b] + nb[a] * bg[b]
            all_ab = m_sig + s_ch[a] * nb[b] + nb[a] * s_ch[b] + nb[a] * nb[b]
            centre_gated = m_g + sg[a] * bg[b] + bg[a] * sg[b] + bg[a] * bg[b]
            centre_gated += ap[b] * mix_ab + ap[a] * mix_ba + ap[a] * ap[b] * all_ab
            sig_g += w * (sg + ap * s_ch)
            centre_g += w * centre_gated
            side_g += w * (sg[a] + bg[a] + ap[a] * mu[a]) * (sg[b] + bg[b] + ap[b] * mu[b])
            centre_gs += w * m_g
            side_gs += w * sg[a] * sg[b]
            gated_noise += w * (bg + ap * (noise + leak))
    per_pulse = sig + noise + leak
    raw_rate = per_pulse * f_rep * (1.0 + ap)
    dead = np.array([max(x.dead_time_s, det.tcspc.dead_time_s) for x in det.detectors])
    rate = np.array([cf.nonparalysable_rate(r, t) for r, t in zip(raw_rate, dead, strict=True)])
    total = float(rate.sum())
    n_pulses = duration_s * f_rep
    nan = math.nan

    def _g2(c: float, s_: float) -> float:
        return float(c / s_) if s_ > 0 else nan

    def _err(g: float, c: float, s_: float) -> float:
        if not (c > 0 and s_ > 0):
            return nan
        return g * math.sqrt(1.0 / (n_pulses * c) + 1.0 / (2 * N_SIDE_PEAKS * n_pulses * s_))

    g2 = _g2(centre, side)
    g2g = _g2(centre_g, side_g) if reduced else nan
    rate_g = float(((sig_g + gated_noise) * f_rep).sum()) if reduced else nan
    return Prediction(
        power_w=float(power_w),
        gate_s=float(gate_s),
        duration_s=float(duration_s),
        mean_absorbed=n,
        rep_rate_hz=f_rep,
        rate_hz=rate,
        rate_total_hz=total,
        rate_total_stderr_hz=math.sqrt(total * duration_s) / duration_s,
        rate_gated_hz=rate_g,
        signal_fraction=sig / per_pulse,
        state_names=tuple(x.name for x in states),
        state_share=np.asarray(share, float),
        tau_x_s=np.array([x.tau_x_s for x in states]),
        tau_bx_s=np.array([x.tau_bx_s for x in states]),
        tau_h_s=float(em.tau_h_s),
        g2_zero=g2,
        g2_zero_stderr=_err(g2, centre, side),
        g2_zero_gated=g2g,
        g2_zero_gated_stderr=_err(g2g, centre_g, side_g) if reduced else nan,
        g2_zero_signal=_g2(centre_s, side_s),
        g2_zero_gated_signal=_g2(centre_gs, side_gs) if reduced else nan,
        centre_counts=float(n_pulses * centre),
        side_counts=float(n_pulses * side),
        centre_counts_gated=float(n_pulses * centre_g) if reduced else nan,
        side_counts_gated=float(n_pulses * side_g) if reduced else nan,
        channels=(a, b),
        notes=tuple(notes),
    )


def check(
    setup,
    prediction: Prediction,
    *,
    duration_s: float = 2.0,
    rng: int | np.random.Generator | None = None,
) -> list[dict[str, Any]]:
    """Simulate ``duration_s`` at the prediction's power and compare with it.

    Returns rows ``{"quantity", "predicted", "simulated", "stderr", "z"}``
    where ``stderr`` is the simulated value's standard error (the estimator's
    own for g2(0) and the lifetime; Poisson for the rate, or the spread of 20
    block rates when the emitter blinks) and ``z = (simulated - predicted) /
    stderr``.  The prediction's counting errors are for its own duration;
    here they are those of the short simulation.

    The lifetime row fits one exponential to the tail (:func:`tail_lifetime`).
    """
    import qdinfer
    import qdsim

    res = qdsim.simulate(setup, power_w=prediction.power_w, duration_s=duration_s, rng=rng)
    s = res.stream
    a, b = prediction.channels
    rows: list[dict[str, Any]] = []

    def add(name: str, pred: float, sim: float, err: float) -> None:
        z = (sim - pred) / err if err > 0 and math.isfinite(err) else math.nan
        rows.append({"quantity": name, "predicted": pred, "simulated": sim, "stderr": err, "z": z})

    dur = res.truth.n_pulses / prediction.rep_rate_hz
    blocks = 20
    edges = np.linspace(0, res.truth.n_pulses, blocks + 1)
    for c, r in enumerate(prediction.rate_hz):
        mt = s.macrotime[s.channel == c]
        err = math.sqrt(max(r * dur, 1.0)) / dur  # Poisson
        if len(prediction.state_names) > 1:  # blinking: spread of block rates
            per_block = np.histogram(mt, edges)[0] / (dur / blocks)
            err = max(err, float(per_block.std(ddof=1)) / math.sqrt(blocks))
        add(f"rate ch{c} (/s)", float(r), len(mt) / dur, err)
    for key, sel in (("g2(0)", None), ("gated g2(0)", "gate")):
        pred = prediction.g2_zero if sel is None else prediction.g2_zero_gated
        if not math.isfinite(pred):
            continue
        selection = None
        if sel is not None:
            selection = qdinfer.gate(min_s=prediction.gate_s, relative_to="irf_peak")
        try:
            g = qdinfer.pulsed_g2_zero(s, channels=(a, b), selection=selection)
        except ValueError as exc:
            log.info("check %s skipped: %s", key, exc)
            continue
        add(key, pred, g.value, g.stderr)
    if len(prediction.state_names) == 1:
        try:  # the X tail, after the BX and shell photons are gone
            fit = tail_lifetime(s, channels=(a, b))
            add(
                "tau_X (s)",
                float(prediction.tau_x_s[0]),
                float(fit.tau_s[0]),
                float(fit.tau_stderr_s[0]),
            )
        except ValueError as exc:
            log.info("check tau_X skipped: %s", exc)
    return rows


def sweep_figure(
    setup,
    *,
    power_w: float,
    gate_s: float,
    duration_s: float,
    powers_w: np.ndarray | None = None,
    gates_s: np.ndarray | None = None,
):
    """Figure: g2(0) (ungated, gated) and rate against power; g2(0) against gate.

    Bands are the counting errors over ``duration_s``.  Returns a matplotlib
    :class:`~matplotlib.figure.Figure` (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    if powers_w is None:
        powers_w = np.geomspace(power_w / 100, min(power_w * 100, setup.power_for(60.0)), 41)
    if gates_s is None:
        gates_s = np.linspace(0.0, 10e-9, 41)
    preds = [
        predict(setup, power_w=float(p), gate_s=gate_s, duration_s=duration_s) for p in powers_w
    ]
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    pw = np.asarray(powers_w) * 1e6
    for key, label, colour in (
        ("g2_zero", "ungated", "C0"),
        ("g2_zero_gated", f"gated {gate_s * 1e9:g} ns", "C3"),
    ):
        y = np.array([getattr(p, key) for p in preds])
        e = np.array([getattr(p, key + "_stderr") for p in preds])
        ax1.plot(pw, y, color=colour, label=label)
        ax1.fill_between(pw, y - e, y + e, color=colour, alpha=0.25, lw=0)
    ax1.axvline(power_w * 1e6, color="0.5", ls=":")
    ax1.set(xscale="log", xlabel="power (µW)", ylabel="g2(0)", title="g2(0) vs power")
    ax1.legend(frameon=False)
    rate = np.array([p.rate_total_hz for p in preds])
    ax2.plot(pw, rate, color="k", label="all")
    ax2.plot(pw, [p.rate_gated_hz for p in preds], color="C3", label="in gate")
    ax2.axvline(power_w * 1e6, color="0.5", ls=":")
    ax2.set(xscale="log", yscale="log", xlabel="power (µW)", ylabel="detected rate (/s)")
    ax2.set_title("rate vs power")
    ax2.legend(frameon=False)
    pg = [predict(setup, power_w=power_w, gate_s=float(g), duration_s=duration_s) for g in gates_s]
    y = np.array([p.g2_zero_gated for p in pg])
    e = np.array([p.g2_zero_gated_stderr for p in pg])
    gn = np.asarray(gates_s) * 1e9
    ax3.plot(gn, y, color="C3")
    ax3.fill_between(gn, y - e, y + e, color="C3", alpha=0.25, lw=0)
    ax3b = ax3.twinx()
    ax3b.plot(gn, [p.rate_gated_hz for p in pg], color="0.4", ls="--")
    ax3b.set_ylabel("rate in gate (/s, dashed)")
    ax3.set(xlabel="gate after IRF peak (ns)", ylabel="gated g2(0)")
    ax3.set_title(f"at {format_quantity(power_w, 'W')}")
    fig.suptitle(
        f"{setup.name}: counting-error bands for {format_quantity(duration_s, 's')}", fontsize=10
    )
    return fig


# -- command line -------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``plan`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "plan",
        help="expected rate, lifetimes and g2(0) (ungated and gated) at a power, before measuring",
        description=(
            "Predict from closed forms what an acquisition will show: detected rate per "
            "channel, state lifetimes, pulsed g2(0) ungated and gated, and the spread from "
            "counting statistics over --duration; checked by a quick simulation."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("config", nargs="?", type=Path, help="setup TOML (docs/qdsim_config.md)")
    src.add_argument("--preset", choices=["paper_qd", "blinking_qd"], help="built-in setup")
    p.add_argument("--power", required=True, metavar="P", help="average laser power, e.g. 0.5uW")
    p.add_argument("--gate", default="2.5ns", metavar="T", help="gate after the IRF peak (2.5ns)")
    p.add_argument("--duration", default="60s", metavar="T", help="planned acquisition time (60s)")
    p.add_argument(
        "--check-duration",
        default="2s",
        metavar="T",
        help="length of the checking simulation (2s)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the checking simulation")
    p.add_argument("--seed", type=int, default=None, help="seed of the checking simulation")
    p.add_argument(
        "--sweep", type=Path, metavar="PNG", help="draw g2(0) and rate vs power and gate here"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_plan)
    return p


def _positive(text: str, unit: str, option: str, *, allow_zero: bool = False) -> float:
    value = parse_quantity(text, unit, name=option)
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        raise ValueError(f"{option} {text!r} must be {'>= 0' if allow_zero else '> 0'}")
    return value


def format_prediction(p: Prediction) -> str:
    """The prediction as aligned text lines."""
    fq = format_quantity
    lines = [
        f"{'power':<16}{fq(p.power_w, 'W')} (n = {p.mean_absorbed:.3g} absorbed per pulse)",
        f"{'rate':<16}{p.rate_total_hz:,.0f} /s ± {p.rate_total_stderr_hz:.2g} "
        f"over {fq(p.duration_s, 's')} ("
        + ", ".join(f"ch{c}: {r:,.0f}" for c, r in enumerate(p.rate_hz))
        + ")",
        f"{'signal fraction':<16}" + ", ".join(f"{x:.4f}" for x in p.signal_fraction),
    ]
    for name, w, tx, tb in zip(p.state_names, p.state_share, p.tau_x_s, p.tau_bx_s, strict=True):
        lines.append(
            f"{'state ' + name:<16}{100 * w:.1f} % of the time; tau_X {fq(tx, 's')}, "
            f"tau_BX {fq(tb, 's')}"
        )
    lines.append(f"{'shell':<16}tau_h {fq(p.tau_h_s, 's')}")
    lines.append(
        f"{'g2(0)':<16}{p.g2_zero:.4f} ± {p.g2_zero_stderr:.2g} (emitter alone "
        f"{p.g2_zero_signal:.4f}; centre {p.centre_counts:,.0f}, side {p.side_counts:,.0f} "
        "coincidences)"
    )
    if math.isfinite(p.g2_zero_gated):
        lines.append(
            f"{'gated g2(0)':<16}{p.g2_zero_gated:.4f} ± {p.g2_zero_gated_stderr:.2g} "
            f"(gate {fq(p.gate_s, 's')}; emitter alone {p.g2_zero_gated_signal:.4f}; "
            f"{p.rate_gated_hz:,.0f} /s in the gate)"
        )
    lines.extend(f"{'note':<16}{x}" for x in p.notes)
    return "\n".join(lines)


def format_check(rows: list[dict[str, Any]], duration_s: float) -> str:
    """The check rows as a small table."""
    out = [f"check: simulated {format_quantity(duration_s, 's')}"]
    out.append(f"  {'quantity':<16}{'predicted':>12}{'simulated':>12}{'± stderr':>11}{'z':>7}")
    for r in rows:
        out.append(
            f"  {r['quantity']:<16}{r['predicted']:>12.4g}{r['simulated']:>12.4g}"
            f"{r['stderr']:>11.2g}{r['z']:>7.2f}"
        )
    return "\n".join(out)


def cmd_plan(args: argparse.Namespace) -> int:
    """``qdlight plan``: returns the exit status (bad options raise ValueError naming them)."""
    import qdsim

    power_w = _positive(args.power, "W", "--power")
    gate_s = _positive(args.gate, "s", "--gate", allow_zero=True)
    duration_s = _positive(args.duration, "s", "--duration")
    check_s = _positive(args.check_duration, "s", "--check-duration")
    if check_s > 600:
        raise ValueError(f"--check-duration {args.check_duration!r} must be at most 600 s")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed {args.seed} must be >= 0")
    setup = qdsim.load_setup(args.preset or args.config)
    period = setup.excitation.period_s
    if gate_s >= period:
        raise ValueError(
            f"--gate {args.gate!r} must be shorter than the laser period "
            f"{format_quantity(period, 's')}"
        )
    n = setup.mean_absorbed(power_w)
    if n > 100:
        raise ValueError(f"--power {args.power!r} gives n = {n:.3g} absorbed per pulse (max 100)")
    if args.sweep is not None and args.sweep.suffix.lower() != ".png":
        raise ValueError(f"--sweep {args.sweep}: use a .png file name")
    pred = predict(setup, power_w=power_w, gate_s=gate_s, duration_s=duration_s)
    rows = None
    if not args.no_check:
        rows = check(setup, pred, duration_s=check_s, rng=args.seed)
    out: dict[str, Any] = {"setup": setup.name, "prediction": pred.as_dict()}
    if rows is not None:
        out["check"] = {"duration_s": check_s, "seed": args.seed, "rows": rows}
    if args.sweep is not None:
        from qdio._util import atomic_path

        fig = sweep_figure(setup, power_w=power_w, gate_s=gate_s, duration_s=duration_s)
        args.sweep.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.sweep) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        out["sweep"] = str(args.sweep)
    if args.json:
        print(json.dumps(_jsonable(out), indent=2))
    else:
        print(f"{'setup':<16}{setup.name}")
        print(format_prediction(pred))
        if rows is not None:
            print(format_check(rows, check_s))
            bad = [r["quantity"] for r in rows if math.isfinite(r["z"]) and abs(r["z"]) > 4]
            if bad:
                print(f"warning: |z| > 4 for {', '.join(bad)}", file=sys.stderr)
        if args.sweep is not None:
            print(f"{'sweep':<16}{args.sweep}")
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
