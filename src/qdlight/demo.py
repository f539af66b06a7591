"""``qdlight demo``: the paper's analysis end to end on simulated data, as one HTML report.

:func:`run_demo` simulates the paper's quantum dot (:func:`qdsim.presets.paper_qd`)
over the paper's power series (0.01, 0.02, 0.17, 1.8, 4 uW) and the blinking
dot (:func:`qdsim.presets.blinking_qd`), measures them with the qdinfer
estimators (decays and lifetime fits, photon rates, pulsed g2(0) ungated and
gated, the power-series table with its regions, the two-band spectrum, the
emission states of the blinking dot with state-resolved decays and g2) and
compares every number with the ground truth: the closed forms of
:func:`qdlight.plan.predict` and the simulator's per-photon truth.
:func:`build_report` writes it all into one self-contained HTML file
(:class:`qdlight.report.Report`).

The Bayesian fits (``qdinfer.models``, numpyro) are added by
:func:`bayesian_section` when they are installed; otherwise the report says
in its provenance that they were not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qdio.units import format_quantity, parse_quantity

__all__ = [
    "FULL",
    "QUICK",
    "DemoConfig",
    "DemoResults",
    "add_parser",
    "bayesian_available",
    "bayesian_section",
    "build_report",
    "cmd_demo",
    "run_demo",
]

log = logging.getLogger("qdlight.demo")

PAPER_POWERS_W = (0.01e-6, 0.02e-6, 0.17e-6, 1.8e-6, 4e-6)
SPLIT_M = 575e-9  # between the CdS shell line (515 nm) and the core lines (615-635 nm)
Z_LIMIT = 5.0  # a comparison passes when |measured - expected| < 5 sigma


@dataclass(frozen=True)
class DemoConfig:
    """What the demo simulates (SI units).

    The acquisition at each power is long enough for a useful g2(0) (at 10 nW
    only one pulse in 1500 gives a detection, so coincidences are rare: see
    ``qdlight plan``).
    """

    def __post_init__(self) -> None:
        if len(self.durations_s) != len(self.powers_w):
            raise ValueError(
                f"durations_s has {len(self.durations_s)} values for {len(self.powers_w)} powers"
            )

    powers_w: tuple[float, ...] = PAPER_POWERS_W
    durations_s: tuple[float, ...] = (600.0, 300.0, 120.0, 60.0, 60.0)
    blinking_power_w: float = 0.17e-6
    blinking_duration_s: float = 300.0
    gate_s: float = 2.5e-9
    split_m: float = SPLIT_M
    seed: int = 2024
    bayesian: bool = True


FULL = DemoConfig()
QUICK = DemoConfig(durations_s=(60.0, 30.0, 10.0, 4.0, 4.0), blinking_duration_s=30.0)


@dataclass
class DemoResults:
    """Everything :func:`run_demo` simulated and measured.

    Attributes
    ----------
    config : DemoConfig
    sims : list of qdsim.SimResult
        The paper dot, one per power (ascending).
    series : qdinfer.PowerSeries
        The measured power-series table.
    predictions : list of qdlight.plan.Prediction
        Closed-form expectations per power, for the same durations.
    comparisons : list of dict
        Measured vs expected rows (quantity, power, measured, stderr,
        expected, z, ok).
    decay_fits : list of qdinfer.DecayFit or None
        Tail fits (:func:`qdlight.plan.tail_lifetime`) per power.
    blinking : qdsim.SimResult
    states : qdinfer.ThresholdStates
    state_resolved : qdinfer.StateResolved
    state_truth : list of dict
        Per true state: time share, lifetime and g2(0) measured with the
        true trajectory.
    agreement : float
        Fraction of time the inferred states match the true ones.
    timings_s : dict of str to float
    notes : list of str
    """

    config: DemoConfig
    sims: list = field(default_factory=list)
    series: Any = None
    predictions: list = field(default_factory=list)
    comparisons: list = field(default_factory=list)
    decay_fits: list = field(default_factory=list)
    blinking: Any = None
    states: Any = None
    state_resolved: Any = None
    state_truth: list = field(default_factory=list)
    agreement: float = math.nan
    timings_s: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        """Every comparison within ``Z_LIMIT`` sigma."""
        return all(r["ok"] for r in self.comparisons if r["ok"] is not None)


def _row(quantity: str, power_w: float, measured, stderr, expected, *, rel_sys: float = 0.0):
    """A comparison row; ``rel_sys`` adds a relative systematic allowance to sigma."""
    measured = float(measured)
    stderr = float(stderr) if stderr is not None else math.nan
    sigma = math.hypot(stderr, rel_sys * abs(expected)) if math.isfinite(stderr) else math.nan
    z = (measured - expected) / sigma if sigma > 0 and math.isfinite(measured) else math.nan
    return {
        "quantity": quantity,
        "power": format_quantity(power_w, "W"),
        "measured": measured,
        "stderr": stderr,
        "expected": float(expected),
        "z": z,
        "ok": bool(abs(z) < Z_LIMIT) if math.isfinite(z) else None,
    }


def _to_qdinfer_spectrum(spec, power_w: float, expected: bool = False):
    import qdinfer

    y = spec.expected if expected else spec.counts
    return qdinfer.Spectrum(spec.wavelength_m, np.asarray(y, float), {"power_w": power_w})


def _truth_trajectory(sim):
    """The simulator's blink trajectory as a qdinfer StateTrajectory (same labels)."""
    from qdinfer import StateTrajectory

    tr = sim.truth.trajectory
    return StateTrajectory.build(
        tr.start_s, tr.end_s, tr.state.astype(np.int64), labels=tr.state_names, method="truth"
    )


