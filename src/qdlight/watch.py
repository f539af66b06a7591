"""``qdlight watch``: live analysis of a PTU file that is still being written.

:func:`add_parser` registers the subcommand and :func:`cmd_watch` runs it;
:func:`watch` is the loop itself.  A :class:`qdio.PtuFollower` reads only
the records appended since its last poll, an
:class:`qdinfer.accumulate.AnalysisAccumulator` adds them to the decay,
trace, rates and g2 accumulators (the same ones ``qdlight analyze`` uses),
and every ``--interval`` a compact block is shown: photon rate per channel
(mean and recent), the recent intensity trace, lifetimes (mean arrival time
at every refresh, a fit every few seconds), pulsed g2(0) ± its standard
error, ungated and with ``--gate``.  The loop ends when the file has not
grown for ``--idle``, when its header holds a final record count and every
record was read, or on Ctrl-C; a final summary is printed in every case.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import qdinfer
import qdio
from qdinfer.accumulate import AnalysisAccumulator, FileAnalysis
from qdio._util import atomic_write
from qdio.units import format_quantity

from ._options import delay_option, positive_option
from .analyze import _fmt, _jsonable, _parse_channels

__all__ = ["add_parser", "cmd_watch", "format_block", "format_line", "watch"]

FIRST_PHOTONS = 20_000  # photons the gate's IRF peaks and the pulse starts are taken from
FIT_EVERY_S = 5.0  # wall-clock seconds between lifetime fits
FIGURE_EVERY_S = 5.0  # wall-clock seconds between figure updates (at least --interval)
MAX_POLL_S = 0.25  # pause between polls that found nothing (at most --interval)
# records decoded per poll: chunks this small keep qdinfer.g2 on its serial kernels
# (its parallel ones, used above 1e5-2e5 photons, ran 3.6x slower overall on a busy
# 2-core machine: bench/bench_watch.py)
POLL_RECORDS = 1 << 17
SPARK_COLUMNS = 48
_SPARKS = "▁▂▃▄▅▆▇█"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``watch`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "watch",
        help="follow a PTU file while it is written: live rates, trace, lifetime, g2(0)",
        description=(
            "Follow a PTU file that the acquisition software is still writing: read only "
            "the new records at each poll and show photon rates, the recent intensity "
            "trace, lifetimes and pulsed g2(0) +- its standard error, updated in place. "
            "Stops when the file stops growing (--idle), when the header's record count "
            "is final and reached, or on Ctrl-C, and prints a final summary."
        ),
    )
    p.add_argument("file", type=Path, help="PTU file being written (T3 or T2)")
    p.add_argument(
        "--gate",
        metavar="DELAY",
        help="also measure with photons later than DELAY after each channel's IRF peak "
        "(e.g. 2.5ns): gated decay and gated g2(0)",
    )
    p.add_argument("--channels", metavar="A,B", help="channels to correlate (default: busiest two)")
    p.add_argument("--interval", default="1s", metavar="T", help="refresh every T (default 1s)")
    p.add_argument(
        "--idle",
        default="10s",
        metavar="T",
        help="stop when the file has not grown for T (default 10s; 0: run until Ctrl-C)",
    )
    p.add_argument("--trace-bin", default="10ms", metavar="T", help="trace bin (default 10ms)")
    p.add_argument(
        "--figure",
        type=Path,
        metavar="PNG",
        help="also keep a figure up to date (trace, decay, g2), with an HTML page beside it "
        "that reloads itself",
    )
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.add_argument(
        "-q",
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no live display, only the final summary",
    )
    p.set_defaults(func=cmd_watch)
    return p


# -- the loop ----------------------------------------------------------------


class _Stop:
    """Ctrl-C as a flag checked between polls, so accumulators never stop half-updated."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handler(self, signum, frame) -> None:
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Stop]:
        main = threading.current_thread() is threading.main_thread()
        if main:
            self._old = signal.signal(signal.SIGINT, self._handler)
        try:
            yield self
        finally:
            if main:
                signal.signal(signal.SIGINT, self._old)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def watch(
    path: str | Path,
    *,
    gate_s: float | None = None,
    g2_channels: tuple[int, int] | None = None,
    interval_s: float = 1.0,
    idle_s: float = 10.0,
    trace_bin_width_s: float = 10e-3,
    figure: Path | None = None,
    display: TextIO | None = None,
    tty: bool | None = None,
    first_photons: int = FIRST_PHOTONS,
) -> tuple[dict[str, Any], FileAnalysis | None]:
    """Follow ``path`` until it stops growing (or Ctrl-C); returns (summary, analysis).

    Parameters
    ----------
    path : path-like
        The PTU file being written.
    gate_s, g2_channels, trace_bin_width_s
        As for :func:`qdinfer.analyze_file`.
    interval_s : float
        Refresh period of the display (and the longest pause between polls
        is ``min(interval_s, 0.25 s)``).
    idle_s : float
        Stop when the file has not grown for this long (0: only Ctrl-C or a
        final header record count stop it).
    figure : Path, optional
        PNG kept up to date (every ``max(interval_s, 5 s)`` and at the end),
        with ``figure.with_suffix(".html")`` beside it.
    display : text stream, optional
        Where the live display goes (None: nowhere).
    tty : bool, optional
        Redraw a block in place with ANSI codes (default: ``display.isatty()``);
        otherwise one line per refresh.
    first_photons : int
        Photons collected before the gate's IRF peaks and the pulse starts
        are fixed (see :class:`qdinfer.accumulate.AnalysisAccumulator`).

    Returns
    -------
    summary : dict
        Plain JSON-able values, ``summary["stopped"]`` says why it ended
        ("idle", "finished" or "interrupted").
    analysis : FileAnalysis or None
        The accumulated results (None when no photon arrived).

    Raises
    ------
    QdioError
        Not a PTU file, a corrupt header, a file truncated or replaced while
        followed, or a header still incomplete when the file stopped growing.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s={interval_s!r} must be > 0")
    if not idle_s >= 0:
        raise ValueError(f"idle_s={idle_s!r} must be >= 0")
    acc = AnalysisAccumulator(
        gate_s=gate_s,
        g2_channels=g2_channels,
        trace_bin_width_s=trace_bin_width_s,
        min_first_photons=first_photons,
        path=path,
    )
    view = _View(display, tty)
    live = _Live(path, interval_s)
    poll_s = min(interval_s, MAX_POLL_S)
    figure_every = max(interval_s, FIGURE_EVERY_S)
    next_refresh = next_figure = time.monotonic()
    stopped = "idle"
    stop = _Stop()
    gate_checked = False
    with qdio.PtuFollower(path, max_records=POLL_RECORDS) as fol, stop.installed():
        try:
            while True:
                if stop.requested:
                    stopped = "interrupted"
                    break
                chunk = fol.poll()
                # judged right after the poll: the work below may take longer than --idle
                done = chunk is None and fol.finished
                idle = chunk is None and idle_s > 0 and fol.idle_s >= idle_s
                if chunk is not None:
                    if not gate_checked and len(chunk):
                        _check_gate(path, gate_s, chunk)
                        gate_checked = True
                    acc.add(chunk)
                now = time.monotonic()
                behind = chunk is not None and fol.backlog_records > 0
                if now >= next_refresh and (not behind or now >= next_refresh + interval_s):
                    view.show(live.summary(acc, fol))
                    next_refresh = now + interval_s
                    if figure is not None and now >= next_figure and live.res is not None:
                        _write_figure(figure, live, figure_every)
                        next_figure = now + figure_every
                if behind:
                    continue  # catch up before pausing
                if done:
                    stopped = "finished"
                    break
                if idle:
                    break
                if chunk is None:
                    _sleep(max(0.0, min(poll_s, next_refresh - time.monotonic())))
        except KeyboardInterrupt:
            stopped = "interrupted"
        acc.flush()
        live.summary(acc, fol, final=True)
        if stopped == "idle" and fol.source is None:
            view.close()
            raise qdio.QdioError(
                f"{path}: no complete PTU header after {fol.idle_s:.3g} s without growth "
                f"(file is {fol.size} bytes)"
            )
    live.last["stopped"] = stopped
    if figure is not None and live.res is not None:
        live.last["figure"] = str(figure)
        _write_figure(figure, live, 0)
    view.close()
    return live.last, live.res


class _Live:
    """Turns the accumulators' state into a summary dict (with recent rates and fits)."""

    def __init__(self, path, interval_s: float) -> None:
        self.path = str(path)
        self.t0 = time.monotonic()
        self.prev: tuple[float, dict[int, int]] | None = None
        self.fits: dict[int, Any] = {}
        self.fit_at = -math.inf
        self.res: FileAnalysis | None = None
        self.last: dict[str, Any] = {}

    def summary(self, acc: AnalysisAccumulator, fol, *, final: bool = False) -> dict[str, Any]:
        src = fol.source
        out: dict[str, Any] = {
            "file": self.path,
            "format": None if src is None else src.format,
            "record_type": None if src is None else src.attrs.get("record_type"),
            "measurement_mode": None if src is None else src.attrs.get("measurement_mode"),
            "wall_time_s": time.monotonic() - self.t0,
            "file_bytes": fol.size,
            "records_read": fol.n_records,
            "record_bytes_read": fol.bytes_read,
            "backlog_records": fol.backlog_records,
            "idle_s": fol.idle_s,
            "n_photons": acc.n_photons + acc.n_pending,
            "gate_s": acc.gate_s,
        }
        if not acc.started:
            out["waiting"] = (
                "for the PTU header"
                if src is None
                else f"for photons ({acc.n_pending:,} of {acc.min_first_photons:,})"
            )
            self.last = out
            return out
        res = self.res = acc.result()
        acquired = acc.trace.span_s()[1]
        out["acquired_s"] = acquired
        out["duration_s"] = res.rates.duration_s
        counts = res.rates.counts
        recent = dict(res.rates.rate_hz)
        if self.prev is not None and acquired > self.prev[0]:
            dt = acquired - self.prev[0]
            recent = {c: (n - self.prev[1].get(c, 0)) / dt for c, n in counts.items()}
        if not final:
            self.prev = (acquired, dict(counts))
        out["channels"] = {
            str(c): {
                "photons": n,
                "rate_hz": res.rates.rate_hz[c],
                "rate_stderr_hz": res.rates.rate_stderr_hz[c],
                "recent_rate_hz": recent.get(c, 0.0),
            }
            for c, n in counts.items()
        }
        out["trace"] = _trace_summary(res.trace)
        if res.is_t3:
            now = time.monotonic()
            if final or now - self.fit_at >= FIT_EVERY_S:
                self.fits = _fit_lifetimes(res.decays)
                self.fit_at = now
            out["decays"] = _decay_summary(res, self.fits)
        out["g2"] = _g2_summary(res)
        out["skipped"] = dict(res.skipped)
        out["first_chunk_photons"] = res.first_chunk_photons
        self.last = out
        return out


