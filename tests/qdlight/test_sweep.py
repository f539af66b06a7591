"""``qdlight sweep``: the closed-form grid is plan.predict's, simulations agree with it, SBC."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qdsim
from qdlight import _dask, sweep
from qdlight.plan import predict


@pytest.fixture(scope="module")
def client():
    with _dask.connect(workers=1, processes=False) as c:
        yield c


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    sweep.add_parser(p.add_subparsers())
    return p


def test_parse_grid():
    np.testing.assert_allclose(
        sweep.parse_grid("0.01uW:4uW:9", "W", name="--power"), np.geomspace(1e-8, 4e-6, 9)
    )
    np.testing.assert_array_equal(
        sweep.parse_grid("0.1, 0.21,40%", "1", name="--eta-bx"), [0.1, 0.21, 0.4]
    )
    np.testing.assert_array_equal(
        sweep.parse_grid("0:2ns:3", "s", name="--gate", log_range=False), [0, 1e-9, 2e-9]
    )
    for text, msg in (
        ("1uW:0.1uW:3", "need 0 < LO < HI"),
        ("1uW:2uW", "expected LO:HI:N"),
        ("1uW:2uW:x", "N='x' must be an integer"),
        ("1ns", "'ns' is not a unit of 'W'"),
    ):
        with pytest.raises(ValueError, match=f"--power.*{msg}"):
            sweep.parse_grid(text, "W", name="--power")


def test_closed_forms_equal_plan_predict():
    setup = qdsim.presets.paper_qd()
    powers = np.array([0.05e-6, 0.5e-6, 2e-6])
    gates = np.array([0.0, 2.5e-9])
    etas = np.array([0.1, 0.4])
    rows = sweep.closed_form_grid(setup, powers, gates, etas, duration_s=30.0)
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        state = dataclasses.replace(setup.emitter.states[0], eta_bx=r["eta_bx"])
        s = dataclasses.replace(setup, emitter=dataclasses.replace(setup.emitter, states=(state,)))
        p = predict(s, power_w=r["power_w"], gate_s=r["gate_s"], duration_s=30.0)
        assert r["rate_hz"] == p.rate_total_hz and r["rate_gated_hz"] == p.rate_gated_hz
        assert r["g2_zero"] == p.g2_zero and r["g2_zero_stderr"] == p.g2_zero_stderr
        assert r["g2_zero_gated"] == p.g2_zero_gated
        assert r["g2_zero_gated_stderr"] == p.g2_zero_gated_stderr
        assert r["mean_absorbed"] == p.mean_absorbed
    # without --eta-bx: the setup's own value
    rows = sweep.closed_form_grid(setup, powers[:1], gates[:1])
    assert rows[0]["eta_bx"] == 0.21
    assert rows[0]["g2_zero"] == predict(setup, power_w=0.05e-6, gate_s=0.0).g2_zero


def test_eta_bx_needs_a_single_state_setup():
    with pytest.raises(ValueError, match="--eta-bx: the setup 'blinking_qd' has 3 emission"):
        sweep.with_eta_bx(qdsim.presets.blinking_qd(), 0.3)
    with pytest.raises(ValueError, match=r"--eta-bx 1\.5 must be in \[0, 1\]"):
        sweep.with_eta_bx(qdsim.presets.paper_qd(), 1.5)


def test_simulations_agree_with_closed_forms(client, tmp_path):
    """Every simulated point within 5 counting sigmas (the closed form's, same duration)."""
    setup = qdsim.presets.paper_qd()
    duration = 3.0
    rows = sweep.closed_form_grid(
        setup,
        np.array([0.2e-6, 1e-6]),
        np.array([0.0, 2.5e-9]),
        np.array([0.1, 0.4]),
        duration_s=duration,
    )
    run = sweep.simulate_grid(
        client, setup, rows, duration_s=duration, seed=3, out=tmp_path, progress=False
    )
    assert run.complete and len(run.computed) == 4
    for r in rows:
        # sigma: Poisson sqrt(R T) / T for the rate, the counting error of plan.predict for g2
        assert abs(r["sim_rate_hz"] - r["rate_hz"]) < 5 * r["rate_stderr_hz"]
        assert abs(r["sim_g2_zero"] - r["g2_zero"]) < 5 * r["g2_zero_stderr"]
        assert abs(r["sim_g2_zero_gated"] - r["g2_zero_gated"]) < 5 * r["g2_zero_gated_stderr"]
    # the same seed gives the same photons at every gate: ungated values repeat
    by_point = {}
    for r in rows:
        by_point.setdefault((r["eta_index"], r["power_index"]), set()).add(r["sim_g2_zero"])
    assert all(len(v) == 1 for v in by_point.values())
    # a rerun resumes every point
    again = sweep.closed_form_grid(
        setup,
        np.array([0.2e-6, 1e-6]),
        np.array([0.0, 2.5e-9]),
        np.array([0.1, 0.4]),
        duration_s=duration,
    )
    run = sweep.simulate_grid(
        client, setup, again, duration_s=duration, seed=3, out=tmp_path, progress=False
    )
    assert len(run.resumed) == 4 and not run.computed
    assert [r["sim_g2_zero_gated"] for r in again] == [r["sim_g2_zero_gated"] for r in rows]


def test_multi_state_setup_simulates_without_eta_bx(client, tmp_path):
    """blinking_qd (3 states): no --eta-bx, the setup as it is; z within 5 sigma."""
    setup = qdsim.presets.blinking_qd()
    rows = sweep.closed_form_grid(setup, np.array([0.3e-6]), np.array([2.5e-9]), duration_s=1.0)
    run = sweep.simulate_grid(
        client, setup, rows, duration_s=1.0, seed=2, out=tmp_path, progress=False
    )
    assert run.complete and len(run.computed) == 1
    doc = json.loads((tmp_path / "tasks" / "sweep" / "e00_p000.json").read_text())
    spec = {
        "task": "sweep",
        "setup": setup.to_dict(),
        "power_w": 0.3e-6,
        "gates_s": [2.5e-9],
        "duration_s": 1.0,
        "seed": [2, 0, 0],
    }
    assert doc["fingerprint"] == _dask.fingerprint(spec)  # the setup itself was simulated
    # z = (simulated - closed form) / simulated stderr (blinking included)
    assert all(abs(rows[0][f"z_{q}"]) < 5 for q in ("rate", "g2_zero", "g2_zero_gated"))


def test_figure_of_one_power():
    """One power: no singular x range (matplotlib would warn; warnings are errors here)."""
    setup = qdsim.presets.paper_qd()
    rows = sweep.closed_form_grid(setup, np.array([0.1e-6]), np.array([2.5e-9]), duration_s=10.0)
    sweep.sweep_figure(rows).savefig(io.BytesIO(), format="png", dpi=50)


def test_relative_output_is_made_absolute(tmp_path, monkeypatch):
    """Workers elsewhere (--scheduler) get absolute result paths."""
    seen = []

    def no_run(client, tasks, **kw):
        seen.extend(tasks)
        return _dask.RunSummary(failed={t.key: "not run" for t in tasks})

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_dask, "run", no_run)
    setup = qdsim.presets.paper_qd()
    rows = sweep.closed_form_grid(setup, np.array([0.3e-6]), np.array([2.5e-9]))
    sweep.simulate_grid(None, setup, rows, duration_s=1.0, seed=2, out=Path("o"), progress=False)
    with pytest.raises(RuntimeError, match="every chunk failed"):
        sweep.run_sbc(None, "decay", 3, out=Path("o"), chunk=3, progress=False)
    assert [t.path for t in seen] == [
        tmp_path / "o" / "tasks" / "sweep" / "e00_p000.json",
        tmp_path / "o" / "tasks" / "sbc" / "decay_c000.json",
    ]


