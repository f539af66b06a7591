"""Many decay fits: one vmapped batch (``fit_decays_bayes``) against a loop of single fits.

Usage::

    python bench/bench_batch_fits.py [--datasets 8,32] [--seed S]

The decay of bench_infer.py (2 exponentials, 2 and 20 ns, Gaussian IRF,
1e5 counts on 256 bins), ``K`` Poisson datasets, 2 chains x (500 + 500)
NUTS each.  Times the loop of :func:`qdinfer.models.fit_decay_bayes`
(compiled once, then reused) and :func:`qdinfer.models.fit_decays_bayes`
(one compilation per batch size, then reused), both after their
compilation, on whatever device jax uses (``JAX_PLATFORMS=cpu`` to force
the CPU).  Prints a table: seconds per fit and the ratio.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from qdinfer.decay import DecayHistogram, _Model, gaussian_irf


def datasets(k: int, seed: int):
    n, period = 256, 100e-9
    w = period / n
    edges = np.arange(n + 1) * w
    irf = gaussian_irf(5e-9, 0.5e-9, edges)
    m = _Model(irf.weights_on(edges), n)
    mu = 3e4 * m.component(2e-9 / w, 0.7) + 7e4 * m.component(20e-9 / w, 0.7) + 5.0
    rng = np.random.default_rng(seed)
    return [DecayHistogram(rng.poisson(mu), edges, period) for _ in range(k)], irf


def main() -> None:
    import jax

    from qdinfer.models import fit_decay_bayes, fit_decays_bayes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="8,32", help="batch sizes, comma-separated")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sizes = [int(x) for x in args.datasets.split(",")]
    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind} ({platform.machine()})")
    print("| K | loop: compile (s) | loop (s/fit) | batch: compile+run (s) | batch (s/fit) | "
          "loop / batch | max r_hat |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for k in sizes:
        data, irf = datasets(k, args.seed)
        kw = {"n_exp": 2, "irf": irf, "warn": False}
        t0 = time.perf_counter()
        fit_decay_bayes(data[0], seed=0, **kw)
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        loop = [fit_decay_bayes(d, seed=i, **kw) for i, d in enumerate(data)]
        t_loop = (time.perf_counter() - t0) / k
        t0 = time.perf_counter()
        fit_decays_bayes(data, seed=0, **kw)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = fit_decays_bayes(data, seed=1, **kw)
        t_batch = (time.perf_counter() - t0) / k
        rhat = max(r.diagnostics["r_hat"] for r in loop + batch)
        print(
            f"| {k} | {t_compile:.1f} | {t_loop:.3f} | {t_first:.1f} | {t_batch:.3f} | "
            f"{t_loop / t_batch:.2f}x | {rhat:.3f} |"
        )


if __name__ == "__main__":
    main()
