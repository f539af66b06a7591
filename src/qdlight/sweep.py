"""``qdlight sweep``: rate and g2(0) over power x gate x eta_BX, for planning; SBC on Dask.

:func:`closed_form_grid` evaluates :func:`qdlight.plan.predict` (the closed
forms of MODEL.md) at every grid point: detected rate, pulsed g2(0)
ungated and gated, with counting errors over ``duration_s``.  With
``--simulate`` every (eta_BX, power) point is also simulated and measured
by :func:`qdlight.plan.check` (qdsim + the qdinfer estimators) as a Dask
task through :mod:`qdlight._dask`, the path of ``qdlight batch``: results
per task, resume, retries.  :func:`sweep_figure` draws g2(0) and the rate
against power, one line per gate and eta_BX.

``qdlight sweep --sbc decay|g2|rate --n 100`` runs simulation-based
calibration (:func:`qdinfer.models.sbc`) of a model in chunks of datasets,
one Dask task per chunk (:func:`run_sbc`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from qdio.units import format_quantity, parse_quantity

from . import _dask

__all__ = [
    "SBC_MODELS",
    "add_parser",
    "closed_form_grid",
    "cmd_sweep",
    "parse_grid",
    "run_sbc",
    "sbc_chunk",
    "sbc_problem",
    "simulate_grid",
    "simulate_point",
    "sweep_figure",
    "with_eta_bx",
]

log = logging.getLogger("qdlight.sweep")

SBC_MODELS = ("decay", "g2", "rate")


# -- grid --------------------------------------------------------------------------------
def parse_grid(text: str, unit: str, *, name: str, log_range: bool = True) -> np.ndarray:
    """Values from "LO:HI:N" (N log-spaced, or linear with ``log_range=False``) or "A,B,C".

    >>> parse_grid("0.01uW:1uW:3", "W", name="--power")
    array([1.e-08, 1.e-07, 1.e-06])
    >>> parse_grid("0,1ns,2.5ns", "s", name="--gate")
    array([0.0e+00, 1.0e-09, 2.5e-09])
    """
    text = str(text).strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"{name} {text!r}: expected LO:HI:N such as 0.01uW:4uW:9")
        lo, hi = (parse_quantity(x, unit, name=name) for x in parts[:2])
        try:
            n = int(parts[2])
        except ValueError as exc:
            raise ValueError(f"{name} {text!r}: N={parts[2]!r} must be an integer") from exc
        if not (n >= 2 and hi > lo and (lo > 0 or not log_range)):
            raise ValueError(f"{name} {text!r}: need 0 < LO < HI and N >= 2")
        if n > 1000:
            raise ValueError(f"{name} {text!r}: at most 1000 points")
        return np.geomspace(lo, hi, n) if log_range else np.linspace(lo, hi, n)
    values = [parse_quantity(x, unit, name=name) for x in text.split(",") if x.strip()]
    if not values:
        raise ValueError(f"{name} {text!r}: no values")
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f"{name} {text!r}: values must be finite")
    return np.asarray(values, np.float64)


def with_eta_bx(setup: Any, eta_bx: float | None) -> Any:
    """``setup`` with the biexciton yield ``eta_bx`` (None: unchanged); single-state setups."""
    if eta_bx is None:
        return setup
    em = setup.emitter
    if len(em.states) > 1:
        raise ValueError(
            f"--eta-bx: the setup {setup.name!r} has {len(em.states)} emission states; "
            "eta_BX can be swept only for single-state setups"
        )
    if not 0 <= eta_bx <= 1:
        raise ValueError(f"--eta-bx {eta_bx!r} must be in [0, 1]")
    state = dataclasses.replace(em.states[0], eta_bx=float(eta_bx))
    return dataclasses.replace(setup, emitter=dataclasses.replace(em, states=(state,))).validate()


def closed_form_grid(
    setup: Any,
    powers_w: np.ndarray,
    gates_s: np.ndarray,
    eta_bx: np.ndarray | None = None,
    *,
    duration_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Closed-form rows (:func:`qdlight.plan.predict`) for every eta_BX x gate x power.

    Each row: ``eta_bx``, ``gate_s``, ``power_w``, ``mean_absorbed``,
    ``rate_hz`` (all channels) and its Poisson error over ``duration_s``,
    ``rate_gated_hz``, ``g2_zero``, ``g2_zero_gated`` (with ``_stderr``)
    and the emitter-alone ``g2_zero_signal``, ``g2_zero_gated_signal``.
    """
    from .plan import predict

    rows = []
    etas = [None] if eta_bx is None else [float(x) for x in eta_bx]
    for i, e in enumerate(etas):
        s = with_eta_bx(setup, e)
        for g in gates_s:
            for j, p in enumerate(powers_w):
                pred = predict(s, power_w=float(p), gate_s=float(g), duration_s=duration_s)
                rows.append(
                    {
                        "eta_index": i,
                        "power_index": j,
                        "eta_bx": float(s.emitter.states[0].eta_bx) if e is None else e,
                        "gate_s": float(g),
                        "power_w": float(p),
                        "mean_absorbed": pred.mean_absorbed,
                        "rate_hz": pred.rate_total_hz,
                        "rate_stderr_hz": pred.rate_total_stderr_hz,
                        "rate_gated_hz": pred.rate_gated_hz,
                        "g2_zero": pred.g2_zero,
                        "g2_zero_stderr": pred.g2_zero_stderr,
                        "g2_zero_gated": pred.g2_zero_gated,
                        "g2_zero_gated_stderr": pred.g2_zero_gated_stderr,
                        "g2_zero_signal": pred.g2_zero_signal,
                        "g2_zero_gated_signal": pred.g2_zero_gated_signal,
                    }
                )
    return rows


