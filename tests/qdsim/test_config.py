"""Setups: TOML files with units, validation errors that name the key, presets."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import qdsim
from qdsim import BlinkState, Detector, Setup, load_config, setup_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["paper_qd", "blinking_qd"])
def test_examples_equal_presets(name):
    path = EXAMPLES / f"{name}.toml"
    assert load_config(path) == qdsim.presets.PRESETS[name]()
    assert qdsim.load_setup(str(path)) == qdsim.load_setup(name)


@pytest.mark.parametrize("name", ["paper_qd", "blinking_qd"])
def test_dict_roundtrip(name):
    setup = qdsim.load_setup(name)
    assert setup_from_dict(setup.to_dict()) == setup


def test_paper_numbers():
    s = qdsim.presets.paper_qd()
    assert s.excitation.spot_area == pytest.approx(3.0e-13, rel=0.01)  # 3e-9 cm^2
    assert s.mean_absorbed(0.01e-6) == pytest.approx(0.0626, abs=1e-4)
    assert s.mean_absorbed(4e-6) == pytest.approx(25.0, rel=0.01)
    assert s.power_for(s.mean_absorbed(1.7e-7)) == pytest.approx(1.7e-7)
    assert s.emitter.sigma_abs_m2 == 2.3e-18 and s.detection.eta_c == 0.01


def test_units_in_toml(tmp_path):
    path = tmp_path / "qd.toml"
    path.write_text(
        """
[excitation]
rep_rate = "5 MHz"
spot_area = "4e-9 cm^2"
[emitter.states.on]
tau_x = "45 ns"
eta_bx = "30%"
[emitter.states.off]
eta_x = 0.0
power_law = { alpha = 1.6, min_dwell = "100 us", cutoff = "1 s" }
[[blinking.transitions]]
from = "on"
to = "off"
rate = "10 Hz"
[[blinking.transitions]]
from = "off"
to = "on"
rate = 100
"""
    )
    s = load_config(path)
    assert s.name == "qd"
    assert s.excitation.rep_rate_hz == 5e6 and s.excitation.spot_area_m2 == pytest.approx(4e-13)
    on, off = s.emitter.states
    assert (on.name, on.tau_x_s, on.eta_bx) == ("on", 45e-9, 0.3)
    assert off.power_law.min_dwell_s == pytest.approx(1e-4)
    assert s.blinking.transitions[1].rate_hz == 100.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("[emitter.states.grey]\neta_x = 1.3", "emitter.states.grey.eta_x = 1.3 must be in [0, 1]"),
        ('[emitter.states.grey]\ntau_x = "-5 ns"', "emitter.states.grey.tau_x = -5 ns must be > 0"),
        (
            '[emitter.states.grey]\neta_bx = "nan"',
            "emitter.states.grey.eta_bx = nan must be a finite",
        ),
        (
            '[excitation]\nrep_rate = "60 ns"',
            "excitation.rep_rate='60 ns': 'ns' is not a unit of 'Hz'",
        ),
        ("[excitation]\nwavelenght = 405e-9", "unknown key excitation.wavelenght"),
        ("[detection]\neta_c = 2", "detection.eta_c = 2 must be in [0, 1]"),
        (
            "[[detection.detectors]]\nsplit = 0.7\n[[detection.detectors]]\nsplit = 0.7",
            "detection.detectors: the splits sum to 1.4",
        ),
        (
            '[[detection.detectors]]\ndark_rate = "-5 Hz"',
            "detection.detectors[0].dark_rate = -5 Hz must be >= 0",
        ),
        (
            '[[blinking.transitions]]\nfrom = "bright"\nto = "grey"\nrate = 1',
            "blinking.transitions[0].to = 'grey' is not a state",
        ),
        (
            "[emitter.states.a]\n[emitter.states.b]\n[[blinking.transitions]]\n"
            'from = "a"\nto = "b"\nrate = "-1 Hz"',
            "blinking.transitions[0].rate = -1 Hz must be >= 0",
        ),
        ('[emitter]\nmodel = "cascade"', "emitter.model = 'cascade' must be one of"),
        ('[detection.tcspc]\nresolution = "64 ps"', "must cover the laser period"),
        (
            "[detection.tcspc]\nn_bins = 4096.5",
            "detection.tcspc.n_bins = 4096.5: expected an integer",
        ),
        ("[emitter.states.x.power_law]\nalpha = 0.8", "must be > 1 when the cutoff is infinite"),
        ("name = 3", "name = 3: expected a string"),
    ],
)
def test_validation_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert message in str(err.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[emitter\n")
    with pytest.raises(ValueError, match=r"broken\.toml: invalid TOML"):
        load_config(path)


def test_load_setup_unknown():
    with pytest.raises(ValueError, match="neither a preset"):
        qdsim.load_setup("no_such_qd")


def test_irf_histogram_file(tmp_path):
    np.save(tmp_path / "irf.npy", np.array([1.0, 5.0, 2.0]))
    path = tmp_path / "irf.toml"
    path.write_text(
        '[[detection.detectors]]\nirf = { histogram_file = "irf.npy", histogram_bin = "8 ps" }\n'
    )
    det = load_config(path).detection.detectors[0]
    assert det.irf.histogram == (1.0, 5.0, 2.0) and det.irf.histogram_bin_s == 8e-12
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[detection.detectors]]\nirf = { histogram_file = "none.npy", histogram_bin = "8 ps" }\n'
    )
    with pytest.raises(ValueError, match=r"histogram_file = 'none\.npy': cannot read"):
        load_config(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(power_w=-1e-6, duration_s=1.0), "power_w=-1e-06 must be a finite number >= 0"),
        (dict(power_w=math.nan, duration_s=1.0), "power_w=nan"),
        (dict(power_w=1e-6, duration_s=0.0), "duration_s=0.0 must be a finite number > 0"),
        (dict(power_w=1e-3, duration_s=1.0), "qdsim handles n <= 100"),
        (dict(power_w=1e-6, duration_s=1e-8), "shorter than one laser period"),
    ],
)
def test_simulate_rejects_bad_runs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        qdsim.simulate(qdsim.presets.paper_qd(), rng=1, **kwargs)


def test_python_api_validation():
    bad = dataclasses.replace(
        qdsim.presets.paper_qd(),
        emitter=dataclasses.replace(
            qdsim.presets.paper_qd().emitter, states=(BlinkState("on", eta_x=-0.1),)
        ),
    )
    with pytest.raises(ValueError, match=r"emitter.states.on.eta_x = -0.1 must be in \[0, 1\]"):
        qdsim.simulate(bad, power_w=1e-7, duration_s=0.01)
    with pytest.raises(ValueError, match=r"Detector\.afterpulse_probability = 1 must be < 1"):
        Detector(afterpulse_probability=1.0).validate()
    with pytest.raises(TypeError, match="setup must be a qdsim Setup"):
        qdsim.simulate({"name": "x"}, power_w=1e-7, duration_s=0.01)
    assert Setup().validate().state_names == ("bright",)


def test_ladder_state_from_rates():
    s = qdsim.ladder_state("on", tau_x_s=60e-9, tau_auger_bx_s=4e-9)
    # statistical scaling: eta_BX = 4 tau_BX / tau_X,r
    assert s.eta_bx == pytest.approx(4 * s.tau_bx_s / 60e-9)
