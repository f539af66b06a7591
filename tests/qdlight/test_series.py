"""Power series of files (SERIES.toml): loading, ``qdlight analyze`` and its report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import qdinfer
import qdio
import qdsim
from qdlight.cli import main
from qdlight.series import load_series, measure_series

POWERS = (0.17e-6, 1.8e-6)


@pytest.fixture(scope="module")
def series_toml(tmp_path_factory):
    """Two simulated acquisitions of the paper QD as PTU files and their SERIES.toml."""
    root = tmp_path_factory.mktemp("series")
    lines = []
    for k, p in enumerate(POWERS):
        sim = qdsim.simulate(qdsim.presets.paper_qd(), power_w=p, duration_s=1.0, rng=40 + k)
        name = f"qd_{k}.ptu"
        qdio.write_ptu(root / name, sim.stream)
        lines += ["[[point]]", f'file = "{name}"', f'power = "{p * 1e6:g} uW"', ""]
    toml = root / "series.toml"
    # written out of order: the loader sorts by power
    toml.write_text("\n".join(lines[4:] + lines[:4]))
    return toml


def test_load_series_sorts_and_resolves(series_toml):
    pts = load_series(series_toml)
    assert [p.power_w for p in pts] == pytest.approx(POWERS, rel=1e-12)
    assert [p.file.name for p in pts] == ["qd_0.ptu", "qd_1.ptu"]
    assert all(p.file.is_absolute() for p in pts)


@pytest.mark.parametrize(
    "text, match",
    [
        ("point = 3\n", r"expected \[\[point\]\]"),
        ('[[point]]\nfile = "a.ptu"\n', "point 1 needs 'file' and 'power'"),
        ('[[point]]\nfile = "qd_0.ptu"\npower = "1uW"\ncolour = 1\n', "unknown key"),
        ('[[point]]\nfile = "qd_0.ptu"\npower = "-1uW"\n', "must be > 0"),
        ('[[point]]\nfile = "qd_0.ptu"\npower = "1 s"\n', "point 1 power"),
        ('[[point]]\nfile = "qd_0.ptu"\npower = "1uW"\n' * 2, "same power"),
        ("[[point]\n", "not valid TOML"),
        ("point = [1]\n", "point 1 must be a \\[\\[point\\]\\] table"),
        ('[[point]]\nfile = "qd_0.ptu"\npower = 2\n', "power 2 needs a unit"),
        ('[[point]]\nfile = "qd_0.ptu"\npower = "1uW"\n[extra]\n', "unknown key"),
    ],
)
def test_load_series_errors_name_the_point(series_toml, text, match):
    bad = series_toml.parent / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_series(bad)


def test_missing_file_is_named(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[[point]]\nfile = "nowhere.ptu"\npower = "1uW"\n')
    with pytest.raises(FileNotFoundError, match="point 1: no such file"):
        load_series(toml)


def test_measured_series_equals_direct_measurements(series_toml):
    m = measure_series(series_toml, progress=False)
    assert m.channels == (0, 1)
    for k, pt in enumerate(m.points):
        direct = qdinfer.measure_power_point(qdio.read(pt.file), pt.power_w)
        assert m.series.rate_hz[k] == direct.rate_hz
        assert m.series.g2_zero[k] == direct.g2_zero
        assert m.series.g2_zero_gated[k] == direct.g2_zero_gated


def test_analyze_series_cli_writes_figure_and_report(series_toml, tmp_path, capsys):
    report = tmp_path / "r.html"
    argv = ["analyze", str(series_toml), "--gate", "2.5ns", "-o", str(tmp_path / "figs")]
    argv += ["--report", str(report), "--json", "--no-progress"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["points"]) == 2 and out["gate_s"] == pytest.approx(2.5e-9)
    assert np.isfinite(out["points"][1]["g2_zero_gated"])
    page = report.read_text(encoding="utf-8")
    titles = re.findall(r"<h2 id=\"[^\"]+\">([^<]+)</h2>", page)
    for t in ("Summary", "Power series", "Decays and lifetimes", "Photon correlations g2"):
        assert t in titles
    assert "qd_1.ptu" in page and "1.8 uW" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3
    assert (tmp_path / "figs" / "series_power_series.png").stat().st_size > 0


def test_analyze_series_text_and_option_errors(series_toml, tmp_path, capsys):
    assert main(["analyze", str(series_toml), "--no-figures", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "2 powers" in text and "1.8 uW" in text
    assert main(["analyze", str(series_toml), "--states", "2", "--no-figures"]) == 1
    assert "--states applies to one file" in capsys.readouterr().err


def test_one_channel_file_is_refused(tmp_path, capsys):
    """A series correlates two detectors: a file with one channel names itself and --channels."""
    sim = qdsim.simulate(qdsim.presets.paper_qd(), power_w=1e-6, duration_s=0.5, rng=3)
    one = qdio.select_channels(sim.stream, [0])
    qdio.write_ptu(tmp_path / "one.ptu", one)
    toml = tmp_path / "s.toml"
    toml.write_text('[[point]]\nfile = "one.ptu"\npower = "1uW"\n')
    with pytest.raises(ValueError, match=r"one\.ptu: photons on 1 channel\(s\) only.*--channels"):
        measure_series(toml, progress=False)
