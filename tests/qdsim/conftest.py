"""Helpers for the qdsim tests: ideal setups and an independent pulsed-g2 counter.

The g2 counter is a small NumPy routine written for the tests (not qdinfer):
it counts, per sync period, the photons of each channel and sums the
products of the two channels' counts in the same period (centre peak) and in
periods ``lag`` apart (side peaks).
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

import qdsim
from qdsim import Detection, Detector, Irf, Setup, Tcspc


def ideal_detector(**kw) -> Detector:
    """A detector without noise, dead time, jitter or delay."""
    base = dict(
        split=0.5,
        irf=Irf(fwhm_s=0.0, tail_fraction=0.0),
        delay_s=0.0,
        dead_time_s=0.0,
        dark_rate_hz=0.0,
        afterpulse_probability=0.0,
        background_rate_hz=0.0,
        leakage_rate_hz=0.0,
    )
    base.update(kw)
    return Detector(**base)


def ideal_setup(
    base: Setup | None = None, *, eta_c: float = 0.01, detectors=None, **detection_kw
) -> Setup:
    """``base`` (default the paper's QD) with an ideal detection chain."""
    base = qdsim.presets.paper_qd() if base is None else base
    detection = Detection(
        eta_c=eta_c,
        detectors=tuple(detectors) if detectors else (ideal_detector(), ideal_detector()),
        collection_filter=None,
        tcspc=Tcspc(resolution_s=128e-12, n_bins=4096, dead_time_s=0.0),
        **detection_kw,
    )
    return dataclasses.replace(
        base,
        detection=detection,
        excitation=dataclasses.replace(base.excitation, pulse_fwhm_s=0.0),
    )


def with_state(setup: Setup, **kw) -> Setup:
    """``setup`` with the fields of its single state replaced."""
    state = dataclasses.replace(setup.emitter.states[0], **kw)
    return dataclasses.replace(setup, emitter=dataclasses.replace(setup.emitter, states=(state,)))


def with_emitter(setup: Setup, **kw) -> Setup:
    """``setup`` with emitter fields replaced."""
    return dataclasses.replace(setup, emitter=dataclasses.replace(setup.emitter, **kw))


def with_detectors(setup: Setup, **kw) -> Setup:
    """``setup`` with the same fields replaced in every detector."""
    dets = tuple(dataclasses.replace(d, **kw) for d in setup.detection.detectors)
    return dataclasses.replace(
        setup, detection=dataclasses.replace(setup.detection, detectors=dets)
    )


def pulsed_g2(
    stream, *, mask: np.ndarray | None = None, n_side: int = 10, channels=(0, 1)
) -> tuple[float, float, int]:
    """Pulsed g2(0) = centre / mean(side peaks) from per-sync-period counts.

    Returns (g2, sigma, centre count).  sigma from the delta method with the
    empirical variance of the per-period products (pulses are independent
    without blinking); side peaks at lags +-1..+-n_side.
    """
    sync = stream.macrotime
    ch = stream.channel
    if mask is not None:
        sync, ch = sync[mask], ch[mask]
    ua, ca = np.unique(sync[ch == channels[0]], return_counts=True)
    ub, cb = np.unique(sync[ch == channels[1]], return_counts=True)

    def coinc(lag: int) -> tuple[float, float]:
        target = ua + lag
        idx = np.searchsorted(ub, target)
        ok = idx < len(ub)
        ok[ok] = ub[idx[ok]] == target[ok]
        prod = ca[ok] * cb[idx[ok]]
        return float(prod.sum()), float((prod.astype(float) ** 2).sum())

    centre, var_c = coinc(0)
    side = [coinc(lag) for lag in range(-n_side, n_side + 1) if lag != 0]
    s_sum = sum(s for s, _ in side)
    s_var = sum(v for _, v in side)
    mean_side = s_sum / (2 * n_side)
    g2 = centre / mean_side
    rel = math.sqrt(var_c / max(centre, 1.0) ** 2 + s_var / s_sum**2)
    return g2, g2 * rel if centre > 0 else math.sqrt(var_c) / mean_side, int(centre)


@pytest.fixture
def h() -> SimpleNamespace:
    """The helpers of this file (test modules cannot import a nested conftest)."""
    return SimpleNamespace(
        ideal_detector=ideal_detector,
        ideal_setup=ideal_setup,
        with_state=with_state,
        with_emitter=with_emitter,
        with_detectors=with_detectors,
        pulsed_g2=pulsed_g2,
    )
