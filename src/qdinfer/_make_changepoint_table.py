"""Generate :mod:`qdinfer._changepoint_table` by Monte Carlo (reproducible from a seed).

Usage::

    python -m qdinfer._make_changepoint_table [--seed 20050101] [--quick] [--out PATH]

It writes a Python module of literals (no binary data file to package):

* ``GRID_N``: numbers of inter-photon intervals ``N`` (2 .. 10, then about
  eight points per decade up to 1e6);
* ``ALPHAS``: type-I error probabilities (0.01, 0.05, 0.10, 0.31);
* ``TAU_RAW[i, j]``: the ``1 - ALPHAS[i]`` quantile of ``max_k Z_k`` over
  ``N_SIM[j]`` simulated constant-rate segments of ``GRID_N[j]`` intervals
  (:func:`qdinfer._changepoint.critical_value_table_mc`);
* ``TAU[i, j]``: the same smoothed along ``N`` (a least-squares polynomial
  of degree 3 in ``ln ln (N + 1)`` for ``N > 10``, weighted by the inverse
  Monte Carlo variance of the quantiles, ``~ n_sim / (alpha (1 - alpha))``,
  then made non-decreasing; the Monte Carlo values are kept for ``N <= 10``),
  used by the detector;
* ``CI_BETAS``, ``CI_LSTAR_EDGES`` and ``CI_DROP[i, j]``: the drop of twice
  the log-likelihood below its maximum that a confidence region of level
  ``CI_BETAS[i]`` must include, for a change whose likelihood ratio against
  no change, ``L* = 2 (max_k l_k - l_0)``, lies in bin ``j`` of
  ``CI_LSTAR_EDGES``.  From
  :func:`qdinfer._changepoint.ci_drop_vs_strength_mc` (weak changes,
  20000 intervals on each side, strength ``n delta^2`` log-uniform in
  5..1000, ``CI_N_SIM`` simulations), the quantiles per bin made
  non-increasing in ``L*`` (conservative).  For strong changes the drop
  tends to the Brownian limit ``-2 ln(1 - sqrt(beta))`` (3.55 and 7.35); for
  barely significant ones it is larger (about 5 and 10).

The full run takes about 5 minutes on 2 cores; ``--quick`` (for checking the
script) uses a hundredth of the simulations.

"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np

from qdinfer._changepoint import ci_drop_vs_strength_mc, critical_value_table_mc

ALPHAS = (0.01, 0.05, 0.10, 0.31)
CI_BETAS = (0.69, 0.95)
CI_LSTAR_EDGES = (0.0, 10.0, 15.0, 20.0, 30.0, 45.0, 70.0, 100.0, 150.0, 250.0)


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Grid of N and the number of simulations at each."""
    small = np.arange(2, 11)
    large = np.unique(np.round(np.logspace(np.log10(12), 6.0, 41)).astype(int))
    grid_n = np.concatenate([small, large])
    n_sim = np.where(grid_n <= 1000, 40_000, np.maximum(2_000, 40_000_000 // grid_n))
    return grid_n, n_sim


def smooth(grid_n: np.ndarray, raw: np.ndarray, n_sim: np.ndarray, alphas) -> np.ndarray:
    """Polynomial (degree 3) in ln ln(N + 1) for N > 10, then non-decreasing in N."""
    out = raw.copy()
    big = grid_n > 10
    x = np.log(np.log(grid_n[big] + 1.0))
    for i, a in enumerate(alphas):
        # quantile standard error ~ sqrt(a (1 - a) / n) / density: weight ~ sqrt(n_sim)
        w = np.sqrt(n_sim[big] * a * (1 - a))
        coef = np.polynomial.polynomial.polyfit(x, raw[i, big], 3, w=w)
        out[i, big] = np.polynomial.polynomial.polyval(x, coef)
        out[i] = np.maximum.accumulate(out[i])
    return out


def _fmt(a: np.ndarray, indent: str = "") -> str:
    """A tuple literal, one value per line (stable under ``ruff format``)."""
    a = np.asarray(a)
    inner = indent + "    "
    if a.ndim == 1:
        vals = (repr(float(x)) if a.dtype.kind == "f" else str(int(x)) for x in a)
        return "(\n" + "".join(f"{inner}{v},\n" for v in vals) + indent + ")"
    return "(\n" + "".join(f"{inner}{_fmt(row, inner)},\n" for row in a) + indent + ")"


def write_table(
    path: Path,
    *,
    seed: int,
    quick: bool,
    seconds: tuple[float, float],
    grid_n: np.ndarray,
    n_sim: np.ndarray,
    raw: np.ndarray,
    tau: np.ndarray,
    ci: np.ndarray,
    n_ci: int,
    date: str | None = None,
) -> None:
    """Write the table module (Python literals)."""
    flag = " --quick" if quick else ""
    date = date or datetime.date.today().isoformat()
    text = f'''"""Critical values for change-point detection (generated; do not edit).

Written by ``python -m qdinfer._make_changepoint_table --seed {seed}{flag}``
on {date} ({seconds[0]:.0f} s for the table, {seconds[1]:.0f} s for the
confidence-region drops, 2 cores).  See that module for what each array means.
"""

SEED = {seed}
ALPHAS = {ALPHAS!r}
GRID_N = {_fmt(grid_n)}
N_SIM = {_fmt(n_sim)}
TAU_RAW = {_fmt(raw)}
TAU = {_fmt(tau)}
CI_BETAS = {CI_BETAS!r}
CI_LSTAR_EDGES = {CI_LSTAR_EDGES!r}
CI_DROP = {_fmt(ci)}
CI_N_SIM = {n_ci}
'''
    Path(path).write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20050101)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("_changepoint_table.py"))
    args = ap.parse_args(argv)
    grid_n, n_sim = grid()
    if args.quick:
        n_sim = np.maximum(n_sim // 100, 200)
    seq = np.random.SeedSequence(args.seed)
    seed_table, seed_ci = seq.spawn(2)
    t0 = time.perf_counter()
    raw = critical_value_table_mc(grid_n, ALPHAS, n_sim, seed_table, n_blocks=args.blocks)
    t1 = time.perf_counter()
    tau = smooth(grid_n, raw, n_sim, ALPHAS)
    n_ci = 200_000 if not args.quick else 2_000
    lstar, drops = ci_drop_vs_strength_mc(
        20_000, (5.0, 1000.0), n_ci, np.random.default_rng(seed_ci), n_blocks=args.blocks
    )
    edges = np.r_[CI_LSTAR_EDGES, np.inf]
    ci = np.empty((len(CI_BETAS), len(CI_LSTAR_EDGES)))
    for j in range(len(CI_LSTAR_EDGES)):
        sel = (lstar >= edges[j]) & (lstar < edges[j + 1])
        ci[:, j] = np.quantile(drops[sel], CI_BETAS)
    ci = np.maximum.accumulate(ci[:, ::-1], axis=1)[:, ::-1]
    t2 = time.perf_counter()

    write_table(
        args.out,
        seed=args.seed,
        quick=args.quick,
        seconds=(t1 - t0, t2 - t1),
        grid_n=grid_n,
        n_sim=n_sim,
        raw=raw,
        tau=tau,
        ci=ci,
        n_ci=n_ci,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
