"""Emission states on the real Full_SMS blinking traces (../shared/data/full_sms).

Five PicoHarp 300 T3 traces (LabVIEW PT3); after qdio's 0-based mapping the
signal is channel 1 and channel 0 is a dark detector (~10 counts/s).  No
ground truth is shipped (Full_SMS's exported level CSVs are not in the
shared folder), so the checks are of self-consistency: three independent
classifiers (histogram thresholds, change points + levels, HMM) must agree
on where the emitter is bright, the numbers must be plausible, and
nothing may be NaN.  Numbers seen (2-class agreement change points vs HMM):
trace1 0.990, trace2 0.876, trace3 0.990, trace4 0.985.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import qdinfer
import qdio

from conftest import shared_file

pytestmark = pytest.mark.realdata

SIGNAL = qdinfer.channels(1)


def _read(i: int) -> qdio.PhotonStream:
    return qdio.read(shared_file(f"full_sms/trace{i}.pt3"))


@pytest.mark.parametrize(("i", "min_agree"), [(1, 0.95), (2, 0.75), (3, 0.95), (4, 0.95)])
def test_classifiers_agree_on_blinking_traces(i, min_agree):
    s = _read(i)
    th = qdinfer.threshold_states(s, selection=SIGNAL, n_states="auto")
    cp = qdinfer.change_point_states(s, selection=SIGNAL)
    hmm = qdinfer.hmm_states(s, selection=SIGNAL, n_states=2)
    assert th.trajectory.n_states in (2, 3)
    assert 2 <= cp.n_levels <= 8
    assert len(cp.change_points) >= 10
    # the HMM's two states are well apart (on/off ratio > 3)
    assert hmm.intensity_hz[1] > 3 * hmm.intensity_hz[0]
    assert np.all(np.isfinite(hmm.rates_hz)) and np.all(hmm.rates_hz[[0, 1], [1, 0]] > 0)
    cp2 = cp.trajectory.coarsened(2)
    th2 = th.trajectory.coarsened(2)
    assert qdinfer.time_agreement(cp2, hmm.trajectory) >= min_agree
    assert qdinfer.time_agreement(cp2, th2) >= min_agree - 0.05
    # every photon of the signal channel inside the trajectory is in exactly one state
    n_sel = sum(
        np.count_nonzero((cp.trajectory.selection(k) & SIGNAL).mask(s))
        for k in range(cp.trajectory.n_states)
    )
    assert n_sel == s.counts_per_channel()[1]


@pytest.mark.parametrize("i", [1, 3, 4])
def test_state_resolved_on_bright_traces(i):
    s = _read(i)
    cp = qdinfer.change_point_states(s, selection=SIGNAL)
    res = qdinfer.state_resolved(s, cp.trajectory.coarsened(3), selection=SIGNAL, g2_channels=None)
    rows = res.table()
    for row in rows:
        for v in row.values():
            assert not (isinstance(v, float) and math.isnan(v))
    dark, bright = res["dark"], res["bright"]
    assert bright.rate_hz > 5 * dark.rate_hz
    # A-type blinking: the dim states decay faster (seen: bright 2.4-2.6 ns, dark 0.3-0.9 ns)
    assert bright.mean_arrival.tau_s > dark.mean_arrival.tau_s + 3 * math.hypot(
        bright.mean_arrival.stderr_s, dark.mean_arrival.stderr_s
    )


def test_mostly_dark_trace_is_one_state():
    s = _read(0)  # ~67 counts/s on the signal channel all along
    th = qdinfer.threshold_states(s, selection=SIGNAL, n_states="auto")
    assert th.trajectory.labels == ("single",)
    hmm = qdinfer.hmm_states(s, selection=SIGNAL, n_states=2)
    assert hmm.intensity_hz[1] < 2 * hmm.intensity_hz[0]  # no real on/off contrast
    cp = qdinfer.change_point_states(s, selection=SIGNAL)
    assert cp.trajectory.time_fraction().sum() == pytest.approx(1.0)
