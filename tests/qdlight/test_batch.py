"""``qdlight batch``: manifest checks, the table against direct analyses, resume, retries.

One small batch (a real-file emitter with a corrupt and a truncated file,
a simulated emitter, a population of two) runs once on threads
(``processes=False``) and is shared by the tests; one test runs a batch on a
process cluster (through ``--scheduler``) and kills a worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qdio
import qdsim
from qdlight import _dask, batch
from qdlight.analyze import analyze

GATE = 2.5e-9
POWERS = ["0.05uW", "0.5uW"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two small PTUs written with qdsim + qdio, a garbled copy and a truncated copy."""
    d = tmp_path_factory.mktemp("batch_data")
    setup = qdsim.presets.paper_qd()
    for name, p, seed in (("a", 0.1e-6, 3), ("b", 0.4e-6, 4)):
        res = qdsim.simulate(setup, power_w=p, duration_s=0.3, rng=seed)
        qdio.write_ptu(d / f"{name}.ptu", res.stream)
    raw = (d / "b.ptu").read_bytes()
    (d / "bad.ptu").write_bytes(b"GARBAGE!" + raw[8:])  # magic destroyed: QdioError
    (d / "trunc.ptu").write_bytes(raw[: len(raw) - 1001])  # a cut record: QdioWarning
    return d


MANIFEST = f"""
[options]
gate = "2.5ns"

[[emitter]]
name = "real1"
point = [
  {{ file = "a.ptu", power = "0.1uW" }},
  {{ file = "bad.ptu", power = "0.4uW" }},
  {{ file = "trunc.ptu", power = "1uW" }},
]

[[emitter]]
name = "sim1"
preset = "paper_qd"
powers = {POWERS!r}
duration = "0.4s"
seed = 11

[[population]]
name = "pop"
count = 2
preset = "paper_qd"
powers = {POWERS!r}
duration = "0.4s"
seed = 5
[population.spread]
sigma_abs = {{ dist = "lognormal", median = "2.3e-14 cm^2", sigma = 0.3 }}
eta_bx = {{ dist = "uniform", low = 0.1, high = 0.4 }}
"""


@pytest.fixture(scope="module")
def manifest(data) -> Path:
    path = data / "batch.toml"
    path.write_text(MANIFEST)
    return path


@pytest.fixture(scope="module")
def client():
    with _dask.connect(workers=1, processes=False) as c:
        yield c


