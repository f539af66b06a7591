"""Bayesian inference speed and bias: decay NUTS vs the scipy MLE, joint power series, SBC.

Usage::

    python bench/bench_infer.py [--datasets K] [--sbc N] [--seed S]

* Decay: 2 exponentials (2 and 20 ns) + IRF (Gaussian, 0.5 ns FWHM) + flat
  background, 1e5 counts on 256 bins of 0.39 ns, Poisson data from
  :func:`qdinfer.fit_decay`'s own model.  The first NUTS fit (2 chains x
  (500 warm-up + 500 draws)) includes compilation; the next ``K`` reuse it.
  Bias (mean of estimate - truth, over the ``K`` datasets, in units of the
  truth) and speed against :func:`qdinfer.fit_decay` (scipy Fisher
  scoring / L-BFGS-B) on the same data.
* Joint: the paper's dot (qdsim ``paper_qd``) at 0.01, 0.02, 0.17, 1.8 and
  4 uW: counts and pulsed g2(0) per power, one joint fit (compile + run).
* SBC: ``N`` datasets of the 1-exponential decay model drawn from its prior
  (64 bins, ~2e3 photons), 2 chains x (200 + 200).

Prints a plain-text report.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import qdinfer
from qdinfer.decay import DecayHistogram, _Model, gaussian_irf


def decay_bench(k: int, seed: int) -> list[str]:
    from qdinfer.models import fit_decay_bayes

    n, period = 256, 100e-9
    w = period / n
    edges = np.arange(n + 1) * w
    irf = gaussian_irf(5e-9, 0.5e-9, edges)
    taus = np.array([2e-9, 20e-9])
    amps = np.array([3e4, 7e4])
    m = _Model(irf.weights_on(edges), n)
    mu = sum(a * m.component(t / w, 0.7) for a, t in zip(amps, taus, strict=True)) + 5.0
    rng = np.random.default_rng(seed)
    datasets = [DecayHistogram(rng.poisson(mu), edges, period) for _ in range(k + 1)]
    t0 = time.perf_counter()
    fit_decay_bayes(datasets[0], n_exp=2, irf=irf, seed=0, warn=False)
    t_first = time.perf_counter() - t0
    bayes, mle, t_b, t_m, rhat, cover = [], [], [], [], [], 0
    for i, d in enumerate(datasets[1:]):
        t0 = time.perf_counter()
        r = fit_decay_bayes(d, n_exp=2, irf=irf, seed=i + 1, warn=False)
        t_b.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        f = qdinfer.fit_decay(d, n_exp=2, irf=irf)
        t_m.append(time.perf_counter() - t0)
        bayes.append([r.mean("tau_1_s"), r.mean("tau_2_s")])
        mle.append(f.tau_s)
        rhat.append(r.diagnostics["r_hat"])
        lo, hi = r.interval("tau_2_s", 0.9)
        cover += lo < taus[1] < hi
    bayes, mle = np.array(bayes), np.array(mle)
    lines = [
        f"Decay, 2 exponentials + IRF + background, 1e5 counts, 256 bins; {k} datasets.",
        "",
        "| | first fit (compile + run) | per dataset (median) | tau_1 bias | tau_2 bias |"
        " tau_1 sd over datasets | tau_2 sd over datasets |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, est, t in (("NUTS (posterior mean)", bayes, t_b), ("scipy MLE", mle, t_m)):
        rel = est / taus - 1
        first = f"{t_first:.1f} s" if name.startswith("NUTS") else "-"
        lines.append(
            f"| {name} | {first} | {np.median(t):.2f} s | {rel[:, 0].mean():+.2%} | "
            f"{rel[:, 1].mean():+.2%} | {rel[:, 0].std(ddof=1):.2%} | {rel[:, 1].std(ddof=1):.2%} |"
        )
    lines += [
        "",
        f"NUTS max r_hat over datasets {max(rhat):.4f}; 90 % interval of tau_2 covered the "
        f"truth in {cover}/{k}.",
    ]
    return lines


def joint_bench(seed: int) -> list[str]:
    import qdsim
    from qdinfer.models import clear_cache, fit_power_series

    powers = [0.01e-6, 0.02e-6, 0.17e-6, 1.8e-6, 4e-6]
    durations = [20.0, 20.0, 20.0, 2.0, 2.0]
    counts, g2, g2_sd = [], [], []
    for i, (p, d) in enumerate(zip(powers, durations, strict=True)):
        sim = qdsim.simulate(qdsim.presets.paper_qd(), power_w=p, duration_s=d, rng=seed + i)
        counts.append(len(sim.stream.channel))
        r = qdinfer.pulsed_g2_zero(sim.stream)
        g2.append(r.value)
        g2_sd.append(r.stderr)
    clear_cache()
    kw = dict(g2=(g2, g2_sd), afterpulse_probability=0.02, n_detectors_dead_time=2, warn=False)
    t0 = time.perf_counter()
    res = fit_power_series(powers, counts, durations, seed=0, **kw)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit_power_series(powers, counts, durations, seed=1, **kw)
    t_second = time.perf_counter() - t0
    truth = {"sigma_abs_m2": 2.3e-18, "eta_c": 0.01, "eta_bx": 0.21, "eta_h": 0.07}
    lines = [
        "Joint five-power fit (paper_qd; counts + pulsed g2(0); 2 chains x (500 + 500)): "
        f"{t_first:.1f} s with compilation, {t_second:.1f} s reusing it; "
        f"r_hat {res.diagnostics['r_hat']:.4f}, divergences {res.diagnostics['divergences']}.",
        "",
        "| parameter | truth | posterior mean +- sd | 90 % interval | covers |",
        "|---|---|---|---|---|",
    ]
    for name, t in truth.items():
        lo, hi = res.interval(name, 0.9)
        lines.append(
            f"| {name} | {t:.3g} | {res.mean(name):.3g} +- {res.sd(name):.2g} | "
            f"[{lo:.3g}, {hi:.3g}] | {'yes' if lo < t < hi else 'no'} |"
        )
    return lines


def sbc_bench(n_datasets: int, seed: int) -> list[str]:
    from qdinfer.models import SamplerSettings
    from qdinfer.models.sbc import sbc
    from qdlight.sweep import sbc_problem

    prob = sbc_problem("decay")  # the problem `qdlight sweep --sbc decay` runs
    t0 = time.perf_counter()
    r = sbc(
        prob["model"],
        prob["data"],
        params=prob["params"],
        n_datasets=n_datasets,
        static=prob["static"],
        settings=SamplerSettings(num_warmup=200, num_samples=200),
        thin=4,
        seed=seed,
    )
    wall = time.perf_counter() - t0
    pv = ", ".join(f"{k} {v:.2f}" for k, v in r.pvalues(n_bins=5).items())
    return [
        f"SBC of the decay model: {n_datasets} datasets in {wall:.0f} s (with compilation); "
        f"rank-uniformity chi-square p-values (5 bins): {pv}; median max r_hat "
        f"{np.median(r.max_r_hat):.4f}; divergences {int(r.divergences.sum())}.",
    ]


def states_bench(seed: int) -> list[str]:
    """Blinking states with per-state decays: a 60 s telegraph trace, 10 ms x 64 microtime bins."""
    import sys
    from pathlib import Path

    from qdinfer.models import fit_states_photons

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from blink_sim import telegraph  # the tests' telegraph emitter (exact ground truth)

    taus, rates = np.array([1.5e-9, 5e-9]), np.array([2e3, 20e3])
    q = np.array([[0.0, 1.5], [1.5, 0.0]])
    b = telegraph(rates, q, 60.0, seed, tau_s=taus, period_s=50e-9, micro_res_s=100e-12)
    irf = gaussian_irf(5e-9, 50e-12 * 2.3548, np.arange(501) * 100e-12)  # the true IRF
    times = []
    for i in range(2):  # the first fit compiles, the second reuses it
        t0 = time.perf_counter()
        res = fit_states_photons(b.stream, 10e-3, n_states=2, irf=irf, seed=i, warn=False)
        times.append(time.perf_counter() - t0)
    d = res.diagnostics
    fitted = ", ".join(
        f"tau_{k + 1} {res.mean(f'tau_{k + 1}_s') * 1e9:.4g} +- "
        f"{res.sd(f'tau_{k + 1}_s') * 1e9:.2g} ns (truth {t * 1e9:g})"
        for k, t in enumerate(taus)
    )
    return [
        f"HMM states (2) with decays, telegraph trace (tests/blink_sim.py) of 60 s, "
        f"{len(b.stream)} photons: {len(res.info['counts'])} bins of 10 ms x "
        f"{res.info['micro_hist'].shape[1]} microtime bins; 2 chains x (500 + 500): "
        f"{times[0]:.1f} s with compilation, {times[1]:.1f} s reusing it; r_hat "
        f"{d['r_hat']:.4f}, divergences {d['divergences']}, {d['mean_leapfrog_steps']:.0f} "
        f"leapfrog steps per draw; {fitted}.",
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=10)
    ap.add_argument("--sbc", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    import jax

    print(
        f"Machine: {platform.machine()}, {platform.python_version()}, jax {jax.__version__}, "
        f"CPU devices {jax.device_count()}"
    )
    print()
    for block in (
        decay_bench(args.datasets, args.seed),
        joint_bench(100),
        sbc_bench(args.sbc, args.seed),
        states_bench(args.seed),
    ):
        print("\n".join(block))
        print()


if __name__ == "__main__":
    main()
