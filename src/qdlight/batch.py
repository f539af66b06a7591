"""``qdlight batch``: many emitters x powers, analysed and fitted on Dask, one table.

A manifest (TOML, docs/batch.md) lists emitters: real files per power, or
simulated setups (a preset or setup TOML with powers, duration and seed),
or populations of ``count`` simulated emitters whose parameters are drawn
from stated distributions.  :func:`load_manifest` reads and checks it
(every message names the manifest, the emitter and the key).
:func:`run_batch` runs one task per (emitter, power), the model-free
analysis of :func:`qdlight.analyze.analyze` (simulated points are first
written as PTU files, so both kinds take the same path), then one task per
emitter, the power-series fit (:func:`qdinfer.models.fit_power_series`),
which depends on that emitter's point tasks.  Tasks run through
:mod:`qdlight._dask`: results written per task, a rerun resumes, failing
tasks are retried.  A corrupt file gives its row an ``error`` and the batch
goes on.  The end products are ``table.csv`` / ``table.parquet`` (one row
per emitter and power, with the emitter's fit columns) and ``report.html``
with population histograms and, for simulated emitters, estimates against
the truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import re
import sys
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qdio.units import format_quantity, parse_quantity

from . import _dask

__all__ = [
    "FIT_PARAMS",
    "SPREAD_PARAMS",
    "BatchOptions",
    "BatchResult",
    "EmitterSpec",
    "Manifest",
    "add_parser",
    "analyze_point",
    "batch_report",
    "batch_tasks",
    "cmd_batch",
    "fit_emitter",
    "load_manifest",
    "run_batch",
]

log = logging.getLogger("qdlight.batch")

FITS = ("none", "rate", "joint")
# plausible ranges of manifest values (a wavelength of "405" is 405 m)
WAVELENGTH_RANGE_M = (100e-9, 5e-6)
MAX_NA = 1.7  # oil / solid immersion
MAX_DURATION_S = 3600.0  # simulated acquisition per point
FIT_PARAMS = ("sigma_abs_m2", "eta_c", "eta_bx", "eta_h", "background_hz")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# spreadable parameters: key -> (unit, field of the emitter or of its (single) state)
SPREAD_PARAMS: dict[str, tuple[str, str, str]] = {
    "sigma_abs": ("m^2", "emitter", "sigma_abs_m2"),
    "eta_h": ("1", "emitter", "eta_h"),
    "eta_x": ("1", "state", "eta_x"),
    "eta_bx": ("1", "state", "eta_bx"),
    "tau_x": ("s", "state", "tau_x_s"),
    "tau_bx": ("s", "state", "tau_bx_s"),
}
_DISTS = {"lognormal": ("median", "sigma"), "uniform": ("low", "high"), "normal": ("mean", "sd")}


# -- manifest ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchOptions:
    """The ``[options]`` table.

    Attributes
    ----------
    gate_s : float or None
        Gate after the IRF peak for the gated decay and g2(0).
    fit : {"none", "rate", "joint"}
        Power-series fit per emitter: none, counts only, or counts and g2(0).
    samples, chains : int
        NUTS warm-up and draws per chain, and chains.
    svi : bool
        Variational fit instead of NUTS.
    fit_seed : int
    n_exp : int
        Exponentials in the lifetime fits.
    keep_data : bool
        Keep the PTU files of simulated points in ``OUT/data``.
    """

    gate_s: float | None = None
    fit: str = "none"
    samples: int = 500
    chains: int = 2
    svi: bool = False
    fit_seed: int = 0
    n_exp: int = 1
    keep_data: bool = True


@dataclass(frozen=True)
class EmitterSpec:
    """One emitter of the manifest.

    Attributes
    ----------
    name : str
    source : {"file", "simulated"}
    powers_w : tuple of float
    files : tuple of Path
        Measured files, one per power (``source == "file"``).
    setup : qdsim.Setup or None
        Simulated: the setup (with the emitter's parameters).
    setup_label : str
        Preset name or setup file.
    seed : int or list of int or None
        Simulated: seed of the power series (point j uses child j of
        ``np.random.default_rng(seed).spawn(len(powers))``, as
        :func:`qdsim.power_series` does).
    duration_s : float or None
    excitation : dict
        What the fit needs besides the counts: ``wavelength_m``,
        ``rep_rate_hz`` (None: the file's sync rate), ``numerical_aperture``,
        ``spot_area_m2``, ``afterpulse_probability``, ``n_detectors_dead_time``.
    truth : dict
        Simulated: the emitter's parameters (state parameters of its first
        state).
    """

    name: str
    source: str
    powers_w: tuple[float, ...]
    files: tuple[Path, ...] = ()
    setup: Any = None
    setup_label: str = ""
    seed: Any = None
    duration_s: float | None = None
    excitation: dict[str, Any] = dataclasses.field(default_factory=dict)
    truth: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A checked manifest: its path, options and emitters."""

    path: Path
    options: BatchOptions
    emitters: tuple[EmitterSpec, ...]


class _Where:
    """Error messages that name the manifest, the emitter and the key."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what

    def err(self, key: str, msg: str) -> ValueError:
        return ValueError(f"{self.path}: {self.what}: {key}: {msg}")

    def keys(self, table: dict, allowed: set[str]) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            raise self.err(extra[0], f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def quantity(self, table: dict, key: str, unit: str, *, positive=True) -> float:
        try:
            v = parse_quantity(table[key], unit, name=key)
        except ValueError as exc:
            raise self.err(key, str(exc)) from exc
        if not (math.isfinite(v) and (v > 0 if positive else v >= 0)):
            raise self.err(key, f"{table[key]!r} must be {'> 0' if positive else '>= 0'}")
        return v

    def power(self, table: dict, key: str) -> float:
        """A power: a string with its unit (a bare number would silently be watts)."""
        if not isinstance(table[key], str):
            raise self.err(key, f'{table[key]!r} needs a unit, e.g. "0.17uW"')
        return self.quantity(table, key, "W")

    def within(self, table: dict, key: str, v: float, unit: str, lo: float, hi: float) -> float:
        """``v`` (of ``table[key]``) if it lies in (lo, hi], else an error naming the range."""
        if not lo < v <= hi:
            a, b = (f"{x:g}" if unit == "1" else format_quantity(x, unit) for x in (lo, hi))
            raise self.err(key, f"{table[key]!r} is outside the range ({a}, {b}]")
        return v

    def integer(self, table: dict, key: str, lo: int, hi: int | None = None) -> int:
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.err(key, f"{v!r} must be an integer {rng}")
        return v

    def boolean(self, table: dict, key: str) -> bool:
        if not isinstance(table[key], bool):
            raise self.err(key, f"{table[key]!r} must be true or false")
        return table[key]

    def seed(self, table: dict, key: str = "seed") -> int:
        return self.integer(table, key, 0)


def _options(table: Any, w: _Where) -> BatchOptions:
    if not isinstance(table, dict):
        raise w.err("options", "must be a table")
    w.keys(table, {f.name for f in dataclasses.fields(BatchOptions)} - {"gate_s"} | {"gate"})
    kw: dict[str, Any] = {}
    if "gate" in table:
        kw["gate_s"] = w.quantity(table, "gate", "s", positive=False)
    if "fit" in table:
        if table["fit"] not in FITS:
            raise w.err("fit", f"{table['fit']!r} must be one of {', '.join(FITS)}")
        kw["fit"] = table["fit"]
    for key, lo, hi in (("samples", 10, None), ("chains", 1, 16), ("n_exp", 1, 3)):
        if key in table:
            kw[key] = w.integer(table, key, lo, hi)
    if "fit_seed" in table:
        kw["fit_seed"] = w.seed(table, "fit_seed")
    for key in ("svi", "keep_data"):
        if key in table:
            kw[key] = w.boolean(table, key)
    return BatchOptions(**kw)


def _powers(table: dict, w: _Where) -> tuple[float, ...]:
    p = table["powers"]
    if not isinstance(p, list) or not p:
        raise w.err("powers", "must be a non-empty list such as ['0.05uW', '0.17uW']")
    out = tuple(w.power({"powers": x}, "powers") for x in p)
    if len(set(out)) != len(out):
        raise w.err("powers", f"{p!r} repeats a power")
    return out


def _setup(table: dict, w: _Where, base: Path) -> tuple[Any, str]:
    import qdsim

    if ("preset" in table) == ("setup" in table):
        raise w.err("preset", "give either 'preset' (a name) or 'setup' (a TOML file)")
    if "preset" in table:
        name = table["preset"]
        if name not in qdsim.presets.PRESETS:
            raise w.err("preset", f"{name!r} is not one of {', '.join(qdsim.presets.PRESETS)}")
        return qdsim.presets.PRESETS[name](), name
    f = (base / str(table["setup"])).resolve()
    if not f.is_file():
        raise FileNotFoundError(f"{w.path}: {w.what}: setup: no such file {f}")
    try:
        return qdsim.load_setup(f), str(f)
    except ValueError as exc:
        raise w.err("setup", str(exc)) from exc


def _apply(setup: Any, values: dict[str, float], w: _Where, key: str) -> Any:
    """``setup`` with the emitter parameters ``values`` (keys of SPREAD_PARAMS) set."""
    em = setup.emitter
    em_kw: dict[str, float] = {}
    st_kw: dict[str, float] = {}
    for name, v in values.items():
        _, where, attr = SPREAD_PARAMS[name]
        if where == "state":
            if len(em.states) > 1:
                raise w.err(
                    f"{key}.{name}",
                    f"the setup has {len(em.states)} emission states; state parameters can be "
                    "set only for single-state setups",
                )
            st_kw[attr] = v
        else:
            em_kw[attr] = v
    states = em.states
    if st_kw:
        states = (dataclasses.replace(states[0], **st_kw),)
    new = dataclasses.replace(setup, emitter=dataclasses.replace(em, states=states, **em_kw))
    try:
        return new.validate()
    except ValueError as exc:
        raise w.err(key, f"{values}: {exc}") from exc


def _set_values(table: Any, w: _Where, key: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise w.err(key, "must be a table such as { eta_bx = 0.3 }")
    w.keys(table, set(SPREAD_PARAMS))
    return {
        k: w.quantity(table, k, SPREAD_PARAMS[k][0], positive=SPREAD_PARAMS[k][0] != "1")
        for k in table
    }


def _spread(table: Any, w: _Where) -> dict[str, tuple[str, float, float]]:
    if not isinstance(table, dict):
        raise w.err("spread", "must be a table of distributions")
    w.keys(table, set(SPREAD_PARAMS))
    out = {}
    for name, d in table.items():
        unit = SPREAD_PARAMS[name][0]
        k = f"spread.{name}"
        if not isinstance(d, dict) or d.get("dist") not in _DISTS:
            raise w.err(k, f"expected {{ dist = {' | '.join(map(repr, _DISTS))}, ... }}")
        a_key, b_key = _DISTS[d["dist"]]
        sub = _Where(w.path, f"{w.what}: {k}")
        sub.keys(d, {"dist", a_key, b_key})
        for x in (a_key, b_key):
            if x not in d:
                raise sub.err(x, f"missing (a {d['dist']} distribution needs {a_key}, {b_key})")
        if d["dist"] == "lognormal":
            a = sub.quantity(d, a_key, unit)
            b = sub.quantity(d, b_key, "1")
        elif d["dist"] == "uniform":
            a = sub.quantity(d, a_key, unit, positive=False)
            b = sub.quantity(d, b_key, unit, positive=False)
            if not b > a:
                raise sub.err(b_key, f"{d[b_key]!r} must be above low {d[a_key]!r}")
        else:
            a = sub.quantity(d, a_key, unit, positive=False)
            b = sub.quantity(d, b_key, unit)
        out[name] = (d["dist"], a, b)
    return out


def _draw(rng: np.random.Generator, dist: tuple[str, float, float], name: str, w: _Where):
    kind, a, b = dist
    unit = SPREAD_PARAMS[name][0]
    for _ in range(1000):  # values outside the valid range are drawn again (truncation)
        if kind == "lognormal":
            v = a * math.exp(b * rng.standard_normal())
        elif kind == "uniform":
            v = rng.uniform(a, b)
        else:
            v = rng.normal(a, b)
        if v > 0 and (unit != "1" or v <= 1):
            return float(v)
    raise w.err(f"spread.{name}", f"{kind}({a:g}, {b:g}) gives no valid values")


def _truth(setup: Any) -> dict[str, float]:
    em = setup.emitter
    s0 = em.states[0]
    return {
        "sigma_abs_m2": em.sigma_abs_m2,
        "eta_x": s0.eta_x,
        "eta_bx": s0.eta_bx,
        "eta_h": em.eta_h,
        "tau_x_s": s0.tau_x_s,
        "tau_bx_s": s0.tau_bx_s,
    }


def _sim_excitation(setup: Any) -> dict[str, Any]:
    from .fit import known_detection

    det = setup.detection
    dead = min(max(d.dead_time_s, det.tcspc.dead_time_s) for d in det.detectors)
    tau_x = max(s.tau_x_s for s in setup.emitter.states)
    return {
        "wavelength_m": setup.excitation.wavelength_m,
        "rep_rate_hz": setup.excitation.rep_rate_hz,
        "numerical_aperture": setup.excitation.numerical_aperture,
        "spot_area_m2": setup.excitation.spot_area,
        # afterpulses the TCSPC records, laser leakage per watt (what a lab measures)
        **known_detection(setup),
        # detectors dead for longer than the emission count at most one photon per pulse
        "n_detectors_dead_time": len(det.detectors) if dead >= tau_x else 0,
    }


_EXCITATION_KEYS = {
    "wavelength": ("m", "wavelength_m"),
    "rep_rate": ("Hz", "rep_rate_hz"),
    "spot_area": ("m^2", "spot_area_m2"),
}


def _file_excitation(table: dict, w: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {
        "wavelength_m": 405e-9,
        "rep_rate_hz": None,
        "numerical_aperture": 0.8,
        "spot_area_m2": None,
        "afterpulse_probability": 0.0,
        "leakage_hz_per_w": 0.0,
        "n_detectors_dead_time": 0,
    }
    for key, (unit, name) in _EXCITATION_KEYS.items():
        if key in table:
            out[name] = w.quantity(table, key, unit)
    if "wavelength" in table:
        w.within(table, "wavelength", out["wavelength_m"], "m", *WAVELENGTH_RANGE_M)
    if "numerical_aperture" in table:
        v = w.quantity(table, "numerical_aperture", "1")
        out["numerical_aperture"] = w.within(table, "numerical_aperture", v, "1", 0.0, MAX_NA)
    if "afterpulse_probability" in table:
        v = w.quantity(table, "afterpulse_probability", "1", positive=False)
        if v >= 1:
            raise w.err("afterpulse_probability", f"{v!r} must be below 1")
        out["afterpulse_probability"] = v
    if "detectors_dead_time" in table:
        out["n_detectors_dead_time"] = w.integer(table, "detectors_dead_time", 0, 64)
    return out


def _name(table: dict, w: _Where) -> str:
    if "name" not in table:
        raise w.err("name", "missing")
    name = table["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise w.err("name", f"{name!r}: use 1-64 letters, digits, '_', '.', '-'")
    return name


_FILE_KEYS = {
    "name",
    "point",
    "series",
    "numerical_aperture",
    "afterpulse_probability",
    "detectors_dead_time",
    *_EXCITATION_KEYS,
}
_SIM_KEYS = {"name", "preset", "setup", "powers", "duration", "seed", "set"}
_POP_KEYS = {"name", "count", "preset", "setup", "powers", "duration", "seed", "spread", "set"}


def _file_emitter(t: dict, i: int, path: Path) -> EmitterSpec:
    w = _Where(path, f"emitter {i}")
    name = _name(t, w)
    w = _Where(path, f"emitter {name!r}")
    w.keys(t, _FILE_KEYS)
    if ("point" in t) == ("series" in t):
        raise w.err("point", "give [[emitter.point]] tables (file, power) or series = 'X.toml'")
    if "series" in t:
        from .fit import load_series

        try:
            points = load_series((path.parent / str(t["series"])).resolve())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{path}: emitter {name!r}: series: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise w.err("series", str(exc)) from exc
        pairs = [(pt.file, pt.power_w) for pt in points]
    else:
        pts = t["point"]
        if not isinstance(pts, list) or not pts:
            raise w.err("point", "expected [[emitter.point]] tables with 'file' and 'power'")
        pairs = []
        for j, pt in enumerate(pts, start=1):  # counted from 1, as in SERIES.toml
            pw = _Where(path, f"emitter {name!r}: point {j}")
            if not isinstance(pt, dict):
                raise pw.err("point", "must be a table with 'file' and 'power'")
            pw.keys(pt, {"file", "power"})
            for k in ("file", "power"):
                if k not in pt:
                    raise pw.err(k, "missing")
            f = (path.parent / str(pt["file"])).resolve()
            if not f.is_file():
                raise FileNotFoundError(f"{path}: emitter {name!r}: point {j}: no such file {f}")
            pairs.append((f, pw.power(pt, "power")))
    if len({p for _, p in pairs}) != len(pairs):
        raise w.err("point", "two points have the same power")
    return EmitterSpec(
        name=name,
        source="file",
        powers_w=tuple(p for _, p in pairs),
        files=tuple(f for f, _ in pairs),
        excitation=_file_excitation(t, w),
    )


def _sim_common(t: dict, w: _Where, path: Path) -> tuple[Any, str, tuple[float, ...], float, int]:
    for key in ("powers", "duration", "seed"):
        if key not in t:
            raise w.err(key, "missing")
    setup, label = _setup(t, w, path.parent)
    powers = _powers(t, w)
    duration = w.quantity(t, "duration", "s")
    if duration > MAX_DURATION_S:
        raise w.err("duration", f"{t['duration']!r} is above the limit of 1 h per point")
    seed = w.seed(t)
    for p in powers:
        n = setup.mean_absorbed(p)
        if n > 100:
            raise w.err("powers", f"{format_quantity(p, 'W')} gives n = {n:.3g} (max 100)")
    if "set" in t:
        setup = _apply(setup, _set_values(t["set"], w, "set"), w, "set")
    return setup, label, powers, duration, seed


def _sim_emitter(t: dict, i: int, path: Path) -> EmitterSpec:
    w = _Where(path, f"emitter {i}")
    name = _name(t, w)
    w = _Where(path, f"emitter {name!r}")
    w.keys(t, _SIM_KEYS)
    setup, label, powers, duration, seed = _sim_common(t, w, path)
    return EmitterSpec(
        name=name,
        source="simulated",
        powers_w=powers,
        setup=setup,
        setup_label=label,
        seed=seed,
        duration_s=duration,
        excitation=_sim_excitation(setup),
        truth=_truth(setup),
    )


def _population(t: dict, i: int, path: Path) -> list[EmitterSpec]:
    w = _Where(path, f"population {i}")
    name = _name(t, w)
    w = _Where(path, f"population {name!r}")
    w.keys(t, _POP_KEYS)
    if "count" not in t:
        raise w.err("count", "missing")
    count = w.integer(t, "count", 1, 100_000)
    setup, label, powers, duration, seed = _sim_common(t, w, path)
    spread = _spread(t.get("spread", {}), w)
    rng = np.random.default_rng([seed, 0x5EED])  # parameter draws, apart from the photon seeds
    width = max(3, len(str(count - 1)))
    out = []
    for k in range(count):
        values = {p: _draw(rng, d, p, w) for p, d in spread.items()}
        s = _apply(setup, values, w, "spread") if values else setup
        for p in powers:
            if s.mean_absorbed(p) > 100:
                raise w.err("spread", f"emitter {k}: {values} gives n > 100 at {p:g} W")
        out.append(
            EmitterSpec(
                name=f"{name}-{k:0{width}d}",
                source="simulated",
                powers_w=powers,
                setup=s,
                setup_label=label,
                seed=[seed, k],
                duration_s=duration,
                excitation=_sim_excitation(s),
                truth=_truth(s),
            )
        )
    return out


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a batch manifest (docs/batch.md).

    Raises
    ------
    FileNotFoundError
        The manifest, a data file or a setup file is missing.
    ValueError
        A bad key or value, naming the manifest, the emitter and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    w = _Where(path, "manifest")
    w.keys(doc, {"options", "emitter", "population"})
    options = _options(doc.get("options", {}), _Where(path, "options"))
    emitters: list[EmitterSpec] = []
    for key in ("emitter", "population"):
        if key in doc and not (
            isinstance(doc[key], list) and all(isinstance(x, dict) for x in doc[key])
        ):
            raise w.err(key, f"expected [[{key}]] tables")
    for i, t in enumerate(doc.get("emitter", [])):
        sim = "preset" in t or "setup" in t
        emitters.append(_sim_emitter(t, i, path) if sim else _file_emitter(t, i, path))
    for i, t in enumerate(doc.get("population", [])):
        emitters.extend(_population(t, i, path))
    if not emitters:
        raise w.err("emitter", "no [[emitter]] or [[population]] tables")
    names = [e.name for e in emitters]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise w.err("name", f"emitter names must be unique; repeated: {', '.join(dup)}")
    gate = options.gate_s
    for e in emitters:  # measured files: their period is known only when read (a row error)
        if gate is not None and e.source == "simulated":
            period = e.setup.excitation.period_s
            if gate >= period:
                raise _Where(path, f"emitter {e.name!r}").err(
                    "gate",
                    f"options.gate {doc['options']['gate']!r} is not shorter than the laser "
                    f"period {format_quantity(period, 's')} of its setup ({e.setup_label})",
                )
    return Manifest(path=path, options=options, emitters=tuple(emitters))


# -- tasks ---------------------------------------------------------------------------------
def _record_type(setup: Any) -> str:
    tc = setup.detection.tcspc
    small = tc.n_bins <= 4096 and setup.detection.n_channels <= 4
    return "picoharp_t3" if small else "hydraharp_v2_t3"


def _simulate_ptu(setup: Any, point: dict[str, Any], path: Path) -> None:
    """Simulate point ``index`` of the emitter's power series into a PTU (chunk by chunk)."""
    import qdio
    import qdsim

    rng = np.random.default_rng(point["seed"]).spawn(point["n_powers"])[point["index"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for chunk in qdsim.simulate_chunks(
            setup,
            power_w=point["power_w"],
            duration_s=point["duration_s"],
            rng=rng,
            chunk_duration_s=10.0,
        ):
            s = chunk.stream
            if writer is None:
                writer = qdio.PtuWriter(
                    path,
                    record_type=_record_type(setup),
                    macrotime_resolution_s=s.macrotime_resolution_s,
                    microtime_resolution_s=s.microtime_resolution_s,
                    comment=f"qdlight batch: {point['emitter']} at {point['power_w']:g} W",
                )
            writer.write(s)
    except BaseException:
        if writer is not None:
            writer.__exit__(*sys.exc_info())
        raise
    if writer is not None:
        writer.close()


def _tail_tau(decays: dict, channels: tuple[int, int] | None) -> tuple[float, float]:
    """X lifetime from the tail of the summed decay (:func:`qdlight.plan.tail_lifetime`)."""
    from qdinfer.decay import DecayHistogram

    from .plan import tail_lifetime

    use = [c for c in (channels or decays) if c in decays]
    hists = [decays[c] for c in use]
    if not hists or any(not np.array_equal(h.edges_s, hists[0].edges_s) for h in hists):
        raise ValueError("no decay histograms with common bins")
    h0 = hists[0]
    fit = tail_lifetime(
        DecayHistogram(sum(h.counts for h in hists), h0.edges_s, h0.period_s, tuple(use))
    )
    return float(fit.tau_s[0]), float(fit.tau_stderr_s[0])


def _row_from_summary(summary: dict[str, Any], objects: dict[str, Any], n_exp: int) -> dict:
    row: dict[str, Any] = {
        "n_photons": summary["n_photons"],
        "duration_s": summary["duration_s"],
        "sync_period_s": summary.get("sync_period_s"),
    }
    ch = summary["channels"]
    row["rate_hz"] = float(sum(c["rate_hz"] for c in ch.values()))
    row["rate_stderr_hz"] = math.sqrt(sum(c["rate_stderr_hz"] ** 2 for c in ch.values()))
    for c, v in ch.items():
        row[f"rate_ch{c}_hz"] = v["rate_hz"]
    g2 = summary.get("g2") or {}
    for key in ("g2_zero", "g2_zero_gated"):
        row[key] = g2.get(key)
        row[key + "_stderr"] = g2.get(key + "_stderr")
    row["g2_side_uniformity_p"] = g2.get("g2_zero_side_uniformity_pvalue")
    # the peak counts, for the joint fit's binomial likelihood
    res = objects["analysis"]
    pulsed = res.g2_zero
    row["g2_centre_counts"] = None if pulsed is None else int(pulsed.centre_counts)
    row["g2_side_counts"] = None if pulsed is None else int(pulsed.side_counts.sum())
    row["g2_side_weight"] = None if pulsed is None else float(pulsed.side_weights.sum())
    for c, d in summary.get("decays", {}).items():
        for k in range(n_exp):
            taus, errs = d.get("tau_s", []), d.get("tau_stderr_s", [])
            row[f"tau{k + 1}_ch{c}_s"] = taus[k] if k < len(taus) else None
            row[f"tau{k + 1}_ch{c}_stderr_s"] = errs[k] if k < len(errs) else None
    row["tau_x_tail_s"] = row["tau_x_tail_stderr_s"] = None
    if res.is_t3 and res.decays:
        try:
            row["tau_x_tail_s"], row["tau_x_tail_stderr_s"] = _tail_tau(res.decays, res.g2_channels)
        except ValueError as exc:
            log.info("tail lifetime skipped: %s", exc)
    return row


def analyze_point(point: dict[str, Any], setup: Any = None) -> dict[str, Any]:
    """Task: the model-free analysis of one (emitter, power); returns its table row.

    ``point`` holds ``emitter``, ``index``, ``power_w``, ``gate_s``,
    ``n_exp`` and either ``file`` (a measured file) or, with ``setup``,
    ``seed``, ``n_powers``, ``duration_s``, ``data_file`` and
    ``keep_data`` (simulated first, into ``data_file``).  Unreadable input
    (:class:`qdio.QdioError`, ValueError, OSError) gives a row with
    ``error``; warnings (a truncated last record, ...) go to ``warnings``.
    """
    from .analyze import analyze
    from .plan import predict

    row: dict[str, Any] = {
        "emitter": point["emitter"],
        "power_index": point["index"],
        "power_w": point["power_w"],
        "source": "file" if setup is None else "simulated",
        "file": point.get("file") or point.get("data_file"),
        "gate_s": point["gate_s"],
        "error": "",
        "warnings": "",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if setup is not None:
                path = Path(point["data_file"])
                _simulate_ptu(setup, point, path)
            else:
                path = Path(point["file"])
            summary, objects = analyze(path, gate_s=point["gate_s"], n_exp=point["n_exp"])
            row.update(_row_from_summary(summary, objects, point["n_exp"]))
            if setup is not None:
                pred = predict(
                    setup,
                    power_w=point["power_w"],
                    gate_s=point["gate_s"] if point["gate_s"] is not None else 2.5e-9,
                    duration_s=point["duration_s"],
                )
                row["mean_absorbed"] = pred.mean_absorbed
                row["pred_rate_hz"] = pred.rate_total_hz
                row["pred_g2_zero"] = pred.g2_zero
                row["pred_g2_zero_gated"] = (
                    pred.g2_zero_gated if point["gate_s"] is not None else None
                )
                if not point["keep_data"]:
                    path.unlink(missing_ok=True)
                    row["file"] = None
        except (ValueError, OSError) as exc:  # QdioError is a ValueError
            row["error"] = f"{type(exc).__name__}: {exc}"
    msgs = list(dict.fromkeys(str(x.message) for x in caught))
    row["warnings"] = "; ".join(msgs)
    return row


def fit_emitter(emitter: dict[str, Any], *rows: dict[str, Any]) -> dict[str, Any]:
    """Task: the power-series fit of one emitter from its point rows; returns fit columns.

    ``emitter`` holds ``emitter``, ``fit`` ("rate" or "joint"), the sampler
    options and ``excitation`` (see :class:`EmitterSpec`).  Columns:
    ``fit_<param>_mean`` / ``_lo`` / ``_hi`` (90 % interval) for each of
    :data:`FIT_PARAMS`, ``fit_r_hat``, ``fit_ess_bulk``,
    ``fit_divergences``, ``fit_problems``, ``fit_n_points`` and
    ``fit_error`` (too few analysed points, or a failed fit).
    """
    out: dict[str, Any] = {"fit_model": emitter["fit"], "fit_error": ""}
    good = [r for r in rows if not r.get("error") and r.get("n_photons")]
    out["fit_n_points"] = len(good)
    if len(good) < 2:
        out["fit_error"] = f"needs at least 2 analysed powers, has {len(good)}"
        return out
    from qdinfer.models import SamplerSettings, fit_power_series, warn_if_bad

    from .fit import RATE_SYSTEMATIC

    exc_ = dict(emitter["excitation"])
    if exc_.get("rep_rate_hz") is None:  # the files' sync rate
        periods = [r["sync_period_s"] for r in good if r.get("sync_period_s")]
        exc_["rep_rate_hz"] = 1.0 / periods[0] if periods else 2.5e6
    settings = SamplerSettings(
        method="svi" if emitter["svi"] else "nuts",
        num_warmup=emitter["samples"],
        num_samples=emitter["samples"],
        num_chains=1 if emitter["svi"] else emitter["chains"],
    )
    kw: dict[str, Any] = {}
    if emitter["fit"] == "joint":  # peak counts (a point without g2: no pairs, no information)
        kw["g2_counts"] = (
            [r.get("g2_centre_counts") or 0 for r in good],
            [r.get("g2_side_counts") or 0 for r in good],
            [r.get("g2_side_weight") or 1.0 for r in good],
        )
    try:
        res = fit_power_series(
            [r["power_w"] for r in good],
            [r["n_photons"] for r in good],
            [r["duration_s"] for r in good],
            wavelength_m=exc_["wavelength_m"],
            rep_rate_hz=exc_["rep_rate_hz"],
            numerical_aperture=exc_["numerical_aperture"],
            spot_area_m2=exc_["spot_area_m2"],
            afterpulse_probability=exc_["afterpulse_probability"],
            leakage_hz_per_w=exc_.get("leakage_hz_per_w", 0.0),
            rate_systematic=RATE_SYSTEMATIC,
            n_detectors_dead_time=exc_["n_detectors_dead_time"],
            settings=settings,
            seed=emitter["fit_seed"],
            warn=False,
            **kw,
        )
    except ValueError as exc:
        out["fit_error"] = f"{type(exc).__name__}: {exc}"
        return out
    for p in res.params:
        lo, hi = res.interval(p, 0.9)
        out[f"fit_{p}_mean"], out[f"fit_{p}_lo"], out[f"fit_{p}_hi"] = res.mean(p), lo, hi
    d = res.diagnostics
    out["fit_r_hat"] = d.get("r_hat")
    out["fit_ess_bulk"] = d.get("ess_bulk")
    out["fit_divergences"] = d.get("divergences")
    out["fit_wall_s"] = d.get("wall_s")
    out["fit_problems"] = "; ".join(warn_if_bad(d, "power series", warn=False))
    return out


def _point_job(e: EmitterSpec, j: int, opts: BatchOptions, out: Path) -> dict[str, Any]:
    job: dict[str, Any] = {
        "emitter": e.name,
        "index": j,
        "power_w": e.powers_w[j],
        "gate_s": opts.gate_s,
        "n_exp": opts.n_exp,
    }
    if e.source == "file":
        job["file"] = str(e.files[j])
    else:
        job.update(
            seed=e.seed,
            n_powers=len(e.powers_w),
            duration_s=e.duration_s,
            data_file=str(out / "data" / e.name / f"p{j:02d}.ptu"),
            keep_data=opts.keep_data,
        )
    return job


def _point_spec(job: dict[str, Any], e: EmitterSpec) -> dict[str, Any]:
    spec = {k: v for k, v in job.items() if k != "data_file"}  # keep_data: simulated only
    spec["task"] = "analyze"
    if e.source == "file":
        st = Path(job["file"]).stat()
        spec["file_size"], spec["file_mtime_ns"] = st.st_size, st.st_mtime_ns
    else:
        spec["setup"] = e.setup.to_dict()
    return spec


def batch_tasks(manifest: Manifest, out: Path) -> list[_dask.Task]:
    """The point and fit tasks of ``manifest`` with results under ``out/tasks``."""
    opts = manifest.options
    tasks: list[_dask.Task] = []
    for e in manifest.emitters:
        point_keys = []
        for j in range(len(e.powers_w)):
            job = _point_job(e, j, opts, out)
            key = f"analyze/{e.name}/p{j:02d}"
            tasks.append(
                _dask.Task(
                    key=key,
                    path=out / "tasks" / e.name / f"p{j:02d}.json",
                    fn=analyze_point,
                    spec=_point_spec(job, e),
                    args=(job, e.setup),
                )
            )
            point_keys.append(key)
        if opts.fit != "none":
            job = {
                "emitter": e.name,
                "fit": opts.fit,
                "samples": opts.samples,
                "chains": opts.chains,
                "svi": opts.svi,
                "fit_seed": opts.fit_seed,
                "excitation": e.excitation,
            }
            spec = {**job, "task": "fit", "points": [t.spec for t in tasks[-len(point_keys) :]]}
            tasks.append(
                _dask.Task(
                    key=f"fit/{e.name}",
                    path=out / "tasks" / e.name / "fit.json",
                    fn=fit_emitter,
                    spec=spec,
                    args=(job,),
                    depends=tuple(point_keys),
                )
            )
    return tasks


# -- table and report ----------------------------------------------------------------------
@dataclass
class BatchResult:
    """What :func:`run_batch` produced.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per emitter and power.
    summary : dict
        Counts (tasks computed, resumed, failed; rows with errors), options
        and output paths; also written to ``OUT/batch.json``.
    """

    table: Any
    summary: dict[str, Any]

    @property
    def complete(self) -> bool:
        """Every task has a result (rows may still record an ``error``)."""
        return bool(self.summary["complete"])


_FIRST = ["emitter", "power_index", "power_w", "source", "error", "warnings", "file"]


def _table(manifest: Manifest, run: _dask.RunSummary):
    import pandas as pd

    rows = []
    for e in manifest.emitters:
        fit = run.results.get(f"fit/{e.name}")
        fit_cols: dict[str, Any] = {}
        if manifest.options.fit != "none":
            if fit is None:
                why = run.failed.get(f"fit/{e.name}", "not computed")
                fit_cols = {"fit_model": manifest.options.fit, "fit_error": f"task failed: {why}"}
            else:
                fit_cols = fit
        for j, p in enumerate(e.powers_w):
            key = f"analyze/{e.name}/p{j:02d}"
            r = run.results.get(key)
            if r is None:
                r = {
                    "emitter": e.name,
                    "power_index": j,
                    "power_w": p,
                    "source": e.source,
                    "error": f"task failed: {run.failed.get(key, 'not computed')}",
                }
            row = dict(r)
            if e.source == "simulated":
                row["seed"] = json.dumps(e.seed)
                row["setup"] = e.setup_label
                row.update({f"true_{k}": v for k, v in e.truth.items()})
            row.update(fit_cols)
            rows.append(row)
    df = pd.DataFrame(rows)
    cols = [c for c in _FIRST if c in df] + [c for c in df if c not in _FIRST]
    df = df[cols]
    for c in ("error", "warnings", "fit_model", "fit_error", "fit_problems"):
        if c in df:
            df[c] = df[c].fillna("").astype(str)
    for c in df.columns:  # object columns of numbers and None -> float (Parquet types)
        if df[c].dtype == object and c not in ("emitter", "source", "file", "seed", "setup"):
            conv = pd.to_numeric(df[c], errors="coerce")
            if conv.notna().sum() == df[c].notna().sum():
                df[c] = conv.astype(float)
    return df


def _hist(ax, values, title: str, xlabel: str, powers=None) -> None:
    """Histogram of the finite ``values``; stacked by power when there are at most 6 powers."""
    v = np.asarray([np.nan if x is None else x for x in values], float)
    ok = np.isfinite(v)
    if not ok.any():
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    elif powers is not None and 1 < len(set(np.asarray(powers)[ok])) <= 6:
        pw = np.asarray(powers, float)
        levels = sorted(set(pw[ok]))
        bins = np.histogram_bin_edges(v[ok], bins=20)
        groups = [v[ok & (pw == p)] for p in levels]
        labels = [format_quantity(p, "W", 3) for p in levels]
        ax.hist(groups, bins=bins, stacked=True, label=labels, alpha=0.85)
        ax.legend(frameon=False, fontsize=7, title="power", title_fontsize=7)
    else:
        ax.hist(v[ok], bins=20, color="C0", alpha=0.8)
    ax.set(title=f"{title} (n = {int(ok.sum())})", xlabel=xlabel, ylabel="count")


def _population_figure(df):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    ok = df[df["error"] == ""]
    per_em = df.drop_duplicates("emitter")
    # linear axes throughout: log axes label ticks with mathtext, slow to set up
    col = "fit_sigma_abs_m2_mean"
    _hist(axes[0], per_em[col] * 1e18 if col in per_em else [], "σ_abs (fit)", "10⁻¹⁴ cm²")
    col = "fit_eta_bx_mean"
    _hist(axes[1], per_em[col] if col in per_em else [], "η_BX (fit)", "η_BX")
    pw = ok["power_w"]
    for ax, col, title, label, scale in (
        (axes[2], "rate_hz", "detected rate", "kcounts/s", 1e-3),
        (axes[3], "g2_zero", "g2(0) ungated", "g2(0)", 1.0),
        (axes[4], "g2_zero_gated", "g2(0) gated", "g2(0)", 1.0),
        (axes[5], "tau_x_tail_s", "X lifetime (decay tail)", "ns", 1e9),
    ):
        _hist(ax, ok[col] * scale if col in ok else [], title, label, pw)
    fig.suptitle(
        "population: fits one value per emitter; measurements per emitter and power", fontsize=10
    )
    return fig


def _truth_figure(df):
    from matplotlib.figure import Figure

    sim = df[(df["source"] == "simulated") & (df["error"] == "")]
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    per_em = sim.drop_duplicates("emitter")

    def scatter(ax, x, y, lo=None, hi=None, *, title, label, scale=1.0, truth="true"):
        if x is None or y is None:
            x = y = np.full(1, np.nan)
        x = np.asarray(x, float) * scale
        y = np.asarray(y, float) * scale
        m = np.isfinite(x) & np.isfinite(y)
        if not m.any():
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(title)
            return
        if lo is not None:
            err = np.vstack([y - np.asarray(lo, float) * scale, np.asarray(hi, float) * scale - y])
            ax.errorbar(x[m], y[m], yerr=err[:, m], fmt="o", ms=3, alpha=0.7, lw=0.8)
        else:
            ax.plot(x[m], y[m], "o", ms=3, alpha=0.7)
        a, b = min(x[m].min(), y[m].min()), max(x[m].max(), y[m].max())
        ax.plot([a, b], [a, b], color="0.4", lw=0.8, ls="--")
        ax.set(title=title, xlabel=f"{truth} {label}", ylabel=f"measured {label}")

    def fitcols(p):
        c = f"fit_{p}_mean"
        if c not in per_em:
            return [np.nan] * len(per_em), None, None
        return per_em[c], per_em[f"fit_{p}_lo"], per_em[f"fit_{p}_hi"]

    y, lo, hi = fitcols("sigma_abs_m2")
    scatter(
        axes[0],
        per_em["true_sigma_abs_m2"],
        y,
        lo,
        hi,
        title="σ_abs (90 % interval)",
        label="σ_abs (10⁻¹⁴ cm²)",
        scale=1e18,
    )
    y, lo, hi = fitcols("eta_bx")
    scatter(axes[1], per_em["true_eta_bx"], y, lo, hi, title="η_BX (90 % interval)", label="η_BX")
    scatter(
        axes[2],
        sim.get("pred_rate_hz"),
        sim.get("rate_hz"),
        title="rate vs closed form",
        label="rate (kcounts/s)",
        scale=1e-3,
        truth="closed-form",
    )
    scatter(
        axes[3],
        sim.get("pred_g2_zero"),
        sim.get("g2_zero"),
        title="g2(0) vs closed form",
        label="g2(0)",
        truth="closed-form",
    )
    scatter(
        axes[4],
        sim.get("pred_g2_zero_gated"),
        sim.get("g2_zero_gated"),
        title="gated g2(0) vs closed form",
        label="gated g2(0)",
        truth="closed-form",
    )
    scatter(
        axes[5],
        sim["true_tau_x_s"],
        sim.get("tau_x_tail_s"),
        title="X lifetime (tail fit)",
        label="τ_X (ns)",
        scale=1e9,
    )
    fig.suptitle(
        "simulated emitters: estimates against the truth (closed forms for g2, rate)", fontsize=10
    )
    return fig


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def batch_report(result: BatchResult, manifest: Manifest, figures: dict[str, bytes] | None = None):
    """The summary report (:class:`qdlight.report.Report`) of a batch.

    ``figures``: PNG bytes of the population and truth figures when they
    were already drawn (keys "population", "truth").
    """
    from .report import Report

    figures = dict(figures or {})

    df, s = result.table, result.summary
    r = Report(f"qdlight batch: {manifest.path.name}", subtitle=str(manifest.path))
    sec = r.section("Summary")
    sec.text(
        f"{s['emitters']} emitters, {s['rows']} (emitter, power) rows; tasks: "
        f"{s['tasks']['computed']} computed, {s['tasks']['resumed']} resumed from an earlier "
        f"run, {s['tasks']['failed']} failed. Rows with an error: {s['rows_with_error']}."
    )
    if not s["complete"]:
        sec.text("INCOMPLETE: some tasks failed; run the batch again to retry them.")
    bad = df[df["error"] != ""]
    if len(bad):
        sec.table(
            bad[["emitter", "power_w", "error"]].to_dict("records"), caption="rows with errors"
        )
    if "fit_error" in df:
        fb = df.drop_duplicates("emitter")
        fb = fb[fb["fit_error"] != ""]
        if len(fb):
            sec.table(fb[["emitter", "fit_error"]].to_dict("records"), caption="failed fits")
    sec = r.section("Population")
    png = figures.get("population") or _png(_population_figure(df))
    sec.image(png, "histograms over emitters (fits) and over all rows (model-free)")
    if "fit_sigma_abs_m2_mean" in df:
        cols = ["emitter"] + [
            c
            for p in ("sigma_abs_m2", "eta_bx", "eta_c")
            for c in (f"fit_{p}_mean", f"fit_{p}_lo", f"fit_{p}_hi")
        ]
        cols += ["fit_r_hat", "fit_ess_bulk", "fit_divergences"]
        per = df.drop_duplicates("emitter")[[c for c in cols if c in df]]
        sec.table(per.head(200).to_dict("records"), caption="fits (first 200 emitters)")
    if (df["source"] == "simulated").any():
        sec = r.section("Estimates against the truth")
        png = figures.get("truth") or _png(_truth_figure(df))
        sec.image(png, "simulated emitters; dashed: estimate = truth")
        rows = []
        per = df[df["source"] == "simulated"].drop_duplicates("emitter")
        for p in ("sigma_abs_m2", "eta_bx"):
            if f"fit_{p}_lo" in per:
                ok = per[f"fit_{p}_lo"].notna()
                inside = (per[f"fit_{p}_lo"] <= per[f"true_{p}"]) & (
                    per[f"true_{p}"] <= per[f"fit_{p}_hi"]
                )
                rows.append(
                    {
                        "parameter": p,
                        "emitters fitted": int(ok.sum()),
                        "90 % interval covers truth": int((inside & ok).sum()),
                    }
                )
        if rows:
            sec.table(rows, caption="coverage of the 90 % credible intervals")
    r.provenance(
        manifest=str(manifest.path),
        output=s["output"],
        options=dataclasses.asdict(manifest.options),
    )
    return r


def run_batch(
    manifest: Manifest,
    out: Path,
    client: Any,
    *,
    progress: bool = True,
    retry_errors: bool = False,
    retries: int = 2,
) -> BatchResult:
    """Run the batch on ``client`` and write the table, report and summary to ``out``.

    Task results go to ``out/tasks/<emitter>/pNN.json`` (and ``fit.json``)
    as they complete; tasks whose complete result exists are not run again
    (``retry_errors``: those recording an error are).  Then
    ``table.csv``, ``table.parquet``, ``population.png`` (and
    ``truth.png`` for simulated emitters), ``report.html`` and
    ``batch.json`` are written, each atomically.
    """
    from qdio._util import atomic_path, atomic_write

    out = Path(out).resolve()  # workers may run in another folder (--scheduler)
    out.mkdir(parents=True, exist_ok=True)
    tasks = batch_tasks(manifest, out)
    run = _dask.run(
        client, tasks, retries=retries, progress=progress, desc="batch", retry_errors=retry_errors
    )
    df = _table(manifest, run)
    summary: dict[str, Any] = {
        "manifest": str(manifest.path),
        "output": str(out),
        "complete": run.complete,
        "emitters": len(manifest.emitters),
        "rows": len(df),
        "rows_with_error": int((df["error"] != "").sum()),
        "tasks": {
            "total": len(tasks),
            "computed": len(run.computed),
            "resumed": len(run.resumed),
            "failed": len(run.failed),
        },
        "failed": run.failed,
        "options": dataclasses.asdict(manifest.options),
    }
    with atomic_path(out / "table.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out / "table.parquet") as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    result = BatchResult(df, summary)
    outputs = {"table_csv": out / "table.csv", "table_parquet": out / "table.parquet"}
    figures = {"population": _png(_population_figure(df))}
    if (df["source"] == "simulated").any():
        figures["truth"] = _png(_truth_figure(df))
    for name, png in figures.items():
        with atomic_write(out / f"{name}.png") as f:
            f.write(png)
        outputs[f"{name}_figure"] = out / f"{name}.png"
    outputs["report"] = batch_report(result, manifest, figures).write(out / "report.html")
    summary["outputs"] = {k: str(v) for k, v in outputs.items()}
    with atomic_write(out / "batch.json") as f:
        f.write(json.dumps(_dask.jsonable(summary), indent=2).encode("utf-8"))
    return result


# -- command line --------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``batch`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "batch",
        help="analyse and fit many emitters x powers (files or simulations) on Dask: one table",
        description=(
            "Run the model-free analysis of every (emitter, power) of a manifest and the "
            "power-series fit of every emitter as Dask tasks (a local cluster, or --scheduler). "
            "Results are written per task, so a rerun resumes; writes table.csv, "
            "table.parquet and report.html (docs/batch.md)."
        ),
    )
    p.add_argument("manifest", type=Path, help="batch manifest (TOML, docs/batch.md)")
    p.add_argument(
        "-o", "--output", type=Path, metavar="DIR", help="output folder (default ./STEM_batch)"
    )
    p.add_argument("--workers", type=int, help="local cluster: worker processes (default: cores)")
    p.add_argument(
        "--threads-per-worker", type=int, default=1, help="local cluster: threads per worker (1)"
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="use this Dask scheduler instead")
    p.add_argument(
        "--retry-failed", action="store_true", help="recompute the tasks whose result is an error"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_batch)
    return p


def cmd_batch(args: argparse.Namespace) -> int:
    """``qdlight batch``: returns 0 when every task has a result, 1 when some failed."""
    manifest = load_manifest(args.manifest)
    out = args.output if args.output is not None else Path(f"{args.manifest.stem}_batch")
    progress = not args.no_progress and not args.json
    with _dask.connect(
        args.scheduler, workers=args.workers, threads_per_worker=args.threads_per_worker
    ) as client:
        result = run_batch(manifest, out, client, progress=progress, retry_errors=args.retry_failed)
    s = result.summary
    t = s["tasks"]
    if args.json:
        print(json.dumps(_dask.jsonable(s), indent=2))
    else:
        print(f"{'manifest':<12}{s['manifest']}: {s['emitters']} emitters, {s['rows']} rows")
        print(
            f"{'tasks':<12}{t['computed']} computed, {t['resumed']} resumed from {out / 'tasks'}, "
            f"{t['failed']} failed"
        )
        print(f"{'errors':<12}{s['rows_with_error']} rows with an error (see the 'error' column)")
        for k, v in s["outputs"].items():
            print(f"{k:<12}{v}" if len(k) < 12 else f"{k} {v}")
    if not result.complete:
        print(
            f"qdlight batch: {t['failed']} tasks failed after retries; run again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