def simulate_point(
    setup: Any, power_w: float, gates_s: list[float], duration_s: float, seed: list[int]
) -> dict[str, Any]:
    """Task: simulate one (eta_BX, power) point and measure it at every gate.

    :func:`qdlight.plan.check` per gate, each time from the same seed (so
    the same photons; the gate changes only the gated g2(0)).  Returns
    ``sim_rate_hz`` (all channels) and its error, ``sim_g2_zero`` and its
    error, and per gate ``sim_g2_zero_gated`` and its error (lists in the
    order of ``gates_s``).
    """
    from .plan import check, predict

    out: dict[str, Any] = {"sim_g2_zero_gated": [], "sim_g2_zero_gated_stderr": []}
    for k, g in enumerate(gates_s):
        pred = predict(setup, power_w=power_w, gate_s=g, duration_s=duration_s)
        rows = check(setup, pred, duration_s=duration_s, rng=np.random.default_rng(seed))
        by = {r["quantity"]: r for r in rows}
        if k == 0:
            rates = [r for q, r in by.items() if q.startswith("rate ch")]
            out["sim_rate_hz"] = float(sum(r["simulated"] for r in rates))
            out["sim_rate_stderr_hz"] = math.sqrt(sum(r["stderr"] ** 2 for r in rates))
            g2 = by.get("g2(0)")
            out["sim_g2_zero"] = g2["simulated"] if g2 else None
            out["sim_g2_zero_stderr"] = g2["stderr"] if g2 else None
            tau = by.get("tau_X (s)")
            out["sim_tau_x_s"] = tau["simulated"] if tau else None
        gg = by.get("gated g2(0)")
        out["sim_g2_zero_gated"].append(gg["simulated"] if gg else None)
        out["sim_g2_zero_gated_stderr"].append(gg["stderr"] if gg else None)
    return out


