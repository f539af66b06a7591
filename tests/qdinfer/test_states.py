"""Emission states on a simulated blinking emitter whose truth is known exactly.

The emitter (tests/blink_sim.py) is a continuous-time Markov chain; photons
are Poisson at a rate set by the state, at most one per laser period, with
state-dependent exponential delays.  Tolerances:

* classification accuracy (fraction of time labelled correctly): a binned
  method errs on at most the one bin holding each switch, so the error is at
  most ``n_switches * bin_width / T`` plus whole bins misclassified by
  Poisson noise (negligible for the well-separated counts used here);
  change points err by a few inter-photon intervals of the dimmer state at
  each switch and on dwells too short to resolve (bounded by
  ``n_switches * 10 / rate_dim``);
* switching rates estimated from ``N`` switches: relative sigma ``1/sqrt(N)``;
* lifetimes: the mean-delay estimator has sigma ``tau / sqrt(N)``; photons
  given the wrong state shift it by at most ``f_wrong * max|tau_i - tau_j|``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

import qdinfer
import qdio
from blink_sim import telegraph
from qdinfer import StateTrajectory, plots_states
from qdinfer.states import binned_counts

RATES_2 = [300.0, 5000.0]
SWITCH_2 = [[0, 3.0], [2.0, 0]]  # dark -> bright 3 /s, bright -> dark 2 /s
RATES_3 = [500.0, 6000.0, 20000.0]
SWITCH_3 = [[0, 2.0, 1.0], [2.0, 0, 2.0], [1.0, 2.0, 0]]
TAU_3 = [1e-9, 8e-9, 30e-9]


@pytest.fixture(scope="module")
def two_state():
    return telegraph(RATES_2, SWITCH_2, 60.0, 11, tau_s=[2e-9, 20e-9])


@pytest.fixture(scope="module")
def three_state():
    return telegraph(RATES_3, SWITCH_3, 60.0, 12, tau_s=TAU_3)


def binned_bound(b, bin_width_s):
    n_sw = int(b.n_switches.sum())
    return 1 - n_sw * bin_width_s / b.truth.span_s[1] - 0.005


# -- the trajectory container ---------------------------------------------


def test_trajectory_build_merges_and_validates():
    tr = StateTrajectory.build(
        [0, 1, 2, 3, 5], [1, 2, 3, 5, 5], [0, 0, 2, 1, 1], photon_times_s=[0.5, 1.5, 2.2, 2.4]
    )
    assert tr.start_s.tolist() == [0, 2, 3] and tr.stop_s.tolist() == [2, 3, 5]
    assert tr.state.tolist() == [0, 2, 1] and tr.n_photons.tolist() == [2, 2, 0]
    assert tr.labels == ("dark", "grey", "bright")
    np.testing.assert_allclose(tr.level_intensity_hz, [1.0, 0.0, 2.0])
    np.testing.assert_allclose(tr.time_fraction(), [0.4, 0.4, 0.2])
    assert tr.state_at([-1, 0, 2.5, 4.99, 5]).tolist() == [-1, 0, 2, 1, -1]
    assert tr.dwell_times_s("dark").tolist() == [2.0]
    assert not tr.start_s.flags.writeable
    assert "StateTrajectory" in repr(tr)
    with pytest.raises(ValueError, match="not in"):
        tr.index("on")
    with pytest.raises(ValueError, match="outside"):
        tr.index(3)
    with pytest.raises(TypeError):
        tr.index(1.0)
    with pytest.raises(ValueError, match="sorted"):
        StateTrajectory([0, 1], [2, 3], [0, 1], [0, 0], ("dark", "bright"), [0, 1])
    with pytest.raises(ValueError, match="outside"):
        StateTrajectory([0], [1], [2], [0], ("dark", "bright"), [0, 1])


def test_selection_picks_the_photons_of_a_state():
    s = qdio.PhotonStream(np.zeros(5, np.uint8), np.array([0, 10, 20, 30, 40]), None, 0.1)
    tr = StateTrajectory.build([0, 1.5, 3.5], [1.5, 3.5, 5], [1, 0, 1])
    sel = tr.selection("bright")
    assert sel.label == "bright"
    assert sel.mask(s).tolist() == [True, True, False, False, True]
    assert qdinfer.select(s, tr.selection(0)).macrotime.tolist() == [20, 30]


def test_coarsened_and_agreement():
    tr = StateTrajectory.build(
        [0, 1, 2, 3], [1, 2, 3, 4], [0, 1, 2, 3], photon_times_s=np.r_[0.5, np.linspace(1, 4, 500)]
    )
    c = tr.coarsened(2)
    assert c.labels == ("dark", "bright") and c.state.tolist() == [0, 1]
    assert c.n_photons.sum() == tr.n_photons.sum()
    assert qdinfer.time_agreement(tr.coarsened(2), c) == 1.0
    assert tr.coarsened(5) is tr
    b = StateTrajectory.build([0, 2], [2, 4], [0, 1])
    # c: dark [0, 1), bright [1, 4); b: dark [0, 2), bright [2, 4)
    assert qdinfer.time_agreement(c, b) == pytest.approx(0.75)
    assert qdinfer.time_agreement(c, b, by="index") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="share no time"):
        qdinfer.time_agreement(b, StateTrajectory.build([10], [11], [0]))


def test_state_labels():
    assert qdinfer.state_labels(4) == ("dark", "grey1", "grey2", "bright")
    with pytest.raises(ValueError):
        qdinfer.state_labels(0)


# -- thresholds -------------------------------------------------------------


def test_binned_counts_agree_with_interval_selection(two_state):
    s = two_state.stream
    counts, edges, _ = binned_counts(s, 10e-3)
    sel = qdinfer.state_intervals(edges[:-1], edges[1:])
    assert counts.sum() == np.count_nonzero(sel.mask(s))
    res = qdinfer.threshold_states(s)
    for k in range(2):
        assert res.trajectory.n_photons[res.trajectory.state == k].sum() == np.count_nonzero(
            res.trajectory.selection(k).mask(s)
        )


@pytest.mark.parametrize("method", ["mixture", "otsu"])
def test_thresholds_two_states(two_state, method):
    res = qdinfer.threshold_states(two_state.stream, bin_width_s=10e-3, method=method)
    tr = res.trajectory
    assert tr.labels == ("dark", "bright")
    acc = qdinfer.time_agreement(tr, two_state.truth)
    assert acc >= binned_bound(two_state, 10e-3)  # observed ~0.99, bound ~0.97
    # the threshold lies between the two states' counts per bin (3 and 50)
    assert 3 < res.thresholds_counts[0] < 50
    np.testing.assert_allclose(res.thresholds_hz, res.thresholds_counts / 10e-3)
    # levels: mean counts of each class.  A bin holding a switch and classed dark adds at
    # most `threshold` counts: bias <= n_switches * threshold / T_dark (~70-170 /s here);
    # one classed bright lacks at most the bright counts of a bin.
    n_sw = int(two_state.n_switches.sum())
    t_dark, t_bright = two_state.truth.time_in_state_s()
    sig = np.sqrt(np.asarray(RATES_2) / [t_dark, t_bright])
    bias = [n_sw * res.thresholds_counts[0] / t_dark, n_sw * RATES_2[1] * 10e-3 / t_bright]
    assert np.all(np.abs(tr.level_intensity_hz - RATES_2) < 5 * sig + bias)


def test_thresholds_auto_number_of_states(two_state, three_state):
    # the switching-bin components keep bins caught mid-switch from forming a state
    r2 = qdinfer.threshold_states(two_state.stream, n_states="auto")
    r3 = qdinfer.threshold_states(three_state.stream, n_states="auto")
    assert r2.trajectory.n_states == 2 and min(r2.bic, key=r2.bic.get) == 2
    assert r3.trajectory.labels == ("dark", "grey", "bright")
    assert qdinfer.time_agreement(r3.trajectory, three_state.truth) >= binned_bound(
        three_state, 10e-3
    )
    assert set(r3.model) >= {"weight", "mean", "r", "loglik"}
    o3 = qdinfer.threshold_states(three_state.stream, n_states=3, method="otsu")
    assert qdinfer.time_agreement(o3.trajectory, three_state.truth) >= binned_bound(
        three_state, 10e-3
    )


def test_threshold_errors(two_state):
    s = two_state.stream
    with pytest.raises(ValueError, match="no photons"):
        qdinfer.threshold_states(s, selection=qdinfer.channels(7))
    with pytest.raises(ValueError, match="fewer than 2 bins"):
        qdinfer.threshold_states(s, bin_width_s=40.0)
    with pytest.raises(ValueError, match="bin_width_s"):
        qdinfer.threshold_states(s, bin_width_s=-1.0)
    with pytest.raises(ValueError, match="method"):
        qdinfer.threshold_states(s, method="kmeans")
    with pytest.raises(ValueError, match="otsu"):
        qdinfer.threshold_states(s, method="otsu", n_states=4)
    with pytest.raises(ValueError, match="n_states"):
        qdinfer.threshold_states(s, n_states=0)
    tiny = qdio.PhotonStream(np.zeros(3, np.uint8), np.array([0, 1, 2]), None, 1.0)
    with pytest.raises(ValueError, match="distinct values"):
        qdinfer.threshold_states(tiny, bin_width_s=1.0, n_states=2)
    one = qdinfer.threshold_states(tiny, bin_width_s=1.0, n_states=1)
    assert one.trajectory.labels == ("single",) and one.thresholds_counts.size == 0


# -- change points + levels -----------------------------------------------


def test_change_point_states_two_states(two_state):
    res = qdinfer.change_point_states(two_state.stream)
    assert res.n_levels == 2
    n_sw = int(two_state.n_switches.sum())
    # most switches are found; short dwells (a few photons) are not resolvable
    assert 0.8 * n_sw <= len(res.change_points) <= 1.1 * n_sw
    acc = qdinfer.time_agreement(res.trajectory, two_state.truth)
    assert acc >= 1 - n_sw * (10 / RATES_2[0]) / 60.0  # observed ~0.997
    # level intensities: sigma = sqrt(rate / time): ~4 /s and ~12 /s; a misplaced
    # boundary or an unresolved dwell moves a few photons per switch between levels
    t_dark, t_bright = two_state.truth.time_in_state_s()
    sig = np.sqrt(np.asarray(RATES_2) / [t_dark, t_bright])
    bias = 3 * n_sw / np.array([t_dark, t_bright])
    assert np.all(np.abs(res.level_intensity_hz - RATES_2) < 5 * sig + bias)


def test_change_point_level_number_over_seeds():
    """BIC finds the true number of levels in most traces (31 of 32 in a wider check)."""
    right = 0
    for seed in range(4):
        b = telegraph(RATES_3, SWITCH_3, 30.0, 100 + seed, tau_s=TAU_3)
        res = qdinfer.change_point_states(b.stream)
        right += res.n_levels == 3
        acc = qdinfer.time_agreement(res.trajectory.coarsened(3), b.truth)
        assert acc >= 1 - int(b.n_switches.sum()) * (10 / RATES_3[0]) / 30.0
    assert right >= 3


# -- hidden Markov model -----------------------------------------------------


def test_hmm_two_states_rates(two_state):
    res = qdinfer.hmm_states(two_state.stream, n_states=2, bin_width_s=10e-3)
    assert res.converged and res.rate_method == "logm"
    acc = qdinfer.time_agreement(res.trajectory, two_state.truth)
    assert acc >= binned_bound(two_state, 10e-3)
    q = np.asarray(SWITCH_2)
    n_sw = two_state.n_switches
    for i, j in [(0, 1), (1, 0)]:
        sigma = q[i, j] / math.sqrt(n_sw[i, j])  # ~12 % with ~70 switches
        assert abs(res.rates_hz[i, j] - q[i, j]) < 4 * sigma
        # the reported standard error is of the same size
        assert 0.5 < res.rates_stderr_hz[i, j] / sigma < 2
    np.testing.assert_allclose(res.dwell_time_s, 1 / q.sum(axis=1), rtol=0.5)
    # emission rates: sigma = sqrt(rate / time) (~4 and 12 /s); the bins holding a switch
    # share their counts between the states by posterior weight, which raises the dark
    # rate (observed +5 %) and lowers the bright one (-1 %)
    np.testing.assert_allclose(res.intensity_hz, RATES_2, rtol=0.1)
    np.testing.assert_allclose(res.posterior.sum(axis=1), 1.0)
    assert res.transition_matrix.shape == (2, 2)


def test_hmm_three_states(three_state):
    res = qdinfer.hmm_states(three_state.stream, n_states=3, bin_width_s=5e-3)
    acc = qdinfer.time_agreement(res.trajectory, three_state.truth)
    assert acc >= binned_bound(three_state, 5e-3)
    np.testing.assert_allclose(res.intensity_hz, RATES_3, rtol=0.1)  # as above
    # all six rates within 4 sigma (+10 % for switches hidden inside 5 ms bins)
    q = np.asarray(SWITCH_3)
    n = three_state.n_switches
    off = ~np.eye(3, dtype=bool)
    sigma = q[off] / np.sqrt(np.maximum(n[off], 1))
    assert np.all(np.abs(res.rates_hz[off] - q[off]) < 4 * sigma + 0.1 * q[off])


def test_hmm_auto_and_errors(two_state):
    res = qdinfer.hmm_states(two_state.stream, n_states="auto", max_states=3)
    assert set(res.bic) == {1, 2, 3}
    assert res.trajectory.n_states >= 2  # mixed bins may add a state (see Notes)
    with pytest.raises(ValueError, match="n_states"):
        qdinfer.hmm_states(two_state.stream, n_states=7)
    with pytest.raises(ValueError, match="no photons"):
        qdinfer.hmm_states(two_state.stream, selection=qdinfer.channels(9))
    one = qdinfer.hmm_states(two_state.stream, n_states=1)
    assert one.rates_hz.shape == (1, 1) and np.isinf(one.dwell_time_s[0])


def test_viterbi_and_forward_backward_reference():
    """Log-space forward-backward against a direct sum over all paths (T = 6, K = 2)."""
    import itertools

    from scipy import stats

    from qdinfer import hmm

    counts = np.array([1, 0, 9, 12, 2, 10])
    pi = np.array([0.6, 0.4])
    a = np.array([[0.8, 0.2], [0.3, 0.7]])
    lam = np.array([1.0, 10.0])
    total = 0.0
    best, best_path = -1.0, None
    for path in itertools.product([0, 1], repeat=6):
        p = pi[path[0]] * stats.poisson.pmf(counts[0], lam[path[0]])
        for t in range(1, 6):
            p *= a[path[t - 1], path[t]] * stats.poisson.pmf(counts[t], lam[path[t]])
        total += p
        if p > best:
            best, best_path = p, path
    le = hmm._log_emission(counts, lam)
    loglik, _gamma, xi = hmm._forward_backward(le, np.log(pi), np.log(a))
    assert loglik == pytest.approx(math.log(total), rel=1e-12)
    assert xi.sum() == pytest.approx(5.0)
    assert hmm.viterbi(counts, pi, a, lam).tolist() == list(best_path)


# -- state-resolved measurements (Figure 5) ----------------------------------


@pytest.fixture(scope="module")
def resolved(three_state):
    lev = qdinfer.change_point_states(three_state.stream)
    traj = lev.trajectory.coarsened(3)
    return traj, qdinfer.state_resolved(three_state.stream, traj)


def test_state_resolved_lifetimes_and_rates(three_state, resolved):
    traj, res = resolved
    s = three_state.stream
    t_ph = s.macrotime * s.macrotime_resolution_s
    assigned = traj.state_at(t_ph)
    for k, tau in enumerate(TAU_3):
        m = res.states[k]
        assert m.label == ("dark", "grey", "bright")[k]
        # photons given this state whose true state differs
        wrong = np.mean(three_state.photon_state[assigned == k] != k)
        bias = wrong * (max(TAU_3) - min(TAU_3))
        sigma = tau / math.sqrt(m.n_photons)
        assert abs(m.mean_arrival.tau_s - tau) < 5 * sigma + bias + 20e-12  # + IRF jitter
        # rates: Poisson sigma sqrt(n)/T plus the intensity of misplaced boundaries (<2 %)
        assert abs(m.rate_hz - RATES_3[k]) < 5 * m.rate_stderr_hz + 0.02 * RATES_3[k]
        assert m.decay is not None and m.decay.n_photons == m.n_photons
        # one photon per laser period at most: no coincidence in the centre peak
        assert m.g2 is not None and m.g2.centre_counts == 0 and m.g2.side_counts.sum() > 0
        assert m.g2_histogram is not None
    rows = res.table()
    assert [r["state"] for r in rows] == ["dark", "grey", "bright"]
    assert all(r["rate_hz"] > 0 for r in rows)
    assert res["bright"] is res.states[2]


def test_state_resolved_empty_and_small_states(three_state):
    s = three_state.stream
    end = three_state.truth.span_s[1]
    traj = StateTrajectory.build(
        [0.0, 1e-3, 2e-3, 3e-3], [1e-3, 2e-3, 3e-3, end], [0, 1, 0, 1], ("dark", "grey", "bright")
    )
    res = qdinfer.state_resolved(s, traj, min_photons=100)
    never = res["bright"]
    assert never.time_s == 0 and never.rate_hz == 0 and never.n_photons == 0
    assert "never visited" in never.notes[0]
    small = res["dark"]
    assert small.lifetime is None and small.g2 is None
    assert any("min_photons" in n for n in small.notes)
    for row in res.table():
        for v in row.values():
            assert not (isinstance(v, float) and math.isnan(v))
    t2 = qdio.PhotonStream(s.channel, s.macrotime, None, s.macrotime_resolution_s)
    r2 = qdinfer.state_resolved(t2, traj, g2_channels=None)
    assert r2["grey"].decay is None and "T2" in r2["grey"].notes[0]
    with pytest.raises(TypeError):
        qdinfer.state_resolved(s, "bright")


# -- figures --------------------------------------------------------------


def test_figures(three_state, resolved):
    _traj, res = resolved
    th = qdinfer.threshold_states(three_state.stream, n_states=3)
    fig = plots_states.plot_state_trace(three_state.stream, th.trajectory, time_range_s=(0, 10))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[1].lines) >= 2  # thresholds and levels marked
    fig2 = plots_states.plot_state_resolved(res, title="states")
    assert isinstance(fig2, Figure) and fig2.axes[0].get_yscale() == "log"
    for f in (fig, fig2):
        buf = io.BytesIO()
        f.savefig(buf, format="png", dpi=50)
        assert buf.getvalue()[:4] == b"\x89PNG"
    assert plots_states.state_colour("grey7", 2).startswith("#")
