"""One-pass accumulation over chunks gives exactly the in-memory results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import qdinfer
import qdio
from qdinfer import (
    DecayAccumulator,
    G2Accumulator,
    PulsedG2Accumulator,
    TraceAccumulator,
    gate,
    state_intervals,
)


def _load_sources():
    path = Path(__file__).with_name("qdinfer_sources.py")
    spec = importlib.util.spec_from_file_location("qdinfer_sources", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


src = _load_sources()


@pytest.fixture(scope="module")
def cascade():
    rng = np.random.default_rng(31)
    return src.cascade_stream(
        rng, n_pulses=400_000, eta_c=0.2, bg_per_pulse=0.005, t0_s=5e-9, irf_sigma_s=50e-12
    )


def _streams():
    rng = np.random.default_rng(32)
    t2 = src.t2_poisson(rng, rates_hz=[3e4, 4e4], duration_s=0.5, tick_s=1e-12)
    rng = np.random.default_rng(33)
    n = 20_000
    P, res = 1.3167472340407602e-08, 4e-12  # float time base
    mac = np.sort(rng.integers(0, 2_000_000, n))
    t3f = qdio.PhotonStream(
        rng.integers(0, 2, n).astype(np.uint8), mac, rng.integers(0, 3291, n), P, res, 4096
    )
    mac = np.sort(rng.integers(0, 40_000, n))
    unsorted = qdio.PhotonStream(
        rng.integers(0, 2, n).astype(np.uint8), mac, rng.integers(0, 16, n), 10e-9, 1e-9, 16
    )
    return {"t2": t2, "t3_float": t3f, "t3_unsorted": unsorted}


@pytest.mark.parametrize("name", ["t2", "t3_float", "t3_unsorted", "t3_int"])
def test_g2_chunks_equal_in_memory(name, cascade):
    s = cascade if name == "t3_int" else _streams()[name]
    rng = np.random.default_rng(5)
    kwargs = {"max_lag_s": 3e-6 if name == "t2" else 60e-9, "bin_width_s": 1e-9}
    if name == "t3_int":
        kwargs = {"max_lag_s": 1.5e-6, "bin_width_s": 2e-9}
    whole = qdinfer.g2_histogram(s, **kwargs)
    for n_chunks in (2, 17, 300):
        acc = G2Accumulator(**kwargs)
        for chunk in src.split_chunks(s, rng, n_chunks):
            acc.add(chunk)
        res = acc.result()
        np.testing.assert_array_equal(res.counts, whole.counts)
        np.testing.assert_allclose(res.expected, whole.expected, rtol=1e-12)
        assert (res.n_a, res.n_b) == (whole.n_a, whole.n_b)


def test_g2_chunks_with_selection_and_within(cascade):
    rng = np.random.default_rng(6)
    w = state_intervals([0.0, 0.03, 0.09], [0.02, 0.08, 0.16])
    sel = gate(min_s=1e-9, relative_to="irf_peak")
    kwargs = {"max_lag_s": 1.2e-6, "bin_width_s": 5e-9, "selection": sel, "within": w}
    whole = qdinfer.g2_histogram(cascade, **kwargs)
    acc = G2Accumulator(**kwargs)
    chunks = src.split_chunks(cascade, rng, 23)
    for chunk in chunks:
        acc.add(chunk)
    # the gate's IRF peaks come from the first chunk: pin the in-memory gate to them
    pinned = qdinfer.resolve_irf_peaks(sel, next(c for c in chunks if len(c)))
    whole = qdinfer.g2_histogram(cascade, **{**kwargs, "selection": pinned})
    np.testing.assert_array_equal(acc.result().counts, whole.counts)


def test_pulsed_chunks_equal_in_memory(cascade):
    rng = np.random.default_rng(7)
    chunks = src.split_chunks(cascade, rng, 41)
    first = next(c for c in chunks if len(c))
    for kwargs in (
        {},
        {"side_peaks": "far", "far_lag_s": 1e-3},
        {"windows": "lag"},
        {"signal_fraction": "auto"},
    ):
        # pulse starts and the 'auto' background come from the data: use the first
        # chunk's pulse starts in memory too
        refs = qdinfer.g2._pulse_refs(first, (0, 1), None)
        whole = qdinfer.pulsed_g2_zero(cascade, pulse_start_s=refs, **kwargs)
        acc = PulsedG2Accumulator(**kwargs)
        for chunk in chunks:
            acc.add(chunk)
        res = acc.result()
        assert res.centre_counts == whole.centre_counts
        np.testing.assert_array_equal(res.side_counts, whole.side_counts)
        assert res.value == pytest.approx(whole.value, rel=1e-12)


def test_decay_and_trace_chunks_equal_in_memory(cascade):
    rng = np.random.default_rng(8)
    dacc, tacc = DecayAccumulator(), TraceAccumulator(1e-3)
    gacc = DecayAccumulator(gate(min_s=2e-9))
    for chunk in src.split_chunks(cascade, rng, 13):
        dacc.add(chunk)
        tacc.add(chunk)
        gacc.add(chunk)
    for c in (0, 1):
        a = dacc.result(channel=c, bin_width_s=200e-12)
        b = qdinfer.decay_histogram(cascade, selection=qdinfer.channels(c), bin_width_s=200e-12)
        np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(dacc.result().counts, qdinfer.decay_histogram(cascade).counts)
    np.testing.assert_array_equal(
        gacc.result().counts, qdinfer.decay_histogram(cascade, selection=gate(min_s=2e-9)).counts
    )
    trace = qdinfer.intensity_trace(cascade, bin_width_s=1e-3)
    np.testing.assert_array_equal(tacc.result().counts, trace.counts)
    rates = qdinfer.count_rates(cascade)
    assert tacc.rates().counts == rates.counts
    assert tacc.rates().duration_s == pytest.approx(rates.duration_s)


def test_analyze_file_one_pass(tmp_path, cascade):
    path = qdio.write_ptu(tmp_path / "cascade.ptu", cascade, record_type="hydraharp_v2_t3")
    res = qdinfer.analyze_file(path, gate_s=2e-9, max_records=20_000, trace_bin_width_s=5e-3)
    assert res.is_t3 and res.n_photons == len(cascade) and res.g2_channels == (0, 1)
    assert res.skipped == {}
    np.testing.assert_array_equal(
        res.decays[1].counts, qdinfer.decay_histogram(cascade, selection=qdinfer.channels(1)).counts
    )
    np.testing.assert_array_equal(
        res.trace.counts, qdinfer.intensity_trace(cascade, bin_width_s=5e-3).counts
    )
    whole = qdinfer.g2_histogram(
        cascade, max_lag_s=res.g2.edges_s[-1], bin_width_s=res.g2.bin_width_s
    )
    np.testing.assert_array_equal(res.g2.counts, whole.counts)
    first = next(qdio.iter_chunks(path, max_records=20_000))
    refs = qdinfer.g2._pulse_refs(first, (0, 1), None)
    assert res.g2_zero.value == pytest.approx(
        qdinfer.pulsed_g2_zero(cascade, pulse_start_s=refs).value, rel=1e-12
    )
    assert res.g2_zero_gated.value < res.g2_zero.value
    assert res.gate.peak_bins is not None  # pinned on the first chunk
    with pytest.raises(ValueError, match="beyond the sync period"):
        qdinfer.analyze_file(path, gate_s=1e-6)


def test_analyze_file_one_channel_and_t2(tmp_path):
    rng = np.random.default_rng(9)
    one = src.decay_stream(rng, n_photons=5000, taus_s=(3e-9,))
    path = qdio.write_ptu(tmp_path / "one.ptu", one, record_type="hydraharp_v2_t3")
    res = qdinfer.analyze_file(path)
    assert res.g2 is None and "g2" in res.skipped and res.decays[0].n_photons == 5000
    t2 = src.t2_poisson(rng, rates_hz=[1e4, 1e4], duration_s=1.0)
    p2 = qdio.write_ptu(tmp_path / "t2.ptu", t2, record_type="hydraharp_v2_t2")
    r2 = qdinfer.analyze_file(p2, max_records=5000)
    assert not r2.is_t3 and r2.decays == {} and r2.g2_zero is None
    assert (
        r2.g2.counts.sum()
        == qdinfer.g2_histogram(t2, max_lag_s=1e-6, bin_width_s=1e-9).counts.sum()
    )
    with pytest.raises(ValueError, match="T3"):
        qdinfer.analyze_file(p2, gate_s=1e-9)
    empty = qdinfer.DecayAccumulator()
    with pytest.raises(ValueError, match="no photons"):
        empty.result()


def test_analysis_accumulator_held_back_first_chunk(cascade):
    """Small chunks (a live file's polls) are joined until min_first_photons arrive; the
    results, read at any time, equal the in-memory estimators on the photons so far."""
    from qdinfer.accumulate import AnalysisAccumulator

    rng = np.random.default_rng(10)
    chunks = src.split_chunks(cascade, rng, 400)
    acc = AnalysisAccumulator(gate_s=2e-9, trace_bin_width_s=5e-3, min_first_photons=20_000)
    with pytest.raises(ValueError, match="no photons"):
        acc.result()
    seen = 0
    mid = None
    for i, chunk in enumerate(chunks):
        acc.add(chunk)
        seen += len(chunk)
        if not acc.started:
            assert acc.n_pending == seen < 20_000 and acc.n_photons == 0
            if seen:
                with pytest.raises(ValueError, match="held back"):
                    acc.result()
        if i == 200:
            mid = (seen, acc.result())
    res = acc.result()
    assert 20_000 <= res.first_chunk_photons < 20_000 + max(len(c) for c in chunks)
    assert res.gate.peak_bins is not None and res.skipped == {}
    # the gate's IRF peaks and the pulse starts come from the first (joined) chunk
    first = cascade.take(slice(0, res.first_chunk_photons))
    assert res.gate == qdinfer.resolve_irf_peaks(gate(min_s=2e-9, relative_to="irf_peak"), first)
    refs = qdinfer.g2._pulse_refs(first, (0, 1), None)
    for c in (0, 1):
        ch = qdinfer.channels(c)
        np.testing.assert_array_equal(
            res.decays[c].counts, qdinfer.decay_histogram(cascade, selection=ch).counts
        )
        np.testing.assert_array_equal(
            res.gated_decays[c].counts,
            qdinfer.decay_histogram(cascade, selection=ch & res.gate).counts,
        )
    g2 = qdinfer.g2_histogram(cascade, max_lag_s=res.g2.edges_s[-1], bin_width_s=res.g2.bin_width_s)
    np.testing.assert_array_equal(res.g2.counts, g2.counts)
    g2g = qdinfer.g2_histogram(
        cascade,
        max_lag_s=res.g2.edges_s[-1],
        bin_width_s=res.g2.bin_width_s,
        selection=res.gate,
    )
    np.testing.assert_array_equal(res.g2_gated.counts, g2g.counts)
    for got, sel in ((res.g2_zero, None), (res.g2_zero_gated, res.gate)):
        want = qdinfer.pulsed_g2_zero(cascade, pulse_start_s=refs, selection=sel)
        assert got.centre_counts == want.centre_counts
        np.testing.assert_array_equal(got.side_counts, want.side_counts)
        assert got.value == pytest.approx(want.value, rel=1e-12)
        assert got.stderr == pytest.approx(want.stderr, rel=1e-12)
    np.testing.assert_array_equal(
        res.trace.counts, qdinfer.intensity_trace(cascade, bin_width_s=5e-3).counts
    )
    assert res.rates.counts == qdinfer.count_rates(cascade).counts
    # a snapshot taken midway equals the estimators on the photons added until then
    n_mid, snap = mid
    part = cascade.take(slice(0, n_mid))
    assert snap.n_photons == n_mid
    want_decay = qdinfer.decay_histogram(part, selection=qdinfer.channels(1))
    np.testing.assert_array_equal(snap.decays[1].counts, want_decay.counts)
    want = qdinfer.pulsed_g2_zero(part, pulse_start_s=refs)
    assert snap.g2_zero.centre_counts == want.centre_counts
    assert snap.g2_zero.value == pytest.approx(want.value, rel=1e-12)


def test_analysis_accumulator_flush_few_photons(cascade):
    from qdinfer.accumulate import AnalysisAccumulator

    few = cascade.take(slice(0, 3000))
    acc = AnalysisAccumulator(min_first_photons=10_000)
    for chunk in src.split_chunks(few, np.random.default_rng(11), 7):
        acc.add(chunk)
    assert not acc.started and acc.n_pending == 3000
    acc.flush()  # the data ended early: take what arrived
    res = acc.result()
    assert res.first_chunk_photons == 3000 and res.n_photons == 3000
    want = qdinfer.decay_histogram(few, selection=qdinfer.channels(0))
    np.testing.assert_array_equal(res.decays[0].counts, want.counts)
    with pytest.raises(ValueError, match="min_first_photons"):
        AnalysisAccumulator(min_first_photons=-1)
