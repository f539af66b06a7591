"""``qdlight fit``: Bayesian fits (numpyro) of a file or a power series, with outputs.

:func:`add_parser` registers the subcommand and :func:`cmd_fit` runs it:

* ``qdlight fit FILE --model decay [--gate 2.5ns] [--n-exp 2] [--irf IRF]``
* ``qdlight fit FILE --model g2``
* ``qdlight fit FILE --model states [--states 2] [--trace-bin 10ms] [--counts-only] [--irf IRF]``
* ``qdlight fit SERIES.toml --model rate|joint``, where SERIES.toml lists
  the files and their powers::

      [[point]]
      file = "qd1_0.17uW.ptu"   # relative to the TOML file
      power = "0.17uW"

Writes ``posterior.nc`` (arviz DataTree, netCDF), ``summary.csv``, ``report.html`` and
``ppc.png`` (posterior predictive check; not for states) to ``-o DIR`` and prints the
summary (or ``--json``).  jax and numpyro are imported only when it runs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

import qdinfer
from qdio.units import format_quantity

from ._options import delay_option, positive_option
from .series import load_series

__all__ = [
    "add_parser",
    "add_posterior",
    "cmd_fit",
    "decay_posterior",
    "g2_posterior",
    "known_detection",
    "load_series",
    "posterior_rows",
    "report_section",
    "series_posterior",
    "states_posterior",
]

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
    p.add_argument(
        "--irf", type=Path, metavar="FILE", help="decay, states: IRF reference measurement"
    )
    p.add_argument("--states", type=int, default=2, help="states: hidden states (2-4)")
    p.add_argument("--trace-bin", default="10ms", metavar="T", help="states: bin (default 10ms)")
    p.add_argument(
        "--counts-only",
        action="store_true",
        help="states: counts per bin only (faster; default: per-state lifetimes from T3 data, "
        "exciton lifetimes under weak excitation, see docs/bayes.md)",
    )
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


# -- fits of photon streams (the command, the demo and the series report use these) --------
def decay_posterior(
    stream,
    *,
    n_exp: int = 1,
    irf=None,
    gate_s: float | None = None,
    fit_range_s: tuple[float, float] | None = None,
    settings=None,
    seed: int = 0,
    warn: bool = True,
):
    """Bayesian decay fit of all photons of ``stream`` (at most 1024 bins per period)."""
    from qdinfer.models import fit_decay_bayes

    if not stream.is_t3:
        raise ValueError(f"{_name(stream)}: a decay fit needs T3 data (delays after the laser)")
    n_ticks = max(1, round(stream.macrotime_resolution_s / stream.microtime_resolution_s))
    k = max(1, math.ceil(n_ticks / MAX_DECAY_BINS))
    decay = qdinfer.decay_histogram(stream, bin_width_s=k * stream.microtime_resolution_s)
    return fit_decay_bayes(
        decay,
        n_exp=n_exp,
        irf=irf,
        gate_s=gate_s,
        fit_range_s=fit_range_s,
        settings=settings,
        seed=seed,
        warn=warn,
    )


def g2_posterior(
    stream,
    *,
    channels: tuple[int, int] | None = None,
    settings=None,
    seed: int = 0,
    warn: bool = True,
):
    """Bayesian fit of the g2 histogram (+-2.5 laser periods) between two channels.

    ``channels`` default to the two busiest.
    """
    from qdinfer.models import fit_g2_bayes

    if not stream.is_t3:
        raise ValueError(f"{_name(stream)}: the pulsed g2 fit needs T3 data (laser period)")
    if channels is None:
        counts = np.bincount(stream.channel)
        busy = [int(c) for c in np.argsort(counts)[::-1] if counts[c] > 0]
        if len(busy) < 2:
            raise ValueError(
                f"{_name(stream)}: g2 needs photons on two channels, found channel(s) {busy}"
            )
        channels = (min(busy[:2]), max(busy[:2]))
    period = stream.laser_period_s
    hist = qdinfer.g2_histogram(
        stream, channels=channels, max_lag_s=2.5 * period, bin_width_s=period / 200
    )
    return fit_g2_bayes(hist, period_s=period, settings=settings, seed=seed, warn=warn)


def _name(stream) -> str:
    return str(stream.attrs.get("source", "the data"))


def states_posterior(
    stream,
    *,
    bin_width_s: float = 10e-3,
    n_states: int = 2,
    lifetimes: bool = True,
    irf=None,
    settings=None,
    seed: int = 0,
):
    """Bayesian hidden-Markov fit of the binned intensity trace.

    With ``lifetimes`` (T3 data) each bin's photons also carry their
    microtimes and every state its own lifetime
    (:func:`qdinfer.models.fit_states_photons`); otherwise counts only.
    """
    from qdinfer.models import fit_states_bayes, fit_states_photons

    if lifetimes and stream.is_t3:
        return fit_states_photons(
            stream, bin_width_s, n_states=n_states, irf=irf, settings=settings, seed=seed
        )
    trace = qdinfer.intensity_trace(stream, bin_width_s=bin_width_s)
    return fit_states_bayes(
        trace.counts, bin_width_s, n_states=n_states, settings=settings, seed=seed
    )


def series_posterior(
    streams,
    powers_w,
    *,
    joint: bool,
    settings=None,
    seed: int = 0,
    g2: tuple[Any, Any] | None = None,
    channels: tuple[int, int] = (0, 1),
    **kwargs: Any,
):
    """Rate-versus-power (``joint=False``) or joint rate + g2(0) fit of a series.

    The counts are all photons of each stream in its duration.  The joint
    fit takes g2(0) as ``g2`` (values and standard errors per power) or, by
    default, as the peak counts of :func:`qdinfer.pulsed_g2_zero` of each
    stream between ``channels`` (binomial likelihood; a stream without g2
    drops out of it).
    ``kwargs`` go to :func:`qdinfer.models.fit_power_series` (afterpulsing,
    leakage, dead time, setup).
    """
    from qdinfer.models import fit_power_series

    counts = [len(s.channel) for s in streams]
    durations = [s.duration_s for s in streams]
    if joint and g2 is not None:
        kwargs["g2"] = g2
    elif joint:
        centre, side, weight = [], [], []
        for s in streams:
            try:
                r = qdinfer.pulsed_g2_zero(s, channels=channels)
                centre.append(r.centre_counts)
                side.append(float(np.sum(r.side_counts)))
                weight.append(float(np.sum(r.side_weights)))
            except ValueError:  # one channel, too few photons: no pairs, no information
                centre.append(0)
                side.append(0.0)
                weight.append(1.0)
        kwargs["g2_counts"] = (centre, side, weight)
    return fit_power_series(powers_w, counts, durations, settings=settings, seed=seed, **kwargs)


# -- report sections ---------------------------------------------------------------------------
Z_TRUTH = 3.0  # a posterior agrees with a known truth when |mean - truth| < 3 sd


def posterior_rows(
    res,
    truth: dict[str, float] | None = None,
    prob: float = 0.9,
    systematic: dict[str, float] | None = None,
) -> list[dict]:
    """Summary rows of a fit: mean, sd and ``prob`` interval per parameter.

    With ``truth``: whether the interval covers it, ``z = (mean - truth) /
    sigma`` and ``ok`` (``|z| < 3``); sigma is the posterior sd, combined
    with ``systematic[name] * truth`` where a relative systematic allowance
    is given (what the model knowingly leaves out).
    """
    summary = res.to_dict(prob)
    systematic = systematic or {}
    rows = []
    for name, p in summary["params"].items():
        lo, hi = p["interval"]
        row: dict[str, Any] = {
            "parameter": name,
            "unit": p["unit"],
            "mean": p["mean"],
            "sd": p["sd"],
            f"{prob:.0%} low": lo,
            f"{prob:.0%} high": hi,
        }
        if truth is not None and name in truth:
            t = truth[name]
            sigma = math.hypot(p["sd"], systematic.get(name, 0.0) * t)
            row["truth"] = t
            row[f"in {prob:.0%}"] = bool(lo <= t <= hi)
            row["z"] = (p["mean"] - t) / sigma if sigma > 0 else math.nan
            row["ok"] = bool(abs(row["z"]) < Z_TRUTH)
        rows.append(row)
    return rows


def add_posterior(
    section,
    res,
    *,
    caption: str,
    truth: dict[str, float] | None = None,
    systematic: dict[str, float] | None = None,
) -> bool:
    """Table (with truth where known), diagnostics and predictive-check figure of ``res``.

    Returns whether every known truth is within 3 sigma (:func:`posterior_rows`).
    """
    rows = posterior_rows(res, truth, systematic=systematic)
    section.table(rows, caption=f"{caption}: posterior (90 % credible intervals)",
                  status_column="ok" if truth else None)  # fmt: skip
    d = res.diagnostics
    section.text(
        f"{res.model_name}: {d.get('method', 'nuts')}, r_hat {_num(d.get('r_hat'))}, bulk ESS "
        f"{_num(d.get('ess_bulk'))}, divergences {d.get('divergences')}",
        note=True,
    )
    if "mu" in res.samples:
        import matplotlib.pyplot as plt

        from qdinfer.models import plot_ppc

        fig = plot_ppc(res)
        section.figure(fig, f"{caption}: data, posterior mean and 90 % predictive band")
        plt.close(fig)
    elif "state_probability" in res.info:
        from qdinfer.models import plot_states

        section.figure(plot_states(res), f"{caption}: trace by most probable state, decays")
    return all(r.get("ok", True) for r in rows)


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


RATE_SYSTEMATIC = 0.005  # relative error of the rate model (the demo's checks allow the same)


def known_detection(setup) -> dict[str, float]:
    """What a lab knows of its detection (here: the simulated one) for the power-series model.

    Laser leakage of all detectors per watt (linear in the power), and the
    afterpulse probability that survives the TCSPC card's dead time (an
    afterpulse comes ``Exp(delay)`` after the detector's dead time; the
    card, dead longer, misses those earlier than its own dead time).
    """
    from qdsim.detector import leakage_per_pulse

    det = setup.detection
    if det.leakage_exponent != 1.0:
        raise ValueError("the power-series model takes leakage linear in the power")
    d0 = det.detectors[0]
    blind_s = max(0.0, det.tcspc.dead_time_s - d0.dead_time_s)
    p_ref = det.leakage_reference_power_w
    return {
        "leakage_hz_per_w": float(leakage_per_pulse(setup, p_ref).sum())
        * setup.excitation.rep_rate_hz
        / p_ref,
        "afterpulse_probability": d0.afterpulse_probability
        * math.exp(-blind_s / d0.afterpulse_delay_s),
    }


def report_section(report, results) -> None:
    """The "Bayesian fits" section of the ``qdlight demo`` report (``qdinfer.models``).

    Fits the demo's simulated data and sets every posterior beside the truth:
    the joint power-series model (photon counts and pulsed g2(0) at all
    powers: sigma_abs, eta_C, eta_BX, eta_H) and the tail of the decay at the
    middle power (tau_X); the full demo adds the g2 histogram at the same
    power (g2(0), against the closed form).  Quick demos (acquisitions under
    2 min) draw 2 x 300, full ones 2 x 500.
    """
    import time

    import qdsim
    from qdinfer.models import SamplerSettings

    from .plan import tail_fit_range_s

    cfg = results.config
    quick = max(cfg.durations_s) < 120
    n = 300 if quick else 500
    settings = SamplerSettings(num_warmup=n, num_samples=n, num_chains=2)
    setup = qdsim.presets.paper_qd()
    em = setup.emitter
    sec = report.section("Bayesian fits")
    sec.text(
        f"numpyro NUTS fits (qdinfer.models, 2 chains x {n} draws after {n} warm-up steps) of "
        "the same simulated data; every posterior is set beside the simulator's truth, with "
        "z = (mean - truth) / sd; a row passes when |z| < 3. 90 % intervals should cover "
        "the truth in about 9 of 10 cases; with short acquisitions the diagnostics (r_hat, "
        "ESS) may ask for more draws."
    )
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    joint = series_posterior(
        [sim.stream for sim in results.sims],
        [sim.power_w for sim in results.sims],
        joint=True,
        **known_detection(setup),
        n_detectors_dead_time=len(setup.detection.detectors),
        rate_systematic=RATE_SYSTEMATIC,
        settings=settings,
        seed=cfg.seed,
        warn=False,
    )
    timings["joint power series"] = time.perf_counter() - t0
    truth = {
        "sigma_abs_m2": em.sigma_abs_m2,
        "eta_c": setup.detection.eta_c,
        "eta_bx": em.states[0].eta_bx,
        "eta_h": em.eta_h,
    }
    sec.text(
        "Joint power series: photon counts (afterpulsing, laser leakage and one photon per "
        "detector per pulse, known as for the simulated SPADs and laser; counting noise plus "
        f"a {RATE_SYSTEMATIC:.1%} systematic of the rate model, the allowance the checks "
        "above use: the simulated dead time loses ~0.3 % more at 4 uW than the model) and "
        "the g2 peak counts (binomial) at every power share "
        "sigma_abs, eta_C, eta_BX and eta_H (eta_X fixed at 1 as in the paper; sigma_abs is "
        "as uncertain as the spot-area prior, log sd 0.3)."
    )
    add_posterior(sec, joint, caption="joint power series", truth=truth)

    mid = len(results.sims) // 2
    sim = results.sims[mid]
    p_text = format_quantity(sim.power_w, "W")
    t0 = time.perf_counter()
    decay = decay_posterior(
        sim.stream,
        fit_range_s=tail_fit_range_s(qdinfer.decay_histogram(sim.stream)),
        settings=settings,
        seed=cfg.seed,
        warn=False,
    )
    timings["decay"] = time.perf_counter() - t0
    sec.text(
        f"Decay at {p_text}: one exponential on the tail (20-200 ns after the IRF peak, where "
        "only the exciton, background and a few afterpulses remain). As for the tail fit "
        "in the checks above, z allows a 2 % systematic: the afterpulses and dead time "
        "shape the tail in ways a flat background does not hold (the 120 s acquisition "
        "of the full demo gives 59.1 +- 0.2 ns)."
    )
    tau_x = {"tau_1_s": em.states[0].tau_x_s}
    add_posterior(sec, decay, caption=f"decay tail at {p_text}", truth=tau_x,
                  systematic={"tau_1_s": 0.02})  # fmt: skip

    if not quick:
        t0 = time.perf_counter()
        g2 = g2_posterior(sim.stream, settings=settings, seed=cfg.seed, warn=False)
        timings["g2"] = time.perf_counter() - t0
        sec.text(
            f"g2 histogram at {p_text}: peaks at multiples of the laser period with "
            "exponential shapes and a flat background; g2(0) is the centre / side peak area "
            "ratio, compared with the closed form including the simulated background "
            "(qdlight plan), with the checks' 3 % systematic allowance."
        )
        truth = {"g2_zero": results.predictions[mid].g2_zero}
        add_posterior(sec, g2, caption=f"g2 at {p_text}", truth=truth,
                      systematic={"g2_zero": 0.03})  # fmt: skip
    results.timings_s.update({f"Bayes: {k}": v for k, v in timings.items()})


def cmd_fit(args: argparse.Namespace) -> int:
    """``qdlight fit``: returns the exit status (bad input raises ValueError)."""
    if not args.file.is_file():
        raise FileNotFoundError(f"{args.file}: no such file")
    gate_s = None
    if args.gate is not None:
        if args.model != "decay":
            raise ValueError("--gate applies to --model decay")
        gate_s = delay_option(args.gate, "--gate")
    if args.model in ("rate", "joint") and args.file.suffix.lower() != ".toml":
        raise ValueError(f"--model {args.model} needs a SERIES.toml, got {args.file}")
    if args.samples < 10 or args.chains < 1:
        raise ValueError("--samples must be >= 10 and --chains >= 1")

    from qdinfer.models import SamplerSettings

    settings = SamplerSettings(
        method="svi" if args.svi else "nuts",
        num_warmup=args.samples,
        num_samples=args.samples,
        num_chains=1 if args.svi else args.chains,
    )
    import qdio

    measured = None
    if args.model == "decay":
        irf = qdinfer.irf_from_file(args.irf) if args.irf is not None else None
        stream = qdio.read(args.file)
        res = decay_posterior(
            stream, n_exp=args.n_exp, irf=irf, gate_s=gate_s, settings=settings, seed=args.seed
        )
    elif args.model == "g2":
        res = g2_posterior(qdio.read(args.file), settings=settings, seed=args.seed)
    elif args.model == "states":
        width = positive_option(args.trace_bin, "s", "--trace-bin")
        irf = qdinfer.irf_from_file(args.irf) if args.irf is not None else None
        res = states_posterior(
            qdio.read(args.file),
            bin_width_s=width,
            n_states=args.states,
            lifetimes=not args.counts_only,
            irf=irf,
            settings=settings,
            seed=args.seed,
        )
    else:
        from .series import measure_series

        measured = measure_series(args.file, progress=not args.json)
        joint = args.model == "joint"
        res = series_posterior(
            measured.streams,
            measured.power_w,
            joint=joint,
            channels=measured.channels,
            settings=settings,
            seed=args.seed,
        )

    out = args.output if args.output is not None else Path(f"{args.file.stem}_fit")
    out.mkdir(parents=True, exist_ok=True)
    summary = res.to_dict()
    summary["outputs"] = _write_outputs(res, out, args, measured)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_format(summary))
    return 0


def _write_outputs(res, out: Path, args: argparse.Namespace, measured) -> dict[str, str]:
    """posterior.nc, summary.csv, ppc.png and report.html in ``out`` (each written atomically)."""
    import matplotlib.pyplot as plt

    from qdinfer.models import plot_ppc, plot_states
    from qdio._util import atomic_path

    from .report import Report
    from .series import series_report

    outputs = {}
    with atomic_path(out / "posterior.nc") as tmp:
        res.posterior.to_netcdf(tmp, engine="h5netcdf")
    outputs["posterior"] = str(out / "posterior.nc")
    with atomic_path(out / "summary.csv") as tmp:
        res.summary().to_csv(tmp)
    outputs["summary"] = str(out / "summary.csv")
    if "mu" in res.samples:
        fig = plot_ppc(res)
        with atomic_path(out / "ppc.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        outputs["figure"] = str(out / "ppc.png")
    elif "state_probability" in res.info:
        fig = plot_states(res)
        with atomic_path(out / "states.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        outputs["figure"] = str(out / "states.png")
    options = {
        k: str(v)
        for k, v in vars(args).items()
        if k not in ("func", "json", "output") and v is not None and v is not False
    }
    if measured is not None:
        report = series_report(measured, source=args.file, options=options, title="qdlight fit")
    else:
        report = Report(f"qdlight fit: {args.file.name}", subtitle=str(args.file))
        report.provenance(file=str(args.file), options=options)
    section = report.section("Bayesian fit")
    section.text(f"{res.model_name} model, fitted with qdinfer.models (numpyro).")
    add_posterior(section, res, caption=args.model)
    report.provenance(seed=args.seed)
    report.write(out / "report.html")
    outputs["report"] = str(out / "report.html")
    return outputs


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
