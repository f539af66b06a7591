"""Small photon sources with answers known in closed form, for the qdinfer tests.

Independent of qdsim on purpose: a few lines of numpy each, so that a test
failure points at the estimator, not at a simulator.  Load with::

    src = load_sources()   # in a test module (import mode is importlib)
"""

from __future__ import annotations

import itertools
import math

import numpy as np

import qdio


def poisson_p(k: int, n: float) -> float:
    return n**k * math.exp(-n) / math.factorial(k)


def g2_reduced(n: float, eta_x: float, eta_bx: float) -> float:
    """Pulsed g2(0) of the reduced X/BX model (MODEL.md section 3)."""
    p1 = 1 - math.exp(-n)  # P(>= 1)
    p2 = p1 - poisson_p(1, n)  # P(>= 2)
    return 2 * eta_x * eta_bx * p2 / (eta_x * p1 + eta_bx * p2) ** 2


def g2_gated(n, eta_x, eta_bx, tau_x, tau_bx, t_g) -> float:
    """Gated g2(0) of the reduced model (MODEL.md section 3)."""
    p1 = poisson_p(1, n)
    p2 = 1 - math.exp(-n) - p1
    s_x1 = math.exp(-t_g / tau_x)
    s_x2 = (tau_x * math.exp(-t_g / tau_x) - tau_bx * math.exp(-t_g / tau_bx)) / (tau_x - tau_bx)
    s_bx = math.exp(-t_g / tau_bx)
    m1 = eta_x * (p1 * s_x1 + p2 * s_x2) + eta_bx * p2 * s_bx
    return 2 * eta_x * eta_bx * p2 * s_bx / m1**2


def cascade_stream(
    rng: np.random.Generator,
    *,
    n_pulses: int,
    n_mean: float = 1.0,
    eta_x: float = 1.0,
    eta_bx: float = 0.3,
    tau_x_s: float = 60e-9,
    tau_bx_s: float = 2e-9,
    eta_c: float = 0.1,
    period_s: float = 400e-9,
    res_s: float = 50e-12,
    n_bins: int = 8192,
    t0_s: float = 0.0,
    irf_sigma_s: float = 0.0,
    bg_per_pulse: float = 0.0,
    on: np.ndarray | None = None,
    with_truth: bool = False,
):
    """Pulsed X/BX cascade split over two channels (the reduced model of MODEL.md).

    Per pulse: N ~ Poisson(n_mean) absorbed; N >= 2 gives a BX photon (yield
    eta_bx) after Exp(tau_bx), then an X photon (yield eta_x) after a further
    Exp(tau_x); N == 1 gives only the X.  Each photon is detected with
    eta_c on channel 0 or 1 (50/50), delayed by t0 + N(0, irf_sigma).
    ``bg_per_pulse``: mean uniform background photons per pulse per channel.
    ``on``: boolean per pulse; pulses that are off emit nothing (blinking).
    """
    n_abs = rng.poisson(n_mean, n_pulses)
    if on is not None:
        n_abs = np.where(on, n_abs, 0)
    idx1 = np.flatnonzero(n_abs >= 1)
    idx2 = np.flatnonzero(n_abs >= 2)
    t_bx = rng.exponential(tau_bx_s, idx2.size)
    t_x = rng.exponential(tau_x_s, idx1.size)
    start_x = np.zeros(n_pulses)
    start_x[idx2] = t_bx
    t_x = t_x + start_x[idx1]
    emit_x = rng.random(idx1.size) < eta_x
    emit_bx = rng.random(idx2.size) < eta_bx
    pulse = np.concatenate([idx1[emit_x], idx2[emit_bx]])
    t = np.concatenate([t_x[emit_x], t_bx[emit_bx]])
    kind = np.concatenate([np.zeros(emit_x.sum(), np.int8), np.ones(emit_bx.sum(), np.int8)])
    det = rng.random(t.size) < eta_c
    pulse, t, kind = pulse[det], t[det], kind[det]
    t = t + t0_s + (rng.normal(0, irf_sigma_s, t.size) if irf_sigma_s > 0 else 0.0)
    ch = rng.integers(0, 2, t.size).astype(np.uint8)
    if bg_per_pulse > 0:
        nb = rng.poisson(bg_per_pulse * n_pulses * 2)
        pulse = np.concatenate([pulse, rng.integers(0, n_pulses, nb)])
        t = np.concatenate([t, rng.uniform(0, period_s, nb)])
        kind = np.concatenate([kind, np.full(nb, 2, np.int8)])
        ch = np.concatenate([ch, rng.integers(0, 2, nb).astype(np.uint8)])
    t = np.maximum(t, 0.0)
    mac = pulse + np.floor(t / period_s).astype(np.int64)
    mic = np.floor((t % period_s) / res_s).astype(np.int64)
    mic = np.minimum(mic, n_bins - 1)
    order = np.lexsort((mic, mac))
    stream = qdio.PhotonStream(ch[order], mac[order], mic[order], period_s, res_s, n_bins)
    if with_truth:
        return stream, kind[order]
    return stream


