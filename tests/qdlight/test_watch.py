"""qdlight watch: a writer appends to a PTU while watch follows it; the final results
equal qdio.read of the finished file and the in-memory estimators."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import struct
import threading
import time

import numpy as np
import pytest

import qdinfer
import qdio
import qdlight.watch as watch_mod
import qdsim
from qdlight import cli
from qdlight.watch import add_parser, watch

GATE_S = 2.5e-9


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    """2 s of the paper's quantum dot (about 37k photons on two channels), PicoHarp T3."""
    sim = qdsim.simulate(qdsim.presets.paper_qd(), power_w=0.17e-6, duration_s=2.0, rng=7)
    path = tmp_path_factory.mktemp("watch") / "qd.ptu"
    qdio.write_ptu(path, sim.stream, record_type="picoharp_t3")
    return path


@pytest.fixture
def run():
    """``qdlight.cli.main``."""
    return cli.main


def _live_bytes(path) -> bytes:
    data = bytearray(path.read_bytes())
    at = data.index(b"TTResult_NumberOfRecords") + 40
    data[at : at + 8] = struct.pack("<q", 0)  # not final while acquiring
    return bytes(data)


def _writer(live, data, n_pieces=30, pause_s=0.02):
    """Append ``data`` in pieces whose ends fall anywhere (in the header, in records)."""
    rng = np.random.default_rng(5)
    cuts = np.unique(np.concatenate([[0, 77, 1000], rng.integers(0, len(data), n_pieces)]))

    def run():
        with open(live, "ab") as w:
            for a, b in zip(cuts, [*cuts[1:], len(data)], strict=True):
                w.write(data[a:b])
                w.flush()
                time.sleep(pause_s)

    return threading.Thread(target=run)


def test_watch_while_written_equals_read(tmp_path, sim_file):
    data = _live_bytes(sim_file)
    live = tmp_path / "live.ptu"
    live.write_bytes(b"")
    fig = tmp_path / "live.png"
    out = io.StringIO()
    th = _writer(live, data)
    th.start()
    try:
        summary, res = watch(
            live,
            gate_s=GATE_S,
            interval_s=0.05,
            idle_s=1.0,
            figure=fig,
            display=out,
            first_photons=5000,
        )
    finally:
        th.join()
    whole = qdio.read(sim_file)
    assert summary["stopped"] == "idle"
    assert summary["n_photons"] == res.n_photons == len(whole)
    offset = qdio.ptu.ptu_source(sim_file).data_offset
    assert summary["record_bytes_read"] == 4 * summary["records_read"] == len(data) - offset
    # decays, gated decays, trace, rates: exactly the in-memory estimators
    for c in (0, 1):
        ch = qdinfer.channels(c)
        np.testing.assert_array_equal(
            res.decays[c].counts, qdinfer.decay_histogram(whole, selection=ch).counts
        )
        np.testing.assert_array_equal(
            res.gated_decays[c].counts,
            qdinfer.decay_histogram(whole, selection=ch & res.gate).counts,
        )
    np.testing.assert_array_equal(res.trace.counts, qdinfer.intensity_trace(whole).counts)
    assert res.rates.counts == qdinfer.count_rates(whole).counts
    # g2 histogram (pairs across poll borders counted once) and pulsed g2(0) +- error,
    # with the gate's IRF peaks and the pulse starts of the first 5000+ photons
    g2 = qdinfer.g2_histogram(whole, max_lag_s=res.g2.edges_s[-1], bin_width_s=res.g2.bin_width_s)
    np.testing.assert_array_equal(res.g2.counts, g2.counts)
    first = whole.take(slice(0, res.first_chunk_photons))
    assert res.first_chunk_photons >= 5000
    assert res.gate == qdinfer.resolve_irf_peaks(
        qdinfer.gate(GATE_S, relative_to="irf_peak"), first
    )
    refs = qdinfer.g2._pulse_refs(first, (0, 1), None)
    cases = [(res.g2_zero, None, "g2_zero"), (res.g2_zero_gated, res.gate, "g2_zero_gated")]
    for got, sel, key in cases:
        want = qdinfer.pulsed_g2_zero(whole, pulse_start_s=refs, selection=sel)
        assert got.centre_counts == want.centre_counts
        np.testing.assert_array_equal(got.side_counts, want.side_counts)
        assert summary["g2"][key] == pytest.approx(want.value, rel=1e-12)
        assert summary["g2"][key + "_stderr"] == pytest.approx(want.stderr, rel=1e-12)
    assert summary["g2"]["coincidences"] == int(g2.counts.sum())
    # the final lifetime fit is the fit of the whole decay
    fit = qdinfer.fit_decay(res.decays[0], n_exp=1)
    assert summary["decays"]["0"]["tau_s"] == pytest.approx(float(fit.tau_s[0]), rel=1e-9)
    # live display: one line per refresh (not a terminal), then the figure + its page
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("[") for line in lines)
    assert "\x1b[" not in out.getvalue()
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = fig.with_suffix(".html").read_text()
    assert "live.png" in page and "g2(0) 0,1" in page
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_cli_json_on_finished_file(run, sim_file, capsys):
    """A header with its final record count: watch stops at once, without --idle."""
    t = time.monotonic()
    assert run(["watch", str(sim_file), "--json", "--idle", "0", "--gate", "2.5ns"]) == 0
    assert time.monotonic() - t < 10
    cap = capsys.readouterr()
    out = json.loads(cap.out)  # stdout holds only the JSON; the live lines go to stderr
    whole = qdio.read(sim_file)
    assert out["stopped"] == "finished" and out["n_photons"] == len(whole)
    assert out["channels"]["0"]["photons"] == whole.counts_per_channel()[0]
    assert out["gate_s"] == 2.5e-9 and out["g2"]["g2_zero_gated"] < out["g2"]["g2_zero"]
    first = whole.take(slice(0, out["first_chunk_photons"]))
    refs = qdinfer.g2._pulse_refs(first, (0, 1), None)
    want = qdinfer.pulsed_g2_zero(whole, pulse_start_s=refs)
    assert out["g2"]["g2_zero"] == pytest.approx(want.value, rel=1e-12)


