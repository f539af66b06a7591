"""Figure 5: emission states of a blinking dot, with state-resolved decays and g2.

Simulates ``qdsim.presets.blinking_qd()`` (bright, grey and dark states) at
0.17 uW, classifies the 10 ms intensity trace into three states
(``qdinfer.threshold_states``) and measures each state's rate, decay,
lifetime and g2(0) (``qdinfer.state_resolved``).  Checks against the
simulator's truth: the share of time labelled right, the time spent in
each state, the exciton lifetime of the bright state and (measured with the
true states) of the grey one (longest component of a two-exponential fit;
5 % allowed for the BX and shell photons it absorbs), and the g2(0) of the
bright and grey states against the closed form of a dot that stays in that
state (``qdlight.plan.predict``, background included; 10 % allowed for the
misclassified photons).

    python studies/fig5_states.py [--quick] [--out DIR] [--seed N]
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

POWER_W = 0.17e-6
DURATION_S = 300.0


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], seed=505)
    args = _common.parse(p, argv)
    import qdinfer
    import qdsim
    from qdinfer import StateTrajectory
    from qdinfer.plots_states import plot_state_resolved, plot_state_trace
    from qdlight.plan import predict

    setup = qdsim.presets.blinking_qd()
    dur = max(DURATION_S * args.scale * (0.1 if args.quick else 1.0), 5.0)
    res = qdsim.simulate(setup, power_w=POWER_W, duration_s=dur, rng=args.seed)
    s = res.stream
    ts = qdinfer.threshold_states(s, n_states=3)
    sr = qdinfer.state_resolved(s, ts.trajectory, n_exp=2)
    tr = res.truth.trajectory
    truth = StateTrajectory.build(
        tr.start_s, tr.end_s, tr.state.astype(np.int64), labels=tr.state_names
    )
    sr_true = qdinfer.state_resolved(s, truth, n_exp=2, g2_channels=None)
    checks = _common.Checks()
    agree = qdinfer.time_agreement(ts.trajectory, truth)
    checks.true("time labelled right > 90 %", agree > 0.9, f"{100 * agree:.1f} %")
    share_true = dict(zip(truth.labels, truth.time_fraction(), strict=True))
    share = dict(zip(ts.trajectory.labels, ts.trajectory.time_fraction(), strict=True))
    for name in ("bright", "grey", "dark"):
        d = abs(share.get(name, 0.0) - share_true.get(name, 0.0))
        checks.true(
            f"time share of {name} within 0.05",
            d < 0.05,
            f"{share.get(name, 0.0):.3f} vs {share_true.get(name, 0.0):.3f}",
        )
    numbers: dict = {"agreement": agree, "share": share, "share_true": share_true, "states": []}
    for name in ("bright", "grey"):
        m = sr[name]
        st = setup.emitter.states[setup.state_names.index(name)]
        # the lifetime with the inferred states (bright) and with the true ones (grey: bins
        # caught mid-switch give the inferred grey state bright photons, whose 60 ns
        # tail then dominates its longest component)
        fit = m.lifetime if name == "bright" else sr_true[name].lifetime
        how = "" if name == "bright" else " (true states)"
        if fit is not None:
            k = int(np.argmax(fit.tau_s))
            checks.z(
                f"tau_X of {name}{how} (s)",
                fit.tau_s[k],
                fit.tau_stderr_s[k],
                st.tau_x_s,
                rel_sys=0.05,
            )
        else:
            checks.true(f"tau_X of {name}", False, "no fit")
        single = dataclasses.replace(
            setup,
            emitter=dataclasses.replace(setup.emitter, states=(st,)),
            blinking=qdsim.Blinking(),
        )
        pred = predict(single, power_w=POWER_W, duration_s=m.time_s)
        if m.g2 is not None:
            checks.z(f"g2(0) of {name}", m.g2.value, m.g2.stderr, pred.g2_zero, rel_sys=0.1)
        else:
            checks.true(f"g2(0) of {name}", False, "not measured")
        numbers["states"].append(
            {"state": name, "rate_hz": m.rate_hz, "g2_zero": None if m.g2 is None else m.g2.value}
        )
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    t_fig = plot_state_trace(s, ts.trajectory, time_range_s=(0.0, min(30.0, dur)))
    r_fig = plot_state_resolved(sr)
    for sub, src in ((top, t_fig), (bottom, r_fig)):
        buf = _png(src)
        ax = sub.subplots()
        ax.imshow(buf)
        ax.set_axis_off()
    fig.suptitle("Figure 5: states of a blinking dot, with their decays and g2")
    return _common.finish("fig5_states", args, fig, checks, numbers)


def _png(fig):
    import io

    from matplotlib.image import imread

    b = io.BytesIO()
    fig.savefig(b, format="png", dpi=110)
    b.seek(0)
    return imread(b, format="png")


if __name__ == "__main__":
    sys.exit(main())