def decay_stream(
    rng: np.random.Generator,
    *,
    n_photons: int,
    taus_s=(5e-9,),
    fractions=(1.0,),
    period_s: float = 100e-9,
    res_s: float = 16e-12,
    n_bins: int | None = None,
    t0_s: float = 3e-9,
    irf_sigma_s: float = 80e-12,
    bg_fraction: float = 0.0,
    channel: int = 0,
) -> qdio.PhotonStream:
    """Photons of a periodic multi-exponential decay with a Gaussian IRF and background.

    Emission delays add over pulses (the tail of earlier pulses wraps into
    the period), as in an experiment.  ``fractions``: share of photons per
    component; ``bg_fraction``: extra uniform photons as a share of the signal.
    """
    comp = rng.choice(len(taus_s), size=n_photons, p=np.asarray(fractions) / np.sum(fractions))
    t = rng.exponential(np.asarray(taus_s)[comp])
    t = t + t0_s + rng.normal(0, irf_sigma_s, n_photons)
    n_bg = rng.poisson(bg_fraction * n_photons)
    t = np.concatenate([t % period_s, rng.uniform(0, period_s, n_bg)])
    n_per = math.ceil(period_s / res_s - 1e-9)
    n_bins = n_bins or n_per
    mic = np.minimum(np.floor(t / res_s).astype(np.int64), n_per - 1)
    mac = np.sort(rng.integers(0, 10 * (n_photons + n_bg), t.size))
    return qdio.PhotonStream(
        np.full(t.size, channel, np.uint8), mac, rng.permutation(mic), period_s, res_s, n_bins
    )


def t2_poisson(rng, *, rates_hz, duration_s, tick_s=1e-12) -> qdio.PhotonStream:
    """Independent Poisson photons on channels 0, 1, ... (T2, integer tags)."""
    macs, chans = [], []
    for c, r in enumerate(rates_hz):
        n = rng.poisson(r * duration_s)
        macs.append(rng.integers(0, round(duration_s / tick_s), n))
        chans.append(np.full(n, c, np.uint8))
    mac = np.concatenate(macs)
    ch = np.concatenate(chans)
    order = np.argsort(mac, kind="stable")
    return qdio.PhotonStream(ch[order], mac[order], None, tick_s)


def split_chunks(stream: qdio.PhotonStream, rng, n_chunks: int) -> list[qdio.PhotonStream]:
    """Random consecutive chunks (some empty, some of one photon)."""
    n = len(stream)
    cuts = np.sort(rng.integers(0, n + 1, n_chunks - 1))
    cuts = np.concatenate([[0], cuts, [n]])
    return [stream.take(slice(int(a), int(b))) for a, b in itertools.pairwise(cuts)]
