"""Benchmark of ``qdlight batch`` on a local Dask cluster: wall time, scaling, memory.

A population of ``--emitters`` simulated paper_qd emitters (sigma_abs and
eta_BX spread) x 5 powers, ``--duration`` per point, runs with 1 and then 2
worker processes (one thread each), each time into a fresh output folder.
Per run: the task phase (simulate into a PTU + the model-free analysis of
every point; with ``--fit rate`` also a NUTS rate fit per emitter), then a
second call that resumes every task and writes the table, figures and
report; tasks/s; the CPU time the workers used in the task phase (and
how busy that kept them: CPU time / (workers x wall time); below 100 %
means they waited for a core, e.g. taken by other processes); the peak
resident memory of each worker process (``ru_maxrss``, read on the workers
after the run) and of the driver; the 1-minute load average at the start.
Prints a Markdown table.

    python bench/bench_batch.py [--emitters 100] [--duration 1s] [--fit none|rate]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from qdio.units import parse_quantity
from qdlight import _dask, batch

POWERS = ["0.02uW", "0.05uW", "0.17uW", "0.5uW", "1.8uW"]


def _manifest(folder: Path, n: int, duration: str, fit: str) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f'[options]\ngate = "2.5ns"\nfit = "{fit}"\nsamples = 300\n\n'
        f'[[population]]\nname = "qd"\ncount = {n}\npreset = "paper_qd"\n'
        f'powers = {POWERS!r}\nduration = "{duration}"\nseed = 1\n'
        "[population.spread]\n"
        'sigma_abs = { dist = "lognormal", median = "2.3e-14 cm^2", sigma = 0.3 }\n'
        'eta_bx = { dist = "uniform", low = 0.1, high = 0.4 }\n'
    )
    return path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_once(manifest: Path, out: Path, workers: int) -> dict:
    m = batch.load_manifest(manifest)
    with _dask.connect(workers=workers, threads_per_worker=1) as client:
        tasks = batch.batch_tasks(m, out)
        cpu0 = client.run(_cpu_s)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        run = _dask.run(client, tasks, progress=False)
        t_tasks = time.perf_counter() - t0
        cpu1 = client.run(_cpu_s)
        worker_rss = client.run(_peak_rss_mib)
        t0 = time.perf_counter()
        res = batch.run_batch(m, out, client, progress=False)
        t_out = time.perf_counter() - t0
    return {
        "workers": workers,
        "tasks": len(tasks),
        "failed": len(run.failed),
        "t_tasks": t_tasks,
        "t_out": t_out,
        "resumed": res.summary["tasks"]["resumed"],
        "rows_with_error": res.summary["rows_with_error"],
        "worker_rss": sorted(worker_rss.values()),
        "worker_cpu": sum(cpu1[w] - cpu0[w] for w in cpu0),
        "load": load0,
        "photons": int(res.table["n_photons"].sum()),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emitters", type=int, default=100)
    ap.add_argument("--duration", default="1s")
    ap.add_argument("--fit", choices=["none", "rate"], default="none")
    ap.add_argument("--workers", default="1,2", help="worker counts to run (1,2)")
    args = ap.parse_args(argv)
    parse_quantity(args.duration, "s", name="--duration")
    counts = [int(x) for x in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        folder = Path(tmp)
        manifest = _manifest(folder, args.emitters, args.duration, args.fit)
        rows = [run_once(manifest, folder / f"out{w}", w) for w in counts]
    print(
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {args.emitters} emitters x {len(POWERS)} powers, "
        f"{args.duration} per point, fit: {args.fit}"
    )
    print()
    print(
        "| workers | tasks | task phase | tasks/s | speed-up | worker CPU (busy) "
        "| resume + table + report | peak RSS per worker | photons | failed | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = rows[0]["t_tasks"]
    for r in rows:
        rss = ", ".join(f"{x:.0f}" for x in r["worker_rss"])
        print(
            f"| {r['workers']} | {r['tasks']} | {r['t_tasks']:.1f} s | "
            f"{r['tasks'] / r['t_tasks']:.1f} | {base / r['t_tasks']:.2f}x | "
            f"{r['worker_cpu']:.1f} s ({r['worker_cpu'] / (r['workers'] * r['t_tasks']):.0%}) | "
            f"{r['t_out']:.1f} s ({r['resumed']} resumed) | {rss} MiB | {r['photons']:,} | "
            f"{r['failed']} | {r['load']:.1f} |"
        )
    print()
    print(f"Driver peak RSS: {_peak_rss_mib():.0f} MiB.")


if __name__ == "__main__":
    main()
