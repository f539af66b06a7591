"""``qdlight plan``: closed-form predictions, their counting errors, the check, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import qdsim
from qdlight.cli import main
from qdlight.plan import check, predict
from qdsim import closed_forms as cf


def _quiet(setup: qdsim.Setup) -> qdsim.Setup:
    """The setup without dark counts, background, leakage, afterpulses and dead time."""
    dets = tuple(
        dataclasses.replace(
            d,
            dark_rate_hz=0.0,
            background_rate_hz=0.0,
            leakage_rate_hz=0.0,
            afterpulse_probability=0.0,
            dead_time_s=0.0,
        )
        for d in setup.detection.detectors
    )
    tcspc = dataclasses.replace(setup.detection.tcspc, dead_time_s=0.0)
    det = dataclasses.replace(setup.detection, detectors=dets, tcspc=tcspc)
    return dataclasses.replace(setup, detection=det)


@pytest.mark.parametrize("n", [0.1, 1.0, 5.0])
def test_matches_closed_forms_without_noise(n):
    setup = _quiet(qdsim.presets.paper_qd())
    p = predict(setup, power_w=setup.power_for(n), gate_s=2.5e-9)
    assert p.mean_absorbed == pytest.approx(n)
    # the shell line is detected 0.7 % less than the core lines (filter edge): 1e-2
    expected = cf.g2_zero_ladder(n, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    assert p.g2_zero == pytest.approx(expected, rel=1e-2)
    assert p.g2_zero == pytest.approx(p.g2_zero_signal, rel=1e-12)
    rate = cf.phi_1(n, eta_x=1.0, eta_bx=0.21, eta_c=0.01, rep_rate_hz=2.5e6) + cf.phi_2(
        n, eta_h=0.07, eta_c=0.01, rep_rate_hz=2.5e6, t_max=80
    )
    assert p.rate_total_hz == pytest.approx(rate, rel=1e-2)
    assert np.all(p.signal_fraction == 1.0)


@pytest.mark.parametrize("n", [0.3, 3.0, 20.0])
def test_gated_moments_at_zero_gate_equal_ungated(n):
    """The gated moments (core closed form + shell carriers) reduce to photon_moments."""
    setup = qdsim.presets.paper_qd()
    p = predict(setup, power_w=setup.power_for(n), gate_s=0.0)
    assert p.g2_zero_gated_signal == pytest.approx(p.g2_zero_signal, rel=1e-9)


def test_gated_without_shell_is_g2_zero_gated():
    setup = _quiet(qdsim.presets.paper_qd())
    setup = dataclasses.replace(setup, emitter=dataclasses.replace(setup.emitter, eta_h=0.0))
    p = predict(setup, power_w=setup.power_for(1.0), gate_s=2.5e-9)
    expected = cf.g2_zero_gated(
        1.0, eta_x=1.0, eta_bx=0.21, tau_x_s=60e-9, tau_bx_s=3.15e-9, gate_s=2.5e-9
    )
    assert p.g2_zero_gated == pytest.approx(expected, rel=1e-12)


def test_background_follows_g2_zero_with_background():
    setup = qdsim.presets.paper_qd()
    p = predict(setup, power_w=0.02e-6)
    # per pulse and detector: signal s and noise b give the closed form
    assert p.g2_zero > p.g2_zero_signal
    s = p.signal_fraction[0]
    # g2 = (M_s + 2 s b + b^2) / (s + b)^2 = g2_s rho^2 + 1 - rho^2 for rho = s / (s + b)
    assert p.g2_zero == pytest.approx(p.g2_zero_signal * s**2 + 1 - s**2, rel=1e-9)


def test_counting_error_scales_with_duration():
    setup = qdsim.presets.paper_qd()
    a = predict(setup, power_w=0.5e-6, duration_s=10.0)
    b = predict(setup, power_w=0.5e-6, duration_s=40.0)
    assert a.g2_zero_stderr == pytest.approx(2 * b.g2_zero_stderr, rel=1e-12)
    assert a.centre_counts == pytest.approx(b.centre_counts / 4)
    # the estimator's own propagation, from the expected counts
    k = 10
    err = a.g2_zero * math.sqrt(1 / a.centre_counts + 1 / (2 * k * a.side_counts))
    assert a.g2_zero_stderr == pytest.approx(err)


def test_blinking_shares_sum_to_one():
    p = predict(qdsim.presets.blinking_qd(), power_w=0.17e-6)
    assert p.state_share.sum() == pytest.approx(1.0)
    assert p.state_names == ("bright", "grey", "dark")
    assert any("blinking" in note for note in p.notes)


@pytest.mark.parametrize(("preset", "power_w"), [("paper_qd", 0.5e-6), ("blinking_qd", 0.17e-6)])
def test_simulation_agrees(preset, power_w):
    """Rates and g2(0) of a short simulation within 5 sigma of the prediction."""
    setup = qdsim.load_setup(preset)
    p = predict(setup, power_w=power_w, duration_s=3.0)
    rows = check(setup, p, duration_s=3.0, rng=11)
    names = [r["quantity"] for r in rows]
    assert "g2(0)" in names and "gated g2(0)" in names and "rate ch0 (/s)" in names
    for r in rows:
        assert abs(r["z"]) < 5, r
    g2 = next(r for r in rows if r["quantity"] == "g2(0)")
    # the predicted counting error is the estimator's, to the noise in the counts
    assert g2["stderr"] == pytest.approx(p.g2_zero_stderr, rel=0.35)


def test_validation_names_the_argument():
    setup = qdsim.presets.paper_qd()
    with pytest.raises(ValueError, match="power_w"):
        predict(setup, power_w=-1.0)
    with pytest.raises(ValueError, match="gate_s"):
        predict(setup, power_w=1e-6, gate_s=-1e-9)
    with pytest.raises(ValueError, match="duration_s"):
        predict(setup, power_w=1e-6, duration_s=0.0)
    with pytest.raises(ValueError, match="channels"):
        predict(setup, power_w=1e-6, channels=(0, 0))


def test_cli_json_and_sweep(tmp_path, capsys):
    png = tmp_path / "sweep.png"
    argv = ["plan", "--preset", "paper_qd", "--power", "0.5uW", "--gate", "2.5ns"]
    argv += ["--duration", "30s", "--check-duration", "0.5s", "--seed", "2", "--json"]
    assert main([*argv, "--sweep", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prediction"]["power_w"] == pytest.approx(0.5e-6)
    assert out["prediction"]["gate_s"] == pytest.approx(2.5e-9)
    assert out["check"]["duration_s"] == pytest.approx(0.5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_text(capsys):
    assert main(["plan", "--preset", "blinking_qd", "--power", "0.17uW", "--no-check"]) == 0
    out = capsys.readouterr().out
    assert "gated g2(0)" in out and "state grey" in out and "check" not in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--power", "1ns", "--power"),
        ("--power", "0uW", "--power"),
        ("--power", "100uW", "--power"),
        ("--gate", "1ms", "--gate"),
        ("--gate", "fast", "--gate"),
        ("--duration", "0s", "--duration"),
        ("--check-duration", "-1s", "--check-duration"),
        ("--check-duration", "1h", "--check-duration"),
        ("--seed", "-3", "--seed"),
        ("--sweep", "out.pdf", "--sweep"),
    ],
)
def test_cli_errors_name_the_option(option, value, message, capsys):
    argv = ["plan", "--preset", "paper_qd", "--power", "0.5uW", "--no-check"]
    if option == "--power":
        argv[4] = value
    else:
        argv.append(f"{option}={value}")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