def simulate_grid(
    client: Any,
    setup: Any,
    rows: list[dict[str, Any]],
    *,
    duration_s: float,
    seed: int,
    out: Path,
    progress: bool = True,
) -> _dask.RunSummary:
    """Simulate every (eta_BX, power) of ``rows`` as Dask tasks; adds ``sim_*`` and ``z_*``.

    Point (i, j) uses the seed ``[seed, i, j]``; results go to
    ``out/tasks/sweep/eII_pJJ.json`` (a rerun resumes; ``out`` is made
    absolute, workers elsewhere need a shared filesystem).  ``z_<x> =
    (simulated - closed form) / simulated stderr``.  A row's ``eta_bx`` is
    applied to ``setup`` only when it differs from the setup's own (rows of
    a grid without eta_BX values hold that), so multi-state setups can be
    simulated as they are.
    """
    out = Path(out).resolve()
    own_eta = setup.emitter.states[0].eta_bx
    gates = sorted({r["gate_s"] for r in rows})
    points: dict[tuple[int, int], dict[str, Any]] = {}
    for r in rows:
        points.setdefault((r["eta_index"], r["power_index"]), r)
    tasks = []
    for (i, j), r in points.items():
        s = with_eta_bx(setup, None if r["eta_bx"] == own_eta else r["eta_bx"])
        spec = {
            "task": "sweep",
            "setup": s.to_dict(),
            "power_w": r["power_w"],
            "gates_s": gates,
            "duration_s": duration_s,
            "seed": [seed, i, j],
        }
        tasks.append(
            _dask.Task(
                key=f"sweep/e{i:02d}/p{j:03d}",
                path=out / "tasks" / "sweep" / f"e{i:02d}_p{j:03d}.json",
                fn=simulate_point,
                spec=spec,
                args=(s, r["power_w"], gates, duration_s, [seed, i, j]),
            )
        )
    run = _dask.run(client, tasks, progress=progress, desc="sweep")
    for r in rows:
        res = run.results.get(f"sweep/e{r['eta_index']:02d}/p{r['power_index']:03d}")
        if res is None:
            continue
        k = gates.index(r["gate_s"])
        r["sim_rate_hz"], r["sim_rate_stderr_hz"] = res["sim_rate_hz"], res["sim_rate_stderr_hz"]
        r["sim_g2_zero"], r["sim_g2_zero_stderr"] = res["sim_g2_zero"], res["sim_g2_zero_stderr"]
        r["sim_g2_zero_gated"] = res["sim_g2_zero_gated"][k]
        r["sim_g2_zero_gated_stderr"] = res["sim_g2_zero_gated_stderr"][k]
        r["sim_tau_x_s"] = res["sim_tau_x_s"]
        for q in ("rate", "g2_zero", "g2_zero_gated"):
            hz = "_hz" if q == "rate" else ""
            sim, err, pred = r[f"sim_{q}{hz}"], r[f"sim_{q}_stderr{hz}"], r[f"{q}{hz}"]
            ok = sim is not None and err is not None and err > 0 and math.isfinite(pred)
            r[f"z_{q}"] = (sim - pred) / err if ok else None
    return run


