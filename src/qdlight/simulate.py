"""``qdlight simulate``: a simulated acquisition written as a PicoQuant PTU file.

The emitter (a TOML configuration or a preset) is simulated chunk by chunk
(:func:`qdsim.simulate_chunks`) straight into a :class:`qdio.PtuWriter`, so
memory stays bounded for long or high-power runs; the ground truth
(``--truth``, an ``.npz`` of :class:`qdsim.Truth`) and the spectrometer
spectrum (``--spectrum``, a two-column CSV) are written beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qdio._util import atomic_write
from qdio.units import format_quantity, parse_quantity

__all__ = ["add_parser", "cmd_simulate", "simulate_to_ptu"]

CHUNK_DURATION_S = 10.0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``simulate`` on the ``qdlight`` subcommand parser."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate a quantum dot acquisition and write it as a PTU file",
        description=(
            "Simulate an emitter (TOML configuration or --preset) at one laser power and "
            "write the photon stream as a PicoHarp T3 PTU file, with the ground truth "
            "and the spectrometer spectrum on request."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("config", nargs="?", type=Path, help="setup TOML (docs/qdsim_config.md)")
    src.add_argument("--preset", choices=["paper_qd", "blinking_qd"], help="built-in setup")
    p.add_argument("--power", required=True, metavar="P", help="average laser power, e.g. 0.17uW")
    p.add_argument("--duration", required=True, metavar="T", help="acquisition time, e.g. 60s")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh entropy)")
    p.add_argument("-o", "--output", type=Path, required=True, help="PTU file to write")
    p.add_argument("--truth", type=Path, metavar="NPZ", help="write the ground truth here")
    p.add_argument("--spectrum", type=Path, metavar="CSV", help="write the spectrum here")
    p.add_argument(
        "--record-type",
        choices=["picoharp_t3", "hydraharp_v2_t3", "generic_t3"],
        default="picoharp_t3",
        help="PTU record layout (default picoharp_t3)",
    )
    p.add_argument("--workers", type=int, default=1, help="threads (same result for any number)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_simulate)
    return p


def simulate_to_ptu(
    setup,
    output: str | os.PathLike,
    *,
    power_w: float,
    duration_s: float,
    seed: int | None = None,
    record_type: str = "picoharp_t3",
    truth_path: str | os.PathLike | None = None,
    spectrum_path: str | os.PathLike | None = None,
    n_workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Simulate ``setup`` and write the stream to ``output``; returns a summary dict."""
    import qdio
    import qdsim

    writer = None
    truths = []
    first = None
    photons: dict[int, int] = {}
    try:
        chunks = qdsim.simulate_chunks(
            setup,
            power_w=power_w,
            duration_s=duration_s,
            rng=seed,
            chunk_duration_s=CHUNK_DURATION_S,
            n_workers=n_workers,
            progress=progress,
        )
        for chunk in chunks:
            s = chunk.stream
            if writer is None:
                first = chunk
                writer = qdio.PtuWriter(
                    output,
                    record_type=record_type,
                    macrotime_resolution_s=s.macrotime_resolution_s,
                    microtime_resolution_s=s.microtime_resolution_s,
                    comment=f"qdsim {setup.name} at {format_quantity(power_w, 'W')}",
                )
            writer.write(s)
            for c, n in s.counts_per_channel().items():
                photons[c] = photons.get(c, 0) + n
            if truth_path is not None:
                truths.append(chunk.truth)
    except BaseException:
        if writer is not None:
            writer.__exit__(*sys.exc_info())
        raise
    writer.close()
    if truth_path is not None:
        qdsim.Truth.concatenate(truths).save_npz(truth_path)
    if spectrum_path is not None:
        _write_spectrum(spectrum_path, first.spectrum)
    total = sum(photons.values())
    return {
        "output": str(output),
        "setup": setup.name,
        "power_w": power_w,
        "duration_s": duration_s,
        "seed": seed,
        "mean_absorbed_per_pulse": first.truth.mean_absorbed,
        "photons": total,
        "photons_per_channel": photons,
        "rate_hz": total / duration_s,
        "truth": None if truth_path is None else str(truth_path),
        "spectrum": None if spectrum_path is None else str(spectrum_path),
    }


def _write_spectrum(path: str | os.PathLike, spectrum) -> None:
    rows = np.column_stack([spectrum.wavelength_m * 1e9, spectrum.counts])
    with atomic_write(path) as f:
        f.write(b"wavelength_nm,counts\n")
        np.savetxt(f, rows, fmt=["%.4f", "%d"], delimiter=",")


def cmd_simulate(args: argparse.Namespace) -> int:
    import qdsim

    power_w = parse_quantity(args.power, "W", name="--power")
    duration_s = parse_quantity(args.duration, "s", name="--duration")
    if not power_w >= 0:  # also NaN
        raise ValueError(f"--power {args.power!r} must be a power >= 0")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"--duration {args.duration!r} must be a finite time > 0")
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers} must be >= 1")
    outputs = [p for p in (args.output, args.truth, args.spectrum) if p is not None]
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise ValueError(
            f"-o, --truth and --spectrum must be different files, got {[str(p) for p in outputs]}"
        )
    for path in outputs:
        if path.exists() and not args.force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    setup = qdsim.load_setup(args.preset or args.config)
    summary = simulate_to_ptu(
        setup,
        args.output,
        power_w=power_w,
        duration_s=duration_s,
        seed=args.seed,
        record_type=args.record_type,
        truth_path=args.truth,
        spectrum_path=args.spectrum,
        n_workers=args.workers,
        progress=not args.no_progress and not args.json,
    )
    if args.json:
        print(json.dumps({k: _plain(v) for k, v in summary.items()}, indent=2))
        return 0
    counts = sorted(summary["photons_per_channel"].items())
    per_channel = ", ".join(f"ch{c}: {n:,}" for c, n in counts)
    print(
        f"wrote {summary['output']}: {setup.name} at {format_quantity(power_w, 'W')} for "
        f"{format_quantity(duration_s, 's')} (n = {summary['mean_absorbed_per_pulse']:.3g} "
        f"absorbed per pulse): {summary['photons']:,} photons ({per_channel}), "
        f"{summary['rate_hz']:,.0f} /s"
    )
    for key in ("truth", "spectrum"):
        if summary[key]:
            print(f"wrote {summary[key]} ({key})")
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value
