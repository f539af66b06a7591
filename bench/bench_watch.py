"""Does ``qdlight watch`` keep up with a PTU file appended at 1e6 photons/s, and how fast can it go?

Usage::

    python bench/bench_watch.py [--rates 1e6,2e6,3e6,4e6,6e6] [--seconds S] [--tmp DIR] [--markdown]

For each target rate a writer (this process) appends PicoHarp T3 records to a
PTU file whose header record count is 0 (as during an acquisition), every
20 ms as many bytes as the rate asks for since it started, so the pieces end
anywhere, in the middle of records too.  The records are a simulated
acquisition (``qdsim``: the paper's dot with the collection efficiency raised
to 0.3, at 1 uW: about 1e6 photons/s on two detectors), its record block
repeated with an overflow record between copies.  Meanwhile a fresh Python
process runs :func:`qdlight.watch.watch` on the file (``--gate 2.5ns``,
refresh every 1 s, no display; the same work as the command: follower, decay,
gated decay, trace, rates, g2 histogram, pulsed g2(0) ungated and gated,
mean arrival times every refresh and lifetime fits every 5 s) until the file
has been idle for 2 s.

Reported per rate: the photons processed per second of wall time while the
writer ran, the lag (bytes written but not yet processed, in seconds of
writing; measured at every poll) as median and maximum over the run, how long
after the writer's last byte watch had processed everything, and the
watcher's peak resident memory (VmHWM), absolute and above the RSS after its
imports.  A rate is sustained when the lag stays bounded: under 1 s over the
second half of the writing (the first second includes start-up: scipy
imported and the first fits) and a catch-up under 1 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITE_EVERY_S = 0.02
IDLE_S = 2.0


def make_block(tmp: Path) -> tuple[bytes, bytes, float]:
    """(live header, record block ending on an overflow record, photons per record byte)."""
    import qdio
    import qdsim

    setup = qdsim.presets.paper_qd()
    setup = dataclasses.replace(setup, detection=dataclasses.replace(setup.detection, eta_c=0.3))
    sim = qdsim.simulate(setup, power_w=1e-6, duration_s=1.0, rng=2026)
    path = qdio.write_ptu(tmp / "block.ptu", sim.stream, record_type="picoharp_t3")
    data = bytearray(path.read_bytes())
    offset = qdio.ptu.ptu_source(path).data_offset
    at = data.index(b"TTResult_NumberOfRecords") + 40
    data[at : at + 8] = struct.pack("<q", 0)  # an acquisition still running
    block = bytes(data[offset:]) + struct.pack("<I", 0xF0000000)
    path.unlink()
    return bytes(data[:offset]), block, len(sim.stream) / len(block)


def _rss_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def child(path: str, byte_rate: float) -> None:
    """Run watch on ``path``; print one JSON line with the timings and memory."""
    import qdio
    import qdlight.watch as w

    base_kib = _rss_kib("VmRSS")
    polls: list[tuple[float, int, int]] = []  # (time, processed bytes, file size)

    class Timed(qdio.PtuFollower):
        def poll(self):
            polls.append((time.time(), self.offset, os.path.getsize(self.path)))
            return super().poll()

    qdio.PtuFollower = Timed
    print("ready", flush=True)
    summary, _ = w.watch(path, gate_s=2.5e-9, interval_s=1.0, idle_s=IDLE_S, display=None)
    out = {
        "polls": polls,
        "n_photons": summary["n_photons"],
        "g2_zero": summary["g2"]["g2_zero"],
        "g2_zero_gated": summary["g2"]["g2_zero_gated"],
        "peak_kib": _rss_kib("VmHWM"),
        "base_kib": base_kib,
        "byte_rate": byte_rate,
    }
    print(json.dumps(out), flush=True)


def run_rate(rate: float, seconds: float, header: bytes, block: bytes, per_byte: float, tmp: Path):
    live = tmp / "live.ptu"
    live.write_bytes(b"")
    byte_rate = rate / per_byte
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(live), str(byte_rate)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    written = 0
    n_block = len(block)
    with open(live, "ab") as f:
        t0 = time.time()
        f.write(header)
        f.flush()
        while True:
            now = time.time()
            target = min(int((now - t0) * byte_rate), int(seconds * byte_rate))
            while written < target:
                start = written % n_block
                piece = block[start : start + (target - written)]
                f.write(piece)
                written += len(piece)
            f.flush()
            if written >= int(seconds * byte_rate):
                break
            time.sleep(WRITE_EVERY_S)
        t_end = time.time()
    out = json.loads(proc.stdout.readline())
    proc.wait()
    live.unlink()
    polls = out["polls"]
    hdr = len(header)
    lags = [(size - max(done, hdr)) / byte_rate for t, done, size in polls if t <= t_end]
    half = t0 + seconds / 2
    late = [(size - max(done, hdr)) / byte_rate for t, done, size in polls if half <= t <= t_end]
    # the first poll at which everything written had been processed
    total = hdr + written
    caught = next(t for t, done, _ in polls if done >= total - (total - hdr) % 4)
    busy_until = max(t for t, done, size in polls if done < total - (total - hdr) % 4)
    lags.sort()
    return {
        "rate": rate,
        "photons": out["n_photons"],
        "processed_rate": out["n_photons"] / (busy_until - t0) if busy_until > t0 else float("nan"),
        "wall_s": t_end - t0,
        "lag_median_s": lags[len(lags) // 2],
        "lag_max_s": lags[-1],
        "lag_max_late_s": max(late),
        "catch_up_s": max(0.0, caught - t_end),
        "peak_mib": out["peak_kib"] / 1024,
        "peak_above_mib": (out["peak_kib"] - out["base_kib"]) / 1024,
        "g2_zero": out["g2_zero"],
        "g2_zero_gated": out["g2_zero_gated"],
    }


def report(rows, seconds, per_byte, markdown: bool) -> None:
    import numpy as np

    head = (
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, "
        f"numpy {np.__version__}; {seconds:g} s of writing per rate; "
        f"{per_byte * 4:.4f} photons per record"
    )
    print(head + "\n")
    cols = ["target rate", "photons", "processed while writing", "lag median", "lag max",
            "lag max, 2nd half", "catch-up", "peak RSS", "above imports", "sustained"]  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        ok = r["lag_max_late_s"] < 1.0 and r["catch_up_s"] < 1.0
        print(
            f"| {r['rate']:.0e} /s | {r['photons']:,} | {r['processed_rate']:.3g} /s | "
            f"{r['lag_median_s']:.3f} s | {r['lag_max_s']:.3f} s | {r['lag_max_late_s']:.3f} s | "
            f"{r['catch_up_s']:.3f} s | "
            f"{r['peak_mib']:.0f} MiB | {r['peak_above_mib']:.0f} MiB | {'yes' if ok else 'no'} |"
        )
    if not markdown:
        for r in rows:
            print(f"  {r['rate']:.0e}: g2(0) {r['g2_zero']:.3f}, gated {r['g2_zero_gated']:.3f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="1e6,2e6,3e6,4e6,6e6", help="photons/s to append")
    p.add_argument("--seconds", type=float, default=8.0, help="writing time per rate")
    p.add_argument("--tmp", type=Path, default=None, help="folder for the growing file")
    p.add_argument("--markdown", action="store_true", help="print only the table")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], float(args.child[1]))
        return 0
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        header, block, per_byte = make_block(tmp)
        rows = []
        for rate in (float(x) for x in args.rates.split(",")):
            row = run_rate(rate, args.seconds, header, block, per_byte, tmp)
            rows.append(row)
            if not args.markdown:
                print(f"{rate:.0e} /s: lag max {row['lag_max_s']:.3f} s", file=sys.stderr)
    report(rows, args.seconds, per_byte, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
