"""Shared plumbing of the studies: arguments, checks against the truth, outputs with provenance.

Every study is ``main(argv=None) -> int``: it simulates with qdsim, measures
with qdinfer, compares each number with the ground truth (closed forms of
``qdsim.closed_forms`` through ``qdlight.plan.predict``, or the simulator's
truth), prints the comparison table, writes its figure and a JSON file of
the numbers, seed and package versions to ``--out``, and returns 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

OUT = Path(__file__).resolve().parent / "out"
Z_LIMIT = 5.0


def parser(description: str, *, seed: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short acquisitions (a few seconds)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every acquisition time (tests use 0.05)",
    )
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if not (math.isfinite(args.scale) and args.scale > 0):
        p.error(f"--scale {args.scale} must be > 0")
    if args.seed < 0:
        p.error(f"--seed {args.seed} must be >= 0")
    return args


@dataclass
class Checks:
    """Comparison rows; a row passes when |z| < Z_LIMIT (or its own rule)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def z(
        self,
        what: str,
        measured: float,
        stderr: float,
        expected: float,
        *,
        rel_sys: float = 0.0,
    ) -> None:
        """|measured - expected| < 5 sigma, sigma = stderr (+) rel_sys |expected|."""
        sigma = math.hypot(stderr, rel_sys * abs(expected))
        z = (measured - expected) / sigma if sigma > 0 else math.nan
        ok = bool(abs(z) < Z_LIMIT) if math.isfinite(z) else False
        self.rows.append(
            {
                "check": what,
                "measured": float(measured),
                "stderr": float(stderr),
                "expected": float(expected),
                "z": z,
                "ok": ok,
            }
        )

    def true(self, what: str, ok: bool, detail: str = "") -> None:
        """A yes/no check (detail says what was compared)."""
        self.rows.append(
            {
                "check": what,
                "measured": detail,
                "stderr": math.nan,
                "expected": "",
                "z": math.nan,
                "ok": bool(ok),
            }
        )

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.rows)

    def table(self) -> str:
        lines = [f"{'check':<52}{'measured':>12}{'± stderr':>11}{'expected':>12}{'z':>7}  ok"]
        for r in self.rows:
            m = r["measured"]
            ms = f"{m:>12.4g}" if isinstance(m, float) else f"{m!s:>12}"
            e = r["expected"]
            es = f"{e:>12.4g}" if isinstance(e, float) else f"{e!s:>12}"
            st = f"{r['stderr']:>11.2g}" if math.isfinite(r["stderr"]) else f"{'':>11}"
            zs = f"{r['z']:>7.2f}" if math.isfinite(r["z"]) else f"{'':>7}"
            lines.append(f"{r['check']:<52}{ms}{st}{es}{zs}  {'yes' if r['ok'] else 'NO'}")
        return "\n".join(lines)


def finish(name: str, args: argparse.Namespace, fig, checks: Checks, numbers: dict) -> int:
    """Write the figure and the numbers, print the checks; returns the exit status."""
    from qdlight.report import package_versions

    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"{name}.png"
    fig.savefig(png, dpi=110)
    record = {
        "study": name,
        "argv": sys.argv if args is None else vars(args) | {"out": str(args.out)},
        "seed": args.seed,
        "versions": package_versions(),
        "checks": checks.rows,
        "numbers": numbers,
        "passed": checks.ok,
    }
    (args.out / f"{name}.json").write_text(json.dumps(_plain(record), indent=1))
    print(f"{name}: {png}")
    print(checks.table())
    print("all checks passed" if checks.ok else "SOME CHECKS FAILED")
    return 0 if checks.ok else 1


def _plain(x: Any) -> Any:
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x
