"""``qdlight fit``: Bayesian fits (numpyro) of a file or a power series, with outputs.

:func:`add_parser` registers the subcommand and :func:`cmd_fit` runs it:

* ``qdlight fit FILE --model decay [--gate 2.5ns] [--n-exp 2] [--irf IRF]``
* ``qdlight fit FILE --model g2``
* ``qdlight fit FILE --model states [--states 2] [--trace-bin 10ms]``
* ``qdlight fit SERIES.toml --model rate|joint``, where SERIES.toml lists
  the files and their powers::

      [[point]]
      file = "qd1_0.17uW.ptu"   # relative to the TOML file
      power = "0.17uW"

Writes ``posterior.nc`` (arviz DataTree, netCDF), ``summary.csv`` and
``ppc.png`` (posterior predictive check; not for states) to ``-o DIR`` and prints the
summary (or ``--json``).  jax and numpyro are imported only when it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

import qdinfer
from qdio.units import format_quantity, parse_quantity

__all__ = ["add_parser", "cmd_fit", "load_series"]

MODELS = ("decay", "g2", "rate", "joint", "states")
MAX_DECAY_BINS = 1024


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``fit`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "fit",
        help="Bayesian fit (NUTS) of a decay, g2 histogram or power series: posteriors",
        description=(
            "Fit a numpyro model and write the posterior (netCDF), a summary table with "
            "credible intervals and a posterior predictive check figure."
        ),
    )
    p.add_argument("file", type=Path, help="TTTR file (decay, g2) or SERIES.toml (rate, joint)")
    p.add_argument("--model", choices=MODELS, required=True, help="which model to fit")
    p.add_argument("--gate", metavar="DELAY", help="decay: keep bins DELAY after the IRF peak")
    p.add_argument("--n-exp", type=int, choices=[1, 2, 3], default=1, help="decay components")
    p.add_argument("--irf", type=Path, metavar="FILE", help="decay: IRF reference measurement")
    p.add_argument("--states", type=int, default=2, help="states: hidden states (2-4)")
    p.add_argument("--trace-bin", default="10ms", metavar="T", help="states: bin (default 10ms)")
    p.add_argument("--samples", type=int, default=500, help="draws per chain (default 500)")
    p.add_argument("--chains", type=int, default=2, help="chains (default 2)")
    p.add_argument("--svi", action="store_true", help="variational fit instead of NUTS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "-o", "--output", type=Path, metavar="DIR", help="output folder (default ./STEM_fit)"
    )
    p.set_defaults(func=cmd_fit)
    return p


def load_series(path: Path) -> list[tuple[Path, float]]:
    """(file, power in W) pairs of a SERIES.toml (``[[point]]`` tables with file and power)."""
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    points = doc.get("point")
    if not points:
        raise ValueError(f"{path}: expected [[point]] tables with 'file' and 'power'")
    out = []
    for i, pt in enumerate(points):
        if "file" not in pt or "power" not in pt:
            raise ValueError(f"{path}: point {i} needs 'file' and 'power'")
        f = (path.parent / pt["file"]).resolve()
        if not f.is_file():
            raise FileNotFoundError(f"{path}: point {i}: no such file {f}")
        out.append((f, parse_quantity(pt["power"], "W", name=f"point {i} power")))
    return out


def _decay_fit(args, settings, gate_s):
    import qdio
    from qdinfer.models import fit_decay_bayes

    stream = qdio.read(args.file)
    n_ticks = max(1, round(stream.macrotime_resolution_s / stream.microtime_resolution_s))
    k = max(1, math.ceil(n_ticks / MAX_DECAY_BINS))
    decay = qdinfer.decay_histogram(stream, bin_width_s=k * stream.microtime_resolution_s)
    irf = qdinfer.irf_from_file(args.irf) if args.irf is not None else None
    return fit_decay_bayes(
        decay, n_exp=args.n_exp, irf=irf, gate_s=gate_s, settings=settings, seed=args.seed
    )


def _g2_fit(args, settings):
    import qdio
    from qdinfer.models import fit_g2_bayes

    stream = qdio.read(args.file)
    period = stream.macrotime_resolution_s
    counts = np.bincount(stream.channel)
    a, b = (int(c) for c in np.argsort(counts)[::-1][:2])
    hist = qdinfer.g2_histogram(
        stream, channels=(min(a, b), max(a, b)), max_lag_s=2.5 * period, bin_width_s=period / 200
    )
    return fit_g2_bayes(hist, period_s=period, settings=settings, seed=args.seed)


def _states_fit(args, settings):
    import qdio
    from qdinfer.models import fit_states_bayes

    width = parse_quantity(args.trace_bin, "s", name="--trace-bin")
    if not width > 0:
        raise ValueError(f"--trace-bin {args.trace_bin!r} must be > 0")
    trace = qdinfer.intensity_trace(qdio.read(args.file), bin_width_s=width)
    return fit_states_bayes(
        trace.counts, width, n_states=args.states, settings=settings, seed=args.seed
    )


def _series_fit(args, settings, joint: bool):
    import qdio
    from qdinfer.models import fit_power_series

    points = load_series(args.file)
    powers, counts, durations, g2, g2_sd = [], [], [], [], []
    for f, p in points:
        stream = qdio.read(f)
        powers.append(p)
        counts.append(len(stream.channel))
        durations.append(stream.duration_s)
        if joint:
            try:
                r = qdinfer.pulsed_g2_zero(stream)
                g2.append(r.value)
                g2_sd.append(r.stderr)
            except ValueError:
                g2.append(float("nan"))
                g2_sd.append(float("nan"))
    kw: dict[str, Any] = {}
    if joint:
        kw["g2"] = (g2, g2_sd)
    return fit_power_series(powers, counts, durations, settings=settings, seed=args.seed, **kw)


def cmd_fit(args: argparse.Namespace) -> int:
    """``qdlight fit``: returns the exit status (bad input raises ValueError)."""
    if not args.file.is_file():
        raise FileNotFoundError(f"{args.file}: no such file")
    gate_s = None
    if args.gate is not None:
        if args.model != "decay":
            raise ValueError("--gate applies to --model decay")
        gate_s = parse_quantity(args.gate, "s", name="--gate")
        if not gate_s >= 0:
            raise ValueError(f"--gate {args.gate!r} must be a delay >= 0")
    if args.model in ("rate", "joint") and args.file.suffix.lower() != ".toml":
        raise ValueError(f"--model {args.model} needs a SERIES.toml, got {args.file}")
    if args.samples < 10 or args.chains < 1:
        raise ValueError("--samples must be >= 10 and --chains >= 1")

    from qdinfer.models import SamplerSettings, plot_ppc

    settings = SamplerSettings(
        method="svi" if args.svi else "nuts",
        num_warmup=args.samples,
        num_samples=args.samples,
        num_chains=1 if args.svi else args.chains,
    )
    if args.model == "decay":
        res = _decay_fit(args, settings, gate_s)
    elif args.model == "g2":
        res = _g2_fit(args, settings)
    elif args.model == "states":
        res = _states_fit(args, settings)
    else:
        res = _series_fit(args, settings, joint=args.model == "joint")

    out = args.output if args.output is not None else Path(f"{args.file.stem}_fit")
    out.mkdir(parents=True, exist_ok=True)
    res.posterior.to_netcdf(out / "posterior.nc", engine="h5netcdf")
    res.summary().to_csv(out / "summary.csv")
    summary = res.to_dict()
    summary["outputs"] = {
        "posterior": str(out / "posterior.nc"),
        "summary": str(out / "summary.csv"),
    }
    if "mu" in res.samples:
        import matplotlib.pyplot as plt

        fig = plot_ppc(res)
        fig.savefig(out / "ppc.png", dpi=120)
        plt.close(fig)
        summary["outputs"]["figure"] = str(out / "ppc.png")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_format(summary))
    return 0


def _format(summary: dict) -> str:
    lines = [f"{summary['model']} (90 % credible intervals)"]
    for name, p in summary["params"].items():
        unit = p["unit"] if p["unit"] not in ("", "counts") else ""
        lo, hi = p["interval"]
        if unit in ("s", "1/s"):
            u = "Hz" if unit == "1/s" else unit
            text = f"{format_quantity(p['mean'], u)}  [{format_quantity(lo, u)}, "
            text += f"{format_quantity(hi, u)}]"
        else:
            text = f"{p['mean']:.4g}  [{lo:.4g}, {hi:.4g}] {unit}".rstrip()
        lines.append(f"  {name:<20} {text}")
    d = summary["diagnostics"]
    lines.append(
        f"  diagnostics: r_hat {d.get('r_hat')}, bulk ESS {d.get('ess_bulk')}, "
        f"divergences {d.get('divergences')}"
    )
    lines.append(f"  written to {Path(summary['outputs']['posterior']).parent}")
    return "\n".join(lines)
