"""Speed and memory of the qdinfer analyses: g2 against tttrlib and pycorrelate, one pass.

Usage::

    python bench/bench_analysis.py [--photons N] [--repeat K] [--big-gb G] [--skip-big]
                                   [--py311 PYTHON] [--tmp DIR] [--keep] [--markdown]

What it measures:

* **g2 histogram**, two channels of ``N`` photons each (default 2e6), lags
  within +-1 us in 1 ns bins (2000 bins), on the same input in the same run:

  - ``qdinfer.g2_histogram`` on a T2 PhotonStream of integer 1 ps time tags
    (exact: every pair binned from integer lags);
  - ``tttrlib.Correlator`` (methods "felekyan" and "wahl", ``n_casc=1``,
    ``n_bins=1000``): its linear correlator counts lags of whole time ticks,
    so the tags are floored to 1 ns ticks first (timed with it) and it runs
    twice, (a, b) and (b, a), for positive and negative lags.  Flooring moves
    pairs between neighbouring bins: the table gives how many;
  - ``pycorrelate.pcorrelate`` (Laurence 2006) on the same 1 ps integer tags
    and the same 2001 bin edges, in a subprocess of a Python 3.11 venv
    (``--py311``; pycorrelate 0.3 does not build on Python 3.12).  Its counts
    must equal qdinfer's exactly (same input, same half-open bins).

  Two inputs: a pulsed emitter at 1e5 photons/s per channel (2.5 MHz, 60 ns
  decay; ~0.2 partners per photon within 1 us) and a dense one at 1e6/s.
  Times are the best of ``K`` runs after a warm-up run (numba JIT).  qdinfer's
  kernels run in parallel over blocks of photons (numba ``prange``, all
  cores); the "1 thread" column limits them to one core (same counts).

* **one pass over a G GB PTU** (default 1 GB): ``qdinfer.analyze_file`` (decay
  per channel, 10 ms trace, rates, g2 histogram, pulsed g2(0)) in a fresh
  subprocess; wall time and peak resident memory (VmHWM, absolute, and above
  the RSS after imports).  The file is a PicoHarp T3 PTU written by
  ``qdio.write_ptu`` from a simulated pulsed emitter, its record block
  repeated (with an overflow record between copies, so time keeps
  increasing) and its header record count set to 0 (qdio then counts the
  records from the file size).  It is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import qdinfer
import qdio

MAX_LAG_S = 1e-6
BIN_S = 1e-9
TICK_S = 1e-12


def pulsed_tags(rng, n_photons: int, rate_hz: float, period_s=400e-9, tau_s=60e-9):
    """Two channels of a pulsed emitter: integer 1 ps tags (int64), sorted."""
    duration = n_photons / rate_hz
    n_pulses = int(duration / period_s)
    out = []
    for _ in range(2):
        pulses = np.sort(rng.integers(0, n_pulses, n_photons))
        t = pulses * round(period_s / TICK_S) + np.round(
            rng.exponential(tau_s / TICK_S, n_photons)
        ).astype(np.int64)
        out.append(np.sort(t))
    return out


def stream_of(ta, tb) -> qdio.PhotonStream:
    mac = np.concatenate([ta, tb])
    ch = np.concatenate([np.zeros(len(ta), np.uint8), np.ones(len(tb), np.uint8)])
    order = np.argsort(mac, kind="stable")
    return qdio.PhotonStream(ch[order], mac[order], None, TICK_S)


def best_of(fn, repeat):
    fn()  # warm-up (JIT, caches)
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bench_qdinfer(stream, repeat, threads=None):
    """Best time of g2_histogram; ``threads=1`` limits numba's parallel kernels."""
    import numba

    default = numba.get_num_threads()
    numba.set_num_threads(threads or default)
    try:
        return best_of(
            lambda: qdinfer.g2_histogram(stream, max_lag_s=MAX_LAG_S, bin_width_s=BIN_S).counts,
            repeat,
        )
    finally:
        numba.set_num_threads(default)


