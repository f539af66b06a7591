"""Bayesian decay fit of a real Full SMS trace (../shared/data/full_sms)."""

from __future__ import annotations

import math

import pytest

import qdinfer
import qdio

from conftest import shared_file

pytest.importorskip("qdinfer.models")
from qdinfer.models import fit_decay_bayes


@pytest.mark.realdata
def test_full_sms_decay_agrees_with_mle():
    """trace0.pt3, channel 1 (8e3 photons), IRF from the rising edge: NUTS vs scipy MLE."""
    s = qdio.read(shared_file("full_sms/trace0.pt3"))
    n_ticks = round(s.macrotime_resolution_s / s.microtime_resolution_s)
    k = max(1, math.ceil(n_ticks / 512))
    d = qdinfer.decay_histogram(
        s, selection=qdinfer.channels(1), bin_width_s=k * s.microtime_resolution_s
    )
    mle = qdinfer.fit_decay(d, n_exp=1)
    res = fit_decay_bayes(d, n_exp=1, seed=0)
    assert res.diagnostics["r_hat"] < 1.01
    # same data and model: posterior mean within half a posterior sd of the MLE,
    # posterior sd within 25 % of the Fisher standard error
    assert abs(res.mean("tau_1_s") - mle.tau_s[0]) < 0.5 * res.sd("tau_1_s")
    assert res.sd("tau_1_s") == pytest.approx(mle.tau_stderr_s[0], rel=0.25)