@pytest.fixture(scope="module")
def first(manifest, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch_out")
    m = batch.load_manifest(manifest)
    return out, batch.run_batch(m, out, client, progress=False)


# -- manifest --------------------------------------------------------------------------------
def test_manifest_reads_emitters(manifest):
    m = batch.load_manifest(manifest)
    assert [e.name for e in m.emitters] == ["real1", "sim1", "pop-000", "pop-001"]
    assert m.options.gate_s == GATE and m.options.fit == "none"
    real, sim, p0, p1 = m.emitters
    assert real.powers_w == (1e-7, 4e-7, 1e-6) and real.files[0] == manifest.parent / "a.ptu"
    assert sim.seed == 11 and sim.duration_s == 0.4 and sim.powers_w == (5e-8, 5e-7)
    assert p0.seed == [5, 0] and p1.seed == [5, 1]
    for e in (p0, p1):  # drawn from the stated distributions, applied to the setup
        assert 0.1 <= e.truth["eta_bx"] <= 0.4
        assert e.setup.emitter.states[0].eta_bx == e.truth["eta_bx"]
        assert e.setup.emitter.sigma_abs_m2 == e.truth["sigma_abs_m2"]
    assert p0.truth["sigma_abs_m2"] != p1.truth["sigma_abs_m2"]


BAD = [
    ('[options]\nfit = "full"\n', "options: fit: 'full' must be one of none, rate, joint"),
    ("[options]\nsamples = 3\n", "options: samples: 3 must be an integer >= 10"),
    ('[options]\ngate = "2.5 W"\n', "options: gate: gate='2.5 W'"),
    ("[options]\ncolour = 1\n", "options: colour: unknown key"),
    ('[[emitter]]\nname = "x y"\n', "emitter 0: name: 'x y'"),
    (
        '[[emitter]]\nname = "q"\npreset = "paper_qd"\npowers = ["1uW"]\nduration = "1s"\n',
        "emitter 'q': seed: missing",
    ),
    (
        '[[emitter]]\nname = "q"\npreset = "paper_qd"\npowers = ["1uW"]\nduration = "-1s"\n'
        "seed = 1\n",
        "emitter 'q': duration: '-1s' must be > 0",
    ),
    (
        '[[emitter]]\nname = "q"\npreset = "nope"\npowers = ["1uW"]\nduration = "1s"\nseed = 1\n',
        "emitter 'q': preset: 'nope' is not one of",
    ),
    (
        '[[emitter]]\nname = "q"\npreset = "paper_qd"\npowers = ["1uW"]\nduration = "1s"\n'
        "seed = 1\nset = { eta_bx = 1.5 }\n",
        "emitter 'q': set:",
    ),
    (
        '[[population]]\nname = "p"\ncount = 2\npreset = "blinking_qd"\npowers = ["1uW"]\n'
        'duration = "1s"\nseed = 1\n[population.spread]\n'
        'eta_bx = { dist = "uniform", low = 0.1, high = 0.4 }\n',
        "population 'p': spread.eta_bx: the setup has 3 emission states",
    ),
    (
        '[[population]]\nname = "p"\ncount = 2\npreset = "paper_qd"\npowers = ["1uW"]\n'
        'duration = "1s"\nseed = 1\n[population.spread]\n'
        'tau_x = { dist = "gamma", low = 1, high = 2 }\n',
        "population 'p': spread.tau_x: expected { dist =",
    ),
    (
        '[[emitter]]\nname = "r"\npoint = [ { file = "a.ptu" } ]\n',
        "emitter 'r': point 1: power: missing",
    ),
    ("", "manifest: emitter: no [[emitter]] or [[population]] tables"),
    (  # the gate against the simulated setup's laser period (400 ns)
        '[options]\ngate = "1us"\n[[emitter]]\nname = "q"\npreset = "paper_qd"\n'
        'powers = ["1uW"]\nduration = "1s"\nseed = 1\n',
        "emitter 'q': gate: options.gate '1us' is not shorter than the laser period 400 ns",
    ),
    (
        '[[emitter]]\nname = "q"\npreset = "paper_qd"\npowers = ["1uW"]\nduration = "1e6s"\n'
        "seed = 1\n",
        "emitter 'q': duration: '1e6s' is above the limit of 1 h per point",
    ),
    (
        '[[population]]\nname = "p"\ncount = 1\npreset = "paper_qd"\npowers = ["1uW", 2]\n'
        'duration = "1s"\nseed = 1\n',
        "population 'p': powers: 2 needs a unit",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_manifest_errors_name_manifest_emitter_and_key(tmp_path, text, message):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="^" + str(path).replace(".", r"\.")) as e:
        batch.load_manifest(path)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('wavelength = "405"', "wavelength: '405' is outside the range (100 nm, 5 um]"),
        ("numerical_aperture = 3", "numerical_aperture: 3 is outside the range (0, 1.7]"),
        ("numerical_aperture = 0", "numerical_aperture: 0 must be > 0"),
    ],
)
def test_manifest_range_checks(data, tmp_path, keys, message):
    path = tmp_path / "m.toml"
    point = f'{{ file = "{data / "a.ptu"}", power = "0.1uW" }}'
    path.write_text(f'[[emitter]]\nname = "r"\npoint = [ {point} ]\n{keys}\n')
    with pytest.raises(ValueError, match="^" + str(path).replace(".", r"\.")) as e:
        batch.load_manifest(path)
    assert f"emitter 'r': {message}" in str(e.value)
    # a bare number for a power would be watts: refused
    path.write_text(
        f'[[emitter]]\nname = "r"\npoint = [ {{ file = "{data / "a.ptu"}", power = 2 }} ]\n'
    )
    with pytest.raises(ValueError, match="emitter 'r': point 1: power: 2 needs a unit"):
        batch.load_manifest(path)