def test_cli_writes_table_and_figure(tmp_path, capsys):
    args = _parser().parse_args(
        [
            "sweep",
            "--preset",
            "paper_qd",
            "--power",
            "0.01uW:4uW:5",
            "--gate",
            "0,1ns,2.5ns",
            "--eta-bx",
            "0.1,0.21,0.4",
            "-o",
            str(tmp_path),
            "--json",
        ]
    )
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["points"] == 45 and summary["simulated"] is False
    table = pd.read_parquet(tmp_path / "sweep.parquet")
    assert len(table) == 45 and set(table["eta_bx"]) == {0.1, 0.21, 0.4}
    csv = pd.read_csv(tmp_path / "sweep.csv")
    np.testing.assert_array_equal(csv["g2_zero_gated"], table["g2_zero_gated"])
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (["--power", "1uW"], "give a setup: CONFIG"),
        (["--preset", "paper_qd"], "--power is required"),
        (["--preset", "paper_qd", "--power", "1uW", "--gate", "500ns"], "shorter than the period"),
        (["--preset", "paper_qd", "--power", "1W"], "gives n > 100"),
        (["--preset", "paper_qd", "--sbc", "decay"], "--sbc takes no setup"),
        (["--sbc", "decay", "--gate", "1ns"], "--sbc does not take --gate "),
        (
            ["--sbc", "g2", "--eta-bx", "0.1", "--duration", "1s", "--simulate"],
            "--sbc does not take --eta-bx, --duration, --simulate",
        ),
        (
            ["--preset", "paper_qd", "--power", "1uW", "--n", "5", "--samples", "50"],
            "--n, --samples apply only to --sbc",
        ),
    ],
)
def test_cli_errors(tmp_path, argv, msg):
    args = _parser().parse_args(["sweep", *argv, "-o", str(tmp_path)])
    with pytest.raises(ValueError, match=msg):
        args.func(args)


@pytest.mark.slow
def test_sbc_in_chunks_is_uniform(client, tmp_path):
    """SBC of the decay model, 12 datasets in 3 chunks: ranks uniform (chi2 p > 1e-4)."""
    res = sweep.run_sbc(client, "decay", 12, out=tmp_path, chunk=4, samples=200, progress=False)
    assert res["complete"] and res["n_datasets"] == 12 and res["chunks"]["computed"] == 3
    assert res["divergences"] == 0
    assert all(p > 1e-4 for p in res["pvalues"].values())
    # chunk c used seed c * 5: its prior draws equal a plain sbc() run with that seed
    from qdinfer.models import SamplerSettings, sbc

    prob = sweep.sbc_problem("decay")
    r = sbc(
        prob["model"],
        prob["data"],
        params=prob["params"],
        n_datasets=4,
        static=prob["static"],
        settings=SamplerSettings(num_warmup=200, num_samples=200),
        thin=4,
        seed=5,
    )
    np.testing.assert_array_equal(res["ranks"]["tau_1_s"][4:8], r.ranks["tau_1_s"])
