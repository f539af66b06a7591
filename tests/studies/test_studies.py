"""Every study runs end to end with tiny acquisitions, writes its figure and passes its checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[2] / "studies"
NAMES = [
    "fig1_power_series",
    "fig2_gating",
    "fig3_spectra",
    "fig4_regions",
    "fig5_states",
    "distortions",
]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"study_{name}", STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_study_runs_and_checks_pass(name, tmp_path, capsys):
    study = _load(name)
    assert study.main(["--scale", "0.02", "--seed", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out
    png = tmp_path / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert record["passed"] is True and record["seed"] == 1
    assert record["checks"] and "numpy" in record["versions"]


def test_every_study_is_tested():
    found = sorted(p.stem for p in STUDIES.glob("*.py") if not p.stem.startswith("_"))
    assert found == sorted(NAMES)


def test_bad_scale_is_named(capsys):
    study = _load("fig2_gating")
    with pytest.raises(SystemExit):
        study.main(["--scale", "0"])
    assert "--scale" in capsys.readouterr().err
