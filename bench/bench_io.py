"""Decode throughput and peak memory: qdio against ptufile, tttrlib and phconvert.

Usage::

    python bench/bench_io.py [--records N] [--repeat K] [--out DIR] [--big-gb G]
                             [--skip-big] [--tmp DIR] [--keep]

What it measures, on the same files in the same run:

* the real files of ``../shared/data`` (PTU, plus the legacy PT3/HT3/T3R files
  for the readers that can read them), and two synthetic PTU files of about
  ``N`` records (PicoHarp T3 and HydraHarp v2 T3) that it writes itself with
  :func:`qdio.write_ptu`;
* for every (reader, file) pair, in a fresh subprocess: the time of the first
  call (for qdio this includes numba's JIT compile), the best of ``K`` timed
  decodes, records/s, the bytes of the arrays the reader returns and the peak
  resident memory above the baseline (see *Memory method*);
* :func:`qdio.iter_chunks` over a ``G`` GB PTU with a trivial accumulation
  (photons per channel): peak resident memory, absolute and above baseline.

Memory method: each measurement runs in its own ``python`` process with
``MALLOC_MMAP_THRESHOLD_=65536`` (glibc serves every large allocation with
``mmap`` and gives it back on ``free``, so memory freed by the warm-up is not
silently reused by the timed runs).  The worker imports the reader, decodes
the file once (warm-up: imports, numba JIT compile, page cache), frees the
result, then writes ``5`` to ``/proc/self/clear_refs``, which resets the
kernel's peak-RSS counter ``VmHWM`` to the current RSS.  The baseline is
``VmRSS`` at that moment; after the ``K`` timed decodes (each result freed
before the next), ``peak = VmHWM - baseline``.  Where ``clear_refs`` cannot be
written, the table marks the peak as including the warm-up.  Page-cache pages
of the file are not counted (no reader here maps the file), so the numbers
are what the reader allocates.  "returned" is the ``nbytes`` of the arrays
handed back (qdio: channel, macrotime, microtime and the marker arrays;
ptufile: the record array, one row per record; tttrlib: macro, micro and
routing-channel arrays; phconvert: timestamps, detectors, nanotimes).

The iter_chunks worker runs with glibc's default malloc settings instead: a
loop over chunks is where an allocator reuses freed memory, and forcing fresh
pages for every chunk (and every temporary of the consumer) would make it
look several times slower than it is.  Its target is the absolute peak RSS
of the process (``VmHWM``), imports and JIT included.

Records/s is the number of 32-bit records in the file (overflows and markers
included) divided by the best time, the same numerator for every reader.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
READERS = ("qdio", "ptufile", "tttrlib", "phconvert")
MIB = 1 << 20

# (path below DATA, format): which real files, and which oracles can read them
REAL_FILES = [
    ("napari_flim/ptu_stack_FLIM_z1.ptu", "PTU"),
    ("napari_flim/ptu_stack_FLIM_z11.ptu", "PTU"),
    ("libpicoquant/hydraharp_v30_t2.ptu", "PTU"),
    ("fcs_point_correlator/topfluorPE_2_1_1_1.pt3", "PT3"),
    ("libpicoquant/hydraharp_v20.ht3", "HT3"),
    ("libpicoquant/timeharp_v50.t3r", "T3R"),
]
# readers that support a format at all (the rest are not attempted)
SUPPORTS = {
    "PTU": READERS,
    "PT3": ("qdio", "phconvert"),  # tttrlib: no PT3; ptufile: PTU only
    "HT3": ("qdio", "tttrlib", "phconvert"),  # phconvert refuses HT3 v2.0 (tried anyway)
    "T3R": ("qdio", "phconvert"),
}
TARGET_SPEED = 1.0  # qdio records/s >= ptufile records/s
TARGET_PEAK_RATIO = 1.5  # qdio peak <= 1.5 x returned arrays
TARGET_ITER_MIB = 300.0  # iter_chunks resident memory


# --------------------------------------------------------------- worker side --


def _status_kib() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    st = _status_kib()
    return st["VmHWM"] <= st["VmRSS"] + 256


def _nbytes(*arrays) -> int:
    return int(sum(a.nbytes for a in arrays if a is not None))


def _decoder(reader: str, fmt: str):
    """A function path -> (result, returned_bytes, rows) and one -> (photons, records)."""
    if reader == "qdio":
        import qdio

        def decode(path):
            res = qdio.read(path, with_markers=True)
            s, m = res
            return res, _nbytes(s.channel, s.macrotime, s.microtime, m.macrotime, m.bits), len(s)

        def describe(res, path):
            return len(res.stream), res.stream.attrs.get("n_records")

    elif reader == "ptufile":
        import ptufile

        def decode(path):
            with ptufile.PtuFile(path) as ptu:
                rec = ptu.decode_records()
            return rec, rec.nbytes, rec.shape[0]

        def describe(rec, path):
            return int(np.count_nonzero(rec["channel"] >= 0)), rec.shape[0]

    elif reader == "tttrlib":
        import tttrlib

        def decode(path):
            t = tttrlib.TTTR(str(path), fmt)
            mac = t.get_macro_times()
            mic = t.get_micro_times()
            ch = t.get_routing_channel()
            if mac.shape[0] == 0:
                raise RuntimeError(f"tttrlib read 0 events as {fmt!r} (unsupported?)")
            return (t, mac, mic, ch), _nbytes(mac, mic, ch), mac.shape[0]

        def describe(res, path):
            t = res[0]
            photons = int(np.count_nonzero(t.get_event_type() == 0))
            tags = json.loads(t.header.json).get("tags", [])
            names = ("TTResult_NumberOfRecords", "nRecords")
            n = [x.get("value") for x in tags if x.get("name") in names]
            return photons, (int(n[0]) if n else None)

    elif reader == "phconvert":
        import phconvert.pqreader as pq

        load = {"PTU": pq.load_ptu, "PT3": pq.load_pt3, "HT3": pq.load_ht3, "T3R": pq.load_t3r}[fmt]

        def decode(path):
            res = load(str(path))
            return res, _nbytes(*res[:3]), res[0].shape[0]

        def describe(res, path):
            meta = res[3]
            n = None
            tt = meta.get("ttmode") if isinstance(meta, dict) else None
            if tt is not None and "nRecords" in (tt.dtype.names or ()):
                n = int(tt["nRecords"][0])
            return int(np.count_nonzero(res[1] < 15)) if fmt in ("PT3", "T3R") else len(res[0]), n

    else:
        raise ValueError(reader)
    return decode, describe


def worker_decode(reader: str, path: str, fmt: str, repeat: int) -> dict:
    warnings.simplefilter("ignore")
    decode, describe = _decoder(reader, fmt)
    rss_imported = _status_kib()["VmRSS"]
    t0 = time.perf_counter()
    res, returned, rows = decode(path)
    first_s = time.perf_counter() - t0
    photons, n_records = describe(res, path)
    del res
    gc.collect()
    hwm_reset = _reset_hwm()
    baseline = _status_kib()["VmRSS"]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = decode(path)
        times.append(time.perf_counter() - t0)
        del res
        gc.collect()
    st = _status_kib()
    return {
        "ok": True,
        "first_s": first_s,
        "times_s": times,
        "best_s": min(times),
        "rss_after_imports_kib": rss_imported,
        "baseline_kib": baseline,
        "hwm_kib": st["VmHWM"],
        "hwm_reset": hwm_reset,
        "peak_above_baseline_bytes": (st["VmHWM"] - baseline) * 1024,
        "returned_bytes": returned,
        "rows": rows,
        "photons": photons,
        "n_records_reader": n_records,
    }


def _count_channels(channel: np.ndarray, counts: np.ndarray, step: int = 1 << 20) -> None:
    """counts += photons per channel, in slices: np.bincount casts uint8 to intp,
    a temporary of 8 bytes per photon (64 MiB for a default chunk) if done at once."""
    for i in range(0, channel.shape[0], step):
        counts += np.bincount(channel[i : i + step], minlength=256)


def worker_iter(path: str, max_records: int, repeat: int) -> dict:
    warnings.simplefilter("ignore")
    import qdio

    max_records = max_records or qdio.DEFAULT_CHUNK_RECORDS
    rss_imported = _status_kib()["VmRSS"]
    t0 = time.perf_counter()
    for chunk in qdio.iter_chunks(
        path, max_records=max_records
    ):  # warm-up: JIT compile of this layout
        _count_channels(chunk.channel, np.zeros(256, np.int64))
        break
    first_s = time.perf_counter() - t0
    del chunk
    gc.collect()
    hwm_reset = _reset_hwm()
    baseline = _status_kib()["VmRSS"]
    times = []
    for _ in range(repeat):
        counts = np.zeros(256, np.int64)
        n_chunks = 0
        t0 = time.perf_counter()
        for chunk in qdio.iter_chunks(path, max_records=max_records):
            _count_channels(chunk.channel, counts)
            n_chunks += 1
        times.append(time.perf_counter() - t0)
        del chunk
        gc.collect()
    st = _status_kib()
    return {
        "ok": True,
        "first_chunk_s": first_s,
        "times_s": times,
        "best_s": min(times),
        "rss_after_imports_kib": rss_imported,
        "baseline_kib": baseline,
        "hwm_kib": st["VmHWM"],
        "hwm_reset": hwm_reset,
        "peak_above_baseline_bytes": (st["VmHWM"] - baseline) * 1024,
        "photons": int(counts.sum()),
        "counts": {int(c): int(counts[c]) for c in np.flatnonzero(counts)},
        "n_chunks": n_chunks,
        "chunk_records": max_records,
        "default_chunk": max_records == qdio.DEFAULT_CHUNK_RECORDS,
    }


# --------------------------------------------------------------- parent side --


def run_worker(args: list[str], timeout: float = 1800, *, fresh_pages: bool = True) -> dict:
    env = dict(os.environ)
    if fresh_pages:  # every large allocation is a fresh mmap, given back on free
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="131072")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"exit {proc.returncode}: {err[:160]}"}


def synth_stream(n_records: int, layout: str, seed: int):
    """A realistic 2-channel T3 stream whose PTU holds about ``n_records`` records.

    5 MHz sync; Poisson photon arrivals at 120 + 80 kcps on channels 0 and 1
    (mean gap 25 sync periods, so HydraHarp files get an overflow record every
    ~1024 periods and PicoHarp ones every 65536); microtimes: Gaussian IRF
    (120 ps sd) at 5 ns plus a 3 ns exponential decay, folded into the period.
    """
    import qdio

    sync_hz = 5e6
    rates = np.array([120e3, 80e3])
    p = rates.sum() / sync_hz
    wrap, res_s, nbins = (65536, 64e-12, 4096) if layout == "picoharp_t3" else (1024, 8e-12, 32768)
    n = int(n_records / (1 + (1 / p) / wrap))
    rng = np.random.default_rng(seed)
    macro = rng.geometric(p, n).astype(np.int64)
    np.cumsum(macro, out=macro)
    channel = (rng.random(n) >= rates[0] / rates.sum()).astype(np.uint8)
    t = rng.exponential(3e-9, n)
    t += rng.normal(5e-9, 120e-12, n)
    period = 1 / sync_hz
    np.mod(t, period, out=t)
    micro = np.minimum((t / res_s).astype(np.int32), min(nbins, int(period / res_s)) - 1)
    del t
    return qdio.PhotonStream(channel, macro, micro, period, res_s, nbins, {"seed": seed})


def write_synthetic(path: Path, n_records: int, layout: str, seed: int) -> Path:
    import qdio

    stream = synth_stream(n_records, layout, seed)
    qdio.write_ptu(path, stream, record_type=layout, comment="bench_io synthetic")
    del stream
    gc.collect()
    return path


def write_big_ptu(path: Path, source: Path, target_bytes: float) -> Path:
    """A PicoHarp T3 PTU of about ``target_bytes``, written in bounded pieces.

    The record block of ``source`` (a synthetic PicoHarp T3 PTU) is written
    again and again, each copy followed by one overflow record, so the
    macrotime keeps increasing across copies.  The header is ``source``'s with
    ``TTResult_NumberOfRecords`` patched to the new count.  Memory: one copy
    of the source records (~80 MB for 2e7 records).
    """
    from qdio.ptu import PTU_MAGIC, parse_tags

    with open(source, "rb") as f:
        tags, _, data_offset = parse_tags(f, source, magic=PTU_MAGIC)
        f.seek(0)
        header = bytearray(f.read(data_offset))
    records = np.fromfile(source, "<u4", offset=data_offset)
    tile = np.empty(records.shape[0] + 1, "<u4")
    tile[:-1] = records
    tile[-1] = 0xF0000000  # PicoHarp T3 overflow record
    del records
    n_tiles = max(1, math.ceil((target_bytes - data_offset) / tile.nbytes))
    n_total = n_tiles * tile.shape[0]
    key = b"TTResult_NumberOfRecords".ljust(32, b"\0")
    at = header.find(key)
    if at < 0 or tags.get("TTResult_NumberOfRecords") is None:
        raise RuntimeError(f"{source}: no TTResult_NumberOfRecords tag to patch")
    header[at + 40 : at + 48] = int(n_total).to_bytes(8, "little", signed=True)
    with open(path, "wb") as f:
        f.write(header)
        for _ in range(n_tiles):
            f.write(memoryview(tile))
    return path


def file_facts(path: Path) -> dict:
    """Format and record count as qdio sees them (None where qdio cannot read it)."""
    import qdio
    from qdio._formats import detect

    try:
        _, fmt = detect(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = fmt.source(path) if fmt.source is not None else None
        return {
            "qdio_format": qdio.detect_format(path),
            "n_records": src.n_records if src is not None else None,
            "layout": src.layout if src is not None else None,
        }
    except Exception as exc:  # legacy readers may not exist yet
        return {"qdio_format": None, "n_records": None, "error": f"{type(exc).__name__}: {exc}"}


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("qdlight", "numpy", "numba", "ptufile", "tttrlib", "phconvert"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / MIB:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e6:.1f}"


def _mib(b: float | None) -> str:
    return "-" if b is None else f"{b / MIB:.1f}"


def build_rows(results: list[dict]) -> list[list[str]]:
    """Table rows; speed and memory ratios against ptufile on the same file."""
    rows = []
    by_file: dict[str, dict[str, dict]] = {}
    for r in results:
        by_file.setdefault(r["file"], {})[r["reader"]] = r
    for r in results:
        n = r.get("n_records")
        if not r["ok"]:
            rows.append([r["file"], _count(n), r["reader"], *["-"] * 8, f"fails: {r['error']}"])
            continue
        rate = n / r["best_s"] if n else None
        ref = by_file[r["file"]].get("ptufile")
        speed = "-"
        if rate and ref and ref["ok"]:
            speed = f"{rate / (n / ref['best_s']):.2f}"
        peak = r["peak_above_baseline_bytes"]
        ratio = peak / r["returned_bytes"] if r["returned_bytes"] else float("nan")
        per_file = peak / r["size_bytes"]
        note = r.get("note", "")
        if not r.get("hwm_reset", True):
            note = (note + "; " if note else "") + "peak includes warm-up"
        rows.append([
            r["file"], _count(n), r["reader"],
            f"{r['best_s'] * 1e3:.1f}", _fmt_rate(rate), speed,
            _mib(r["returned_bytes"]), _mib(peak), f"{ratio:.2f}", f"{per_file:.1f}",
            f"{r['first_s']:.2f}", note,
        ])  # fmt: skip
    return rows


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


HEAD = [
    "file", "records", "reader", "best ms", "Mrec/s", "speed / ptufile",
    "returned MiB", "peak MiB", "peak / returned", "peak / file", "1st call s", "note",
]  # fmt: skip


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)).rstrip() for r in [head, *rows])


def verdicts(results: list[dict], big: dict | None) -> list[str]:
    out = []
    by_file: dict[str, dict[str, dict]] = {}
    for r in results:
        by_file.setdefault(r["file"], {})[r["reader"]] = r
    for name, rs in by_file.items():
        q, p = rs.get("qdio"), rs.get("ptufile")
        if not (q and q["ok"]):
            continue
        ratio = q["peak_above_baseline_bytes"] / max(q["returned_bytes"], 1)
        msg = f"{name}: qdio peak/returned {ratio:.2f} (target <= {TARGET_PEAK_RATIO})"
        msg += " OK" if ratio <= TARGET_PEAK_RATIO else " MISSED"
        if p and p["ok"]:
            speed = p["best_s"] / q["best_s"]
            ok = " OK" if speed >= TARGET_SPEED else " MISSED"
            msg += f"; speed vs ptufile {speed:.2f}x (target >= {TARGET_SPEED}){ok}"
        out.append(msg)
    for b in big or []:
        if not b.get("ok"):
            out.append(f"iter_chunks: failed: {b.get('error')}")
            continue
        above = b["peak_above_baseline_bytes"] / MIB
        total = b["hwm_kib"] / 1024
        ok = "OK" if total < TARGET_ITER_MIB else "MISSED"
        which = "default max_records" if b["default_chunk"] else "max_records"
        out.append(
            f"iter_chunks over {b['size_bytes'] / 1e9:.2f} GB ({b['n_records']:,} records), "
            f"{which}={b['chunk_records']:,} ({b['n_chunks']} chunks): "
            f"{b['best_s']:.1f} s ({b['n_records'] / b['best_s'] / 1e6:.0f} Mrec/s); "
            f"RSS after imports {b['rss_after_imports_kib'] / 1024:.0f} MiB, baseline after "
            f"warm-up {b['baseline_kib'] / 1024:.0f} MiB, peak RSS {total:.0f} MiB "
            f"({above:.0f} MiB above baseline); target < {TARGET_ITER_MIB:.0f} MiB "
            f"resident: {ok}; photons per channel {b['counts']}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=float, default=20e6, help="records per synthetic PTU")
    ap.add_argument("--repeat", type=int, default=5, help="timed decodes per measurement")
    ap.add_argument("--out", type=Path, help="write bench_io.md and bench_io.json here")
    ap.add_argument("--big-gb", type=float, default=2.0, help="size of the iter_chunks file")
    ap.add_argument("--skip-big", action="store_true", help="skip the iter_chunks test")
    ap.add_argument("--tmp", type=Path, default=None, help="where temporary PTUs go (/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")
    ap.add_argument("--readers", default=",".join(READERS), help="comma-separated subset")
    ap.add_argument("--no-real", action="store_true", help="only the synthetic files")
    ap.add_argument(
        "--iter-max-records",
        type=lambda v: [int(float(x)) for x in v.split(",")],
        default=[0, 1 << 22],
        help="iter_chunks chunk sizes to measure, comma-separated (0 = qdio's default)",
    )
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        kind, *rest = args.worker
        try:
            if kind == "iter":
                res = worker_iter(rest[0], int(rest[1]), int(rest[2]))
            else:
                res = worker_decode(kind, rest[0], rest[1], int(rest[2]))
        except Exception as exc:
            res = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:150]}"}
        print(json.dumps(res))
        return 0

    readers = [r for r in args.readers.split(",") if r]
    started = dt.datetime.now()
    facts = {"machine": machine(), "versions": versions()}
    print(f"# bench_io  {started:%Y-%m-%d %H:%M}")
    print("machine:", ", ".join(f"{k} {v}" for k, v in facts["machine"].items()))
    print("versions:", ", ".join(f"{k} {v}" for k, v in facts["versions"].items()))
    probe = run_worker(["qdio", "/nonexistent", "PTU", "1"])  # checks the worker runs at all
    if "error" not in probe:
        raise SystemExit(f"worker probe behaved oddly: {probe}")

    tmp = Path(tempfile.mkdtemp(prefix="bench_io_", dir=args.tmp))
    files: list[tuple[str, Path, str, str]] = []  # label, path, format, note
    skipped: list[str] = []
    try:
        if not args.no_real:
            for rel, fmt in REAL_FILES:
                p = DATA / rel
                if p.exists():
                    files.append((rel, p, fmt, ""))
                else:
                    skipped.append(f"{rel}: not found")
        n_rec = int(args.records)
        for layout, seed in (("picoharp_t3", 1), ("hydraharp_v2_t3", 2)):
            t0 = time.perf_counter()
            p = write_synthetic(tmp / f"synthetic_{layout}.ptu", n_rec, layout, seed)
            took = time.perf_counter() - t0
            print(f"wrote {p.name}: {p.stat().st_size / MIB:.1f} MiB in {took:.1f} s")
            files.append((f"synthetic {layout}", p, "PTU", ""))

        results = []
        for label, path, fmt, _ in files:
            ff = file_facts(path)
            warm_page_cache(path)
            row_results = []
            for reader in readers:
                if reader not in SUPPORTS[fmt]:
                    continue
                res = run_worker([reader, str(path), fmt, str(args.repeat)])
                res.update(file=label, reader=reader, fmt=fmt, size_bytes=path.stat().st_size)
                if reader == "qdio" and not res["ok"]:
                    res["error"] = f"qdio cannot read it yet ({res['error']})"
                row_results.append(res)
            n = ff["n_records"]
            if n is None:  # qdio could not parse it: take an oracle's header count
                n = next((r.get("n_records_reader") for r in row_results
                          if r["ok"] and r.get("n_records_reader")), None)  # fmt: skip
            photons = {r["reader"]: r.get("photons") for r in row_results if r["ok"]}
            for r in row_results:
                r["n_records"] = n
                if r["ok"] and len(set(photons.values())) > 1:
                    r["note"] = f"{r['photons']:,} photons"
                results.append(r)
                status = r["error"] if not r["ok"] else (
                    f"{r['best_s'] * 1e3:8.1f} ms  "
                    f"peak {r['peak_above_baseline_bytes'] / MIB:7.1f} MiB"
                )  # fmt: skip
                print(f"  {label:45s} {r['reader']:9s} {status}", flush=True)

        big = None
        if not args.skip_big:
            src = tmp / "synthetic_picoharp_t3.ptu"
            bigp = tmp / "big_picoharp_t3.ptu"
            t0 = time.perf_counter()
            write_big_ptu(bigp, src, args.big_gb * 1e9)
            size = bigp.stat().st_size
            print(f"wrote {bigp.name}: {size / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s")
            # remove the synthetic files first: they are no longer needed
            for _, p, _, _ in files:
                if p.parent == tmp:
                    p.unlink(missing_ok=True)
            warm_page_cache(bigp)
            big = []
            n_big = file_facts(bigp)["n_records"]
            for max_records in args.iter_max_records:
                b = run_worker(
                    ["iter", str(bigp), str(max_records), "1"], timeout=3600, fresh_pages=False
                )
                b.update(size_bytes=size, n_records=n_big)
                big.append(b)
                print(f"  iter_chunks max_records={max_records or 'default'}: {b}", flush=True)
            if not args.keep:
                bigp.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    facts["machine"]["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = build_rows(results)
    print()
    print(text_table(HEAD, rows))
    lines = verdicts(results, big)
    lines += [f"not measured: {s}" for s in skipped]
    print()
    print("\n".join(lines))

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        cmd = "python bench/bench_io.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
        )
        md = [
            f"Command: `{cmd}`  ",
            f"Date: {started:%Y-%m-%d %H:%M}  ",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in facts["machine"].items()) + "  ",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()),
            "",
            markdown_table(HEAD, rows),
            "",
            *[f"- {x}" for x in lines],
            "",
        ]
        (args.out / "bench_io.md").write_text("\n".join(md))
        (args.out / "bench_io.json").write_text(
            json.dumps({"facts": facts, "results": results, "big": big}, indent=1, default=str)
        )
        print(f"\nwrote {args.out / 'bench_io.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
