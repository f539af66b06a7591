"""Figures (one per result, written as PNG) and the ``qdlight analyze`` command."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import qdinfer
import qdio
from qdinfer import plots
from qdlight.analyze import add_parser, cmd_analyze


def _load_sources():
    path = Path(__file__).with_name("qdinfer_sources.py")
    spec = importlib.util.spec_from_file_location("qdinfer_sources", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


src = _load_sources()


@pytest.fixture(scope="module")
def cascade():
    rng = np.random.default_rng(41)
    return src.cascade_stream(
        rng,
        n_pulses=500_000,
        eta_c=0.2,
        tau_x_s=20e-9,
        t0_s=3e-9,
        irf_sigma_s=40e-12,
        bg_per_pulse=0.002,
    )


def _png(fig, path):
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return fig


def test_every_figure_renders(tmp_path, cascade):
    d = qdinfer.decay_histogram(cascade, selection=qdinfer.channels(0), bin_width_s=200e-12)
    fit = qdinfer.fit_decay(d)
    fig = _png(plots.plot_decay(fit), tmp_path / "decay.png")
    assert len(fig.axes) == 2  # data + residuals
    assert "τ =" in fig.axes[0].get_legend().get_texts()[-1].get_text()
    _png(plots.plot_decay(d), tmp_path / "decay_nofit.png")
    h = qdinfer.g2_histogram(cascade, max_lag_s=1.5e-6, bin_width_s=4e-9)
    g = qdinfer.pulsed_g2_zero(cascade)
    fig = _png(plots.plot_g2(h, pulsed=g), tmp_path / "g2.png")
    # centre window red + the side windows reaching into +-1.5 us (+-1..+-4): 9 spans
    assert len(fig.axes[0].patches) == 9
    _png(plots.plot_g2(h, normalized=False), tmp_path / "g2_counts.png")
    gates = [0.0, 1e-9, 2e-9]
    _png(plots.plot_g2_vs_gate(gates, qdinfer.g2_zero_vs_gate(cascade, gates)), tmp_path / "gg.png")
    tr = qdinfer.intensity_trace(cascade, bin_width_s=5e-3)
    fig = _png(plots.plot_trace(tr), tmp_path / "trace.png")
    assert len(fig.axes) == 2
    wl = np.arange(450, 750, 1.0)
    sp = qdinfer.Spectrum(wl * 1e-9, np.exp(-0.5 * ((wl - 635) / 10) ** 2))
    _png(
        plots.plot_spectrum(sp, split_m=580e-9, areas=qdinfer.band_areas(sp, 580e-9)),
        tmp_path / "spectrum.png",
    )
    pts = [
        qdinfer.PowerPoint(
            p,
            rate_hz=r,
            rate_stderr_hz=10,
            tau_s=20e-9,
            tau_stderr_s=1e-10,
            g2_zero=0.2,
            g2_zero_stderr=0.01,
            g2_zero_gated=0.1,
            g2_zero_gated_stderr=0.01,
        )
        for p, r in [(1e-8, 1e3), (1e-7, 1e4), (1e-6, 3e4), (4e-6, 2e4)]
    ]
    fig = _png(plots.plot_power_series(qdinfer.power_series(pts)), tmp_path / "power.png")
    assert len(fig.axes) == 4


def _run(argv):
    parser = argparse.ArgumentParser(prog="qdlight")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_analyze_command(tmp_path, cascade, capsys):
    path = qdio.write_ptu(tmp_path / "qd.ptu", cascade, record_type="hydraharp_v2_t3")
    out = tmp_path / "figs"
    assert _run(["analyze", str(path), "--gate", "2.5ns", "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "decay ch 0" in text and "g2(0) 0,1" in text and "gated g2(0)" in text
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "qd_decay_ch0.png",
        "qd_decay_ch1.png",
        "qd_g2.png",
        "qd_g2_gated.png",
        "qd_trace.png",
    ]
    assert _run(["analyze", str(path), "--json", "--no-figures", "--n-exp", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    truth = src.g2_reduced(1.0, 1.0, 0.3)
    g2 = summary["g2"]
    assert abs(g2["g2_zero"] - truth) < 5 * g2["g2_zero_stderr"]
    assert summary["n_photons"] == len(cascade) and summary["measurement_mode"] == "T3"
    assert max(summary["decays"]["0"]["tau_s"]) == pytest.approx(20e-9, rel=0.05)
    assert "figures" not in summary


def test_analyze_command_states(tmp_path, capsys):
    # on/off blinking with 0.5 s dwells: two states, the "on" one with the photons
    rng = np.random.default_rng(3)
    n_pulses = 10_000_000  # 4 s
    on = (np.arange(n_pulses) // 1_250_000) % 2 == 0
    s = src.cascade_stream(
        rng, n_pulses=n_pulses, eta_c=0.05, tau_x_s=20e-9, on=on, bg_per_pulse=0.0004
    )
    path = qdio.write_ptu(tmp_path / "blink.ptu", s, record_type="hydraharp_v2_t3")
    out = tmp_path / "figs"
    code = _run(["analyze", str(path), "--states", "2", "--json", "-o", str(out)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    table = {row["state"]: row for row in summary["states"]["table"]}
    assert set(table) == {"dark", "bright"}
    assert table["bright"]["time_s"] == pytest.approx(2.0, rel=0.02)
    assert (out / "blink_states_trace.png").is_file()


def test_analyze_bad_input(tmp_path, cascade):
    path = qdio.write_ptu(tmp_path / "qd.ptu", cascade, record_type="hydraharp_v2_t3")
    with pytest.raises(ValueError, match="--gate"):
        _run(["analyze", str(path), "--gate", "5 uW", "--no-figures"])
    with pytest.raises(ValueError, match="beyond the sync period"):
        _run(["analyze", str(path), "--gate", "500ns", "--no-figures"])
    with pytest.raises(ValueError, match="--states"):
        _run(["analyze", str(path), "--states", "many", "--no-figures"])
    with pytest.raises(ValueError, match="--channels"):
        _run(["analyze", str(path), "--channels", "0", "--no-figures"])
    with pytest.raises(FileNotFoundError, match="--irf"):
        _run(["analyze", str(path), "--irf", str(tmp_path / "none.ptu"), "--no-figures"])
    with pytest.raises(qdio.QdioError):
        bad = tmp_path / "bad.ptu"
        bad.write_bytes(b"not a file at all" * 10)
        _run(["analyze", str(bad), "--no-figures"])
    assert math.isfinite(cascade.duration_s)
    assert cmd_analyze is not None
