"""Emission-state analysis speed: change points on 1e6 photons, HMM on a 60 s trace.

Usage::

    python bench/bench_states.py [--photons N] [--repeat K] [--seed S]

It simulates a two-state blinking emitter (dark 1 kcounts/s, bright
20 kcounts/s, switching 2 /s each way; photons Poisson, T3 stream with a
400 ns sync) cut to exactly ``N`` photons (1e6 by default, ~95 s), then
times, in this process:

* :func:`qdinfer.change_points` (Watkins & Yang binary segmentation and
  re-check passes) on all ``N`` photons, and on a second stream switching
  100 times faster (100 /s, thousands of change points: the worst case);
* :func:`qdinfer.cluster_levels` on its segments (agglomeration + EM + BIC);
* :func:`qdinfer.threshold_states` (mixture, auto) at 10 ms bins;
* :func:`qdinfer.hmm_states` (2 states) on the first 60 s at 10 ms bins
  (6000 bins), and with ``n_states="auto"`` (1-4 states).

"first" is the first call (it includes numba's JIT compile, or loading the
compiled kernels from numba's cache); "best" is the best of ``K`` further
calls.  The table is plain text on stdout.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import qdinfer
import qdio


def simulate(n_photons: int, rng: np.random.Generator, switch: float = 2.0) -> qdio.PhotonStream:
    rates = np.array([1e3, 20e3])
    mean_rate = rates.mean()
    duration = 1.1 * n_photons / mean_rate  # then cut to exactly n_photons
    t, state, times = 0.0, 0, []
    while t < duration:
        dwell = min(rng.exponential(1 / switch), duration - t)
        k = rng.poisson(rates[state] * dwell)
        times.append(rng.uniform(t, t + dwell, k))
        t += dwell
        state = 1 - state
    tt = np.sort(np.concatenate(times))
    period = 400e-9
    macro = np.floor(tt / period).astype(np.int64)
    keep = np.r_[True, macro[1:] != macro[:-1]]
    macro = macro[keep][:n_photons]
    micro = rng.integers(0, 4000, macro.size)
    return qdio.PhotonStream(np.zeros(macro.size, np.uint8), macro, micro, period, 100e-12, 4000)


def timed(fn, repeat: int):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, first, best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2005)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    s = simulate(args.photons, rng)
    s60 = qdio.time_slice(s, 0.0, 60.0)
    fast = simulate(args.photons, rng, switch=100.0)
    rows = []
    cps, first, best = timed(lambda: qdinfer.change_points(s), args.repeat)
    rows.append((f"change_points, {len(s):.3g} photons", first, best, f"{len(cps)} change points"))
    cpf, first, best = timed(lambda: qdinfer.change_points(fast), args.repeat)
    rows.append(("  same, switching 100 /s", first, best, f"{len(cpf)} change points"))
    lev, first, best = timed(lambda: qdinfer.cluster_levels(cps), args.repeat)
    rows.append((f"cluster_levels, {len(cps) + 1} segments", first, best, f"{lev.n_levels} levels"))
    th, first, best = timed(
        lambda: qdinfer.threshold_states(s, n_states="auto", bin_width_s=10e-3), args.repeat
    )
    rows.append(
        (
            f"threshold_states auto, {th.counts.size} bins",
            first,
            best,
            f"{th.trajectory.n_states} states",
        )
    )
    hm, first, best = timed(
        lambda: qdinfer.hmm_states(s60, n_states=2, bin_width_s=10e-3), args.repeat
    )
    rows.append(
        (f"hmm_states K=2, 60 s, {hm.counts.size} bins", first, best, f"{hm.n_iter} EM iterations")
    )
    ha, first, best = timed(
        lambda: qdinfer.hmm_states(s60, n_states="auto", bin_width_s=10e-3), args.repeat
    )
    rows.append(("hmm_states auto (K=1..4), 60 s", first, best, f"K={ha.trajectory.n_states}"))
    print(f"# bench_states: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"# stream: {len(s)} photons over {s.duration_s:.1f} s; repeat {args.repeat}")
    print(f"{'task':<44} {'first (s)':>10} {'best (s)':>10}  result")
    for name, first, best, note in rows:
        print(f"{name:<44} {first:>10.3f} {best:>10.3f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
