"""``qdlight demo`` with tiny acquisitions: the report is written, complete and checked."""

from __future__ import annotations

import base64
import re

import pytest

from qdlight import demo
from qdlight.cli import main


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    argv = ["demo", "--quick", "-o", str(out), "--seed", "5", "--no-progress"]
    argv += ["--duration", "1s", "--blinking-duration", "8s"]
    assert main(argv) == 0
    return out / "report.html"


def test_report_has_every_section_and_image(tiny_report, capsys):
    page = tiny_report.read_text(encoding="utf-8")
    titles = re.findall(r"<h2 id=\"[^\"]+\">([^<]+)</h2>", page)
    for t in (
        "Summary",
        "Power series",
        "Checks against the ground truth",
        "Decays and lifetimes",
        "Photon correlations g2",
        "Spectra",
        "Blinking QD: emission states",
        "Provenance",
    ):
        assert t in titles
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 7
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    for power in ("10 nW", "20 nW", "170 nW", "1.8 uW", "4 uW"):
        assert power in page
    assert "seed" in page and "numpy" in page
    if not demo.bayesian_available():
        assert "Bayesian fits" not in titles and "not run" in page
    else:  # posterior tables with the truth beside them
        assert "Bayesian fits" in titles
        assert "joint power series: posterior" in page and "sigma_abs_m2" in page
        assert "decay tail at 170 nW: posterior" in page


def test_checks_pass_with_fixed_seed():
    cfg = demo.DemoConfig(durations_s=(20.0, 10.0, 2.0, 1.0, 1.0), blinking_duration_s=10.0, seed=3)
    res = demo.run_demo(cfg, progress=False)
    assert len(res.sims) == 5 and len(res.series) == 5
    # every comparison is within 5 sigma (each fails by chance ~1e-6 of the time)
    bad = [r for r in res.comparisons if r["ok"] is False]
    assert not bad, bad
    assert {r["quantity"] for r in res.comparisons} >= {"rate (/s)", "g2(0)", "gated g2(0)"}
    assert res.agreement > 0.8
    assert [row["state"] for row in res.state_truth] == ["bright", "grey", "dark"]


def test_existing_report_needs_force(tiny_report, capsys):
    argv = ["demo", "--quick", "-o", str(tiny_report.parent), "--no-progress"]
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0s"], "--duration"),
        (["--duration", "1uW"], "--duration"),
        (["--blinking-duration", "0.1s"], "--blinking-duration"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_options_are_named(tmp_path, argv, message, capsys):
    assert main(["demo", "-o", str(tmp_path / "x"), "--no-progress", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_config_lengths_checked():
    with pytest.raises(ValueError, match="durations_s"):
        demo.DemoConfig(durations_s=(1.0,))
