"""``qdlight analyze``: decays, lifetimes, trace, rates and g2 of one file, with figures.

:func:`add_parser` registers the subcommand on the ``qdlight`` parser and
:func:`cmd_analyze` runs it: one pass over the file in bounded chunks
(:func:`qdinfer.analyze_file`), lifetime fits per channel, pulsed g2(0)
ungated and (with ``--gate``) gated, optional emission states, a printed
summary (or ``--json``) and PNG figures in ``-o DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

import qdinfer
from qdio.units import format_quantity

from ._options import delay_option, positive_option

__all__ = ["add_parser", "analyze", "cmd_analyze", "format_summary"]

log = logging.getLogger("qdlight.analyze")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``analyze`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "analyze",
        help="decays, lifetimes, intensity trace, rates and g2 of a TTTR file, with figures",
        description=(
            "Analyse a TTTR file in one pass (bounded memory): decay and lifetime fit per "
            "channel, intensity trace, photon rates, g2 between the two busiest channels "
            "and pulsed g2(0) (T3). Prints a summary and writes PNG figures."
        ),
    )
    p.add_argument(
        "file",
        type=Path,
        help="PTU, PT3, HT3, T3R, SPC, Photon-HDF5, ... file, or a SERIES.toml of files and "
        "powers (power-series table, figure and report)",
    )
    p.add_argument(
        "--gate",
        metavar="DELAY",
        help="also measure with photons later than DELAY after each channel's IRF peak "
        "(e.g. 2.5ns): gated decay and gated g2(0)",
    )
    p.add_argument(
        "--states",
        metavar="auto|N",
        help="classify emission states (thresholds on the 10 ms trace; 'auto' picks the "
        "number) and measure each; reads the whole file into memory",
    )
    p.add_argument("--irf", type=Path, metavar="FILE", help="IRF reference measurement")
    p.add_argument(
        "--n-exp", type=int, choices=[1, 2, 3], default=1, help="exponentials in the fits"
    )
    p.add_argument("--channels", metavar="A,B", help="channels to correlate (default: busiest two)")
    p.add_argument("--trace-bin", default="10ms", metavar="T", help="trace bin (default 10ms)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "-o", "--output", type=Path, metavar="DIR", help="figure folder (default: ./STEM_qdlight)"
    )
    p.add_argument("--no-figures", action="store_true", help="do not write figures")
    p.add_argument(
        "--report", type=Path, metavar="HTML", help="also write a self-contained HTML report"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_analyze)
    return p


def _parse_channels(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(x) for x in text.replace(" ", "").split(","))
    except ValueError as exc:
        raise ValueError(f"--channels {text!r}: expected two channel numbers like 0,1") from exc
    return a, b


def _parse_states(text: str | None) -> int | str | None:
    if text is None:
        return None
    if text == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError as exc:
        raise ValueError(f"--states {text!r}: expected 'auto' or a number of states") from exc
    if not 1 <= n <= 8:
        raise ValueError(f"--states {text!r}: the number of states must be 1..8")
    return n


def analyze(
    path: Path,
    *,
    gate_s: float | None = None,
    irf_path: Path | None = None,
    n_exp: int = 1,
    g2_channels: tuple[int, int] | None = None,
    trace_bin_width_s: float = 10e-3,
    states: int | str | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the analysis; returns (summary as plain JSON-able dict, result objects)."""
    irf = qdinfer.irf_from_file(irf_path) if irf_path is not None else None
    res = qdinfer.analyze_file(
        path,
        gate_s=gate_s,
        g2_channels=g2_channels,
        trace_bin_width_s=trace_bin_width_s,
        progress=progress,
    )
    objects: dict[str, Any] = {"analysis": res, "fits": {}, "irf": irf}
    a = res.attrs
    summary: dict[str, Any] = {
        "file": str(path),
        "format": a.get("format"),
        "record_type": a.get("record_type"),
        "measurement_mode": "T3" if res.is_t3 else "T2",
        "n_photons": res.n_photons,
        "duration_s": res.rates.duration_s,
        "channels": {
            str(c): {
                "photons": n,
                "rate_hz": res.rates.rate_hz[c],
                "rate_stderr_hz": res.rates.rate_stderr_hz[c],
            }
            for c, n in res.rates.counts.items()
        },
        "trace": {
            "bin_width_s": trace_bin_width_s,
            "n_bins": len(res.trace),
            "mean_counts": float(res.trace.counts.mean()) if len(res.trace) else 0.0,
            "max_counts": int(res.trace.counts.max()) if len(res.trace) else 0,
        },
        "gate_s": gate_s,
        "decays": {},
        "g2": None,
        "skipped": dict(res.skipped),
    }
    if res.is_t3:
        summary["sync_period_s"] = next(iter(res.decays.values())).period_s if res.decays else None
        for c, decay in res.decays.items():
            entry: dict[str, Any] = {"photons": decay.n_photons}
            try:
                fit = qdinfer.fit_decay(decay, n_exp=n_exp, irf=irf)
                objects["fits"][c] = fit
                entry.update(
                    tau_s=fit.tau_s.tolist(),
                    tau_stderr_s=fit.tau_stderr_s.tolist(),
                    intensity_fractions=fit.intensity_fractions.tolist(),
                    background_per_bin=fit.background_per_bin,
                    reduced_chi2=fit.reduced_chi2,
                    irf=fit.irf.source if fit.irf is not None else None,
                    converged=fit.success,
                )
            except ValueError as exc:
                entry["fit_skipped"] = str(exc)
            try:
                m = qdinfer.mean_arrival_time(decay, irf=irf)
                entry["mean_delay_s"] = m.mean_delay_s
                entry["mean_delay_stderr_s"] = m.stderr_s
            except ValueError as exc:
                entry["mean_delay_skipped"] = str(exc)
            summary["decays"][str(c)] = entry
    if res.g2 is not None:
        g2: dict[str, Any] = {
            "channels": list(res.g2_channels),
            "max_lag_s": float(res.g2.edges_s[-1]),
            "bin_width_s": res.g2.bin_width_s,
            "coincidences": int(res.g2.counts.sum()),
        }
        for key in ("g2_zero", "g2_zero_gated"):
            p = getattr(res, key)
            if p is not None:
                g2[key] = p.value
                g2[key + "_stderr"] = p.stderr
                g2[key + "_centre_counts"] = p.centre_counts
                g2[key + "_mean_side_counts"] = p.mean_side_counts
                g2[key + "_side_uniformity_pvalue"] = p.side_uniformity_pvalue
        if not res.is_t3:
            far = res.g2.g2[np.abs(res.g2.centers_s) > 0.5 * res.g2.edges_s[-1]]
            g2["g2_far_mean"] = float(np.nanmean(far)) if far.size else None
        summary["g2"] = g2
    if states is not None:
        summary["states"] = _states(path, states, irf, n_exp, res, objects)
    return summary, objects