def test_ctrl_c_prints_the_final_summary(run, tmp_path, sim_file, capsys, monkeypatch):
    live = tmp_path / "live.ptu"
    live.write_bytes(_live_bytes(sim_file))  # count 0: only Ctrl-C stops it with --idle 0

    def sigint(seconds):  # a real SIGINT, as a terminal sends it, during the pause
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(watch_mod, "_sleep", sigint)
    before = signal.getsignal(signal.SIGINT)
    assert run(["watch", str(live), "--idle", "0", "--interval", "0.05s", "-q"]) == 0
    out = capsys.readouterr().out
    assert "photons" in out and "g2(0) 0,1" in out and "interrupted" in out
    assert signal.getsignal(signal.SIGINT) is before  # restored

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(watch_mod, "_sleep", interrupt)
    summary, res = watch(live, idle_s=0, display=None)
    assert summary["stopped"] == "interrupted" and res.n_photons == len(qdio.read(sim_file))


def test_terminal_block_and_waiting(tmp_path, sim_file):
    live = tmp_path / "live.ptu"
    data = _live_bytes(sim_file)
    live.write_bytes(data[:500])  # the header is not complete yet
    out = io.StringIO()
    with pytest.raises(qdio.QdioError, match="no complete PTU header"):
        watch(live, interval_s=0.05, idle_s=0.2, display=out, tty=True)
    assert "waiting" in out.getvalue()
    live.write_bytes(data)
    out = io.StringIO()
    summary, _ = watch(live, interval_s=0.05, idle_s=0.3, display=out, tty=True)
    text = out.getvalue()
    assert "\x1b[" in text and "channel 0" in text and "decay ch 1" in text  # redrawn in place
    block = watch_mod.format_block(summary)
    assert block.startswith("file") and "trace" in block and "g2(0) 0,1" in block


def test_t2_file(tmp_path):
    rng = np.random.default_rng(8)
    n = 20_000
    s = qdio.PhotonStream(
        rng.integers(0, 2, n).astype(np.uint8), np.sort(rng.integers(0, 10**12, n)), None, 1e-12
    )
    path = qdio.write_ptu(tmp_path / "t2.ptu", s, record_type="hydraharp_v2_t2")
    summary, res = watch(path, idle_s=0.2, display=None, first_photons=0)
    assert summary["stopped"] == "finished" and "decays" not in summary
    assert res.g2.counts.sum() == summary["g2"]["coincidences"]
    assert res.g2_zero is None and "g2_near_zero" in summary["g2"]
    assert "g2 0,1" in watch_mod.format_block(summary)
    # a gate needs delays after the laser: refused at the first records, naming file and option
    with pytest.raises(ValueError, match=r"t2\.ptu: --gate needs T3 data"):
        watch(path, gate_s=2.5e-9, idle_s=0.2, display=None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gate", "soon"], "--gate"),
        (["--gate=-1ns"], "--gate"),
        (["--interval", "0s"], "--interval"),
        (["--idle", "2 W"], "--idle"),
        (["--trace-bin", "0"], "--trace-bin"),
        (["--figure", "out.jpg"], "out.jpg"),
        (["--channels", "0"], "--channels"),
        (["--figure", "no/such/folder/live.png"], "no/such/folder"),
        (["--gate", "500ns", "-q", "--idle", "0.2s"], "not shorter than the laser period"),
    ],
)
def test_bad_options(run, sim_file, capsys, args, message):
    assert run(["watch", str(sim_file), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_files(run, tmp_path, capsys):
    assert run(["watch", str(tmp_path / "missing.ptu")]) == 1
    assert "missing.ptu" in capsys.readouterr().err
    junk = tmp_path / "junk.ptu"
    junk.write_bytes(b"PQTTTR\0\0" + b"x" * 8 + b"\xff" * 48)  # a tag of an unknown type
    assert run(["watch", str(junk), "--idle", "0.1s", "-q"]) == 1
    pt3 = tmp_path / "run.pt3"
    pt3.write_bytes(b"not a ptu")
    assert run(["watch", str(pt3), "-q"]) == 1
    assert "not a PTU" in capsys.readouterr().err


def test_add_parser_registers_watch():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["watch", "f.ptu", "--no-progress"])
    assert args.func is watch_mod.cmd_watch and args.quiet and args.idle == "10s"
