"""Reproducibility (seeds, threads, chunks), the stream's form, PTU and truth files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import qdio
import qdsim
from qdsim import Process, Truth


def _setup():
    """Blinking QD, full detection chain, small blocks so that many block borders occur."""
    s = qdsim.presets.blinking_qd()
    dets = tuple(
        dataclasses.replace(
            d, dark_rate_hz=2e3, afterpulse_probability=0.05, background_rate_hz=1e3
        )
        for d in s.detection.detectors
    )
    return dataclasses.replace(
        s,
        block_duration_s=0.01,
        detection=dataclasses.replace(s.detection, eta_c=0.05, detectors=dets),
    )


def _same(a: qdsim.SimResult, b: qdsim.SimResult) -> None:
    for k in ("channel", "macrotime", "microtime"):
        assert np.array_equal(getattr(a.stream, k), getattr(b.stream, k)), k
    for k in ("state", "process", "pulse", "absorbed"):
        assert np.array_equal(getattr(a.truth, k), getattr(b.truth, k)), k
    for k in ("wavelength_m", "emission_delay_s"):
        assert np.array_equal(getattr(a.truth, k), getattr(b.truth, k), equal_nan=True), k
    assert np.array_equal(a.spectrum.counts, b.spectrum.counts)


@pytest.fixture(scope="module")
def reference():
    setup = _setup()
    return setup, qdsim.simulate(setup, power_w=0.5e-6, duration_s=0.3, rng=7)


def test_same_seed_same_stream(reference):
    setup, ref = reference
    _same(ref, qdsim.simulate(setup, power_w=0.5e-6, duration_s=0.3, rng=7))
    _same(ref, qdsim.simulate(setup, power_w=0.5e-6, duration_s=0.3, rng=np.random.default_rng(7)))
    other = qdsim.simulate(setup, power_w=0.5e-6, duration_s=0.3, rng=8)
    assert len(other.stream) != len(ref.stream) or not np.array_equal(
        other.stream.macrotime, ref.stream.macrotime
    )
    assert ref.stream.attrs["seed"] == 7


def test_threads_and_chunks_do_not_change_the_stream(reference):
    setup, ref = reference
    _same(ref, qdsim.simulate(setup, power_w=0.5e-6, duration_s=0.3, rng=7, n_workers=2))
    chunks = list(
        qdsim.simulate_chunks(
            setup, power_w=0.5e-6, duration_s=0.3, rng=7, chunk_duration_s=0.05, n_workers=2
        )
    )
    assert len(chunks) == 6
    joined = qdsim.SimResult.join(chunks)
    _same(ref, joined)


def test_stream_form(reference):
    _, ref = reference
    s = ref.stream
    assert s.channel.dtype == np.uint8 and s.macrotime.dtype == np.int64
    assert s.microtime.dtype == np.int32
    assert s.macrotime_resolution_s == pytest.approx(400e-9)
    assert s.microtime_resolution_s == 128e-12 and s.n_microtime_bins == 4096
    assert np.all(np.diff(s.macrotime) >= 0)
    same = np.diff(s.macrotime) == 0
    assert np.all(np.diff(s.microtime)[same] >= 0)  # time order inside a sync period
    assert s.microtime.max() < 3125  # microtimes wrap at the 400 ns sync period
    assert s.attrs["simulated"] is True and s.attrs["setup"]["name"] == "blinking_qd"
    assert s.attrs["power_w"] == 0.5e-6
    counts = ref.truth.counts_by_process()
    for name in ("X", "BX", "DARK", "AFTERPULSE", "BACKGROUND"):
        assert counts[name] > 0, name
    assert len(ref.truth) == len(s)


def test_microtimes_follow_emission_times(h):
    """Ideal detection: macrotime = pulse + whole periods, microtime = floor(rest / bin)."""
    setup = dataclasses.replace(h.ideal_setup(eta_c=0.1), block_duration_s=1e-5)
    res = qdsim.simulate(setup, power_w=setup.power_for(1.0), duration_s=0.02, rng=9)
    t, s = res.truth, res.stream
    period = 400e-9
    k = np.floor(t.emission_delay_s / period).astype(np.int64)
    assert np.array_equal(s.macrotime, t.pulse + k)
    micro = np.floor((t.emission_delay_s - k * period) / 128e-12)
    assert np.mean(micro != s.microtime) < 1e-3  # float rounding at bin edges only
    assert np.abs(micro - s.microtime).max() <= 1


def test_ptu_roundtrip(tmp_path, reference):
    ptufile = pytest.importorskip("ptufile")
    _, ref = reference
    path = qdio.write_ptu(tmp_path / "sim.ptu", ref.stream, record_type="picoharp_t3")
    back = qdio.read(path)
    for k in ("channel", "macrotime", "microtime"):
        assert np.array_equal(getattr(back, k), getattr(ref.stream, k)), k
    with ptufile.PtuFile(path) as f:
        rec = f.decode_records()
    photons = rec[rec["channel"] >= 0]
    assert np.array_equal(photons["channel"], ref.stream.channel)
    assert np.array_equal(photons["dtime"], ref.stream.microtime)
    assert np.array_equal(photons["time"], ref.stream.macrotime)


def test_truth_npz_roundtrip(tmp_path, reference):
    _, ref = reference
    path = ref.truth.save_npz(tmp_path / "truth.npz")
    back = Truth.load_npz(path)
    for k in ("state", "process", "pulse", "absorbed"):
        assert np.array_equal(getattr(back, k), getattr(ref.truth, k))
    assert np.array_equal(back.wavelength_m, ref.truth.wavelength_m, equal_nan=True)
    assert np.array_equal(back.trajectory.start_s, ref.truth.trajectory.start_s)
    assert back.state_names == ("bright", "grey", "dark")
    assert back.entropy == ref.truth.entropy and back.n_pulses == ref.truth.n_pulses
    assert back.counts_by_process() == ref.truth.counts_by_process()
    assert Process(int(back.process[0])).name in back.counts_by_process()


def test_power_series():
    setup = qdsim.presets.paper_qd()
    powers = [0.02e-6, 0.2e-6, 2e-6]
    results = qdsim.power_series(setup, powers, duration_s=0.05, rng=3)
    rates = [len(r.stream) for r in results]
    assert [r.power_w for r in results] == powers
    assert rates[0] < rates[1] < rates[2]
    again = qdsim.power_series(setup, powers, duration_s=0.05, rng=3)
    assert [len(r.stream) for r in again] == rates


def test_generator_is_consumed_and_progress_bar(capsys):
    """A Generator passed as rng advances (SPEC 7); progress=True draws a tqdm bar on stderr."""
    setup = qdsim.presets.paper_qd()
    gen = np.random.default_rng(5)
    a = qdsim.simulate(setup, power_w=0.2e-6, duration_s=0.02, rng=gen, progress=True)
    b = qdsim.simulate(setup, power_w=0.2e-6, duration_s=0.02, rng=gen)
    assert a.truth.entropy != b.truth.entropy
    assert a.stream.attrs["seed"] is None
    assert "qdsim paper_qd" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_workers=0 must be an integer >= 1"):
        qdsim.simulate(setup, power_w=0.2e-6, duration_s=0.02, n_workers=0)


def test_chunks_through_ptu_writer(tmp_path, reference):
    """Long runs: chunks written one by one (qdio.PtuWriter) give the whole stream's file."""
    setup, ref = reference
    s = ref.stream
    path = tmp_path / "chunks.ptu"
    with qdio.PtuWriter(
        path,
        macrotime_resolution_s=s.macrotime_resolution_s,
        microtime_resolution_s=s.microtime_resolution_s,
    ) as writer:
        for chunk in qdsim.simulate_chunks(
            setup, power_w=0.5e-6, duration_s=0.3, rng=7, chunk_duration_s=0.1
        ):
            writer.write(chunk.stream)
    back = qdio.read(path)
    for k in ("channel", "macrotime", "microtime"):
        assert np.array_equal(getattr(back, k), getattr(s, k)), k