def bench_tttrlib(ta, tb, repeat, method):
    import tttrlib

    n = round(MAX_LAG_S / BIN_S)
    k = round(BIN_S / TICK_S)

    def run():
        a = (ta // k).astype(np.uint64)  # tttrlib counts whole ticks: floor to 1 ns
        b = (tb // k).astype(np.uint64)
        wa, wb = np.ones(len(a)), np.ones(len(b))
        pos = tttrlib.Correlator(n_bins=n, n_casc=1, method=method)
        pos.set_macrotimes(a, b)
        pos.set_weights(wa, wb)
        yp = np.asarray(pos.get_corr())[:n]  # lags 0..n-1 ticks
        neg = tttrlib.Correlator(n_bins=n, n_casc=1, method=method)
        neg.set_macrotimes(b, a)
        neg.set_weights(wb, wa)
        yn = np.asarray(neg.get_corr())[1 : n + 1]  # lags -1..-n ticks
        return np.concatenate([yn[::-1], yp]).round().astype(np.int64)

    return best_of(run, repeat)


PYCORRELATE_WORKER = """
import sys, time, numpy as np, pycorrelate
ta, tb = np.load(sys.argv[1]), np.load(sys.argv[2])
bins = np.arange(-1000, 1001, dtype=np.int64) * 1000
pycorrelate.pcorrelate(ta[:1000], tb[:1000], bins)  # JIT warm-up
t0 = time.perf_counter()
counts = pycorrelate.pcorrelate(ta, tb, bins)
dt = time.perf_counter() - t0
# pcorrelate divides the counts by the bin widths: undo it
np.save(sys.argv[3], np.round(counts * np.diff(bins)).astype(np.int64))
print(dt)
"""


def bench_pycorrelate(ta, tb, python, tmp):
    paths = [Path(tmp) / f"{name}.npy" for name in ("ta", "tb", "counts")]
    np.save(paths[0], ta)
    np.save(paths[1], tb)
    try:
        res = subprocess.run(
            [python, "-c", PYCORRELATE_WORKER, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, None, f"{type(exc).__name__}: {getattr(exc, 'stderr', '') or exc}"
    counts = np.load(paths[2])
    code = "import pycorrelate, sys; print(pycorrelate.__version__, sys.version.split()[0])"
    version = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=False
    ).stdout.strip()
    return float(res.stdout.strip().splitlines()[-1]), counts, version


# -- the big file -------------------------------------------------------------


def _ptu_layout(data: bytes) -> tuple[int, int]:
    """(offset of the TTResult_NumberOfRecords value, offset of the records)."""
    pos = 16
    nrec_at = None
    while True:
        ident = data[pos : pos + 32].rstrip(b"\0").decode("ascii")
        typ, value = struct.unpack_from("<Iq", data, pos + 36)
        pos += 48
        if ident == "TTResult_NumberOfRecords":
            nrec_at = pos - 8
        if typ in (0x4001FFFF, 0x4002FFFF, 0xFFFFFFFF):  # AnsiString, WideString, Blob
            pos += value
        if ident == "Header_End":
            return nrec_at, pos


def write_big_ptu(path: Path, size_gb: float, rng) -> int:
    """A PicoHarp T3 PTU of about ``size_gb`` GB; returns the number of records."""
    n_pulses = 40_000_000  # 16 s at 2.5 MHz
    pulses = np.sort(rng.choice(n_pulses, 3_000_000, replace=False))
    delay = rng.exponential(60e-9, len(pulses)) + 5e-9
    mic = np.minimum((delay / 128e-12).astype(np.int64), 3124)
    ch = rng.integers(0, 2, len(pulses)).astype(np.uint8)
    base = qdio.PhotonStream(ch, pulses, mic, 400e-9, 128e-12, 4096)
    small = path.with_suffix(".base.ptu")
    qdio.write_ptu(small, base, record_type="picoharp_t3")
    data = small.read_bytes()
    small.unlink()
    nrec_at, start = _ptu_layout(data)
    header = bytearray(data[:start])
    struct.pack_into("<q", header, nrec_at, 0)  # unknown count: qdio uses the file size
    block = data[start:] + struct.pack("<I", 0xF0000000)  # end on an overflow record
    copies = max(1, round(size_gb * 1e9 / len(block)))
    with open(path, "wb") as fh:
        fh.write(header)
        for _ in range(copies):
            fh.write(block)
    return copies * len(block) // 4


BIG_WORKER = """
import json, sys, time
import qdinfer

def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0

base = rss("VmRSS")
t0 = time.perf_counter()
res = qdinfer.analyze_file(sys.argv[1])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss": rss("VmHWM"), "baseline_rss": base,
                  "photons": res.n_photons, "g2_zero": res.g2_zero.value,
                  "g2_coincidences": int(res.g2.counts.sum()),
                  "trace_bins": len(res.trace)}))
"""


def bench_big(size_gb: float, tmp: str, keep: bool, rng):
    path = Path(tmp) / "bench_analysis_big.ptu"
    t0 = time.perf_counter()
    n_records = write_big_ptu(path, size_gb, rng)
    write_s = time.perf_counter() - t0
    size = path.stat().st_size
    # warm the numba caches in a small run first, then measure in a fresh process
    warm = Path(tmp) / "bench_analysis_warm.ptu"
    write_big_ptu(warm, 0.005, rng)
    subprocess.run([sys.executable, "-c", BIG_WORKER, str(warm)], check=True, capture_output=True)
    warm.unlink()
    try:
        out = subprocess.run(
            [sys.executable, "-c", BIG_WORKER, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if not keep:
            path.unlink()
    result.update(size_bytes=size, n_records=n_records, write_s=write_s)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photons", type=float, default=2e6, help="photons per channel")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--big-gb", type=float, default=1.0)
    p.add_argument("--skip-big", action="store_true")
    p.add_argument(
        "--py311", default="/tmp/py311/bin/python", help="Python 3.11 with pycorrelate ('' to skip)"
    )
    p.add_argument("--tmp", default=tempfile.gettempdir())
    p.add_argument("--keep", action="store_true", help="keep the big PTU")
    p.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    args = p.parse_args(argv)
    rng = np.random.default_rng(1)
    n = int(args.photons)
    rows = []
    for label, rate in (("pulsed, 1e5 /s per channel", 1e5), ("dense, 1e6 /s per channel", 1e6)):
        ta, tb = pulsed_tags(rng, n, rate)
        stream = stream_of(ta, tb)
        t_q, c_q = bench_qdinfer(stream, args.repeat)
        t_1, c_1 = bench_qdinfer(stream, args.repeat, threads=1)
        assert np.array_equal(c_1, c_q)
        row = {"input": label, "pairs": int(c_q.sum()), "qdinfer_s": t_q, "qdinfer_1_s": t_1}
        for method in ("felekyan", "wahl"):
            t_t, c_t = bench_tttrlib(ta, tb, args.repeat, method)
            row[f"tttrlib_{method}_s"] = t_t
            row[f"tttrlib_{method}_moved"] = int(np.abs(c_t - c_q).sum())
        if args.py311 and rate == 1e5:
            with tempfile.TemporaryDirectory(dir=args.tmp) as d:
                t_p, c_p, info = bench_pycorrelate(ta, tb, args.py311, d)
            row["pycorrelate_s"] = t_p
            row["pycorrelate_identical"] = None if c_p is None else bool(np.array_equal(c_p, c_q))
            row["pycorrelate_info"] = info
        rows.append(row)
    big = None if args.skip_big else bench_big(args.big_gb, args.tmp, args.keep, rng)
    report(rows, big, n, args.markdown)
    return 0


def report(rows, big, n, markdown):
    lines = []
    add = lines.append
    add(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}; {n:.0e} photons per channel, "
        "lags +-1 us, 1 ns bins (2000 bins); best of the timed runs after a warm-up."
    )
    add("")
    add(
        "| input | pairs | qdinfer | qdinfer, 1 thread (vs tttrlib) | tttrlib felekyan | "
        "tttrlib wahl | pycorrelate | speed-up vs tttrlib (best) | vs pycorrelate |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tt = min(r["tttrlib_felekyan_s"], r["tttrlib_wahl_s"])
        pc = r.get("pycorrelate_s")
        add(
            f"| {r['input']} | {r['pairs']:,} | {r['qdinfer_s']:.3f} s | "
            f"{r['qdinfer_1_s']:.3f} s ({tt / r['qdinfer_1_s']:.1f}x) | "
            f"{r['tttrlib_felekyan_s']:.3f} s | {r['tttrlib_wahl_s']:.3f} s | "
            f"{f'{pc:.1f} s' if pc else 'n/a'} | {tt / r['qdinfer_s']:.1f}x | "
            f"{f'{pc / r["qdinfer_s"]:.0f}x' if pc else 'n/a'} |"
        )
    add("")
    for r in rows:
        add(
            f"- {r['input']}: flooring to 1 ns ticks for tttrlib moved "
            f"{r['tttrlib_felekyan_moved']:,} (felekyan) / {r['tttrlib_wahl_moved']:,} (wahl) "
            f"counts between bins (sum of |difference|) out of {r['pairs']:,} pairs."
        )
        if "pycorrelate_s" in r:
            if r["pycorrelate_s"] is None:
                add(f"- pycorrelate not run: {r['pycorrelate_info']}")
            else:
                add(
                    f"- pycorrelate {r['pycorrelate_info']} (Python 3.11 venv, subprocess): "
                    f"counts identical to qdinfer's: {r['pycorrelate_identical']}."
                )
    if big is not None:
        add("")
        add(
            f"One pass over a {big['size_bytes'] / 1e9:.2f} GB PicoHarp T3 PTU "
            f"({big['n_records']:,} records, {big['photons']:,} photons; "
            "`qdinfer.analyze_file`: decays, 10 ms trace, rates, g2 histogram, pulsed g2(0)):"
        )
        add("")
        add("| wall time | records/s | peak RSS | peak RSS above imports |")
        add("|---|---|---|---|")
        add(
            f"| {big['seconds']:.1f} s | {big['n_records'] / big['seconds']:.2e} | "
            f"{big['peak_rss'] / 2**20:.0f} MiB | "
            f"{(big['peak_rss'] - big['baseline_rss']) / 2**20:.0f} MiB |"
        )
    text = "\n".join(lines)
    if markdown:
        text = "## Analysis (bench/bench_analysis.py)\n\n" + text
    print(textwrap.dedent(text))


if __name__ == "__main__":
    sys.exit(main())
