"""Power series of measured files (a SERIES.toml), and the report sections they share.

A SERIES.toml lists the acquisitions of one emitter and their powers::

    [[point]]
    file = "qd1_0.17uW.ptu"   # relative to the TOML file
    power = "0.17uW"

:func:`measure_series` reads every file and measures it with
:func:`qdinfer.measure_power_point` (rate, lifetime, g2(0) ungated and gated);
:func:`add_series_sections` puts the power-series figures and tables into a
:class:`~qdlight.report.Report` (``qdlight demo`` uses the same sections for
its simulated series); :func:`series_report` is the report of ``qdlight
analyze SERIES.toml --report`` and, with the posterior added by
:mod:`qdlight.fit`, of ``qdlight fit SERIES.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qdio.units import format_quantity, parse_quantity

__all__ = [
    "MeasuredSeries",
    "SeriesPoint",
    "add_series_sections",
    "fig_decays",
    "fig_g2",
    "load_series",
    "measure_series",
    "series_report",
]

_COLOURS = ["#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#333333", "#66a61e", "#e6ab02"]


@dataclass(frozen=True)
class SeriesPoint:
    """One acquisition of a series: the file and its excitation power (W)."""

    file: Path
    power_w: float


def load_series(path: str | Path) -> list[SeriesPoint]:
    """The points of a SERIES.toml (``[[point]]`` tables with ``file`` and ``power``).

    Files are relative to the TOML's folder; points are returned in
    ascending power.  Errors name the TOML, the point and the key.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    points = doc.get("point")
    if not isinstance(points, list) or not points:
        raise ValueError(f"{path}: expected [[point]] tables with 'file' and 'power'")
    unknown = set(doc) - {"point"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} (only [[point]] tables)")
    out = []
    for i, pt in enumerate(points):
        where = f"{path}: point {i + 1}"
        if not isinstance(pt, dict):
            raise ValueError(f"{where} must be a [[point]] table with 'file' and 'power'")
        if "file" not in pt or "power" not in pt:
            raise ValueError(f"{where} needs 'file' and 'power'")
        extra = set(pt) - {"file", "power"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
        f = (path.parent / str(pt["file"])).resolve()
        if not f.is_file():
            raise FileNotFoundError(f"{where}: no such file {f}")
        if not isinstance(pt["power"], str):
            raise ValueError(f'{where}: power {pt["power"]!r} needs a unit, e.g. "0.17uW"')
        p = parse_quantity(pt["power"], "W", name=f"{where} power")
        if not (np.isfinite(p) and p > 0):
            raise ValueError(f"{where}: power {pt['power']!r} must be > 0")
        out.append(SeriesPoint(f, p))
    powers = [p.power_w for p in out]
    if len(set(powers)) != len(powers):
        raise ValueError(f"{path}: two points have the same power")
    return sorted(out, key=lambda p: p.power_w)


@dataclass
class MeasuredSeries:
    """The files of a series, their photons and the measured power-series table."""

    points: list[SeriesPoint]
    streams: list[Any]
    series: Any  # qdinfer.PowerSeries
    channels: tuple[int, int]
    gate_s: float | None

    @property
    def power_w(self) -> np.ndarray:
        return np.array([p.power_w for p in self.points])


def _busiest_pair(stream, path: Path) -> tuple[int, int]:
    counts = np.bincount(stream.channel)
    order = [int(c) for c in np.argsort(counts)[::-1] if counts[c] > 0]
    if len(order) < 2:
        raise ValueError(
            f"{path}: photons on {len(order)} channel(s) only; a power series correlates two "
            "detectors: pass --channels A,B (or measure with two detectors)"
        )
    return tuple(sorted(order[:2]))  # type: ignore[return-value]


def measure_series(
    points: Sequence[SeriesPoint] | str | Path,
    *,
    gate_s: float | None = 2.5e-9,
    channels: tuple[int, int] | None = None,
    n_exp: int = 1,
    irf=None,
    progress: bool = True,
) -> MeasuredSeries:
    """Read every file of a series and measure it (:func:`qdinfer.measure_power_point`).

    ``channels`` are the HBT pair (default: the two busiest channels of the
    first file).  Measurements a file cannot give (one channel, too few
    photons) are NaN with the reason in the table's notes.
    """
    import qdinfer
    import qdio

    if isinstance(points, str | Path):
        points = load_series(points)
    points = list(points)
    streams, measured = [], []
    it: Any = points
    if progress:
        from tqdm import tqdm

        it = tqdm(points, desc="power series", unit="file")
    for pt in it:
        stream = qdio.read(pt.file)
        if not stream.is_t3:
            raise ValueError(f"{pt.file}: a power series needs T3 data (laser sync), got T2")
        if channels is None:
            channels = _busiest_pair(stream, pt.file)
        streams.append(stream)
        measured.append(
            qdinfer.measure_power_point(
                stream, pt.power_w, channels=channels, gate_s=gate_s, n_exp=n_exp, irf=irf
            )
        )
    assert channels is not None
    return MeasuredSeries(points, streams, qdinfer.power_series(measured), channels, gate_s)


# -- figures ----------------------------------------------------------------------------------
def fig_decays(streams: Sequence[Any], powers_w: Sequence[float]):
    """Decay histograms of every power on one log axis, normalised to their peaks."""
    from matplotlib.figure import Figure

    import qdinfer

    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    xmax = 0.0
    for k, (stream, p) in enumerate(zip(streams, powers_w, strict=True)):
        width = max(512e-12, stream.microtime_resolution_s)
        width = stream.microtime_resolution_s * round(width / stream.microtime_resolution_s)
        d = qdinfer.decay_histogram(stream, bin_width_s=width)
        y = d.counts / max(d.counts.max(), 1)
        ax.semilogy(
            d.centers_s * 1e9,
            np.where(y > 0, y, np.nan),
            lw=0.9,
            color=_COLOURS[k % len(_COLOURS)],
            label=format_quantity(p, "W"),
        )
        xmax = max(xmax, d.period_s * 1e9)
    ax.set(xlabel="delay after sync (ns)", ylabel="counts (normalised)", ylim=(1e-4, 1.5))
    ax.set_xlim(0, min(300.0, xmax) if xmax else 300.0)
    ax.legend(frameon=False, title="power")
    ax.set_title("Decays over the power series")
    return fig


def fig_g2(streams: Sequence[Any], powers_w: Sequence[float], channels: tuple[int, int] = (0, 1)):
    """One g2 panel per power (two detectors, +-2.5 laser periods)."""
    from matplotlib.figure import Figure

    import qdinfer
    from qdinfer import plots

    n = len(streams)
    fig = Figure(figsize=(3.0 * n, 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    for ax, stream, p in zip(axes, streams, powers_w, strict=True):
        period = stream.laser_period_s
        try:
            h = qdinfer.g2_histogram(
                stream, channels=channels, max_lag_s=2.5 * period, bin_width_s=period / 40
            )
            plots.plot_g2(h, ax=ax)
        except ValueError as exc:
            ax.text(0.5, 0.5, str(exc), transform=ax.transAxes, ha="center", wrap=True)
        ax.set_title(format_quantity(p, "W"))
    return fig


def series_rows(series) -> list[dict[str, Any]]:
    """The power-series table as report rows (SI units)."""
    d = series.as_dict()
    return [{k: d[k][i] for k in d} for i in range(len(series))]


def add_series_sections(
    report, streams: Sequence[Any], series, *, channels: tuple[int, int] = (0, 1)
) -> None:
    """Power-series, decay and g2 sections (figures and tables) for ``report``."""
    from qdinfer import plots

    powers = list(series.power_w)
    s = report.section("Power series")
    s.text(
        "Rate, lifetime (longest component of the fit of all photons), g2(0) ungated and "
        "gated, and the red fraction of the spectrum against power. Regions: usual (rate "
        "grows as fast as the power), saturating, unusual (rate falls)."
    )
    s.figure(plots.plot_power_series(series), "Power series (qdinfer.plot_power_series)")
    s.table(series_rows(series), caption="power-series table (SI units)")
    report.section("Decays and lifetimes").figure(
        fig_decays(streams, powers), "Decay histograms, all photons, normalised to the peak"
    )
    report.section("Photon correlations g2").figure(
        fig_g2(streams, powers, channels),
        f"g2 between channels {channels[0]} and {channels[1]}, normalised to the side peaks",
    )


def series_report(
    measured: MeasuredSeries,
    *,
    source: str | Path,
    options: Mapping[str, Any],
    title: str = "qdlight analyze",
):
    """The report of a measured series (``qdlight analyze SERIES.toml --report``)."""
    from .report import Report

    r = Report(f"{title}: {Path(source).name}", subtitle=str(source))
    s = r.section("Summary")
    s.text(
        f"{len(measured.points)} acquisitions from "
        f"{format_quantity(measured.power_w.min(), 'W')} to "
        f"{format_quantity(measured.power_w.max(), 'W')}; g2 between channels "
        f"{measured.channels[0]} and {measured.channels[1]}"
        + (
            f", gated g2(0) with photons later than {format_quantity(measured.gate_s, 's')} "
            "after the IRF peak."
            if measured.gate_s is not None
            else "."
        )
    )
    s.table(
        [
            {
                "file": pt.file.name,
                "power": format_quantity(pt.power_w, "W"),
                "photons": len(st),
                "duration (s)": st.duration_s,
                "rate (/s)": rate,
                "g2(0)": g,
                "gated g2(0)": gg,
                "region": str(region),
            }
            for pt, st, rate, g, gg, region in zip(
                measured.points,
                measured.streams,
                measured.series.rate_hz,
                measured.series.g2_zero,
                measured.series.g2_zero_gated,
                measured.series.region,
                strict=True,
            )
        ]
    )
    notes = [f"{format_quantity(p, 'W')}: {n}" for p, ns in zip(
        measured.power_w, measured.series.notes, strict=False) for n in ns]  # fmt: skip
    if notes:
        s.text("; ".join(notes), note=True)
    add_series_sections(r, measured.streams, measured.series, channels=measured.channels)
    r.provenance(
        series=str(source),
        files={format_quantity(p.power_w, "W"): str(p.file) for p in measured.points},
        options=dict(options),
    )
    return r