def _trace_summary(trace) -> dict[str, Any]:
    """Recent part of the trace, in coarser bins (about 0.1 s) for a sparkline."""
    w = trace.bin_width_s
    out: dict[str, Any] = {"bin_width_s": w, "n_bins": len(trace)}
    if not len(trace):
        return out
    k = max(1, round(0.1 / w))
    n = len(trace) // k
    coarse = trace.counts[len(trace) - n * k :].reshape(n, k).sum(axis=1)[-SPARK_COLUMNS:]
    out["recent_bin_width_s"] = k * w
    out["recent_rate_hz"] = (coarse / (k * w)).tolist()
    return out


def _fit_lifetimes(decays: dict[int, Any]) -> dict[int, Any]:
    fits = {}
    for c, decay in decays.items():
        try:
            fits[c] = qdinfer.fit_decay(decay, n_exp=1)
        except ValueError as exc:
            fits[c] = str(exc)
    return fits


def _decay_summary(res: FileAnalysis, fits: dict[int, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c, decay in res.decays.items():
        entry: dict[str, Any] = {"photons": decay.n_photons}
        if c in res.gated_decays:
            entry["gated_photons"] = res.gated_decays[c].n_photons
        try:
            m = qdinfer.mean_arrival_time(decay)
            entry.update(mean_delay_s=m.mean_delay_s, mean_delay_stderr_s=m.stderr_s)
            entry["tau_mean_delay_s"] = m.tau_s
        except ValueError as exc:
            entry["mean_delay_skipped"] = str(exc)
        fit = fits.get(c)
        if isinstance(fit, str):
            entry["fit_skipped"] = fit
        elif fit is not None:
            entry.update(
                tau_s=float(fit.tau_s[0]),
                tau_stderr_s=float(fit.tau_stderr_s[0]),
                reduced_chi2=fit.reduced_chi2,
                fit_photons=fit.decay.n_photons,
            )
        out[str(c)] = entry
    return out


def _g2_summary(res: FileAnalysis) -> dict[str, Any] | None:
    if res.g2 is None:
        return None
    g2 = res.g2
    out: dict[str, Any] = {
        "channels": list(res.g2_channels),
        "max_lag_s": float(g2.edges_s[-1]),
        "bin_width_s": g2.bin_width_s,
        "coincidences": int(g2.counts.sum()),
    }
    for key in ("g2_zero", "g2_zero_gated"):
        p = getattr(res, key)
        if p is not None:
            out[key] = p.value
            out[key + "_stderr"] = p.stderr
            out[key + "_centre_counts"] = p.centre_counts
            out[key + "_mean_side_counts"] = p.mean_side_counts
    if not res.is_t3:  # continuous wave: normalised g2 of the two bins around lag 0
        i = int(np.searchsorted(g2.edges_s, 0.0))
        near = g2.g2[max(i - 1, 0) : i + 1]
        out["g2_near_zero"] = float(np.nanmean(near)) if np.any(np.isfinite(near)) else None
    return out


# -- display -----------------------------------------------------------------


def _sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(_SPARKS[0 if span == 0 else min(7, int((v - lo) / span * 8))] for v in values)


def _pm(value: float | None, err: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g} ± {err:.2g}" if err is not None and math.isfinite(err) else f"{value:.4g}"


def _tau_text(d: dict[str, Any]) -> str:
    parts = []
    if "tau_s" in d:
        parts.append(f"tau {_fmt(d['tau_s'], 's', d['tau_stderr_s'])} (fit)")
    if "tau_mean_delay_s" in d:
        parts.append(f"mean delay {_fmt(d['mean_delay_s'], 's', d['mean_delay_stderr_s'])}")
    return "; ".join(parts) or d.get("fit_skipped", "no lifetime yet")


def format_block(summary: dict[str, Any]) -> str:
    """The summary as an aligned block of lines (the live display and the final summary)."""
    lines = []
    add = lines.append
    kind = " ".join(str(x) for x in (summary.get("format"), summary.get("record_type")) if x)
    state = summary.get("stopped") or f"idle {summary['idle_s']:.1f} s"
    add(
        f"{'file':<14}{summary['file']} ({kind or 'no header yet'}); "
        f"{summary['file_bytes']:,} bytes, {summary['records_read']:,} records read, {state}"
    )
    if "waiting" in summary:
        add(f"{'waiting':<14}{summary['waiting']}")
        return "\n".join(lines)
    behind = summary["backlog_records"]
    add(
        f"{'photons':<14}{summary['n_photons']:,} in {_fmt(summary['acquired_s'], 's')} "
        f"acquired" + (f" ({behind:,} records behind)" if behind else "")
    )
    for c, ch in summary.get("channels", {}).items():
        add(
            f"{'channel ' + c:<14}{ch['photons']:,} photons, mean "
            f"{_fmt(ch['rate_hz'], 'Hz', ch['rate_stderr_hz'])}, now "
            f"{_fmt(ch['recent_rate_hz'], 'Hz')}"
        )
    tr = summary.get("trace", {})
    if tr.get("recent_rate_hz"):
        r = tr["recent_rate_hz"]
        add(
            f"{'trace':<14}{_sparkline(r)}  last {_fmt(len(r) * tr['recent_bin_width_s'], 's')}, "
            f"{_fmt(min(r), 'Hz')} .. {_fmt(max(r), 'Hz')}"
        )
    for c, d in summary.get("decays", {}).items():
        gated = f"; {d['gated_photons']:,} gated" if "gated_photons" in d else ""
        add(f"{'decay ch ' + c:<14}{d['photons']:,} photons{gated}; {_tau_text(d)}")
    g2 = summary.get("g2")
    if g2 is not None:
        chans = ",".join(map(str, g2["channels"]))
        if "g2_zero" in g2:
            add(
                f"{'g2(0) ' + chans:<14}{_pm(g2['g2_zero'], g2['g2_zero_stderr'])} "
                f"(centre {g2['g2_zero_centre_counts']} / mean side "
                f"{g2['g2_zero_mean_side_counts']:.4g})"
            )
        if "g2_zero_gated" in g2:
            add(
                f"{'gated g2(0)':<14}{_pm(g2['g2_zero_gated'], g2['g2_zero_gated_stderr'])} "
                f"(gate {_fmt(summary['gate_s'], 's')} after the IRF peak)"
            )
        if "g2_near_zero" in g2:
            add(
                f"{'g2 ' + chans:<14}{g2['coincidences']:,} coincidences; g2 at lag 0 "
                f"± {_fmt(g2['bin_width_s'], 's')}: {_pm(g2['g2_near_zero'], None)}"
            )
    for key, why in summary.get("skipped", {}).items():
        add(f"{key:<14}skipped: {why}")
    if summary.get("figure"):
        add(f"{'figure':<14}{summary['figure']}")
    return "\n".join(lines)


def format_line(summary: dict[str, Any]) -> str:
    """The summary as one line (the display when the output is not a terminal)."""
    head = f"[{summary['wall_time_s']:7.1f} s] {summary['records_read']:,} records"
    if "waiting" in summary:
        return f"{head}; waiting {summary['waiting']}"
    parts = [f"{head}, {summary['n_photons']:,} photons in {_fmt(summary['acquired_s'], 's')}"]
    chans = summary.get("channels", {})
    parts.append(" ".join(f"ch{c} {_fmt(ch['recent_rate_hz'], 'Hz')}" for c, ch in chans.items()))
    for c, d in summary.get("decays", {}).items():
        if "tau_s" in d:
            parts.append(f"tau{c} {format_quantity(d['tau_s'], 's')}")
    g2 = summary.get("g2") or {}
    if "g2_zero" in g2:
        parts.append(f"g2(0) {_pm(g2['g2_zero'], g2['g2_zero_stderr'])}")
    if "g2_zero_gated" in g2:
        parts.append(f"gated {_pm(g2['g2_zero_gated'], g2['g2_zero_gated_stderr'])}")
    if summary["backlog_records"]:
        parts.append(f"{summary['backlog_records']:,} records behind")
    return "; ".join(parts)


class _View:
    """The live display: a block redrawn in place (terminal) or one line per refresh."""

    def __init__(self, out: TextIO | None, tty: bool | None) -> None:
        self.out = out
        self.tty = bool(out is not None and (out.isatty() if tty is None else tty))
        self.height = 0

    def show(self, summary: dict[str, Any]) -> None:
        if self.out is None:
            return
        if self.tty:
            # lines cut to the terminal's width: a wrapped line would break the redraw
            width = max(20, shutil.get_terminal_size().columns - 1)
            block = "\n".join(line[:width] for line in format_block(summary).splitlines())
            # cursor up to the start of the previous block, clear to the end of the screen
            prefix = f"\x1b[{self.height}F\x1b[J" if self.height else ""
            self.out.write(prefix + block + "\n")
            self.height = block.count("\n") + 1
        else:
            self.out.write(format_line(summary) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Remove the live block, so the final summary takes its place."""
        if self.out is not None and self.tty and self.height:
            self.out.write(f"\x1b[{self.height}F\x1b[J")
            self.out.flush()
        self.height = 0


# -- figure ------------------------------------------------------------------


def _write_figure(png: Path, live: _Live, refresh_s: float) -> None:
    """Trace, decay and g2 in one PNG (written atomically) and a self-reloading HTML page."""
    from matplotlib.figure import Figure

    from qdinfer import plots

    res, summary = live.res, live.last
    fig = Figure(figsize=(10, 7), layout="constrained")
    axd = fig.subplot_mosaic([["trace", "trace"], ["decay", "g2"]])
    plots.plot_trace(res.trace, histogram=False, ax=axd["trace"])
    axd["trace"].set_title(f"{Path(summary['file']).name}: {res.n_photons:,} photons")
    if res.decays:  # the busiest channel, with its latest fit
        c = max(res.decays, key=lambda k: res.decays[k].n_photons)
        fit = live.fits.get(c)
        if isinstance(fit, str) or (
            fit is not None and fit.decay.n_photons != res.decays[c].n_photons
        ):
            fit = None  # a fit of fewer photons than shown: the decay alone
        plots.plot_decay(res.decays[c], fit=fit, ax=axd["decay"])
    else:
        axd["decay"].text(
            0.5, 0.5, "T2 data: no decay", ha="center", transform=axd["decay"].transAxes
        )
    if res.g2 is not None:
        plots.plot_g2(res.g2, pulsed=res.g2_zero, ax=axd["g2"])
    else:
        why = res.skipped.get("g2", "no g2")
        axd["g2"].text(0.5, 0.5, why[:60], ha="center", transform=axd["g2"].transAxes)
    with atomic_write(png) as f:
        fig.savefig(f, format="png", dpi=90)
    fig.clear()
    meta = f'<meta http-equiv="refresh" content="{max(1, round(refresh_s))}">' if refresh_s else ""
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">" + meta
        + f"<title>qdlight watch {html.escape(Path(summary['file']).name)}</title></head>"
        "<body style=\"font-family: sans-serif\">"
        f"<img src=\"{html.escape(png.name)}\" style=\"max-width: 100%\">"
        f"<pre>{html.escape(format_block(summary))}</pre></body></html>\n"
    )  # fmt: skip
    with atomic_write(png.with_suffix(".html")) as f:
        f.write(page.encode("utf-8"))


def _check_gate(path, gate_s: float | None, chunk) -> None:
    """Refuse a gate the data cannot have, as soon as the first records are read."""
    if gate_s is None:
        return
    if not chunk.is_t3:
        raise ValueError(f"{path}: --gate needs T3 data (delays after the laser); this is T2")
    if gate_s >= chunk.laser_period_s:
        raise ValueError(
            f"{path}: --gate {format_quantity(gate_s, 's')} is not shorter than the laser "
            f"period {format_quantity(chunk.laser_period_s, 's')}"
        )


# -- command -----------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    """``qdlight watch``: returns the exit status (errors raise ValueError, one line)."""
    gate_s = delay_option(args.gate, "--gate")
    interval = positive_option(args.interval, "s", "--interval")
    idle = delay_option(args.idle, "--idle", " (0: until Ctrl-C)")
    trace_bin = positive_option(args.trace_bin, "s", "--trace-bin")
    if args.figure is not None and args.figure.suffix.lower() != ".png":
        raise ValueError(f"--figure {args.figure}: use a .png file name")
    if args.figure is not None and not args.figure.parent.is_dir():
        raise FileNotFoundError(
            f"--figure {args.figure}: the folder {args.figure.parent} does not exist"
        )
    if not args.file.is_file():
        raise FileNotFoundError(f"{args.file}: no such file")
    display = None if args.quiet else (sys.stderr if args.json else sys.stdout)
    summary, _ = watch(
        args.file,
        gate_s=gate_s,
        g2_channels=_parse_channels(args.channels),
        interval_s=interval,
        idle_s=idle,
        trace_bin_width_s=trace_bin,
        figure=args.figure,
        display=display,
    )
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
    else:
        print(format_block(summary))
    return 0