def _states(path, n_states, irf, n_exp, res, objects) -> Any:
    try:
        from qdinfer.states import state_resolved, threshold_states
    except ImportError as exc:  # pragma: no cover - the states module ships with qdinfer
        raise ValueError(f"--states: state analysis is not available ({exc})") from exc
    import qdio

    stream = qdio.read(path)
    ts = threshold_states(stream, n_states=n_states)
    sr = state_resolved(stream, ts.trajectory, irf=irf, n_exp=n_exp, g2_channels=res.g2_channels)
    objects["stream"] = stream
    objects["states"] = (ts, sr)
    return {"method": ts.method, "thresholds_hz": ts.thresholds_hz.tolist(), "table": sr.table()}


def _fmt(value: float | None, unit: str, err: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    text = format_quantity(value, unit)
    if err is not None and math.isfinite(err):
        scale = text.split()[-1] if unit else ""
        num = float(text.split()[0])
        factor = value / num if num else 1.0
        return f"{num:.4g} ± {err / factor:.2g} {scale}".rstrip()
    return text


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned text lines."""
    lines = []
    add = lines.append
    mode = summary["measurement_mode"]
    kind = " ".join(str(x) for x in (summary.get("format"), summary.get("record_type")) if x)
    add(f"{'file':<14}{summary['file']} ({kind or mode})")
    add(f"{'photons':<14}{summary['n_photons']:,} in {_fmt(summary['duration_s'], 's')}")
    for c, ch in summary["channels"].items():
        add(
            f"{'channel ' + c:<14}{ch['photons']:,} photons, "
            f"{_fmt(ch['rate_hz'], 'Hz', ch['rate_stderr_hz'])}"
        )
    tr = summary["trace"]
    add(
        f"{'trace':<14}{tr['n_bins']} bins of {_fmt(tr['bin_width_s'], 's')}: mean "
        f"{tr['mean_counts']:.3g}, max {tr['max_counts']} photons per bin"
    )
    for c, d in summary.get("decays", {}).items():
        if "tau_s" in d:
            taus = ", ".join(
                _fmt(t, "s", e) for t, e in zip(d["tau_s"], d["tau_stderr_s"], strict=True)
            )
            frac = ""
            if len(d["tau_s"]) > 1:
                frac = (
                    " (fractions " + ", ".join(f"{f:.2f}" for f in d["intensity_fractions"]) + ")"
                )
            add(
                f"{'decay ch ' + c:<14}tau = {taus}{frac}; chi2/dof {d['reduced_chi2']:.3g}; "
                f"IRF: {d['irf']}"
            )
        else:
            add(f"{'decay ch ' + c:<14}{d['photons']:,} photons; no fit: {d.get('fit_skipped')}")
    g2 = summary.get("g2")
    if g2 is not None:
        chans = ",".join(map(str, g2["channels"]))
        if "g2_zero" in g2:
            add(
                f"{'g2(0) ' + chans:<14}{g2['g2_zero']:.4g} ± {g2['g2_zero_stderr']:.2g} "
                f"(centre {g2['g2_zero_centre_counts']} / mean side "
                f"{g2['g2_zero_mean_side_counts']:.4g}, near side peaks)"
            )
            if g2["g2_zero_side_uniformity_pvalue"] < 1e-3:
                add(
                    f"{'':<14}warning: the side peaks differ (p = "
                    f"{g2['g2_zero_side_uniformity_pvalue']:.2g}): blinking or dead time; "
                    "see the g2 figure"
                )
        if "g2_zero_gated" in g2:
            add(
                f"{'gated g2(0)':<14}{g2['g2_zero_gated']:.4g} ± {g2['g2_zero_gated_stderr']:.2g} "
                f"(gate {_fmt(summary['gate_s'], 's')} after the IRF peak)"
            )
        if g2.get("g2_far_mean") is not None:
            add(
                f"{'g2 ' + chans:<14}mean normalised g2 at the longest lags {g2['g2_far_mean']:.4g}"
            )
    for key, why in summary.get("skipped", {}).items():
        add(f"{key:<14}skipped: {why}")
    st = summary.get("states")
    if st:
        for row in st["table"]:
            tau = _fmt(row["tau_s"], "s", row["tau_stderr_s"]) if row["tau_s"] else "n/a"
            g = f"{row['g2_zero']:.3g}" if row["g2_zero"] is not None else "n/a"
            add(
                f"{'state ' + row['state']:<14}{row['time_s']:.3g} s, "
                f"{_fmt(row['rate_hz'], 'Hz')}, tau {tau}, g2(0) {g}"
            )
    if summary.get("figures"):
        add(f"{'figures':<14}" + ", ".join(summary["figures"]))
    if summary.get("report"):
        add(f"{'report':<14}{summary['report']}")
    return "\n".join(lines)


def _write_figures(out: Path, stem: str, summary, objects) -> list[str]:
    from qdinfer import plots

    out.mkdir(parents=True, exist_ok=True)
    res = objects["analysis"]
    written = []

    def save(fig, name):
        path = out / name
        fig.savefig(path, dpi=120)
        written.append(str(path))

    for c, decay in res.decays.items():
        fit = objects["fits"].get(c)
        save(plots.plot_decay(fit if fit is not None else decay), f"{stem}_decay_ch{c}.png")
    save(plots.plot_trace(res.trace), f"{stem}_trace.png")
    if res.g2 is not None:
        save(plots.plot_g2(res.g2, pulsed=res.g2_zero), f"{stem}_g2.png")
    if res.g2_gated is not None:
        save(plots.plot_g2(res.g2_gated, pulsed=res.g2_zero_gated), f"{stem}_g2_gated.png")
    if "states" in objects:
        try:
            from qdinfer.plots_states import plot_state_resolved, plot_state_trace
        except ImportError:  # pragma: no cover
            return written
        ts, sr = objects["states"]
        save(plot_state_trace(objects["stream"], ts.trajectory), f"{stem}_states_trace.png")
        save(plot_state_resolved(sr), f"{stem}_states.png")
    return written


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def cmd_analyze(args: argparse.Namespace) -> int:
    """``qdlight analyze``: returns the exit status (errors raise ValueError, one line)."""
    gate_s = delay_option(args.gate, "--gate")
    trace_bin = positive_option(args.trace_bin, "s", "--trace-bin")
    if args.irf is not None and not args.irf.is_file():
        raise FileNotFoundError(f"--irf {args.irf}: no such file")
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--report {args.report}: use a .html file name")
    if args.file.suffix.lower() == ".toml":
        return _analyze_series(args, gate_s)
    summary, objects = analyze(
        args.file,
        gate_s=gate_s,
        irf_path=args.irf,
        n_exp=args.n_exp,
        g2_channels=_parse_channels(args.channels),
        trace_bin_width_s=trace_bin,
        states=_parse_states(args.states),
        progress=not args.no_progress and not args.json,
    )
    if not args.no_figures:
        out = args.output if args.output is not None else Path(f"{args.file.stem}_qdlight")
        summary["figures"] = _write_figures(out, args.file.stem, summary, objects)
    if args.report is not None:
        from .report import analysis_report

        options = {k: v for k, v in vars(args).items() if k != "func"}
        analysis_report(summary, objects, options=options).write(args.report)
        summary["report"] = str(args.report)
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
    else:
        print(format_summary(summary))
    return 0


def _analyze_series(args: argparse.Namespace, gate_s: float | None) -> int:
    """``qdlight analyze SERIES.toml``: the power-series table, figure and report."""
    from qdinfer import plots
    from qdio._util import atomic_path

    from .series import measure_series, series_report, series_rows

    if args.states is not None:
        raise ValueError("--states applies to one file, not to a SERIES.toml")
    irf = qdinfer.irf_from_file(args.irf) if args.irf is not None else None
    measured = measure_series(
        args.file,
        gate_s=gate_s,
        channels=_parse_channels(args.channels),
        n_exp=args.n_exp,
        irf=irf,
        progress=not args.no_progress and not args.json,
    )
    rows = series_rows(measured.series)
    summary: dict[str, Any] = {
        "series": str(args.file),
        "files": [str(p.file) for p in measured.points],
        "channels": list(measured.channels),
        "gate_s": gate_s,
        "points": rows,
    }
    if not args.no_figures:
        out = args.output if args.output is not None else Path(f"{args.file.stem}_qdlight")
        out.mkdir(parents=True, exist_ok=True)
        fig = plots.plot_power_series(measured.series)
        path = out / f"{args.file.stem}_power_series.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        summary["figures"] = [str(path)]
    if args.report is not None:
        options = {k: v for k, v in vars(args).items() if k != "func"}
        series_report(measured, source=args.file, options=options).write(args.report)
        summary["report"] = str(args.report)
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
        return 0
    print(f"{args.file}: {len(rows)} powers, g2 between channels {measured.channels}")
    print(f"  {'power':>10} {'rate':>12} {'tau':>10} {'g2(0)':>14} {'gated g2(0)':>14}  region")
    for r in rows:
        print(
            f"  {format_quantity(r['power_w'], 'W'):>10} "
            f"{format_quantity(r['rate_hz'], 'Hz'):>12} {_fmt(r['tau_s'], 's'):>10} "
            f"{_pm(r['g2_zero'], r['g2_zero_stderr']):>14} "
            f"{_pm(r['g2_zero_gated'], r['g2_zero_gated_stderr']):>14}  {r['region']}"
        )
    for key in ("figures", "report"):
        if key in summary:
            print(f"  {key}: {summary[key]}")
    return 0


def _pm(value: float, err: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}+-{err:.3f}"
