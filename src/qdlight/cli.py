"""The ``qdlight`` command: thin wrappers that parse, call qdio / qdsim / qdinfer, and print.

Every subcommand is a function ``cmd_<name>(args) -> int``; :func:`main`
parses ``argv`` and returns the exit status (0 success, 1 bad input, 2 usage).
Errors a user can fix (unreadable file, bad option value) are printed as one
line naming the file or option, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import analyze as _analyze
from . import batch as _batch
from . import demo as _demo
from . import fit as _fit
from . import info as _info
from . import plan as _plan
from . import simulate as _simulate
from . import sweep as _sweep
from . import watch as _watch

__all__ = ["main"]

log = logging.getLogger("qdlight")


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a TTTR file: format, instrument, rates, photons per channel, tags",
        description="Describe a TTTR / Photon-HDF5 file (read in bounded chunks).",
    )
    p.add_argument("file", type=Path, help="PTU, PT3, PT2, HT3, HT2, T3R, SPC or Photon-HDF5 file")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--tags", action="store_true", help="also list every header tag")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_info)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert any readable TTTR file to PTU or Photon-HDF5",
        description=(
            "Convert a TTTR file to PicoQuant PTU (OUT ending in .ptu) or Photon-HDF5 "
            "(OUT ending in .h5 / .hdf5)."
        ),
    )
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument(
        "--record-type",
        choices=["auto", "picoharp_t3", "hydraharp_v2_t3", "generic_t3", "picoharp_t2",
                 "hydraharp_v2_t2"],
        default="auto",
        help="PTU record layout (default: PicoHarp T3 when the data fit it, else HydraHarp v2)",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=cmd_convert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qdlight",
        description="Feature-resolved photoluminescence analysis of single emitters.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_info(sub)
    _add_convert(sub)
    _simulate.add_parser(sub)
    _analyze.add_parser(sub)
    _plan.add_parser(sub)
    _demo.add_parser(sub)
    _fit.add_parser(sub)
    _batch.add_parser(sub)
    _sweep.add_parser(sub)
    _watch.add_parser(sub)
    return parser


def cmd_info(args: argparse.Namespace) -> int:
    summary = _info.describe(args.file, progress=not args.no_progress and not args.json)
    if args.json:
        print(json.dumps(_info.jsonable(summary, tags=True), indent=2))
    else:
        print(_info.format_summary(summary, tags=args.tags))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    import qdio

    out: Path = args.output
    if out.exists() and not args.force:
        raise _UsageError(f"output {out} exists; pass --force to overwrite it")
    if out.resolve() == args.input.resolve():
        raise _UsageError(f"output {out} is the input file; qdlight never overwrites its input")
    suffix = out.suffix.lower()
    if suffix == ".ptu":
        written = _convert_to_ptu(args.input, out, args.record_type)
    elif suffix in (".h5", ".hdf5"):
        result = qdio.read(args.input, with_markers=True)
        qdio.write_photon_hdf5(out, result.stream, markers=result.markers)
        written = {
            "format": "Photon-HDF5",
            "photons": len(result.stream),
            "markers": len(result.markers),
        }
    else:
        raise _UsageError(f"output {out}: use a .ptu, .h5 or .hdf5 file name")
    written["output"] = str(out)
    if args.json:
        print(json.dumps(written, indent=2))
    else:
        extra = f" ({written['record_type']})" if "record_type" in written else ""
        print(
            f"wrote {out}: {written['format']}{extra}, {written['photons']} photons, "
            f"{written['markers']} markers"
        )
    return 0


def _convert_to_ptu(src: Path, out: Path, record_type: str) -> dict:
    """Stream ``src`` into a PTU chunk by chunk (bounded memory, any file size)."""
    import qdio

    if record_type == "auto":  # one quick pass to see what the data need
        record_type = _info.scan_record_type(src)
    photons = markers = 0
    writer = None
    try:
        for chunk in qdio.iter_chunks(src, with_markers=True):
            s = chunk.stream
            if writer is None:
                writer = qdio.PtuWriter(
                    out,
                    record_type=record_type,
                    macrotime_resolution_s=s.macrotime_resolution_s,
                    microtime_resolution_s=s.microtime_resolution_s,
                    comment=f"converted by qdlight from {src.name}",
                )
            kept = _writable_markers(chunk.markers)
            writer.write(s, kept)
            photons += len(s)
            markers += len(kept)
    except BaseException:
        if writer is not None:
            writer.__exit__(*sys.exc_info())
        raise
    writer.close()
    return {"format": "PTU", "record_type": record_type, "photons": photons, "markers": markers}


def _writable_markers(markers):
    """Markers a PTU can hold (bits 1..15); T2 sync events (bits 0) are dropped."""
    keep = (markers.bits > 0) & (markers.bits < 16)
    if keep.all():
        return markers
    import qdio

    warnings.warn(
        f"{int((~keep).sum())} sync events / markers outside bits 1..15 are not written",
        qdio.QdioWarning,
        stacklevel=2,
    )
    return qdio.Markers(markers.macrotime[keep], markers.bits[keep])


class _UsageError(Exception):
    """A bad option value; printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qdlight`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from qdio import QdioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return args.func(args)
    except _UsageError as exc:
        print(f"qdlight {args.command}: {exc}", file=sys.stderr)
        return 2
    except (QdioError, OSError, ValueError) as exc:
        print(f"qdlight {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
