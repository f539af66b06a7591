"""Figure 2: the gating effect: g2(0) against the microtime gate, at low and high power.

Photons emitted early in each period come mostly from the biexciton (and,
at high power, the shell); a gate ``t >= t_g`` after the IRF peak removes
them and g2(0) falls towards the exciton's own value.  Simulates
``paper_qd`` at 0.17 and 1.8 uW, measures g2(0) for gates of 0 to 10 ns
(``qdinfer.g2_zero_vs_gate``) and checks each against the gated closed form
(``qdsim.closed_forms.g2_zero_gated`` with shell carriers and background,
through ``qdlight.plan.predict``).

    python studies/fig2_gating.py [--quick] [--out DIR] [--seed N]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

POWERS_W = (0.17e-6, 1.8e-6)
DURATION_S = 120.0
GATES_S = (0.0, 1e-9, 2.5e-9, 5e-9, 10e-9)


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], seed=202)
    args = _common.parse(p, argv)
    from matplotlib.figure import Figure

    import qdinfer
    import qdsim
    from qdio.units import format_quantity
    from qdlight.plan import predict

    setup = qdsim.presets.paper_qd()
    dur = max(DURATION_S * args.scale * (0.1 if args.quick else 1.0), 0.2)
    rngs = np.random.default_rng(args.seed).spawn(len(POWERS_W))
    checks = _common.Checks()
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax, axd = fig.subplots(1, 2)
    grid = np.linspace(0, 10e-9, 81)
    numbers: dict = {"gates_s": list(GATES_S)}
    for k, (pw, rng) in enumerate(zip(POWERS_W, rngs, strict=True)):
        label = format_quantity(pw, "W")
        res = qdsim.simulate(setup, power_w=pw, duration_s=dur, rng=rng)
        results = qdinfer.g2_zero_vs_gate(res.stream, list(GATES_S))
        vals = []
        for g_s, r in zip(GATES_S, results, strict=True):
            pred = predict(setup, power_w=pw, gate_s=g_s, duration_s=dur)
            # afterpulses behind the gate and IRF / pulse-width smearing of the gate edge: 5 %
            checks.z(
                f"g2(0) at {label}, gate {g_s * 1e9:g} ns",
                r.value,
                r.stderr,
                pred.g2_zero_gated,
                rel_sys=0.05,
            )
            vals.append((r.value, r.stderr))
        v = np.array(vals)
        numbers[f"g2_zero_{label}"] = v[:, 0].tolist()
        ax.errorbar(
            np.array(GATES_S) * 1e9,
            v[:, 0],
            yerr=v[:, 1],
            fmt="o",
            color=f"C{k}",
            label=f"{label} simulated",
        )
        ax.plot(
            grid * 1e9,
            [predict(setup, power_w=pw, gate_s=float(x)).g2_zero_gated for x in grid],
            color=f"C{k}",
            lw=1,
            label=f"{label} closed form",
        )
        checks.true(
            f"gating lowers g2(0) at {label}",
            v[-1, 0] < v[0, 0],
            f"{v[0, 0]:.3f}->{v[-1, 0]:.3f}",
        )
        d = qdinfer.decay_histogram(res.stream, bin_width_s=256e-12)
        axd.semilogy(
            d.centers_s * 1e9,
            np.maximum(d.counts / d.counts.max(), 1e-6),
            lw=0.8,
            color=f"C{k}",
            label=label,
        )
    peak = 1.0  # the detectors' IRF peak, ns after the sync
    axd.axvspan(peak, peak + 2.5, color="0.85", lw=0, label="removed by a 2.5 ns gate")
    axd.set(xlim=(0, 60), ylim=(1e-3, 1.5), xlabel="delay (ns)", ylabel="counts (norm.)")
    axd.legend(frameon=False, fontsize="small")
    ax.set(xlabel="gate after the IRF peak (ns)", ylabel="pulsed g2(0)")
    ax.legend(frameon=False, fontsize="small")
    fig.suptitle("Figure 2: gating removes the early biexciton and shell photons")
    return _common.finish("fig2_gating", args, fig, checks, numbers)


if __name__ == "__main__":
    sys.exit(main())
