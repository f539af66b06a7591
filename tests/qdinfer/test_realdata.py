"""The real files of ../shared/data through every estimator.

full_sms/trace0..4.pt3: single-particle blinking traces (PicoHarp 300 T3, 13.17 ns
sync, 4 ps bins; channel 1 is the signal, channel 0 a second detector with dark
counts).  fcs_point_correlator/topfluorPE_2_1_1_1.pt3: a freely diffusing dye
split over two detectors (12.8 ns sync, 16 ps bins): cross-correlation.
"""

from __future__ import annotations

import numpy as np
import pytest

import qdinfer
import qdio
from qdinfer import channels

from conftest import shared_file

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("i", range(5))
def test_full_sms_traces(i):
    path = shared_file(f"full_sms/trace{i}.pt3")
    s = qdio.read(path)
    sig = channels(1)
    d = qdinfer.decay_histogram(s, selection=sig, bin_width_s=16e-12)
    assert d.n_full_bins == 822 and d.n_outside < 10  # a few photons after the period
    mono = qdinfer.fit_decay(d)
    bi = qdinfer.fit_decay(d, n_exp=2)
    # lifetimes of a few ns (found: 0.39-3.3 ns mono-exponential); the
    # bi-exponential fits describe the decays (chi2/dof 1.01-1.17)
    assert 0.1e-9 < mono.tau_s[0] < 10e-9 and mono.success
    assert bi.deviance < mono.deviance and bi.reduced_chi2 < 1.3
    assert np.all((bi.tau_s > 0.1e-9) & (bi.tau_s < 20e-9))
    m = qdinfer.mean_arrival_time(d)
    assert 0 < m.mean_delay_s < d.period_s
    tr = qdinfer.intensity_trace(s, selection=sig)
    assert len(tr) in (5999, 6000, 11998, 11999, 12000)
    assert tr.counts.sum() <= s.counts_per_channel()[1]
    rates = qdinfer.count_rates(s)
    assert 1 < rates.rate_hz[0] < 100  # the second detector: dark counts only
    h = qdinfer.g2_histogram(s, max_lag_s=100e-9, bin_width_s=1e-9)
    assert h.counts.sum() >= 0 and h.n_a == s.counts_per_channel()[0]
    try:
        g = qdinfer.pulsed_g2_zero(s)
        assert np.isfinite(g.value) and g.stderr > 0
    except ValueError as exc:  # dark counts only on channel 0: few or no coincidences
        assert "side peaks" in str(exc)


def test_full_sms_states_and_gates():
    path = shared_file("full_sms/trace3.pt3")
    s = qdio.read(path)
    # bright and dim periods of trace 3 (see its trace: ~45 vs ~4 photons / 10 ms)
    tr = qdinfer.intensity_trace(s, selection=channels(1))
    bright = tr.counts > 25
    edges = tr.edges_s
    starts = edges[:-1][bright & ~np.r_[False, bright[:-1]]]
    stops = edges[1:][bright & ~np.r_[bright[1:], False]]
    sel = qdinfer.state_intervals(starts, stops, label="bright")
    fb = qdinfer.fit_decay(s, selection=sel & channels(1), bin_width_s=16e-12)
    fd = qdinfer.fit_decay(s, selection=~sel & channels(1), bin_width_s=16e-12)
    # the dim periods decay faster (found: ~3.4 ns bright, < 1.5 ns dim)
    assert fd.tau_mean_intensity_s < fb.tau_mean_intensity_s
    gated = qdinfer.decay_histogram(s, selection=qdinfer.gate(1e-9, relative_to="irf_peak"))
    assert 0 < gated.n_photons < len(s)


@pytest.fixture(scope="module")
def fcs():
    return qdio.read(shared_file("fcs_point_correlator/topfluorPE_2_1_1_1.pt3"))


def _trace_g2(stream, lo_s, hi_s, bin_s=1e-5):
    """Independent estimate: correlate 10 us intensity traces of the two channels,
    averaged over the lags in [lo_s, hi_s)."""
    t = stream.arrival_time_s()
    n = int(t[-1] / bin_s) + 1
    a = np.bincount((t[stream.channel == 0] / bin_s).astype(np.int64), minlength=n)
    b = np.bincount((t[stream.channel == 1] / bin_s).astype(np.int64), minlength=n)
    a, b = a.astype(np.float64), b.astype(np.float64)
    pairs = expected = 0.0
    for k in range(round(lo_s / bin_s), round(hi_s / bin_s)):
        pairs += np.dot(a[: n - k], b[k:])
        expected += a.sum() * b.sum() / n**2 * (n - k)
    return pairs / expected


def test_fcs_cross_correlation_is_one_at_long_lags(fcs):
    # diffusion keeps g2 above 1 up to ~0.1 s (found: 1.15 at 10 us, 1.08 at
    # 1 ms, 1.02 at 10 ms); at 0.1-0.3 s it is 1 within slow drifts of the
    # intensity (~1 %), far more than the Poisson error (2e-4)
    for lag in (0.1, 0.25):
        h = qdinfer.g2_histogram(fcs, lag_range_s=(lag, lag + 0.01), bin_width_s=1e-3)
        assert np.all(np.abs(h.g2 - 1) < 0.02)
        # nearly the same pairs counted from binned traces (they differ only by
        # the 10 us binning at the window's edges)
        ref = _trace_g2(fcs, lag + 0.005, lag + 0.006)
        assert h.g2[5] == pytest.approx(ref, abs=0.002)


def test_fcs_dead_time_hole_and_bump(fcs):
    h = qdinfer.g2_histogram(fcs, max_lag_s=2e-6, bin_width_s=10e-9)
    g = h.g2
    near = np.abs(h.centers_s) < 60e-9
    far = (np.abs(h.centers_s) > 200e-9) & (np.abs(h.centers_s) < 2e-6)
    # the PicoHarp 300's shared ~90 ns dead time removes cross pairs at short lags
    assert np.all(h.counts[near] == 0)
    # beyond it: the diffusion bump, g2 ~ 1.15 (0.07 Poisson error per 10 ns bin)
    assert 1.1 < np.mean(g[far]) < 1.2
    p = qdinfer.pulsed_g2_zero(fcs)
    assert p.side_uniformity_pvalue < 1e-6  # near side peaks lost to the dead time
    hdf5 = qdio.read(shared_file("derived/topfluorPE_2_1_1_1_photon-hdf5.h5"))
    h5 = qdinfer.g2_histogram(hdf5, channels=(1, 2), max_lag_s=2e-6, bin_width_s=10e-9)
    assert h5.counts.sum() == pytest.approx(h.counts.sum(), rel=1e-3)
    d = qdinfer.fit_decay(fcs, selection=channels(0))
    assert 3e-9 < d.tau_s[0] < 7e-9  # found: 5.0 ns
