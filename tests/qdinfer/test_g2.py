"""g2: exact pair histograms against a brute-force correlator, pulsed g2(0) against
closed forms, normalisation, state-resolved pairs, bad input."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import qdinfer
from qdinfer import channels, g2_histogram, gate, pulsed_g2_zero, state_intervals
from qdio import PhotonStream


def _load_sources():
    path = Path(__file__).with_name("qdinfer_sources.py")
    spec = importlib.util.spec_from_file_location("qdinfer_sources", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


src = _load_sources()


# -- brute-force oracle ---------------------------------------------------


def exact_times(stream: PhotonStream, tick_s: float | None) -> list[Fraction]:
    """Arrival times as exact rationals: in ticks of ``tick_s`` (integer time bases:
    T2 tags, or T3 with a whole number of microtime bins per period), else in
    seconds from the float resolutions."""
    mac = stream.macrotime.tolist()
    if tick_s is not None:
        if stream.microtime is None:
            return [Fraction(m) for m in mac]
        ratio = round(stream.macrotime_resolution_s / stream.microtime_resolution_s)
        return [
            Fraction(m * ratio + u) for m, u in zip(mac, stream.microtime.tolist(), strict=True)
        ]
    P = Fraction(stream.macrotime_resolution_s)
    r = Fraction(stream.microtime_resolution_s)
    return [m * P + u * r for m, u in zip(mac, stream.microtime.tolist(), strict=True)]


def brute_force(stream, a, b, lo, width, nbins, *, tick_s=None, same_interval=None):
    """Every pair (i on a, j on b, i != j) with its exact rational lag, binned
    into ``[lo + k w, lo + (k+1) w)``.

    With ``tick_s`` (integer time bases) lags are whole ticks and the bin
    edges are the documented rational multiples of the tick (denominator up
    to 4096); otherwise lags are exact in seconds.  Also returns the smallest
    distance of a pair from a bin edge, in bin widths.
    """
    t = exact_times(stream, tick_s)
    ch = stream.channel.tolist()
    if tick_s is not None:
        lo_f = Fraction(lo / tick_s).limit_denominator(4096)
        w_f = Fraction(width / tick_s).limit_denominator(4096)
    else:
        lo_f, w_f = Fraction(lo), Fraction(width)
    counts = np.zeros(nbins, np.int64)
    min_edge_distance = None
    ia = [i for i, c in enumerate(ch) if c == a]
    ib = [j for j, c in enumerate(ch) if c == b]
    tb = np.array([float(t[j]) for j in ib])
    lo_x, span = float(lo_f), float(lo_f + nbins * w_f)
    slack = 1e-6 * float(w_f)
    for i in ia:
        # prefilter with floats (generously), decide with exact fractions
        ti = float(t[i])
        js = np.flatnonzero((tb >= ti + lo_x - slack) & (tb < ti + span + slack))
        for jj in js:
            j = ib[jj]
            if i == j:
                continue
            if same_interval is not None and (
                same_interval[i] < 0 or same_interval[i] != same_interval[j]
            ):
                continue
            x = (t[j] - t[i] - lo_f) / w_f
            k = x.numerator // x.denominator
            if 0 <= k < nbins:
                counts[k] += 1
                frac = float(x - k)
                d = min(frac, 1 - frac)
                min_edge_distance = d if min_edge_distance is None else min(min_edge_distance, d)
    return counts, min_edge_distance


def _hist_spec(max_lag, width):
    n = int(np.ceil(max_lag / width - 1e-9))
    return -n * width, width, 2 * n


# -- hand-made streams ----------------------------------------------------


def test_hand_made_t2():
    # photons: ch0 at 0, 9 ns; ch1 at 2, 5 ns. lags t1 - t0: 2, 5, -7, -4 ns
    s = PhotonStream(np.array([0, 1, 1, 0], np.uint8), np.array([0, 2, 5, 9]), None, 1e-9)
    h = g2_histogram(s, max_lag_s=8e-9, bin_width_s=2e-9)
    assert h.edges_s.tolist() == pytest.approx(
        [-8e-9, -6e-9, -4e-9, -2e-9, 0, 2e-9, 4e-9, 6e-9, 8e-9]
    )
    assert h.counts.tolist() == [1, 0, 1, 0, 0, 1, 1, 0]  # -7, -4, 2, 5 ns
    assert h.counts.dtype == np.int64 and (h.n_a, h.n_b) == (2, 2)
    # reversed channels mirror the lags: -2, -5, 7, 4 ns
    r = g2_histogram(s, channels=(1, 0), max_lag_s=8e-9, bin_width_s=2e-9)
    assert r.counts.tolist() == [0, 1, 0, 1, 0, 0, 1, 1]


def test_autocorrelation_skips_self_pairs():
    s = PhotonStream(np.zeros(3, np.uint8), np.array([0, 1, 3]), None, 1e-9)
    h = g2_histogram(s, channels=(0, 0), max_lag_s=4e-9, bin_width_s=1e-9)
    # pairs: +-1, +-2, +-3 ns; the photon with itself (lag 0) never counts
    assert h.counts.tolist() == [0, 1, 1, 1, 0, 1, 1, 1]


def test_lag_range_window():
    s = PhotonStream(np.array([0, 1, 1, 0], np.uint8), np.array([0, 2, 5, 9]), None, 1e-9)
    h = g2_histogram(s, lag_range_s=(1e-9, 6e-9), bin_width_s=2e-9)
    assert h.edges_s.tolist() == pytest.approx([1e-9, 3e-9, 5e-9, 7e-9])
    assert h.counts.tolist() == [1, 0, 1]  # lags 2 and 5 ns


def test_within_counts_only_pairs_in_the_same_interval():
    # ch0 at 0 and 10 ns, ch1 at 3 and 12 ns; intervals [0, 5) and [9, 20) ns
    s = PhotonStream(np.array([0, 1, 0, 1], np.uint8), np.array([0, 3, 10, 12]), None, 1e-9)
    w = state_intervals([0, 9e-9], [5e-9, 20e-9])
    all_pairs = g2_histogram(s, max_lag_s=16e-9, bin_width_s=1e-9)
    inside = g2_histogram(s, max_lag_s=16e-9, bin_width_s=1e-9, within=w)
    assert all_pairs.counts.sum() == 4  # 3, 12, -7, 2 ns
    lags = (inside.edges_s[:-1][inside.counts > 0] * 1e9).round().tolist()
    assert lags == [2.0, 3.0]


def test_pulsed_g2_hand_made():
    # sync 100 ns; pulses 0..4. ch0 photons in pulses 0, 2, 3; ch1 in 1, 2, 4
    s = PhotonStream(
        np.array([0, 1, 0, 1, 0, 1], np.uint8),
        np.array([0, 1, 2, 2, 3, 4]),
        np.array([5, 5, 5, 6, 5, 5]),
        1e-7,
        1e-9,
        100,
    )
    # pulse differences: (0->1)=1, (0->2)=2, (0->4)=4, (2->1)=-1, (2->2)=0, (2->4)=2,
    #                    (3->1)=-2, (3->2)=-1, (3->4)=1
    for windows in ("pulse", "lag"):
        g = pulsed_g2_zero(s, side_peaks=[-1, 1], windows=windows)
        assert g.centre_counts == 1 and g.side_counts.tolist() == [2, 2]
        # 5 pulses observed: uncorrelated photons give 4/5 as many pairs 1 pulse apart
        # (pulse windows evaluate it at the peak position, 1 ns off: 0.8 +- 0.002)
        assert g.side_weights.tolist() == pytest.approx([0.8, 0.8], abs=0.005)
        assert g.value == pytest.approx(1 / 2.5, rel=0.01)
        assert g.stderr == pytest.approx(g.value * np.sqrt(1 / 1 + 1 / 4))
    g = pulsed_g2_zero(s, side_peaks=[-2, 2, 4], windows="lag")
    assert g.side_counts.tolist() == [1, 2, 1]
    assert g.side_weights.tolist() == pytest.approx([0.6, 0.6, 0.2])
    assert g.value == pytest.approx(1 / ((1 / 0.6 + 2 / 0.6 + 1 / 0.2) / 3))


def test_pulse_windows_follow_the_pulse_start():
    # channel 1 has a 40 ns cable delay; its photons of pulse k arrive at 45 ns,
    # those of channel 0 at 5 ns.  A photon at 2 ns after a sync on channel 1 is
    # the tail of the previous pulse.
    s = PhotonStream(
        np.array([0, 1, 1, 0, 1], np.uint8),
        np.array([0, 0, 1, 1, 1]),
        np.array([5, 45, 2, 5, 45]),
        1e-7,
        1e-9,
        100,
    )
    g = pulsed_g2_zero(s, side_peaks=[-1, 1], pulse_start_s={0: 0.0, 1: 40e-9})
    # pulses: ch0 {0, 1}; ch1 {0, 0 (tail), 1} -> differences 0, 0, 1, -1, -1, 0
    assert g.centre_counts == 3 and g.side_counts.tolist() == [2, 1]
    assert g.lag_offset_s == pytest.approx(40e-9) and g.windows == "pulse"


# -- exact against brute force --------------------------------------------


def _clustered_t2(rng, n, tick_s):
    centres = np.sort(rng.integers(0, 10**7, n // 5))
    mac = np.sort(np.repeat(centres, 5) + rng.integers(0, 3000, n))
    ch = rng.integers(0, 2, n).astype(np.uint8)
    return PhotonStream(ch, mac, None, tick_s)


@pytest.mark.parametrize(
    ("max_lag", "width"),
    [(500e-12, 7e-12), (2e-9, 7.5e-12), (1.0e-9, 100e-12), (3.3e-9, 1.1e-9)],
)
def test_t2_matches_brute_force(max_lag, width):
    rng = np.random.default_rng(7)
    s = _clustered_t2(rng, 3000, 1e-12)
    h = g2_histogram(s, max_lag_s=max_lag, bin_width_s=width)
    lo, w, n = _hist_spec(max_lag, width)
    expected, _ = brute_force(s, 0, 1, lo, w, n, tick_s=1e-12)
    assert h.counts.sum() > 500
    np.testing.assert_array_equal(h.counts, expected)


def test_t3_integer_ticks_match_brute_force():
    # 400 ns sync in 128 ps bins: 3125 ticks per period; 1 ns bins = 125/16 ticks
    rng = np.random.default_rng(3)
    s = src.cascade_stream(rng, n_pulses=40_000, eta_c=0.5, res_s=128e-12, n_bins=4096)
    assert qdinfer._common.TimeBase.for_stream(s).kind == "int"
    lo, w, n = _hist_spec(900e-9, 1e-9)
    h = g2_histogram(s, max_lag_s=900e-9, bin_width_s=1e-9)
    expected, _ = brute_force(s, 0, 1, lo, w, n, tick_s=128e-12)
    assert h.counts.sum() > 1000
    np.testing.assert_array_equal(h.counts, expected)


def test_t3_float_times_match_brute_force():
    # a measured sync period (13.1674723404 ns) is not a whole number of 4 ps bins
    rng = np.random.default_rng(11)
    P, res = 1.3167472340407602e-08, 4e-12
    n = 4000
    mac = np.sort(rng.integers(0, 20_000, n))
    mic = rng.integers(0, int(P / res), n)
    s = PhotonStream(rng.integers(0, 2, n).astype(np.uint8), mac, mic, P, res, 4096)
    assert qdinfer._common.TimeBase.for_stream(s).kind == "float"
    for max_lag, width in [(50e-9, 0.25e-9), (30e-9, 1e-9)]:
        lo, w, nb = _hist_spec(max_lag, width)
        h = g2_histogram(s, max_lag_s=max_lag, bin_width_s=width)
        expected, edge = brute_force(s, 0, 1, lo, w, nb)
        assert edge > 1e-6  # no pair within float round-off of a bin edge
        np.testing.assert_array_equal(h.counts, expected)


def test_unsorted_arrival_times_are_sorted_first():
    # TCSPC range (16 ns) longer than the sync period (10 ns): a photon late
    # in one period can arrive after an early photon of the next
    rng = np.random.default_rng(5)
    n = 3000
    mac = np.sort(rng.integers(0, 3000, n))
    mic = rng.integers(0, 16, n)
    s = PhotonStream(rng.integers(0, 2, n).astype(np.uint8), mac, mic, 10e-9, 1e-9, 16)
    ticks = s.macrotime * 10 + s.microtime
    assert np.any(np.diff(ticks[s.channel == 0]) < 0)
    lo, w, nb = _hist_spec(40e-9, 3e-9)
    h = g2_histogram(s, max_lag_s=40e-9, bin_width_s=3e-9)
    expected, _ = brute_force(s, 0, 1, lo, w, nb, tick_s=1e-9)
    np.testing.assert_array_equal(h.counts, expected)


def test_selection_and_within_match_brute_force():
    rng = np.random.default_rng(9)
    s = src.cascade_stream(rng, n_pulses=30_000, eta_c=0.5, res_s=128e-12, n_bins=4096)
    sel = gate(min_s=1e-9)
    w = state_intervals([0.0, 4e-3, 7e-3], [3e-3, 6.5e-3, 1.0])
    h = g2_histogram(s, max_lag_s=2e-6, bin_width_s=10e-9, selection=sel, within=w)
    kept = qdinfer.select(s, sel)
    labels = qdinfer._common.interval_labels(kept, w)
    lo, wd, nb = _hist_spec(2e-6, 10e-9)
    expected, _ = brute_force(kept, 0, 1, lo, wd, nb, tick_s=128e-12, same_interval=labels.tolist())
    np.testing.assert_array_equal(h.counts, expected)


# -- normalisation --------------------------------------------------------


def test_poisson_streams_give_g2_one():
    # independent Poisson photons, few partners per photon in the window, so the
    # bin counts are independent Poisson variables with mean ``expected``
    rng = np.random.default_rng(2)
    s = src.t2_poisson(rng, rates_hz=[2e5, 3e5], duration_s=0.5, tick_s=1e-12)
    h = g2_histogram(s, max_lag_s=1e-6, bin_width_s=20e-9)
    assert h.counts.sum() > 50_000
    chi2 = float(np.sum((h.counts - h.expected) ** 2 / h.expected))
    assert stats.chi2.sf(chi2, len(h.counts)) > 1e-4
    assert np.all(np.abs(h.g2 - 1) < 5 * h.g2_stderr)
    assert abs(h.counts.sum() / h.expected.sum() - 1) < 5 / np.sqrt(h.counts.sum())


def test_expected_counts_follow_the_observed_overlap():
    # one window of length T: n_a n_b w (T - |lag|) / T^2
    s = PhotonStream(np.array([0, 1, 0, 1], np.uint8), np.array([0, 10, 50, 99]), None, 1e-9)
    h = g2_histogram(s, max_lag_s=100e-9, bin_width_s=10e-9)
    T = 100e-9
    lag = np.abs(h.centers_s)
    np.testing.assert_allclose(h.expected, 2 * 2 * 10e-9 * (T - lag) / T**2, rtol=1e-9)
    # two windows [0, 30) and [60, 100) ns: overlap of the set with itself shifted
    sel = qdinfer.time_window(0, 30e-9) | qdinfer.time_window(60e-9, 1.0)
    h2 = g2_histogram(s, max_lag_s=100e-9, bin_width_s=10e-9, selection=sel)
    grid = np.arange(0, 100e-9, 1e-11) + 0.5e-11
    inside = ((grid < 30e-9) | (grid >= 60e-9)).astype(float)
    ov = [
        np.sum(inside * np.interp(grid + c, grid, inside, left=0, right=0)) * 1e-11
        for c in h2.centers_s
    ]
    n_a, n_b = h2.n_a, h2.n_b
    np.testing.assert_allclose(
        h2.expected, n_a * n_b * 10e-9 * np.array(ov) / 70e-9**2, rtol=2e-3, atol=1e-12
    )


def test_time_window_normalisation_uses_the_window():
    rng = np.random.default_rng(4)
    s = src.t2_poisson(rng, rates_hz=[1e5, 1e5], duration_s=0.05, tick_s=1e-9)
    sel = qdinfer.time_window(0.0, 0.01) | qdinfer.time_window(0.02, 0.03)
    h = g2_histogram(s, max_lag_s=0.012, bin_width_s=1e-3, selection=sel)
    assert h.duration_s == pytest.approx(0.02, rel=1e-3)  # from the first photon on
    # lags of 10-20 ms join the two windows.  Every photon has ~1000 partners, so
    # a bin's pair count fluctuates not like Poisson but like the photons that
    # can pair at that lag: relative sigma ~ sqrt(2 / (rate * overlap))
    ok = h.defined
    rate = h.n_a / h.duration_s
    overlap = h.expected[ok] * h.duration_s**2 / (h.n_a * h.n_b * h.bin_width_s)
    sigma = np.sqrt(2 / (rate * overlap))
    assert np.all(np.abs(h.counts[ok] / h.expected[ok] - 1) < 5 * sigma)


# -- pulsed g2(0) against closed forms ------------------------------------


def test_closed_forms_reproduce_model_md():
    assert src.g2_reduced(0.1, 0.95, 0.30) == pytest.approx(0.3164, abs=1e-4)
    assert src.g2_reduced(1.0, 0.95, 0.30) == pytest.approx(0.3259, abs=1e-4)
    assert src.g2_reduced(3.0, 0.95, 0.30) == pytest.approx(0.3494, abs=1e-4)
    assert src.g2_reduced(1.0, 1.0, 0.3) == pytest.approx(0.313, abs=1e-3)
    assert src.g2_gated(1.0, 1.0, 0.3, 60e-9, 2e-9, 2.5e-9) == pytest.approx(0.113, abs=1e-3)


@pytest.fixture(scope="module")
def cascade():
    # n = 1, eta_X = 1, eta_BX = 0.3, tau_X = 60 ns, tau_BX = 2 ns (MODEL.md example)
    rng = np.random.default_rng(2024)
    return src.cascade_stream(rng, n_pulses=6_000_000, eta_c=0.1)


def test_pulsed_g2_zero_against_closed_form(cascade):
    truth = src.g2_reduced(1.0, 1.0, 0.3)  # 0.3133
    for side in ("near", "far"):
        g = pulsed_g2_zero(cascade, side_peaks=side)
        # sigma: the estimator's Poisson error (checked below against the counts)
        assert abs(g.value - truth) < 5 * g.stderr, (side, g.value, g.stderr)
        assert g.centre_counts > 1500 and len(g.side_counts) == 20
        assert g.side_uniformity_pvalue > 1e-4  # no blinking, no dead time
    expected_err = truth * np.sqrt(1 / g.centre_counts + 1 / g.side_counts.sum())
    assert g.stderr == pytest.approx(expected_err, rel=0.1)
    assert g.side_peaks.min() == -g.side_peaks.max() and abs(g.side_peaks).min() >= 250


def test_lag_windows_spill_for_long_lifetimes(cascade):
    # tau_X = 60 ns in a 400 ns period: exp(-200/60) = 3.6 % of each side peak
    # falls into the centre window [-P/2, P/2); pulse windows do not mix peaks
    lag = pulsed_g2_zero(cascade, windows="lag")
    pulse = pulsed_g2_zero(cascade, windows="pulse")
    # predicted spill: pairs from neighbouring pulses whose delays differ by more
    # than P/2, from the measured delay distributions of the two channels
    half = 200e-9
    ta = np.sort(cascade.microtime[cascade.channel == 0] * 50e-12)
    tb = np.sort(cascade.microtime[cascade.channel == 1] * 50e-12)
    p_ab = np.mean(len(tb) - np.searchsorted(tb, ta + half)) / len(tb)  # t_b - t_a > P/2
    p_ba = np.mean(len(ta) - np.searchsorted(ta, tb + half)) / len(ta)
    # in: neighbouring-pulse pairs entering [-P/2, P/2); out: same-pulse pairs
    # leaving it (delays taken as independent, good to a few %)
    spill_in = (p_ab + p_ba) * pulse.mean_side_counts
    spill_out = (p_ab + p_ba) * pulse.centre_counts
    diff = lag.centre_counts - pulse.centre_counts
    assert abs(diff - (spill_in - spill_out)) < 5 * np.sqrt(spill_in + spill_out)
    assert diff > 5 * np.sqrt(spill_in + spill_out)  # lag windows bias g2(0) up
    # with tau_X = 20 ns (exp(-10) spill) the two agree with the closed form
    rng = np.random.default_rng(8)
    short = src.cascade_stream(rng, n_pulses=3_000_000, tau_x_s=20e-9, eta_c=0.1)
    truth = src.g2_reduced(1.0, 1.0, 0.3)
    for windows in ("lag", "pulse"):
        g = pulsed_g2_zero(short, windows=windows)
        assert abs(g.value - truth) < 5 * g.stderr


def test_gated_g2_zero_against_closed_form(cascade):
    truth = src.g2_gated(1.0, 1.0, 0.3, 60e-9, 2e-9, 2.5e-9)  # 0.113
    g = pulsed_g2_zero(cascade, selection=gate(min_s=2.5e-9))
    assert abs(g.value - truth) < 5 * g.stderr
    assert g.value < 0.5 * pulsed_g2_zero(cascade).value
    series = qdinfer.g2_zero_vs_gate(cascade, [0.0, 2.5e-9, 5e-9], relative_to="sync")
    for t_g, r in zip([0.0, 2.5e-9, 5e-9], series, strict=True):
        assert abs(r.value - src.g2_gated(1.0, 1.0, 0.3, 60e-9, 2e-9, t_g)) < 5 * r.stderr


def test_background_correction_against_closed_form():
    rng = np.random.default_rng(17)
    s, kind = src.cascade_stream(
        rng,
        n_pulses=4_000_000,
        tau_x_s=20e-9,
        eta_c=0.1,
        t0_s=30e-9,
        bg_per_pulse=0.02,
        with_truth=True,
    )
    truth = src.g2_reduced(1.0, 1.0, 0.3)
    raw = pulsed_g2_zero(s)
    # uncorrelated background raises g2(0): rho_a rho_b g2 + 1 - rho_a rho_b
    rho = [1 - np.mean(kind[s.channel == c] == 2) for c in (0, 1)]
    expected_raw = rho[0] * rho[1] * truth + 1 - rho[0] * rho[1]
    assert abs(raw.value - expected_raw) < 5 * raw.stderr
    auto = pulsed_g2_zero(s, signal_fraction="auto")
    for est, true in zip(auto.signal_fraction, rho, strict=True):
        assert abs(est - true) < 0.01  # bg of ~4e4 photons per channel: ~0.5 % error
    assert abs(auto.value - truth) < 5 * auto.stderr
    given = pulsed_g2_zero(s, signal_fraction=tuple(rho))
    assert abs(given.value - truth) < 5 * given.stderr
    assert given.stderr == pytest.approx(raw.stderr / (rho[0] * rho[1]))


def test_blinking_raises_near_side_peaks_and_within_removes_it():
    # on/off blinking with ~1 ms dwell times: near side peaks are raised by 1/f_on
    rng = np.random.default_rng(23)
    n_pulses = 5_000_000  # 2 s at 2.5 MHz
    dwell = rng.exponential(2500, 4000).astype(np.int64) + 1
    edges = np.cumsum(dwell)
    edges = edges[edges < n_pulses]
    state = np.zeros(n_pulses, bool)
    bounds = np.concatenate([[0], edges, [n_pulses]])
    for k in range(0, len(bounds) - 1, 2):
        state[bounds[k] : bounds[k + 1]] = True
    f_on = state.mean()
    s = src.cascade_stream(rng, n_pulses=n_pulses, eta_c=0.1, on=state)
    truth = src.g2_reduced(1.0, 1.0, 0.3)
    near = pulsed_g2_zero(s, side_peaks="near")
    far = pulsed_g2_zero(s, side_peaks="far", far_lag_s=0.2)  # 200 ms >> 1 ms dwell
    assert abs(near.value - truth) < 5 * near.stderr
    # far peaks of a 2 s acquisition: weights (T - 0.2 s) / T = 0.9
    assert far.side_weights == pytest.approx(0.9, abs=0.01)
    ratio = near.mean_side_counts / far.mean_side_counts
    # sigma of the ratio: sqrt(1/30000 + 1/30000) ~ 0.8 %, plus the blinking
    # correlation left at 200 ms (dwell 1 ms: none)
    assert abs(ratio - 1 / f_on) < 5 * 0.008 * ratio
    assert near.side_uniformity_pvalue > 1e-4
    assert far.value > near.value * 1.5
    # state-resolved: only pairs within one "on" visit; normalisation per visit
    P = 400e-9
    on = state_intervals(bounds[:-1:2] * P, bounds[1::2] * P)
    h = g2_histogram(s, max_lag_s=200e-6, bin_width_s=20e-6, selection=on)
    hw = g2_histogram(s, max_lag_s=200e-6, bin_width_s=20e-6, selection=on, within=on)
    assert np.all(hw.counts <= h.counts)
    # within visits and at lags of many periods (pulsed structure averaged), g2 ~ 1
    assert abs(hw.counts.sum() / hw.expected.sum() - 1) < 0.02
    assert pulsed_g2_zero(s, within=on).value == pytest.approx(near.value, abs=0.05)


# -- bad input -------------------------------------------------------------


def test_bad_input_gives_clear_errors():
    s = PhotonStream(np.zeros(5, np.uint8), np.arange(5), np.full(5, 3), 1e-7, 1e-9, 100)
    with pytest.raises(ValueError, match="channel 1 has no photons"):
        g2_histogram(s, max_lag_s=1e-6, bin_width_s=1e-9)
    with pytest.raises(ValueError, match="channel 1 has no photons"):
        pulsed_g2_zero(s)
    two = PhotonStream(
        np.array([0, 1], np.uint8), np.array([0, 1]), np.array([3, 3]), 1e-7, 1e-9, 100
    )
    with pytest.raises(ValueError, match="no photons after the selection"):
        g2_histogram(two, max_lag_s=1e-6, bin_width_s=1e-9, selection=channels(0))
    with pytest.raises(ValueError, match="no coincidences in the 2 side peaks"):
        pulsed_g2_zero(two, side_peaks=[-5, 5])
    with pytest.raises(ValueError, match="beyond the sync period"):
        pulsed_g2_zero(two, selection=gate(min_s=1e-6))
    t2 = PhotonStream(np.array([0, 1], np.uint8), np.array([0, 1]), None, 1e-12)
    with pytest.raises(ValueError, match="period_s"):
        pulsed_g2_zero(t2)
    with pytest.raises(ValueError, match="bin_width_s"):
        g2_histogram(two, max_lag_s=1e-6, bin_width_s=-1.0)
    with pytest.raises(ValueError, match="exactly one of"):
        g2_histogram(two, bin_width_s=1e-9)
    with pytest.raises(ValueError, match="channels"):
        g2_histogram(two, channels=(0, 300), max_lag_s=1e-6, bin_width_s=1e-9)
    with pytest.raises(ValueError, match="side_peaks"):
        pulsed_g2_zero(two, side_peaks=[0, 1])
    with pytest.raises(TypeError, match="within"):
        g2_histogram(two, max_lag_s=1e-6, bin_width_s=1e-9, within=channels(0))
    with pytest.raises(ValueError, match="signal_fraction"):
        pulsed_g2_zero(two, signal_fraction=(0.0, 1.0))


def test_g2_undefined_bins_are_marked():
    s = PhotonStream(np.array([0, 1, 0, 1], np.uint8), np.array([0, 1, 2, 3]), None, 1e-9)
    h = g2_histogram(s, max_lag_s=10e-9, bin_width_s=1e-9)
    assert h.duration_s == pytest.approx(4e-9)
    assert not h.defined[0] and h.defined[10]
    assert np.isnan(h.g2[0]) and np.isfinite(h.g2[10])