def test_manifest_series_file(data, tmp_path):
    """``series = "X.toml"``: the points of a SERIES.toml (in ascending power)."""
    (tmp_path / "s.toml").write_text(
        f'[[point]]\nfile = "{data / "b.ptu"}"\npower = "0.4uW"\n'
        f'[[point]]\nfile = "{data / "a.ptu"}"\npower = "0.1uW"\n'
    )
    path = tmp_path / "m.toml"
    path.write_text('[[emitter]]\nname = "r"\nseries = "s.toml"\n')
    (e,) = batch.load_manifest(path).emitters
    assert e.source == "file" and e.powers_w == (1e-7, 4e-7)
    assert e.files == (data / "a.ptu", data / "b.ptu")


def test_manifest_missing_file_and_duplicates(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[[emitter]]\nname = "r"\npoint = [ { file = "no.ptu", power = "1uW" } ]\n')
    with pytest.raises(FileNotFoundError, match=r"emitter 'r': point 1: no such file .*no\.ptu"):
        batch.load_manifest(path)
    sim = 'preset = "paper_qd"\npowers = ["1uW"]\nduration = "1s"\nseed = 1\n'
    path.write_text(f'[[emitter]]\nname = "q"\n{sim}[[emitter]]\nname = "q"\n{sim}')
    with pytest.raises(ValueError, match="names must be unique; repeated: q"):
        batch.load_manifest(path)


# -- the table -------------------------------------------------------------------------------
def test_table_equals_direct_analyses(first, data):
    out, res = first
    df = res.table
    assert res.complete and len(df) == 3 + 2 + 2 * 2
    assert res.summary["tasks"] == {"total": 9, "computed": 9, "resumed": 0, "failed": 0}
    for _, row in df.iterrows():
        if row["error"]:
            continue
        with warnings.catch_warnings():  # the truncated file warns, as in the batch
            warnings.simplefilter("ignore", qdio.QdioWarning)
            summary, _ = analyze(Path(row["file"]), gate_s=GATE)
        rate = sum(c["rate_hz"] for c in summary["channels"].values())
        assert row["n_photons"] == summary["n_photons"]
        assert row["rate_hz"] == pytest.approx(rate, rel=1e-12)
        assert row["g2_zero"] == summary["g2"]["g2_zero"]
        assert row["g2_zero_gated"] == summary["g2"]["g2_zero_gated"]
        assert row["tau1_ch0_s"] == summary["decays"]["0"]["tau_s"][0]
        assert row["tau1_ch1_stderr_s"] == summary["decays"]["1"]["tau_stderr_s"][0]
    # Parquet and CSV hold the same table
    pq = pd.read_parquet(out / "table.parquet")
    pd.testing.assert_frame_equal(pq, df)
    csv = pd.read_csv(out / "table.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(df.columns)
    np.testing.assert_array_equal(csv["g2_zero"].to_numpy(float), df["g2_zero"].to_numpy(float))
    page = (out / "report.html").read_text()
    assert "Population" in page and "Estimates against the truth" in page
    assert json.loads((out / "batch.json").read_text())["complete"] is True


def test_corrupt_file_is_reported_in_its_row(first):
    df = first[1].table.set_index(["emitter", "power_index"])
    bad = df.loc[("real1", 1)]
    assert bad["error"].startswith("QdioError: ") and "bad.ptu: unknown file format" in bad["error"]
    assert np.isnan(bad["rate_hz"])
    trunc = df.loc[("real1", 2)]  # readable, with a warning
    assert trunc["error"] == "" and "truncated record dropped" in trunc["warnings"]
    assert trunc["n_photons"] > 0
    others = df.drop(index=("real1", 1))
    assert (others["error"] == "").all() and (others["rate_hz"] > 0).all()


def test_simulated_points_are_the_power_series_of_their_seed(first, manifest):
    """Point j of a simulated emitter is qdsim.power_series(setup, powers, rng=seed)[j]."""
    df = first[1].table
    m = batch.load_manifest(manifest)
    for e in (m.emitters[1], m.emitters[3]):
        series = qdsim.power_series(e.setup, list(e.powers_w), duration_s=0.4, rng=e.seed)
        rows = df[df["emitter"] == e.name].sort_values("power_index")
        for (_, row), sim in zip(rows.iterrows(), series, strict=True):
            got = qdio.read(row["file"])
            np.testing.assert_array_equal(got.macrotime, sim.stream.macrotime)
            np.testing.assert_array_equal(got.microtime, sim.stream.microtime)
            np.testing.assert_array_equal(got.channel, sim.stream.channel)
            assert row["true_eta_bx"] == e.truth["eta_bx"]
            assert row["seed"] == json.dumps(e.seed)


def test_rates_agree_with_closed_forms(first):
    """Simulated rates against plan.predict: Poisson sigma = sqrt(N) / T; 5 sigma."""
    sim = first[1].table
    sim = sim[sim["source"] == "simulated"]
    sigma = np.sqrt(sim["n_photons"]) / sim["duration_s"]
    assert (np.abs(sim["rate_hz"] - sim["pred_rate_hz"]) < 5 * sigma).all()


# -- resume and partial results ----------------------------------------------------------------
def test_rerun_recomputes_only_missing_or_partial_results(first, manifest, client, tmp_path):
    src, res1 = first
    out = tmp_path / "out"
    shutil.copytree(src, out)
    tasks = out / "tasks"
    (tasks / "sim1" / "p00.json").unlink()  # deleted
    (tasks / "pop-001" / "p01.json").unlink()  # deleted, a leftover temporary file beside it
    leftover = tasks / "pop-001" / ".p01.json.abc123.tmp"
    leftover.write_text((src / "tasks" / "pop-001" / "p01.json").read_text())
    other = tasks / "pop-001" / "notes.tmp"  # not a temporary file of a result: kept
    other.write_text("mine")
    full = (tasks / "real1" / "p00.json").read_text()  # truncated by hand: not complete
    (tasks / "real1" / "p00.json").write_text(full[: len(full) // 2])
    doc = json.loads((tasks / "pop-000" / "p00.json").read_text())  # not marked complete
    doc["complete"] = False
    (tasks / "pop-000" / "p00.json").write_text(json.dumps(doc))
    kept = tasks / "sim1" / "p01.json"
    mtime = kept.stat().st_mtime_ns
    time.sleep(0.01)
    res2 = batch.run_batch(batch.load_manifest(manifest), out, client, progress=False)
    assert res2.summary["tasks"] == {"total": 9, "computed": 4, "resumed": 5, "failed": 0}
    assert kept.stat().st_mtime_ns == mtime
    assert not leftover.exists() and other.read_text() == "mine"
    assert json.loads((tasks / "real1" / "p00.json").read_text())["complete"] is True
    cols = [c for c in res1.table.columns if c not in ("file",)]
    pd.testing.assert_frame_equal(res2.table[cols], res1.table[cols])


def test_results_of_other_inputs_are_not_reused(tmp_path):
    path = tmp_path / "r.json"
    _dask.write_result(path, "k", _dask.fingerprint({"gate_s": 2.5e-9}), {"x": 1.0})
    assert _dask.load_result(path, _dask.fingerprint({"gate_s": 2.5e-9})) == {"x": 1.0}
    assert _dask.load_result(path, _dask.fingerprint({"gate_s": 1e-9})) is None
    _dask.write_result(path, "k", "fp", {"error": "QdioError: bad"})
    assert _dask.load_result(path, "fp") == {"error": "QdioError: bad"}
    assert _dask.load_result(path, "fp", accept_errors=False) is None
    _dask.write_result(path, "k", "fp", {"fit_error": "needs at least 2 analysed powers, has 1"})
    assert _dask.load_result(path, "fp", accept_errors=False) is None
    _dask.write_result(path, "k", "fp", {"error": "", "fit_error": ""})
    assert _dask.load_result(path, "fp", accept_errors=False) == {"error": "", "fit_error": ""}


def test_keep_data_is_in_the_point_fingerprint(tmp_path):
    sim = '[[emitter]]\nname = "q"\npreset = "paper_qd"\npowers = ["1uW"]\nduration = "1s"\n'
    sim += "seed = 1\n"
    fps = []
    for keep in ("true", "false"):
        path = tmp_path / f"{keep}.toml"
        path.write_text(f"[options]\nkeep_data = {keep}\n{sim}")
        (task,) = batch.batch_tasks(batch.load_manifest(path), tmp_path / "o")
        fps.append(_dask.fingerprint(task.spec))
    assert fps[0] != fps[1]


def test_relative_output_is_made_absolute(data, tmp_path, monkeypatch):
    """Workers elsewhere (--scheduler) get absolute result paths."""
    path = tmp_path / "m.toml"
    path.write_text(
        f'[[emitter]]\nname = "r"\npoint = [ {{ file = "{data / "a.ptu"}", power = "0.1uW" }} ]\n'
    )
    seen = []

    def stop(client, tasks, **kw):
        seen.extend(tasks)
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_dask, "run", stop)
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(batch.load_manifest(path), Path("rel"), None, progress=False)
    assert [t.path for t in seen] == [tmp_path / "rel" / "tasks" / "r" / "p00.json"]


# -- retries and failures ----------------------------------------------------------------------
def _flaky(marker: str, value: float) -> dict:
    """Fails on its first attempt (leaves a marker file), succeeds on the next."""
    m = Path(marker)
    if not m.exists():
        m.write_text("attempted")
        raise RuntimeError("first attempt fails")
    return {"value": value}


def _always_fails() -> dict:
    raise RuntimeError("always fails")


def _add(x: float, *deps: dict) -> dict:
    return {"value": x + sum(d["value"] for d in deps)}


def test_failing_task_is_retried_and_dependants_get_its_result(client, tmp_path):
    t1 = _dask.Task("a", tmp_path / "a.json", _flaky, {"a": 1}, args=(str(tmp_path / "m"), 2.0))
    t2 = _dask.Task("b", tmp_path / "b.json", _add, {"b": 1}, args=(1.0,), depends=("a",))
    run = _dask.run(client, [t1, t2], progress=False)
    assert run.complete and run.results == {"a": {"value": 2.0}, "b": {"value": 3.0}}
    assert (tmp_path / "m").read_text() == "attempted"
    # a task that fails every time: reported, no result file, its dependant fails too
    t3 = _dask.Task("c", tmp_path / "c.json", _always_fails, {"c": 1})
    t4 = _dask.Task("d", tmp_path / "d.json", _add, {"d": 1}, args=(1.0,), depends=("c",))
    run = _dask.run(client, [t3, t4], retries=1, progress=False)
    assert set(run.failed) == {"c", "d"} and "always fails" in run.failed["c"]
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "d.json").exists()
    # a rerun resumes a and b and tries c again
    run = _dask.run(client, [t1, t2, t3], retries=0, progress=False)
    assert sorted(run.resumed) == ["a", "b"] and list(run.failed) == ["c"]


def _errs_once(marker: str, error_key: str, value: float) -> dict:
    """An error result on the first call (leaves a marker file), a good one afterwards."""
    m = Path(marker)
    if not m.exists():
        m.write_text("attempted")
        return {error_key: "needs at least 2 analysed powers, has 1", "value": 0.0}
    return {error_key: "", "value": value}


def test_retry_failed_recomputes_errors_and_dependants(client, tmp_path):
    """--retry-failed: rows with ``error`` or ``fit_error`` again, and whatever depends on them."""
    a = _dask.Task(
        "a", tmp_path / "a.json", _errs_once, {"a": 1}, args=(str(tmp_path / "m"), "error", 2.0)
    )
    b = _dask.Task("b", tmp_path / "b.json", _add, {"b": 1}, args=(1.0,), depends=("a",))
    c = _dask.Task(
        "c", tmp_path / "c.json", _errs_once, {"c": 1}, args=(str(tmp_path / "n"), "fit_error", 5.0)
    )
    run = _dask.run(client, [a, b, c], progress=False)
    assert run.results["b"] == {"value": 1.0} and run.results["c"]["fit_error"]
    run = _dask.run(client, [a, b, c], progress=False)
    assert sorted(run.resumed) == ["a", "b", "c"]
    run = _dask.run(client, [a, b, c], progress=False, retry_errors=True)
    assert sorted(run.computed) == ["a", "b", "c"]
    assert run.results["b"] == {"value": 3.0} and run.results["c"] == {
        "fit_error": "",
        "value": 5.0,
    }
    # a dependency recomputed by a run that died before its dependant: not stale either
    _dask.write_result(a.path, "a", _dask.fingerprint(a.spec), {"error": "", "value": 7.0})
    run = _dask.run(client, [a, b, c], progress=False)
    assert sorted(run.resumed) == ["a", "c"] and run.results["b"] == {"value": 8.0}
    run = _dask.run(client, [a, b, c], progress=False)
    assert sorted(run.resumed) == ["a", "b", "c"] and run.results["b"] == {"value": 8.0}


def test_distributed_logs_warnings_only(caplog):
    """The cluster's INFO messages show only when the root logger shows INFO (qdlight -v)."""
    import distributed  # noqa: F401  (sets the level of its loggers, may give them a handler)

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record):
            self.records.append(record)

    logger = logging.getLogger("distributed")
    before = logger.level  # WARNING while the module's client (connect()) is open
    quiet, verbose = Collect(), Collect()
    logger.addHandler(quiet)
    try:
        logger.setLevel(logging.INFO)  # as distributed sets it on import
        caplog.set_level(logging.WARNING)
        with _dask.connect(workers=1, processes=False):
            pass
        logger.removeHandler(quiet)
        logger.addHandler(verbose)
        caplog.set_level(logging.INFO)  # the root logger, as with qdlight -v
        with _dask.connect(workers=1, processes=False):
            pass
        assert logger.level == logging.INFO  # restored
    finally:
        logger.removeHandler(quiet)
        logger.removeHandler(verbose)
        logger.setLevel(before)
    assert [r.getMessage() for r in quiet.records if r.levelno < logging.WARNING] == []
    assert any(r.name == "distributed.scheduler" for r in verbose.records)


KILLER = """
import os
from pathlib import Path


def dies_once(marker):
    \"\"\"Kills its worker process on the first attempt.\"\"\"
    m = Path(marker)
    if not m.exists():
        m.write_text("killed")
        os._exit(1)
    return {"pid": os.getpid()}
"""


def test_process_cluster_cli_and_dead_worker(manifest, tmp_path, capsys):
    """A local cluster of worker processes: a batch via --scheduler, and a worker that dies."""
    m = tmp_path / "small.toml"
    m.write_text(
        '[options]\ngate = "2.5ns"\n[[emitter]]\nname = "s"\npreset = "paper_qd"\n'
        'powers = ["0.1uW", "0.4uW"]\nduration = "0.3s"\nseed = 2\n'
    )
    with _dask.connect(workers=1, processes=True) as c:
        address = c.scheduler.address
        p = argparse.ArgumentParser()
        batch.add_parser(p.add_subparsers())
        argv = ["batch", str(m), "-o", str(tmp_path / "o"), "--scheduler", address, "--json"]
        args = p.parse_args(argv)
        assert args.func(args) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["complete"] and s["tasks"]["computed"] == 2 and s["rows_with_error"] == 0
        args = p.parse_args([*argv[:-1], "--no-progress"])
        assert args.func(args) == 0
        assert "0 computed, 2 resumed" in capsys.readouterr().out
        # the task's function must be importable on the workers (restarted ones too)
        (tmp_path / "qdlight_test_killer.py").write_text(KILLER)
        c.upload_file(str(tmp_path / "qdlight_test_killer.py"))
        sys.path.insert(0, str(tmp_path))
        try:
            from qdlight_test_killer import dies_once
        finally:
            sys.path.remove(str(tmp_path))
        task = _dask.Task("die", tmp_path / "die.json", dies_once, {}, args=(str(tmp_path / "k"),))
        run = _dask.run(c, [task], progress=False)
        assert run.complete and run.results["die"]["pid"] != os.getpid()
        assert (tmp_path / "k").read_text() == "killed"
    del sys.modules["qdlight_test_killer"]
    table = pd.read_parquet(tmp_path / "o" / "table.parquet")
    direct, _ = analyze(Path(table["file"][1]), gate_s=GATE)
    assert table["g2_zero_gated"][1] == direct["g2"]["g2_zero_gated"]


# -- fits ------------------------------------------------------------------------------------------
def test_rate_fit_columns(data, client, tmp_path):
    """A rate fit per emitter (tiny sampler): 90 % intervals around the mean, diagnostics."""
    m = tmp_path / "fit.toml"
    m.write_text(
        '[options]\nfit = "rate"\nsamples = 30\nchains = 2\n'
        '[[emitter]]\nname = "s"\npreset = "paper_qd"\n'
        'powers = ["0.05uW", "0.2uW", "1uW"]\nduration = "0.3s"\nseed = 4\n'
        f'[[emitter]]\nname = "r"\npoint = [ {{ file = "{data / "a.ptu"}", power = "0.1uW" }},'
        f' {{ file = "{data / "bad.ptu"}", power = "0.4uW" }} ]\n'
    )
    res = batch.run_batch(batch.load_manifest(m), tmp_path / "o", client, progress=False)
    df = res.table
    s = df[df["emitter"] == "s"]
    assert (s["fit_error"] == "").all() and (s["fit_n_points"] == 3).all()
    for p in batch.FIT_PARAMS:
        assert (s[f"fit_{p}_lo"] <= s[f"fit_{p}_mean"]).all()
        assert (s[f"fit_{p}_mean"] <= s[f"fit_{p}_hi"]).all()
    assert np.isfinite(s["fit_r_hat"]).all() and (s["fit_divergences"] >= 0).all()
    r = df[df["emitter"] == "r"]  # one readable point: no fit, said so
    assert (r["fit_error"] == "needs at least 2 analysed powers, has 1").all()


@pytest.mark.slow
def test_joint_fit_recovers_simulated_truth(tmp_path):
    """Joint fits of a small population: the 90 % intervals cover sigma_abs and eta_BX."""
    m = tmp_path / "pop.toml"
    m.write_text(
        '[options]\nfit = "joint"\nsamples = 300\n'
        '[[population]]\nname = "p"\ncount = 4\npreset = "paper_qd"\n'
        'powers = ["0.02uW", "0.17uW", "0.6uW", "1.8uW", "4uW"]\nduration = "5s"\nseed = 3\n'
        '[population.spread]\neta_bx = { dist = "uniform", low = 0.1, high = 0.4 }\n'
    )
    with _dask.connect(workers=2, processes=True) as c:
        res = batch.run_batch(batch.load_manifest(m), tmp_path / "o", c, progress=False)
    per = res.table.drop_duplicates("emitter")
    assert (per["fit_error"] == "").all()
    for p in ("sigma_abs_m2", "eta_bx"):
        inside = (per[f"fit_{p}_lo"] <= per[f"true_{p}"]) & (per[f"true_{p}"] <= per[f"fit_{p}_hi"])
        assert inside.sum() >= 3  # 90 % intervals: 4 of 4 expected, >= 3 with probability 0.95
