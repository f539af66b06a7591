"""Teaching demos: how dead time, background, IRF width and blinking distort g2(0) and lifetimes.

Each panel changes one thing of ``qdsim.presets.paper_qd()`` and measures
the same quantities with qdinfer:

- dead time (0, 77 ns, 500 ns per detector) at 4 uW: the detected rate
  follows the non-paralysable formula (checked against
  ``qdlight.plan.predict``); a detector dead for longer than the period
  misses the next pulse's photons after a detection, which lowers the
  near side peaks, but with 1.4 % detections per pulse and detector the
  effect on g2(0) stays within its error here: dead time matters for g2
  only when detections per pulse approach one;
- background (0, 2 and 10 kcounts/s per detector) at 0.17 uW: the measured
  g2(0) follows ``g2_zero_with_background`` (checked), and the correction
  with ``signal_fraction="auto"`` returns the emitter's g2(0) (checked);
- IRF width (50 ps, 300 ps, 1 ns FWHM) at 0.17 uW: the lifetime from a fit
  of the tail is unchanged (checked), the gated g2(0) is not, because the
  gate edge is blurred;
- blinking (the blinking dot against the steady one) at 0.17 uW: blinking
  bunches photons on the ms-s scale, raising the near side peaks above the
  far ones (beyond 1 s; checked), so g2(0) normalised to far side peaks
  exceeds the near one, and a single exponential of all photons mixes the
  states' lifetimes.

    python studies/distortions.py [--quick] [--out DIR] [--seed N]
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

DURATION_S = 30.0


def _with_detectors(setup, **changes):
    dets = tuple(dataclasses.replace(d, **changes) for d in setup.detection.detectors)
    return dataclasses.replace(
        setup, detection=dataclasses.replace(setup.detection, detectors=dets)
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], seed=606)
    args = _common.parse(p, argv)
    from matplotlib.figure import Figure

    import qdinfer
    import qdsim
    from qdlight.plan import predict, tail_lifetime

    base = qdsim.presets.paper_qd()
    dur = max(DURATION_S * args.scale * (0.1 if args.quick else 1.0), 0.5)
    rngs = iter(np.random.default_rng(args.seed).spawn(12))
    checks = _common.Checks()
    numbers: dict = {}
    fig = Figure(figsize=(12, 8), layout="constrained")
    ax_dt, ax_bg, ax_irf, ax_bl = fig.subplots(2, 2).ravel()

    def g2_pair(stream, **kw):
        far_lag_s = min(1.0, stream.duration_s / 5)
        near = qdinfer.pulsed_g2_zero(stream, side_peaks="near", **kw)
        far = qdinfer.pulsed_g2_zero(stream, side_peaks="far", far_lag_s=far_lag_s, **kw)
        return near, far

    def side_ratio(near, far):
        """Mean near side peak / mean far side peak, and its Poisson error."""
        ratio = near.mean_side_counts / far.mean_side_counts
        err = ratio * np.sqrt(1 / near.side_counts.sum() + 1 / far.side_counts.sum())
        return ratio, err

    # -- dead time --------------------------------------------------------------------------
    rows = []
    for dt in (0.0, 77e-9, 500e-9):
        setup = _with_detectors(base, dead_time_s=dt)
        if dt == 0.0:
            tc = dataclasses.replace(setup.detection.tcspc, dead_time_s=0.0)
            setup = dataclasses.replace(
                setup, detection=dataclasses.replace(setup.detection, tcspc=tc)
            )
        res = qdsim.simulate(setup, power_w=4e-6, duration_s=dur, rng=next(rngs))
        pred = predict(setup, power_w=4e-6, duration_s=dur)
        t = res.truth.n_pulses / setup.excitation.rep_rate_hz
        rate = len(res.stream) / t
        # shell photons make the first detection early, so the detector is more often dead
        # for the X photons than for a Poisson stream: 2 % allowed
        checks.z(
            f"rate, dead time {dt * 1e9:g} ns (/s)",
            rate,
            np.sqrt(len(res.stream)) / t,
            pred.rate_total_hz,
            rel_sys=0.02,
        )
        near, far = g2_pair(res.stream)
        rows.append((dt * 1e9, near.value, near.stderr, far.value, far.stderr))
        if dt == 0.0:
            checks.z("no dead time: near / far side peaks", *side_ratio(near, far), 1.0)
    r = np.array(rows)
    numbers["dead_time"] = r.tolist()
    x = np.arange(len(r))
    ax_dt.errorbar(x - 0.05, r[:, 1], yerr=r[:, 2], fmt="o", label="near side peaks")
    ax_dt.errorbar(x + 0.05, r[:, 3], yerr=r[:, 4], fmt="s", label="far side peaks")
    ax_dt.set_xticks(x, [f"{v:g} ns" for v in r[:, 0]])
    ax_dt.set(xlabel="detector dead time", ylabel="g2(0) at 4 µW", title="dead time")
    ax_dt.legend(frameon=False, fontsize="small")

    # -- background ---------------------------------------------------------------------------
    rows = []
    for bg in (0.0, 2e3, 1e4):
        setup = _with_detectors(base, background_rate_hz=bg)
        res = qdsim.simulate(setup, power_w=0.17e-6, duration_s=dur, rng=next(rngs))
        pred = predict(setup, power_w=0.17e-6, duration_s=dur)
        g = qdinfer.pulsed_g2_zero(res.stream)
        checks.z(f"g2(0), background {bg:g} /s", g.value, g.stderr, pred.g2_zero, rel_sys=0.03)
        row = [bg, g.value, g.stderr, pred.g2_zero, pred.g2_zero_signal]
        if bg > 0:
            c = qdinfer.pulsed_g2_zero(res.stream, signal_fraction="auto")
            checks.z(
                f"corrected g2(0), background {bg:g} /s",
                c.value,
                c.stderr,
                pred.g2_zero_signal,
                rel_sys=0.05,
            )
            row += [c.value, c.stderr]
        else:
            row += [g.value, g.stderr]
        rows.append(row)
    r = np.array(rows)
    numbers["background"] = r.tolist()
    xb = r[:, 0] / 1e3
    ax_bg.errorbar(xb, r[:, 1], yerr=r[:, 2], fmt="o", label="measured")
    ax_bg.plot(xb, r[:, 3], "k--", label="closed form with background")
    ax_bg.errorbar(xb, r[:, 5], yerr=r[:, 6], fmt="s", label="background-corrected")
    ax_bg.plot(xb, r[:, 4], "k:", label="emitter alone")
    ax_bg.set(xlabel="background per detector (kcounts/s)", ylabel="g2(0) at 170 nW")
    ax_bg.set_title("background")
    ax_bg.legend(frameon=False, fontsize="small")

    # -- IRF width -------------------------------------------------------------------------------
    rows = []
    for fwhm in (50e-12, 300e-12, 1e-9):
        irf = dataclasses.replace(base.detection.detectors[0].irf, fwhm_s=fwhm)
        setup = _with_detectors(base, irf=irf)
        res = qdsim.simulate(setup, power_w=0.17e-6, duration_s=dur, rng=next(rngs))
        pred = predict(setup, power_w=0.17e-6, gate_s=2.5e-9, duration_s=dur)
        fit = tail_lifetime(res.stream)
        checks.z(
            f"tail lifetime, IRF {fwhm * 1e12:g} ps (s)",
            fit.tau_s[0],
            fit.tau_stderr_s[0],
            60e-9,
            rel_sys=0.02,
        )
        gg = qdinfer.pulsed_g2_zero(
            res.stream, selection=qdinfer.gate(min_s=2.5e-9, relative_to="irf_peak")
        )
        rows.append([fwhm * 1e12, gg.value, gg.stderr, pred.g2_zero_gated])
    r = np.array(rows)
    numbers["irf"] = r.tolist()
    ax_irf.errorbar(r[:, 0], r[:, 1], yerr=r[:, 2], fmt="o", label="gated g2(0), measured")
    ax_irf.plot(r[:, 0], r[:, 3], "k--", label="closed form (ideal gate)")
    ax_irf.set(xscale="log", xlabel="IRF FWHM (ps)", ylabel="gated g2(0), 2.5 ns, 170 nW")
    ax_irf.set_title("IRF width")
    ax_irf.legend(frameon=False, fontsize="small")

    # -- blinking ----------------------------------------------------------------------------------
    rows = []
    for name in ("paper_qd", "blinking_qd"):
        setup = qdsim.load_setup(name)
        res = qdsim.simulate(setup, power_w=0.17e-6, duration_s=max(dur, 10.0), rng=next(rngs))
        near, far = g2_pair(res.stream)
        fit = qdinfer.fit_decay(res.stream, n_exp=1)
        rows.append([near.value, near.stderr, far.value, far.stderr, fit.tau_s[0]])
        ratio, err = side_ratio(near, far)
        if name == "paper_qd":
            checks.z("steady dot: near / far side peaks", ratio, err, 1.0)
        else:
            checks.true(
                "blinking dot: near / far side peaks > 1 + 5 sigma",
                ratio > 1 + 5 * err,
                f"{ratio:.3f} ± {err:.3f}",
            )
    r = np.array(rows)
    numbers["blinking"] = r.tolist()
    x = np.arange(2)
    ax_bl.errorbar(x - 0.05, r[:, 0], yerr=r[:, 1], fmt="o", label="near side peaks")
    ax_bl.errorbar(x + 0.05, r[:, 2], yerr=r[:, 3], fmt="s", label="far side peaks")
    ax_bl.set_xticks(
        x, [f"steady (tau {r[0, 4] * 1e9:.0f} ns)", f"blinking (tau {r[1, 4] * 1e9:.0f} ns)"]
    )
    ax_bl.set(ylabel="g2(0) at 170 nW", title="blinking")
    ax_bl.legend(frameon=False, fontsize="small")
    fig.suptitle("What distorts g2(0) and lifetimes (simulated paper QD)")
    return _common.finish("distortions", args, fig, checks, numbers)


if __name__ == "__main__":
    sys.exit(main())
