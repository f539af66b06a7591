"""Monte-Carlo acquisitions: :func:`simulate`, :func:`simulate_chunks`, :func:`power_series`.

Order of operations for an acquisition of ``N = round(duration_s f_rep)``
pulses at power P (mean ``n`` absorbed photons per pulse):

1. The blink trajectory on ``[0, N / f_rep)`` (:mod:`qdsim.blinking`).
2. The pulses are cut into blocks of ``Setup.block_duration_s``; each block
   has its own random streams (children of the run's SeedSequence), so the
   result does not depend on threads or chunks.  Per block (in parallel when
   ``n_workers > 1``): the emitter photons of the detecting pulses
   (:func:`qdsim._numba.signal_block`, the per-pulse law of
   :mod:`qdsim.emitter`), dark counts, flat background and laser leakage
   (:mod:`qdsim.detector`), as detection times in float64 seconds.
3. In time order over all blocks (sequential): detector dead time,
   afterpulsing and TCSPC dead time (events that spill past a block's end,
   for example late X photons, are carried into the next block).
4. Digitisation into macrotime (sync index) and microtime (TCSPC bins, the
   time since the last sync), a :class:`~qdio.PhotonStream` sorted by
   time, and the per-photon :class:`~qdsim.truth.Truth`.
5. The spectrometer spectrum from the expected emission along the trajectory.

Events before the start (negative IRF jitter of the first pulse) or after
the end of the acquisition are dropped, as a real acquisition would.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from qdio import PhotonStream

from . import spectra as spec
from ._numba import assemble, deadtime_pass, signal_block
from .blinking import Trajectory, trajectory
from .detector import IrfTables, irf_tables, leakage_per_pulse, noise_events
from .emitter import PulseLaw, pulse_law
from .params import Setup
from .spectra import DetectionTables, Spectrum, detection_tables
from .truth import Truth

__all__ = ["MAX_MEAN_ABSORBED", "SimResult", "power_series", "simulate", "simulate_chunks"]

MAX_MEAN_ABSORBED = 100.0  # largest n per pulse the simulator accepts

_FIELDS = {
    "t": np.float64,
    "channel": np.uint8,
    "process": np.uint8,
    "state": np.uint8,
    "wavelength_m": np.float64,
    "emission_delay_s": np.float64,
    "pulse": np.int64,
    "absorbed": np.int16,
}
_UNKNOWN_STATE = 255
_SIGNAL_ORDER = (
    "t",
    "channel",
    "process",
    "state",
    "wavelength_m",
    "emission_delay_s",
    "pulse",
    "absorbed",
)


@dataclass(frozen=True, eq=False)
class SimResult:
    """A simulated acquisition.

    Attributes
    ----------
    stream : PhotonStream
        Detected photons, in the form qdio reads from a PTU file.
    truth : Truth
        What made every photon (rows aligned with ``stream``) and the blink
        trajectory.
    spectrum : Spectrum
        What the spectrometer recorded over the whole acquisition.
    setup : Setup
        The setup simulated.
    """

    stream: PhotonStream
    truth: Truth
    spectrum: Spectrum
    setup: Setup

    @property
    def power_w(self) -> float:
        """Average laser power, in watts."""
        return self.truth.power_w

    @classmethod
    def join(cls, chunks: Sequence[SimResult]) -> SimResult:
        """Join the chunks of :func:`simulate_chunks` into one result."""
        return _join(list(chunks))


# -- helpers ------------------------------------------------------------------------
def _empty() -> dict[str, np.ndarray]:
    return {k: np.empty(0, v) for k, v in _FIELDS.items()}


def _concat(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(p["t"])]
    if not parts:
        return _empty()
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in _FIELDS}


def _take(ev: dict[str, np.ndarray], idx: Any) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in ev.items()}


def _shift(ev: dict[str, np.ndarray], dt: float) -> dict[str, np.ndarray]:
    out = dict(ev)
    out["t"] = ev["t"] + dt
    return out


def _block_rng(entropy: tuple[int, ...], *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key)))


@dataclass(frozen=True, eq=False)
class _Context:
    setup: Setup
    power_w: float
    n: float
    period: float
    n_pulses: int
    block_pulses: int
    n_blocks: int
    law: PulseLaw
    tables: DetectionTables
    ch_cdf: np.ndarray
    irf: IrfTables
    delay: np.ndarray
    pulse_sigma: float
    leak: np.ndarray
    switch_pulse: np.ndarray
    switch_time_s: np.ndarray
    switch_state: np.ndarray
    entropy: tuple[int, ...]

    def block_span(self, b: int) -> tuple[int, int]:
        first = b * self.block_pulses
        return first, min(self.block_pulses, self.n_pulses - first)


def _raw_block(ctx: _Context, b: int) -> tuple[dict, dict]:
    """Candidate events of block b, sorted by time: (early part t < 0, the rest)."""
    first, nb = ctx.block_span(b)
    # blink-state intervals in pulses, relative to the block
    sp = ctx.switch_pulse
    i0 = max(int(np.searchsorted(sp, first, side="right")) - 1, 0)
    i1 = int(np.searchsorted(sp, first + nb, side="left"))
    starts = np.clip(sp[i0:i1], first, first + nb) - first
    ends = np.append(starts[1:], nb)
    states = ctx.switch_state[i0:i1]
    keep = ends > starts
    starts, ends, states = starts[keep], ends[keep], states[keep]
    law, tab, irf = ctx.law, ctx.tables, ctx.irf
    expected = float(((ends - starts) * law.mean_detected[states]).sum())
    cap = int(1.2 * expected + 10 * math.sqrt(expected) + 4 * (law.m_max + 16))
    out = [np.empty(cap, _FIELDS[k]) for k in _SIGNAL_ORDER]
    rng = _block_rng(ctx.entropy, 2, b, 0)
    n_lines, n_ch, n_grid = tab.wl_cdf.shape
    wl_cdf = tab.wl_cdf.reshape(n_lines * n_ch, n_grid)
    wl_guide = tab.wl_guide.reshape(n_lines * n_ch, n_grid)
    iv_start, iv_end = starts.astype(np.int64), ends.astype(np.int64)
    iv_state = states.astype(np.int64)
    n_sig, iv, pos = 0, 0, -2
    while True:
        n_sig, iv, pos, done = signal_block(
            rng,
            ctx.period,
            first,
            iv_start,
            iv_end,
            iv_state,
            iv,
            pos,
            law.log_q_detect,
            law.m_cdf,
            law.m_guide,
            law.core,
            law.r_level,
            law.tau_level,
            law.q_core,
            law.r_shell,
            law.tau_shell,
            ctx.ch_cdf,
            tab.line_index,
            wl_cdf,
            wl_guide,
            tab.grid_min_m,
            tab.grid_step_m,
            ctx.delay,
            ctx.pulse_sigma,
            *irf.args(),
            *out,
            n_sig,
        )
        if done:
            break
        cap *= 2
        out = [np.concatenate([a, np.empty(cap - len(a), a.dtype)]) for a in out]
    sig = {k: a[:n_sig] for k, a in zip(_SIGNAL_ORDER, out, strict=True)}
    noise = noise_events(
        ctx.setup, rng, first_pulse=first, n_pulses=nb, leak_per_pulse=ctx.leak, irf=irf
    )
    k = len(noise["t"])
    if k:
        noise["state"] = np.full(k, _UNKNOWN_STATE, np.uint8)
        noise["emission_delay_s"] = np.full(k, np.nan)
        noise["absorbed"] = np.full(k, -1, np.int16)
        ev = _concat([sig, noise])
    else:
        ev = sig
    order = np.argsort(ev["t"], kind="stable")
    ev = _take(ev, order)
    n_early = int(np.searchsorted(ev["t"], 0.0, side="left"))
    return _take(ev, slice(0, n_early)), _take(ev, slice(n_early, None))


class _Pass:
    """Sequential state of the dead-time pass across blocks."""

    def __init__(self, ctx: _Context):
        dets = ctx.setup.detection.detectors
        tcspc = ctx.setup.detection.tcspc
        n_ch = len(dets)
        self.ctx = ctx
        self.dead_s = np.array([d.dead_time_s for d in dets])
        self.p_ap = np.array([d.afterpulse_probability for d in dets])
        self.tau_ap = np.array([d.afterpulse_delay_s for d in dets])
        self.tcspc_dead_s = float(tcspc.dead_time_s)
        self.shared = bool(tcspc.shared_dead_time)
        self.det_dead = np.full(n_ch, -np.inf)
        self.tcspc_dead = np.full(n_ch, -np.inf)
        self.pend_t = np.empty(64)
        self.pend_c = np.empty(64, np.uint8)
        self.n_pend = 0
        self.carry = _empty()
        self.resolution = float(tcspc.resolution_s)
        self.max_micro = int(tcspc.n_bins) - 1

    def block(self, b: int, late: dict, next_early: dict | None) -> dict[str, np.ndarray]:
        ctx = self.ctx
        first, nb = ctx.block_span(b)
        span = nb * ctx.period
        parts = [self.carry, late]
        if next_early is not None:
            parts.append(_shift(next_early, span))
        parts = [p for p in parts if len(p["t"])]
        ev = _concat(parts)
        if len(parts) > 1:
            ev = _take(ev, np.argsort(ev["t"], kind="stable"))
        rng = _block_rng(ctx.entropy, 2, b, 1)
        n_ev = len(ev["t"])
        cap = n_ev + n_ev // 8 + 64
        src = np.empty(cap, np.int64)
        t_keep = np.empty(cap, np.float64)
        c_keep = np.empty(cap, np.uint8)
        n_keep, i_stop = 0, 0
        while True:
            n_keep, i_stop, self.n_pend, status = deadtime_pass(
                rng,
                ev["t"],
                ev["channel"],
                i_stop,
                span,
                self.det_dead,
                self.tcspc_dead,
                self.dead_s,
                self.p_ap,
                self.tau_ap,
                self.tcspc_dead_s,
                self.shared,
                self.pend_t,
                self.pend_c,
                self.n_pend,
                src,
                t_keep,
                c_keep,
                n_keep,
            )
            if status == 0:
                break
            if status == 1:
                cap *= 2
                src, t_keep, c_keep = (
                    np.concatenate([a, np.empty(cap - len(a), a.dtype)])
                    for a in (src, t_keep, c_keep)
                )
            else:
                grow = len(self.pend_t)
                self.pend_t = np.concatenate([self.pend_t, np.empty(grow)])
                self.pend_c = np.concatenate([self.pend_c, np.empty(grow, np.uint8)])
        sync, micro, proc, state, wl, emit, pulse, absorbed = assemble(
            src,
            t_keep,
            n_keep,
            ev["process"],
            ev["state"],
            ev["wavelength_m"],
            ev["emission_delay_s"],
            ev["pulse"],
            ev["absorbed"],
            first,
            ctx.period,
            self.resolution,
            self.max_micro,
        )
        out = {
            "channel": c_keep[:n_keep],
            "macrotime": sync,
            "microtime": micro,
            "process": proc,
            "state": state,
            "wavelength_m": wl,
            "emission_delay_s": emit,
            "pulse": pulse,
            "absorbed": absorbed,
        }
        # carry what lies beyond the block into the next one
        self.carry = _shift(_take(ev, slice(i_stop, None)), -span)
        self.det_dead -= span
        self.tcspc_dead -= span
        self.pend_t[: self.n_pend] -= span
        unknown = out["state"] == _UNKNOWN_STATE
        if unknown.any():
            out["state"][unknown] = _state_at(ctx, first * ctx.period + t_keep[:n_keep][unknown])
        return out


def _state_at(ctx: _Context, time_s: np.ndarray) -> np.ndarray:
    i = np.searchsorted(ctx.switch_time_s, time_s, side="right") - 1
    return ctx.switch_state[np.clip(i, 0, len(ctx.switch_state) - 1)].astype(np.uint8)


_OUTPUT_FIELDS = {
    "channel": np.uint8,
    "macrotime": np.int64,
    "microtime": np.int32,
    "state": np.uint8,
    "process": np.uint8,
    "wavelength_m": np.float64,
    "emission_delay_s": np.float64,
    "pulse": np.int64,
    "absorbed": np.int16,
}


class _Output:
    """Rows of a chunk, appended block by block into arrays sized in advance.

    Copying each block into place as it comes (instead of concatenating at
    the end) keeps the memory touched to about the output itself.
    """

    def __init__(self, capacity: int):
        self.n = 0
        self.buf = {k: np.empty(capacity, v) for k, v in _OUTPUT_FIELDS.items()}

    def append(self, part: dict[str, np.ndarray]) -> None:
        k = len(part["channel"])
        cap = len(self.buf["channel"])
        if self.n + k > cap:
            new = max(self.n + k, int(1.5 * cap))
            for name, arr in self.buf.items():
                grown = np.empty(new, arr.dtype)
                grown[: self.n] = arr[: self.n]
                self.buf[name] = grown
        for name, arr in self.buf.items():
            arr[self.n : self.n + k] = part[name]
        self.n += k

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v[: self.n] for k, v in self.buf.items()}


def _expected_per_pulse(ctx: _Context) -> float:
    """Mean candidate events per pulse (upper estimate of the recorded ones)."""
    share = _pulses_per_state(ctx) / ctx.n_pulses
    signal = float(share @ ctx.law.mean_detected)
    dets = ctx.setup.detection.detectors
    noise = sum(d.dark_rate_hz + d.background_rate_hz for d in dets) * ctx.period
    ap = max(d.afterpulse_probability for d in dets)
    return (signal + noise + float(ctx.leak.sum())) * (1.0 + ap)


# -- public API ------------------------------------------------------------------------
def _check_run(setup: Setup, power_w: float, duration_s: float, n_workers: int) -> None:
    if not isinstance(setup, Setup):
        raise TypeError(f"setup must be a qdsim Setup, got {type(setup).__name__}")
    for name, value in (("power_w", power_w), ("duration_s", duration_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name}={value!r} must be a number (SI units)")
    if not math.isfinite(power_w) or power_w < 0:
        raise ValueError(f"power_w={power_w!r} must be a finite number >= 0 (watts)")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s={duration_s!r} must be a finite number > 0 (seconds)")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers={n_workers!r} must be an integer >= 1")


def _context(
    setup: Setup, power_w: float, duration_s: float, entropy: tuple[int, ...]
) -> tuple[_Context, Trajectory]:
    setup.validate()
    n = setup.mean_absorbed(power_w)
    if n > MAX_MEAN_ABSORBED:
        raise ValueError(
            f"power_w={power_w!r} gives n = {n:.4g} absorbed photons per pulse; "
            f"qdsim handles n <= {MAX_MEAN_ABSORBED:g}"
        )
    period = setup.excitation.period_s
    n_pulses = round(duration_s * setup.excitation.rep_rate_hz)
    if n_pulses < 1:
        raise ValueError(f"duration_s={duration_s!r} is shorter than one laser period")
    block_pulses = max(1, round(setup.block_duration_s * setup.excitation.rep_rate_hz))
    n_blocks = -(-n_pulses // block_pulses)
    traj = trajectory(setup, n, n_pulses * period, _block_rng(entropy, 0))
    switch_pulse = np.ceil(traj.start_s / period).astype(np.int64)
    switch_pulse[0] = 0
    tables = detection_tables(setup)
    d_total = tables.d.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ch_cdf = np.where(
            d_total[..., None] > 0, np.cumsum(tables.d, axis=2) / d_total[..., None], 1.0
        )
    ch_cdf[..., -1] = 1.0
    law = pulse_law(setup, n, d_total)
    ctx = _Context(
        setup=setup,
        power_w=float(power_w),
        n=n,
        period=period,
        n_pulses=n_pulses,
        block_pulses=block_pulses,
        n_blocks=n_blocks,
        law=law,
        tables=tables,
        ch_cdf=np.ascontiguousarray(ch_cdf),
        irf=irf_tables(setup),
        delay=np.array([d.delay_s for d in setup.detection.detectors]),
        pulse_sigma=setup.excitation.pulse_fwhm_s / (2.0 * math.sqrt(2.0 * math.log(2.0))),
        leak=leakage_per_pulse(setup, power_w),
        switch_pulse=switch_pulse,
        switch_time_s=traj.start_s,
        switch_state=traj.state.astype(np.int64),
        entropy=entropy,
    )
    return ctx, traj


def _pulses_per_state(ctx: _Context) -> np.ndarray:
    sp = np.append(np.clip(ctx.switch_pulse, 0, ctx.n_pulses), ctx.n_pulses)
    return np.bincount(
        ctx.switch_state, weights=np.diff(sp), minlength=len(ctx.setup.state_names)
    ).astype(float)


def _entropy(rng: Any) -> tuple[tuple[int, ...], int | None]:
    seed = int(rng) if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) else None
    gen = np.random.default_rng(rng)
    words = gen.integers(0, 2**64, size=4, dtype=np.uint64)
    return tuple(int(w) for w in words), seed


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qdlight")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


def simulate_chunks(
    setup: Setup,
    *,
    power_w: float,
    duration_s: float,
    rng: np.random.Generator | int | None = None,
    chunk_duration_s: float | None = None,
    n_workers: int = 1,
    progress: bool = False,
) -> Iterator[SimResult]:
    """Simulate an acquisition chunk by chunk (bounded memory for long runs).

    Parameters are those of :func:`simulate`, plus ``chunk_duration_s``:
    the acquisition time per chunk (rounded up to whole blocks of
    ``setup.block_duration_s``; default everything in one chunk).  The
    chunks' streams and truths, concatenated, are exactly :func:`simulate`'s.
    Every chunk carries the whole trajectory and spectrum.

    Yields
    ------
    SimResult
        One per chunk, in time order.
    """
    _check_run(setup, power_w, duration_s, n_workers)
    entropy, seed = _entropy(rng)
    ctx, traj = _context(setup, float(power_w), float(duration_s), entropy)
    spectrum = spec.spectrometer_spectrum(
        setup, ctx.n, _pulses_per_state(ctx), ctx.n_pulses * ctx.period, _block_rng(entropy, 1)
    )
    if chunk_duration_s is None:
        chunk_blocks = ctx.n_blocks
    else:
        if not chunk_duration_s > 0:
            raise ValueError(f"chunk_duration_s={chunk_duration_s!r} must be > 0")
        chunk_blocks = max(1, math.ceil(chunk_duration_s / setup.block_duration_s - 1e-9))
    setup_dict = setup.to_dict()
    attrs = {
        "simulated": True,
        "generator": "qdsim",
        "qdsim_version": _version(),
        "setup_name": setup.name,
        "setup": setup_dict,
        "power_w": float(power_w),
        "duration_s": ctx.n_pulses * ctx.period,
        "mean_absorbed": ctx.n,
        "seed": seed,
        "entropy": list(entropy),
        "state_names": list(setup.state_names),
    }
    tcspc = setup.detection.tcspc

    def result(out: _Output) -> SimResult:
        ev = out.arrays()
        stream = PhotonStream(
            ev["channel"],
            ev["macrotime"],
            ev["microtime"],
            ctx.period,
            float(tcspc.resolution_s),
            int(tcspc.n_bins),
            attrs,
        )
        truth = Truth(
            state=ev["state"],
            process=ev["process"],
            wavelength_m=ev["wavelength_m"],
            emission_delay_s=ev["emission_delay_s"],
            pulse=ev["pulse"],
            absorbed=ev["absorbed"],
            trajectory=traj,
            state_names=setup.state_names,
            mean_absorbed=ctx.n,
            n_pulses=ctx.n_pulses,
            power_w=float(power_w),
            entropy=entropy,
        )
        return SimResult(stream, truth, spectrum, setup)

    rate_per_pulse = _expected_per_pulse(ctx)
    passer = _Pass(ctx)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=ctx.n_blocks, unit="block", desc=f"qdsim {setup.name}")
    executor = ThreadPoolExecutor(n_workers) if n_workers > 1 else None
    try:
        window = 2 * n_workers
        futures: dict[int, Any] = {}

        def raw(b: int) -> tuple[dict, dict]:
            if executor is None:
                return _raw_block(ctx, b)
            for k in range(b, min(b + window, ctx.n_blocks)):
                if k not in futures:
                    futures[k] = executor.submit(_raw_block, ctx, k)
            return futures.pop(b).result()

        def new_output(b: int) -> _Output:
            pulses = min(chunk_blocks * ctx.block_pulses, ctx.n_pulses - b * ctx.block_pulses)
            mu = rate_per_pulse * pulses
            return _Output(int(1.05 * mu + 6 * math.sqrt(mu) + 1024))

        out = new_output(0)
        current = raw(0)
        for b in range(ctx.n_blocks):
            nxt = raw(b + 1) if b + 1 < ctx.n_blocks else None
            out.append(passer.block(b, current[1], None if nxt is None else nxt[0]))
            current = nxt  # type: ignore[assignment]
            if bar is not None:
                bar.update(1)
            if (b + 1) % chunk_blocks == 0 or b + 1 == ctx.n_blocks:
                yield result(out)
                if b + 1 < ctx.n_blocks:
                    out = new_output(b + 1)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()


def simulate(
    setup: Setup,
    *,
    power_w: float,
    duration_s: float,
    rng: np.random.Generator | int | None = None,
    n_workers: int = 1,
    progress: bool = False,
) -> SimResult:
    """Simulate a TCSPC acquisition of ``setup`` at ``power_w`` for ``duration_s``.

    Parameters
    ----------
    setup : Setup
        Emitter, blinking, spectra and detection (validated here).
    power_w : float
        Average laser power at the sample, in watts.
    duration_s : float
        Acquisition time, in seconds (rounded to whole laser periods).
    rng : Generator, int or None
        Random source (SPEC 7).  The same seed gives the same stream
        whatever ``n_workers`` and chunking.
    n_workers : int
        Threads that compute blocks of pulses in parallel.
    progress : bool
        Show a tqdm progress bar (blocks).

    Returns
    -------
    SimResult
        ``.stream`` (PhotonStream: channel, macrotime in sync periods,
        microtime in TCSPC bins), ``.truth`` and ``.spectrum``.

    Raises
    ------
    ValueError
        Invalid setup (naming the key), negative or non-finite power,
        non-positive duration, or a power beyond n = 100 per pulse.

    Examples
    --------
    >>> from qdsim import presets
    >>> res = simulate(presets.paper_qd(), power_w=0.17e-6, duration_s=0.05, rng=1)
    >>> res.stream.macrotime_resolution_s, res.stream.n_microtime_bins
    (4e-07, 4096)
    >>> 500 < len(res.stream) < 1300
    True
    """
    chunks = list(
        simulate_chunks(
            setup,
            power_w=power_w,
            duration_s=duration_s,
            rng=rng,
            n_workers=n_workers,
            progress=progress,
        )
    )
    return chunks[0] if len(chunks) == 1 else _join(chunks)


def _join(chunks: list[SimResult]) -> SimResult:
    from qdio import concatenate

    first = chunks[0]
    stream = concatenate([c.stream for c in chunks])
    truth = Truth.concatenate([c.truth for c in chunks])
    return SimResult(stream, truth, first.spectrum, first.setup)


def power_series(
    setup: Setup,
    powers_w: Sequence[float] | np.ndarray,
    *,
    duration_s: float,
    rng: np.random.Generator | int | None = None,
    n_workers: int = 1,
    progress: bool = False,
) -> list[SimResult]:
    """Simulate one acquisition per power, each with its own child random stream.

    Returns
    -------
    list of SimResult
        In the order of ``powers_w``.
    """
    gen = np.random.default_rng(rng)
    children = gen.spawn(len(powers_w))
    return [
        simulate(
            setup,
            power_w=float(p),
            duration_s=duration_s,
            rng=child,
            n_workers=n_workers,
            progress=progress,
        )
        for p, child in zip(powers_w, children, strict=True)
    ]


def default_workers() -> int:
    """Number of CPU cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1
