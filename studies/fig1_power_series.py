"""Figure 1: the paper's quantum dot over its power series: decays, rates, spectra, g2.

Simulates ``qdsim.presets.paper_qd()`` at 0.01, 0.02, 0.17, 1.8 and 4 uW and
measures each acquisition with qdinfer (decay histogram, detected rate,
pulsed g2(0), spectrum).  Checks: the rate and g2(0) against the closed
forms (``qdlight.plan.predict``: phi_1 + phi_2 with the detector's
background, dark counts, leakage and dead time), and the two-band red
fraction against the noise-free expected spectrum.

    python studies/fig1_power_series.py [--quick] [--out DIR] [--seed N]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

POWERS_W = (0.01e-6, 0.02e-6, 0.17e-6, 1.8e-6, 4e-6)
DURATIONS_S = (300.0, 150.0, 60.0, 30.0, 30.0)
SPLIT_M = 575e-9


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], seed=101)
    args = _common.parse(p, argv)
    from matplotlib.figure import Figure

    import qdinfer
    import qdsim
    from qdio.units import format_quantity
    from qdlight.plan import predict

    setup = qdsim.presets.paper_qd()
    scale = args.scale * (0.1 if args.quick else 1.0)
    durations = [max(d * scale, 0.05) for d in DURATIONS_S]
    rngs = np.random.default_rng(args.seed).spawn(len(POWERS_W))
    checks = _common.Checks()
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    axd, axr, axs, axg = fig.subplots(2, 2).ravel()
    numbers: dict = {"power_w": [], "rate_hz": [], "g2_zero": [], "red_fraction": []}
    for k, (pw, dur, rng) in enumerate(zip(POWERS_W, durations, rngs, strict=True)):
        label = format_quantity(pw, "W")
        res = qdsim.simulate(setup, power_w=pw, duration_s=dur, rng=rng)
        s = res.stream
        pred = predict(setup, power_w=pw, duration_s=dur)
        d = qdinfer.decay_histogram(s, bin_width_s=512e-12)
        axd.semilogy(
            d.centers_s * 1e9,
            np.maximum(d.counts / d.counts.max(), 1e-6),
            lw=0.8,
            color=f"C{k}",
            label=label,
        )
        t = res.truth.n_pulses / setup.excitation.rep_rate_hz
        rate = len(s) / t
        checks.z(
            f"rate at {label} (/s)", rate, math.sqrt(len(s)) / t, pred.rate_total_hz, rel_sys=0.005
        )
        try:
            g = qdinfer.pulsed_g2_zero(s)
            checks.z(f"g2(0) at {label}", g.value, g.stderr, pred.g2_zero, rel_sys=0.03)
            numbers["g2_zero"].append(g.value)
        except ValueError as exc:
            checks.true(f"g2(0) at {label}", False, str(exc)[:40])
            numbers["g2_zero"].append(math.nan)
        spec = qdinfer.Spectrum(res.spectrum.wavelength_m, res.spectrum.counts.astype(float))
        expected = qdinfer.Spectrum(res.spectrum.wavelength_m, res.spectrum.expected)
        ba = qdinfer.band_areas(spec, SPLIT_M)
        truth = qdinfer.band_areas(expected, SPLIT_M, counts=False)
        if ba.red_fraction_stderr > 0:
            checks.z(
                f"red fraction at {label}",
                ba.red_fraction,
                ba.red_fraction_stderr,
                truth.red_fraction,
            )
        axs.plot(
            spec.wavelength_m * 1e9,
            spec.intensity / spec.intensity.max(),
            lw=0.8,
            color=f"C{k}",
            label=label,
        )
        period = s.macrotime_resolution_s
        h = qdinfer.g2_histogram(s, max_lag_s=2.5 * period, bin_width_s=period / 50)
        axg.plot(h.centers_s * 1e9, h.g2 + 1.2 * k, color=f"C{k}", lw=0.8, label=label)
        numbers["power_w"].append(pw)
        numbers["rate_hz"].append(rate)
        numbers["red_fraction"].append(ba.red_fraction)
        axr.errorbar(pw * 1e6, rate, yerr=math.sqrt(len(s)) / t, fmt="o", color=f"C{k}")
    grid = np.geomspace(5e-9, 6e-6, 60)
    axr.plot(
        grid * 1e6,
        [predict(setup, power_w=float(x)).rate_total_hz for x in grid],
        "k-",
        lw=0.8,
        label="closed form (phi_1 + phi_2 + background)",
    )
    axd.set(xlim=(0, 300), ylim=(1e-4, 1.5), xlabel="delay (ns)", ylabel="counts (norm.)")
    axd.set_title("decays")
    axd.legend(frameon=False, fontsize="small")
    axr.set(xscale="log", yscale="log", xlabel="power (µW)", ylabel="detected rate (/s)")
    axr.set_title("rates")
    axr.legend(frameon=False, fontsize="small")
    axs.axvline(SPLIT_M * 1e9, color="k", ls="--", lw=0.6)
    axs.set(xlabel="wavelength (nm)", ylabel="intensity (norm.)", title="spectra")
    axg.set(xlabel="lag (ns)", ylabel="g2 (offset by power)", title="g2")
    fig.suptitle("Figure 1: power series of the paper QD (simulated)")
    return _common.finish("fig1_power_series", args, fig, checks, numbers)


if __name__ == "__main__":
    sys.exit(main())
