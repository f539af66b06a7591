"""Speed of the qdsim Monte Carlo: pulses/s and detected photons/s.

    .venv/bin/python bench/bench_sim.py [--duration 60] [--repeat 3] [--workers 1]

Simulates ``--duration`` seconds of the paper's QD (qdsim.presets.paper_qd:
full detection chain) at n = 0.01, 0.1, 1, 10 and 25 absorbed photons per
pulse, then the blinking QD (presets.blinking_qd) at 0.17 uW, and prints a
Markdown table.  Times are the best of ``--repeat`` runs after a warm-up run
(numba compilation excluded); "cpu" is the process CPU time, which is less
sensitive to other load on a shared machine than the wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import qdsim


def _run(setup, power_w: float, duration_s: float, repeat: int, workers: int):
    qdsim.simulate(setup, power_w=power_w, duration_s=0.01, rng=0, n_workers=workers)
    best_wall = best_cpu = float("inf")
    n_photons = 0
    for i in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = qdsim.simulate(
            setup, power_w=power_w, duration_s=duration_s, rng=i, n_workers=workers
        )
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
        n_photons = len(res.stream)
    return res, best_wall, best_cpu, n_photons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="acquisition time, s")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="threads over blocks")
    args = parser.parse_args(argv)

    print(
        f"qdsim {qdsim.__version__}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, workers={args.workers}, "
        f"{args.duration:g} s acquisitions, best of {args.repeat}\n"
    )
    print(
        "| setup | n | power | pulses | photons | wall s | cpu s | pulses/s | photons/s "
        "| photons/cpu-s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    paper = qdsim.presets.paper_qd()
    cases = [("paper_qd", paper, paper.power_for(n)) for n in (0.01, 0.1, 1.0, 10.0, 25.0)]
    cases.append(("blinking_qd", qdsim.presets.blinking_qd(), 0.17e-6))
    for name, setup, power in cases:
        res, wall, cpu, photons = _run(setup, power, args.duration, args.repeat, args.workers)
        pulses = res.truth.n_pulses
        print(
            f"| {name} | {res.truth.mean_absorbed:.3g} | {power * 1e6:.3g} uW | {pulses:.3g} | "
            f"{photons:.3g} | {wall:.3f} | {cpu:.3f} | {pulses / wall:.3g} | {photons / wall:.3g} "
            f"| {photons / cpu:.3g} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