def run_demo(config: DemoConfig = FULL, *, progress: bool = True) -> DemoResults:
    """Simulate and measure (see the module docstring); returns :class:`DemoResults`."""
    import qdinfer
    import qdsim
    from qdinfer.states import state_resolved, threshold_states

    from .plan import predict, tail_lifetime

    res = DemoResults(config=config)
    steps = len(config.powers_w) + 3
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="qdlight demo", unit="step", leave=True)

    def step(desc: str) -> None:
        if bar is not None:
            bar.set_postfix_str(desc)

    def done() -> None:
        if bar is not None:
            bar.update(1)

    try:
        setup = qdsim.presets.paper_qd()
        root = np.random.default_rng(config.seed)
        seeds = root.spawn(len(config.powers_w) + 1)
        points = []
        t0 = time.perf_counter()
        for p, dur, rng in zip(config.powers_w, config.durations_s, seeds[:-1], strict=True):
            step(f"paper QD at {format_quantity(p, 'W')}")
            sim = qdsim.simulate(setup, power_w=p, duration_s=dur, rng=rng)
            res.sims.append(sim)
            spec = _to_qdinfer_spectrum(sim.spectrum, p)
            pt = qdinfer.measure_power_point(
                sim.stream, p, gate_s=config.gate_s, spectrum=spec, split_m=config.split_m
            )
            points.append(pt)
            pred = predict(setup, power_w=p, gate_s=config.gate_s, duration_s=dur)
            res.predictions.append(pred)
            _compare_point(res, sim, pt, pred, config)
            try:
                fit = tail_lifetime(sim.stream)
            except ValueError as exc:
                fit = None
                res.notes.append(f"tail fit at {format_quantity(p, 'W')}: {exc}")
            res.decay_fits.append(fit)
            if fit is not None:
                res.comparisons.append(
                    _row(
                        "tau_X, tail fit (s)",
                        p,
                        fit.tau_s[0],
                        fit.tau_stderr_s[0],
                        setup.emitter.states[0].tau_x_s,
                        rel_sys=0.02,
                    )
                )
            done()
        res.series = qdinfer.power_series(points)
        res.timings_s["paper QD"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        step("blinking QD")
        blink = qdsim.presets.blinking_qd()
        res.blinking = qdsim.simulate(
            blink,
            power_w=config.blinking_power_w,
            duration_s=config.blinking_duration_s,
            rng=seeds[-1],
        )
        done()
        step("emission states")
        s = res.blinking.stream
        res.states = threshold_states(s, n_states=3)
        res.state_resolved = state_resolved(s, res.states.trajectory)
        truth_traj = _truth_trajectory(res.blinking)
        res.agreement = float(qdinfer.time_agreement(res.states.trajectory, truth_traj))
        true_sr = state_resolved(s, truth_traj)
        share = truth_traj.time_fraction()
        for k, m in enumerate(true_sr.states):
            st = blink.emitter.states[blink.state_names.index(m.label)]
            res.state_truth.append(
                {
                    "state": m.label,
                    "true time share": float(share[k]),
                    "true tau_X (s)": st.tau_x_s,
                    "true eta_X": st.eta_x,
                    "rate with true states (/s)": m.rate_hz,
                    "g2(0) with true states": None if m.g2 is None else m.g2.value,
                }
            )
        done()
        res.timings_s["blinking QD"] = time.perf_counter() - t0
    finally:
        if bar is not None:
            bar.close()
    return res


def _compare_point(res: DemoResults, sim, pt, pred, config: DemoConfig) -> None:
    """Measured rate, g2(0) and red fraction against the closed forms and the truth."""
    import qdinfer

    p = pt.power_w
    dur = sim.truth.n_pulses / pred.rep_rate_hz
    rows = res.comparisons
    rows.append(
        _row(
            "rate (/s)",
            p,
            pt.rate_hz,
            math.sqrt(pred.rate_total_hz * dur) / dur,
            pred.rate_total_hz,
            rel_sys=0.005,
        )
    )
    # g2(0): afterpulses (2 %) add a little behind the gate at high power (documented)
    rows.append(_row("g2(0)", p, pt.g2_zero, pt.g2_zero_stderr, pred.g2_zero, rel_sys=0.03))
    rows.append(
        _row(
            "gated g2(0)",
            p,
            pt.g2_zero_gated,
            pt.g2_zero_gated_stderr,
            pred.g2_zero_gated,
            rel_sys=0.1,
        )
    )
    truth = qdinfer.band_areas(_to_qdinfer_spectrum(sim.spectrum, p, expected=True), config.split_m)
    rows.append(
        _row("red fraction", p, pt.red_fraction, pt.red_fraction_stderr, truth.red_fraction)
    )


# -- the report -----------------------------------------------------------------------------
def bayesian_available() -> bool:
    """True when numpyro and ``qdinfer.models`` can be imported."""
    if importlib.util.find_spec("numpyro") is None:
        return False
    try:
        return importlib.util.find_spec("qdinfer.models") is not None
    except (ImportError, ValueError):
        return False


def bayesian_section(report, results: DemoResults) -> bool:
    """Add the "Bayesian fits" section to ``report``; returns whether it was added.

    The section is built by ``qdlight.fit.report_section(report, results)``
    (the ``qdlight fit`` command's module), which receives the simulated
    streams (``results.sims``, ``results.blinking``) and their truth.  Nothing
    is added, and False returned, when numpyro, ``qdinfer.models`` or that
    function is missing.
    """
    if not results.config.bayesian or not bayesian_available():
        return False
    try:
        from . import fit as _fit  # type: ignore[attr-defined]
    except ImportError:
        return False
    add = getattr(_fit, "report_section", None)
    if add is None:
        return False
    add(report, results)
    return True


def _fig_against_closed_forms(results: DemoResults):
    """Measured rate and g2(0) on the closed-form curves of qdlight.plan."""
    from matplotlib.figure import Figure

    import qdsim

    from .plan import predict

    cfg = results.config
    setup = qdsim.presets.paper_qd()
    grid = np.geomspace(min(cfg.powers_w) / 2, max(cfg.powers_w) * 1.5, 60)
    pr = [predict(setup, power_w=float(p), gate_s=cfg.gate_s) for p in grid]
    s = results.series
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(grid * 1e6, [p.rate_total_hz for p in pr], color="k", lw=1, label="closed form")
    ax1.errorbar(
        s.power_w * 1e6,
        s.rate_hz,
        yerr=s.rate_stderr_hz,
        fmt="o",
        color="C0",
        label="simulated, measured",
    )
    ax1.set(xscale="log", yscale="log", xlabel="power (µW)", ylabel="detected rate (/s)")
    ax1.legend(frameon=False)
    ax2.plot(grid * 1e6, [p.g2_zero for p in pr], color="C0", lw=1, label="ungated, closed form")
    ax2.plot(
        grid * 1e6,
        [p.g2_zero_gated for p in pr],
        color="C3",
        lw=1,
        label=f"gated {cfg.gate_s * 1e9:g} ns, closed form",
    )
    ax2.errorbar(s.power_w * 1e6, s.g2_zero, yerr=s.g2_zero_stderr, fmt="o", color="C0")
    ax2.errorbar(s.power_w * 1e6, s.g2_zero_gated, yerr=s.g2_zero_gated_stderr, fmt="s", color="C3")
    ax2.set(xscale="log", xlabel="power (µW)", ylabel="g2(0)", ylim=(-0.05, 1.2))
    ax2.legend(frameon=False, fontsize="small")
    return fig


def _fig_spectra(results: DemoResults):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for k, sim in enumerate(results.sims):
        spec = _to_qdinfer_spectrum(sim.spectrum, sim.power_w)
        y = spec.intensity / max(spec.intensity.max(), 1)
        ax.plot(
            spec.wavelength_m * 1e9,
            y,
            lw=0.9,
            color=f"C{k}",
            label=format_quantity(sim.power_w, "W"),
        )
    ax.axvline(results.config.split_m * 1e9, color="k", ls="--", lw=0.7)
    ax.set(xlabel="wavelength (nm)", ylabel="intensity (normalised)")
    ax.set_title("Spectra: the shell band (blue of the split) grows with power")
    ax.legend(frameon=False)
    return fig


def build_report(results: DemoResults):
    """The demo's :class:`~qdlight.report.Report` (not yet written)."""
    from qdinfer import plots
    from qdinfer.plots_states import plot_state_resolved, plot_state_trace

    from .report import Report
    from .series import fig_decays, fig_g2, series_rows

    cfg = results.config
    streams = [sim.stream for sim in results.sims]
    powers = [sim.power_w for sim in results.sims]
    r = Report(
        "qdlight demo: feature-resolved photoluminescence of a simulated quantum dot",
        subtitle=(
            "The paper's giant CdSe/CdS quantum dot simulated over the paper's power series "
            "and a blinking dot, measured with the qdinfer estimators and checked against the "
            "ground truth."
        ),
    )
    ok = sum(1 for x in results.comparisons if x["ok"])
    checked = sum(1 for x in results.comparisons if x["ok"] is not None)
    s = r.section("Summary")
    durations = ", ".join(format_quantity(d, "s") for d in cfg.durations_s)
    s.text(
        f"{len(results.sims)} powers of the paper QD (acquisitions of {durations}) and the "
        f"blinking QD at {format_quantity(cfg.blinking_power_w, 'W')} "
        f"({format_quantity(cfg.blinking_duration_s, 's')}). {ok} of {checked} measured "
        f"numbers agree with the ground truth within {Z_LIMIT:g} sigma; the inferred emission "
        f"states match the true ones {100 * results.agreement:.1f} % of the time."
    )
    s.table(
        [
            {
                "power": format_quantity(p, "W"),
                "duration (s)": pr.duration_s,
                "n absorbed": pr.mean_absorbed,
                "photons": len(sim.stream),
                "rate (/s)": rate,
                "g2(0)": g,
                "gated g2(0)": gg,
                "region": str(region),
            }
            for p, pr, sim, rate, g, gg, region in zip(
                results.series.power_w,
                results.predictions,
                results.sims,
                results.series.rate_hz,
                results.series.g2_zero,
                results.series.g2_zero_gated,
                results.series.region,
                strict=True,
            )
        ]
    )

    s = r.section("Power series")
    s.text(
        "Rate, lifetime (longest component of a one-exponential fit of all photons), g2(0) "
        "ungated and gated, and the red fraction of the spectrum against power. Regions: "
        "usual (rate grows as fast as the power), saturating, unusual (rate falls)."
    )
    s.figure(plots.plot_power_series(results.series), "Power series (qdinfer.plot_power_series)")
    s.table(series_rows(results.series), caption="power-series table (SI units)")

    s = r.section("Checks against the ground truth")
    s.text(
        "Expected values: detected rate and g2(0) from the closed forms (qdlight plan: "
        "qdsim.closed_forms with the detector's background, dark counts, leakage and dead "
        "time); red fraction from the spectrum's noise-free expectation; tau_X is the "
        "simulated exciton lifetime, compared with a one-exponential fit of the tail "
        "(20 to 200 ns after the IRF peak, qdlight.plan.tail_lifetime). sigma is the "
        "measured standard error combined with a small systematic allowance where the "
        "closed form neglects something: 0.5 % "
        "(rate: afterpulses), 3 % (g2(0)), 10 % (gated g2(0): afterpulses behind the "
        "gate), 2 % (tau_X: afterpulses and background in the tail)."
    )
    s.figure(_fig_against_closed_forms(results), "Measured (points) on the closed forms (lines)")
    s.table(
        results.comparisons,
        ["quantity", "power", "measured", "stderr", "expected", "z", "ok"],
        status_column="ok",
    )

    s = r.section("Decays and lifetimes")
    s.figure(fig_decays(streams, powers), "Decay histograms, all photons, normalised to the peak")
    rows = []
    for sim, fit in zip(results.sims, results.decay_fits, strict=True):
        rows.append(
            {
                "power": format_quantity(sim.power_w, "W"),
                "tau tail (ns)": None if fit is None else float(fit.tau_s[0]) * 1e9,
                "± (ns)": None if fit is None else float(fit.tau_stderr_s[0]) * 1e9,
                "chi2/dof": None if fit is None else fit.reduced_chi2,
            }
        )
    s.table(rows, caption="one-exponential fits of the tail (20-200 ns after the IRF peak)")

    s = r.section("Photon correlations g2")
    s.figure(fig_g2(streams, powers), "g2 between the two detectors, normalised to the side peaks")

    s = r.section("Spectra")
    s.figure(_fig_spectra(results), f"split at {cfg.split_m * 1e9:g} nm")

    s = r.section("Blinking QD: emission states")
    s.text(
        "Thresholds on the 10 ms intensity histogram (qdinfer.threshold_states, 3 states), "
        "then decay, lifetime and g2(0) per state (qdinfer.state_resolved). "
        f"Agreement with the simulator's true states: {100 * results.agreement:.1f} % of the time."
    )
    stream = results.blinking.stream
    r_fig = plot_state_trace(
        stream, results.states.trajectory, time_range_s=(0.0, min(20.0, cfg.blinking_duration_s))
    )
    s.figure(r_fig, "Intensity trace coloured by state (first 20 s) and its histogram")
    s.figure(plot_state_resolved(results.state_resolved), "Decays and g2 of each state")
    s.table(
        results.state_resolved.table(),
        [
            "state",
            "time_s",
            "n_photons",
            "rate_hz",
            "tau_s",
            "tau_stderr_s",
            "g2_zero",
            "g2_zero_stderr",
            "notes",
        ],
        caption="inferred states",
    )
    s.table(results.state_truth, caption="true states (simulator)")

    bayes = bayesian_section(r, results)
    r.provenance(
        seed=cfg.seed,
        configuration={
            **{k: v for k, v in asdict(cfg).items()},
            "paper_qd": "qdsim.presets.paper_qd()",
            "blinking_qd": "qdsim.presets.blinking_qd()",
        },
        bayesian_fits=(
            "run (qdinfer.models)"
            if bayes
            else "not run (--no-bayes, or numpyro / qdinfer.models missing)"
        ),
        timings_s={k: round(v, 2) for k, v in results.timings_s.items()},
    )
    if results.notes:
        r.provenance(notes=results.notes)
    return r


# -- command line -------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``demo`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "demo",
        help="simulate the paper's QD and a blinking QD, analyse them, write an HTML report",
        description=(
            "Simulate the paper's quantum dot over its power series (0.01, 0.02, 0.17, 1.8, "
            "4 uW) and a blinking dot, run the feature-resolved analysis, check it against "
            "the ground truth and write a self-contained report.html."
        ),
    )
    p.add_argument("--quick", action="store_true", help="short acquisitions (under a minute)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("qdlight_demo"),
        metavar="DIR",
        help="folder for report.html (default ./qdlight_demo)",
    )
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default {FULL.seed})")
    p.add_argument(
        "--duration",
        metavar="T",
        help="acquisition at every power (default: 600s at 10 nW down to 60s at 4 uW)",
    )
    p.add_argument(
        "--blinking-duration",
        metavar="T",
        help="acquisition of the blinking QD (default 300s; --quick 30s)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.add_argument(
        "--no-bayes", action="store_true", help="skip the Bayesian fits (numpyro; ~30 s)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_demo)
    return p


def _config_from_args(args: argparse.Namespace) -> DemoConfig:
    import dataclasses

    cfg = QUICK if args.quick else FULL
    changes: dict[str, Any] = {"bayesian": not args.no_bayes}
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed {args.seed} must be >= 0")
        changes["seed"] = args.seed
    for opt, key, lo in (
        ("--duration", "duration", 0.05),
        ("--blinking-duration", "blinking_duration", 1.0),
    ):
        text = getattr(args, key)
        if text is None:
            continue
        value = parse_quantity(text, "s", name=opt)
        if not (math.isfinite(value) and value >= lo):
            raise ValueError(f"{opt} {text!r} must be at least {format_quantity(lo, 's')}")
        if value > 3600:
            raise ValueError(f"{opt} {text!r} must be at most 1 h")
        if key == "duration":
            changes["durations_s"] = (value,) * len(cfg.powers_w)
        else:
            changes[f"{key}_s"] = value
    return dataclasses.replace(cfg, **changes)


def cmd_demo(args: argparse.Namespace) -> int:
    """``qdlight demo``: returns the exit status."""
    cfg = _config_from_args(args)
    out: Path = args.output
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: exists and is not a folder")
    path = out / "report.html"
    if path.exists() and not args.force:
        raise ValueError(f"-o {out}: {path} exists; pass --force to overwrite it")
    t0 = time.perf_counter()
    results = run_demo(cfg, progress=not args.no_progress)
    if cfg.bayesian and bayesian_available() and not args.no_progress:
        print("Bayesian fits (numpyro; compiling the models takes ~10 s each) ...", file=sys.stderr)
    report = build_report(results)
    report.write(path)
    elapsed = time.perf_counter() - t0
    ok = sum(1 for x in results.comparisons if x["ok"])
    checked = sum(1 for x in results.comparisons if x["ok"] is not None)
    print(
        f"wrote {path} in {elapsed:.0f} s: {ok}/{checked} checks within {Z_LIMIT:g} sigma, "
        f"states {100 * results.agreement:.1f} % right"
    )
    return 0