def sweep_figure(rows: list[dict[str, Any]], *, title: str = ""):
    """Figure: g2(0) (ungated and per gate) and the rate against power, one line per eta_BX.

    Simulated points (``sim_*`` columns), when present, are drawn as
    markers with their standard errors.  Returns a matplotlib
    :class:`~matplotlib.figure.Figure` (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    etas = sorted({r["eta_bx"] for r in rows})
    gates = sorted({r["gate_s"] for r in rows})
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (1, 1))]
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for ci, e in enumerate(etas):
        colour = f"C{ci % 10}"
        first = [r for r in rows if r["eta_bx"] == e and r["gate_s"] == gates[0]]
        pw = np.array([r["power_w"] for r in first]) * 1e6
        ax1.plot(
            pw,
            [r["g2_zero"] for r in first],
            color=colour,
            lw=2.2,
            alpha=0.45,
            label=f"η_BX {e:g} ungated",
        )
        ax2.plot(pw, [r["rate_hz"] for r in first], color=colour, lw=2, label=f"η_BX {e:g} all")
        _markers(ax1, first, "sim_g2_zero", colour, "o")
        _markers(ax2, first, "sim_rate_hz", colour, "o")
        for gi, g in enumerate(gates):
            sel = [r for r in rows if r["eta_bx"] == e and r["gate_s"] == g]
            ls = styles[gi % len(styles)]
            label = f"η_BX {e:g} gate {g * 1e9:g} ns"
            ax1.plot(pw, [r["g2_zero_gated"] for r in sel], color=colour, ls=ls, lw=1, label=label)
            ax2.plot(
                pw,
                [r["rate_gated_hz"] for r in sel],
                color=colour,
                ls=ls,
                lw=1,
                label=f"η_BX {e:g} in gate {g * 1e9:g} ns",
            )
            _markers(ax1, sel, "sim_g2_zero_gated", colour, "s")
    top = max(
        (r[k] for r in rows for k in ("g2_zero", "g2_zero_gated") if math.isfinite(r[k])),
        default=1.0,
    )
    ax1.set_ylim(0, 1.25 * top + 0.05)  # few-coincidence simulated points have huge errors
    powers_uw = sorted({r["power_w"] * 1e6 for r in rows})
    if len(powers_uw) == 1:  # one power: autoscaling would give an empty x range
        for ax in (ax1, ax2):
            ax.set_xlim(powers_uw[0] / 2, powers_uw[0] * 2)
    ax1.set(xscale="log", xlabel="power (µW)", ylabel="g2(0)", title="g2(0) vs power")
    ax2.set(xscale="log", yscale="log", xlabel="power (µW)", ylabel="detected rate (/s)")
    ax2.set_title("rate vs power")
    ax1.legend(frameon=False, fontsize=7, ncol=2)
    ax2.legend(frameon=False, fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _markers(ax, rows, key: str, colour: str, marker: str) -> None:
    pts = [r for r in rows if r.get(key) is not None]
    if not pts:
        return
    err_key = key.replace("_hz", "_stderr_hz") if key.endswith("_hz") else key + "_stderr"
    x = np.array([r["power_w"] for r in pts]) * 1e6
    y = np.array([r[key] for r in pts], float)
    e = np.array([r.get(err_key) or 0.0 for r in pts], float)
    ax.errorbar(x, y, yerr=e, fmt=marker, color=colour, ms=4, mfc="none", lw=0.8)


# -- simulation-based calibration ------------------------------------------------------------
def sbc_problem(kind: str) -> dict[str, Any]:
    """Model, geometry and parameters of a small SBC problem of ``kind``."""
    if kind == "decay":
        from qdinfer.decay import DecayHistogram, gaussian_irf
        from qdinfer.models import decay as md

        n, period = 64, 50e-9
        edges = np.arange(n + 1) * period / n
        irf = gaussian_irf(3e-9, 0.6e-9, edges)
        d = DecayHistogram(np.ones(n, np.int64), edges, period)
        data, _ = md.decay_inputs(
            d, irf, tau_prior_ns=(5.0, 0.5), shift_prior_s=(0.0, 0.1e-9), scale=2e3
        )
        return {
            "model": md.decay_model,
            "data": data,
            "static": {"n_exp": 1},
            "params": ["tau_1_s", "background_per_bin", "shift_s"],
        }
    if kind == "g2":
        from qdinfer.g2 import G2Histogram
        from qdinfer.models import g2 as mg

        period, width = 100e-9, 2.5e-9
        edges = np.arange(-100, 101) * width
        n_bins = len(edges) - 1
        hist = G2Histogram(np.ones(n_bins, np.int64), edges, (0, 1), 1, 1, 1.0, np.ones(n_bins))
        data, n_peaks = mg.g2_inputs(hist, period_s=period, tau_prior_s=5e-9)
        data["scale"] = 500.0
        return {
            "model": mg.g2_model,
            "data": data,
            "static": {"n_peaks": n_peaks, "smooth": False},
            "params": ["g2_zero", "tau_x_s", "background_per_bin"],
        }
    if kind == "rate":
        from qdinfer.models import power as mp

        powers = np.array([0.01e-6, 0.05e-6, 0.17e-6, 0.5e-6, 1.8e-6])
        f, lam = 2.5e6, 405e-9
        data = {
            "power_w": powers,
            "duration_s": np.full(5, 10.0),
            "counts": np.zeros(5),
            "rep_rate_hz": f,
            "photons_per_pulse": powers * lam / (mp.H_C * f),
            "spot_area_m2": math.pi * (0.61 * lam / 0.8) ** 2,
            "spot_log_sd": 0.3,
            "afterpulse": 0.0,
            "background_scale_hz": 100.0,
            "eta_x": 1.0,
        }
        static = {
            "overdispersion": False,
            "fix_eta_x": True,
            "one_per_pulse": 0,
            "use_fraction": False,
            "use_g2": False,
            "use_g2_gated": False,
            "use_tau_x": False,
            "use_tau_bx": False,
        }
        return {
            "model": mp.power_series_model,
            "data": data,
            "static": static,
            "params": ["log10_sigma_abs_m2", "eta_c", "eta_bx", "eta_h"],
        }
    raise ValueError(f"--sbc {kind!r} must be one of {', '.join(SBC_MODELS)}")


def sbc_chunk(kind: str, n_datasets: int, seed: int, samples: int, thin: int) -> dict[str, Any]:
    """Task: :func:`qdinfer.models.sbc` of ``n_datasets`` datasets of model ``kind``.

    Returns the ranks, truths, ``n_draws``, ``max_r_hat`` and
    ``divergences`` as lists (JSON-able).
    """
    from qdinfer.models import SamplerSettings, sbc

    prob = sbc_problem(kind)
    r = sbc(
        prob["model"],
        prob["data"],
        params=prob["params"],
        n_datasets=n_datasets,
        static=prob["static"],
        settings=SamplerSettings(num_warmup=samples, num_samples=samples),
        thin=thin,
        seed=seed,
    )
    return {
        "ranks": {k: v.tolist() for k, v in r.ranks.items()},
        "truths": {k: v.tolist() for k, v in r.truths.items()},
        "n_draws": r.n_draws,
        "max_r_hat": r.max_r_hat.tolist(),
        "divergences": r.divergences.tolist(),
    }


def run_sbc(
    client: Any,
    kind: str,
    n_datasets: int,
    *,
    out: Path,
    chunk: int = 10,
    samples: int = 200,
    thin: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """SBC of model ``kind`` in chunks of ``chunk`` datasets, one Dask task each.

    Chunk c runs :func:`qdinfer.models.sbc` with ``seed + c (chunk + 1)``
    (its prior draws use that key and its fits the next ``chunk`` seeds, so
    no two chunks share a key); each chunk is a valid SBC run on its own
    and their ranks are pooled.  Results per chunk go to
    ``out/tasks/sbc/<kind>_cNNN.json`` (``out`` made absolute).  Returns
    the pooled ranks' chi-square p-values
    (:func:`qdinfer.models.rank_uniformity_pvalue`, 5 bins), the rank
    arrays, r_hat and divergence counts.
    """
    if kind not in SBC_MODELS:
        raise ValueError(f"--sbc {kind!r} must be one of {', '.join(SBC_MODELS)}")
    if n_datasets < 1 or chunk < 1 or samples < 10 or thin < 1:
        raise ValueError("--n, --chunk and --thin must be >= 1, --samples >= 10")
    out = Path(out).resolve()
    tasks = []
    n_chunks = math.ceil(n_datasets / chunk)
    for c in range(n_chunks):
        k = min(chunk, n_datasets - c * chunk)
        s = seed + c * (chunk + 1)
        spec = {"task": "sbc", "kind": kind, "n": k, "seed": s, "samples": samples, "thin": thin}
        tasks.append(
            _dask.Task(
                key=f"sbc/{kind}/c{c:03d}",
                path=out / "tasks" / "sbc" / f"{kind}_c{c:03d}.json",
                fn=sbc_chunk,
                spec=spec,
                args=(kind, k, s, samples, thin),
            )
        )
    run = _dask.run(client, tasks, progress=progress, desc=f"sbc {kind}")
    done = [run.results[t.key] for t in tasks if t.key in run.results]
    if not done:
        raise RuntimeError(f"SBC {kind}: every chunk failed: {run.failed}")
    params = list(done[0]["ranks"])
    ranks = {p: np.concatenate([np.asarray(d["ranks"][p], np.int64) for d in done]) for p in params}
    n_draws = done[0]["n_draws"]
    from qdinfer.models.sbc import rank_uniformity_pvalue

    return {
        "model": kind,
        "n_datasets": len(next(iter(ranks.values()))),
        "n_draws": n_draws,
        "pvalues": {p: rank_uniformity_pvalue(r, n_draws, 5) for p, r in ranks.items()},
        "ranks": {p: r.tolist() for p, r in ranks.items()},
        "max_r_hat": [x for d in done for x in d["max_r_hat"]],
        "divergences": int(sum(sum(d["divergences"]) for d in done)),
        "chunks": {
            "total": len(tasks),
            "computed": len(run.computed),
            "resumed": len(run.resumed),
            "failed": len(run.failed),
        },
        "complete": run.complete,
    }


def _sbc_figure(res: dict[str, Any]):
    from matplotlib.figure import Figure

    params = list(res["ranks"])
    fig = Figure(figsize=(3.6 * len(params), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(params)))
    n, m = res["n_datasets"], res["n_draws"]
    for ax, p in zip(axes, params, strict=True):
        ax.hist(res["ranks"][p], bins=np.linspace(0, m + 1, 6), color="C0", alpha=0.8)
        ax.axhline(n / 5, color="0.3", ls="--", lw=0.8)
        ax.set(title=f"{p} (p = {res['pvalues'][p]:.2g})", xlabel="rank", ylabel="datasets")
    fig.suptitle(f"SBC of the {res['model']} model: {n} datasets, {m} draws each", fontsize=10)
    return fig


# -- command line --------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sweep`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "sweep",
        help="rate and g2(0) over power x gate x eta_BX (closed forms, optionally simulated); SBC",
        description=(
            "Closed-form rate and g2(0), ungated and gated, over a grid of power, gate and "
            "eta_BX; --simulate checks every point by simulation as Dask tasks. "
            "--sbc runs simulation-based calibration of a model in Dask chunks."
        ),
    )
    p.add_argument("config", nargs="?", type=Path, help="setup TOML (docs/qdsim_config.md)")
    p.add_argument("--preset", choices=["paper_qd", "blinking_qd"], help="built-in setup")
    p.add_argument("--power", metavar="P", help="LO:HI:N (log-spaced) or a list: 0.01uW:4uW:9")
    p.add_argument("--gate", metavar="T", help="gates, e.g. 0,1ns,2.5ns (2.5ns)")
    p.add_argument("--eta-bx", metavar="X", help="eta_BX values, e.g. 0.1,0.21,0.4 (the setup's)")
    p.add_argument("--duration", metavar="T", help="acquisition per point (10s)")
    p.add_argument("--simulate", action="store_true", help="also simulate every point (Dask)")
    p.add_argument("--seed", type=int, default=1, help="seed of simulations / SBC (1)")
    p.add_argument("--sbc", choices=SBC_MODELS, help="run simulation-based calibration instead")
    p.add_argument("--n", type=int, help="SBC: datasets (100)")
    p.add_argument("--chunk", type=int, help="SBC: datasets per task (10)")
    p.add_argument("--samples", type=int, help="SBC: NUTS warm-up and draws (200)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output folder (./sweep)")
    p.add_argument("--workers", type=int, help="local cluster: worker processes (default: cores)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="threads per worker (1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="use this Dask scheduler instead")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_sweep)
    return p


def _write_table(rows: list[dict[str, Any]], out: Path, stem: str) -> dict[str, str]:
    import pandas as pd

    from qdio._util import atomic_path

    df = pd.DataFrame(rows)
    with atomic_path(out / f"{stem}.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out / f"{stem}.parquet") as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    return {"csv": str(out / f"{stem}.csv"), "parquet": str(out / f"{stem}.parquet")}


def _save(fig, path: Path) -> str:
    from qdio._util import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return str(path)


def _connect(args):
    return _dask.connect(
        args.scheduler, workers=args.workers, threads_per_worker=args.threads_per_worker
    )


# options of one mode only (option -> attribute): given to the other, they are refused
_SBC_OPTIONS = {"--n": "n", "--chunk": "chunk", "--samples": "samples"}
_GRID_OPTIONS = {
    "--gate": "gate",
    "--eta-bx": "eta_bx",
    "--duration": "duration",
    "--simulate": "simulate",
}


def cmd_sweep(args: argparse.Namespace) -> int:
    """``qdlight sweep``: returns the exit status (bad options raise ValueError naming them)."""
    out = args.output if args.output is not None else Path("sweep")
    progress = not args.no_progress and not args.json
    sbc_only = [o for o, v in _SBC_OPTIONS.items() if getattr(args, v) is not None]
    if args.sbc is not None:
        if args.config is not None or args.preset is not None or args.power is not None:
            raise ValueError("--sbc takes no setup and no --power")
        grid_only = [o for o, v in _GRID_OPTIONS.items() if getattr(args, v) not in (None, False)]
        if grid_only:
            raise ValueError(f"--sbc does not take {', '.join(grid_only)} (grid sweeps only)")
        out.mkdir(parents=True, exist_ok=True)
        with _connect(args) as client:
            res = run_sbc(
                client,
                args.sbc,
                100 if args.n is None else args.n,
                out=out,
                chunk=10 if args.chunk is None else args.chunk,
                samples=200 if args.samples is None else args.samples,
                seed=args.seed,
                progress=progress,
            )
        from qdio._util import atomic_write

        res["outputs"] = {"figure": _save(_sbc_figure(res), out / f"sbc_{args.sbc}.png")}
        res["outputs"]["json"] = str(out / f"sbc_{args.sbc}.json")
        with atomic_write(out / f"sbc_{args.sbc}.json") as f:
            f.write(json.dumps(_dask.jsonable(res), indent=1).encode("utf-8"))
        if args.json:
            print(
                json.dumps(_dask.jsonable({k: v for k, v in res.items() if k != "ranks"}), indent=2)
            )
        else:
            pv = ", ".join(f"{k} {v:.3g}" for k, v in res["pvalues"].items())
            print(f"SBC {args.sbc}: {res['n_datasets']} datasets, {res['n_draws']} draws each")
            print(f"rank uniformity p-values (5 bins): {pv}")
            print(
                f"median max r_hat {np.median(res['max_r_hat']):.4f}, divergences "
                f"{res['divergences']}"
            )
            print(f"written to {out}")
        return 0 if res["complete"] else 1

    import qdsim

    if sbc_only:
        raise ValueError(f"{', '.join(sbc_only)} apply only to --sbc")
    if (args.config is None) == (args.preset is None):
        raise ValueError("give a setup: CONFIG (a TOML file) or --preset NAME")
    if args.power is None:
        raise ValueError("--power is required, e.g. --power 0.01uW:4uW:9")
    powers = parse_grid(args.power, "W", name="--power")
    gate_text = "2.5ns" if args.gate is None else args.gate
    gates = parse_grid(gate_text, "s", name="--gate", log_range=False)
    if np.any(powers <= 0):
        raise ValueError(f"--power {args.power!r}: powers must be > 0")
    if np.any(gates < 0):
        raise ValueError(f"--gate {gate_text!r}: gates must be >= 0")
    etas = None if args.eta_bx is None else parse_grid(args.eta_bx, "1", name="--eta-bx")
    duration_text = "10s" if args.duration is None else args.duration
    duration = parse_quantity(duration_text, "s", name="--duration")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"--duration {duration_text!r} must be > 0")
    if args.simulate and duration > 600:
        raise ValueError(f"--duration {duration_text!r}: at most 600 s per simulated point")
    if args.config is not None and not args.config.is_file():
        raise FileNotFoundError(f"{args.config}: no such setup file")
    setup = qdsim.load_setup(args.preset or args.config)
    period = setup.excitation.period_s
    if np.any(gates >= period):
        raise ValueError(f"--gate: gates must be shorter than the period {period:g} s")
    for p in powers:
        if setup.mean_absorbed(float(p)) > 100:
            raise ValueError(f"--power: {format_quantity(float(p), 'W')} gives n > 100 per pulse")
    rows = closed_form_grid(setup, powers, gates, etas, duration_s=duration)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "setup": setup.name,
        "points": len(rows),
        "duration_s": duration,
        "simulated": bool(args.simulate),
    }
    if args.simulate:
        with _connect(args) as client:
            run = simulate_grid(
                client, setup, rows, duration_s=duration, seed=args.seed, out=out, progress=progress
            )
        summary["tasks"] = {
            "computed": len(run.computed),
            "resumed": len(run.resumed),
            "failed": len(run.failed),
        }
        zs = [
            abs(r[k])
            for r in rows
            for k in ("z_rate", "z_g2_zero", "z_g2_zero_gated")
            if r.get(k) is not None
        ]
        summary["max_abs_z"] = max(zs) if zs else None
    summary["outputs"] = _write_table(rows, out, "sweep")
    title = f"{setup.name}: closed forms, counting errors for {format_quantity(duration, 's')}"
    summary["outputs"]["figure"] = _save(sweep_figure(rows, title=title), out / "sweep.png")
    if args.json:
        print(json.dumps(_dask.jsonable(summary), indent=2))
    else:
        print(f"{'setup':<10}{setup.name}: {len(rows)} grid points")
        if args.simulate:
            t = summary["tasks"]
            print(
                f"{'simulated':<10}{t['computed']} computed, {t['resumed']} resumed, "
                f"{t['failed']} failed; max |z| {summary['max_abs_z']}"
            )
        for k, v in summary["outputs"].items():
            print(f"{k:<10}{v}")
    if args.simulate and summary["tasks"]["failed"]:
        return 1
    return 0
