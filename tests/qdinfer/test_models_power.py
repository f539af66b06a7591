"""Rate-versus-power and joint power-series models: closed forms and recovery."""

from __future__ import annotations

import dataclasses as dc

import numpy as np
import pytest

import qdinfer

pytest.importorskip("qdinfer.models")
import jax.numpy as jnp

from qdinfer.models import fit_power_series
from qdinfer.models import power as pw

qdsim = pytest.importorskip("qdsim")
from qdsim import closed_forms as cf  # noqa: E402

TRUTH = {"sigma_abs_m2": 2.3e-18, "eta_c": 0.01, "eta_bx": 0.21, "eta_h": 0.07}
POWERS = [0.01e-6, 0.02e-6, 0.17e-6, 1.8e-6, 4e-6]


def test_closed_forms_match_qdsim():
    """phi_1, phi_2, g2(0) (ungated, with shell) and gated g2(0) equal qdsim's closed forms."""
    n = np.array([0.06, 0.5, 1.06, 11.3, 25.0])
    nj = jnp.asarray(n, jnp.float32)
    phi_1, phi_2 = pw.rates(nj, 0.01, 1.0, 0.21, 0.07, 2.5e6)
    kw = {"eta_c": 0.01, "rep_rate_hz": 2.5e6}
    np.testing.assert_allclose(phi_1, cf.phi_1(n, eta_x=1.0, eta_bx=0.21, **kw), rtol=1e-5)
    np.testing.assert_allclose(phi_2, cf.phi_2(n, eta_h=0.07, **kw), rtol=1e-4, atol=1e-3)
    em, emm = pw.photon_moments(nj, jnp.array([1.0, 0.21]), eta_h=0.07)
    ref = cf.g2_zero_ladder(n, eta_levels=[1.0, 0.21], eta_h=0.07)
    np.testing.assert_allclose(emm / em**2, ref, rtol=1e-5)
    # the gate without shell photons (eta_h = 0): MODEL.md's reduced formula
    em, emm = pw.photon_moments(
        nj, jnp.array([1.0, 0.3]), jnp.array([60e-9, 2e-9]), 0.0, 5e-10, 2.5e-9
    )
    ref = cf.g2_zero_gated(n, eta_x=1.0, eta_bx=0.3, tau_x_s=60e-9, tau_bx_s=2e-9, gate_s=2.5e-9)
    np.testing.assert_allclose(emm / em**2, ref, rtol=1e-5)


def _survival_after(tau_s: np.ndarray, gate_s: float) -> float:
    """P(sum of Exp(tau_j) > gate), distinct tau_j: the hypoexponential in partial fractions."""
    lam = 1.0 / np.asarray(tau_s, np.float64)
    out = 0.0
    for j, lj in enumerate(lam):
        others = np.delete(lam, j)
        out += np.prod(others / (others - lj)) * np.exp(-lj * gate_s)
    return float(out)


def _gated_moments_brute(n, eta, tau, eta_h, tau_h, gate):
    """Gated (E[M], E[M(M-1)]) by explicit sums over m and over pairs of photons (float64)."""
    k = len(eta)
    m_max = cf.poisson_cutoff(n)
    pmf = cf.absorbed_pmf(n, m_max)
    s_h = np.exp(-gate / tau_h)
    mean = fact = 0.0
    for m in range(m_max + 1):
        big_n, c = min(m, k), max(m - k, 0)
        # photon of level l comes after the gate iff the waits of levels l..N outlast it
        r = [eta[l - 1] * _survival_after(tau[l - 1 : big_n], gate) for l in range(1, big_n + 1)]
        core = sum(r)
        # pair (l' < l): both late iff photon l is late
        pairs = sum(2 * eta[lo - 1] * r[l - 1] for l in range(1, big_n + 1) for lo in range(1, l))
        rh = eta_h * s_h
        mean += pmf[m] * (core + rh * c)
        fact += pmf[m] * (pairs + 2 * rh * c * core + rh**2 * c * (c - 1))
    return mean, fact


@pytest.mark.parametrize("scaling", [("quadratic", "statistical"), ("linear", "quadratic")])
def test_ladder_functions_match_closed_forms(scaling):
    """Ladder levels, rates, g2(0) and gated g2(0): jax model functions vs qdsim's closed forms.

    Ungated against :mod:`qdsim.closed_forms` (``ladder_levels``,
    ``photon_moments``, ``emitted_per_pulse``); gated against an explicit sum
    over absorbed photons and photon pairs with hypoexponential survivals.
    """
    rad, aug = scaling
    n = np.array([0.06, 0.5, 1.06, 4.0, 11.3, 25.0])
    nj = jnp.asarray(n, jnp.float32)
    for k in (3, 5, 8):
        lv = {"eta_x": 0.95, "tau_x_s": 60e-9, "eta_bx": 0.21, "tau_bx_s": 3.15e-9}
        eta_ref, tau_ref = cf.ladder_levels(
            n_levels=k, radiative_scaling=rad, auger_scaling=aug, **lv
        )
        eta, tau = pw.ladder_levels(*(jnp.float32(v) for v in lv.values()), k, rad, aug)
        np.testing.assert_allclose(eta, eta_ref, rtol=1e-6)
        np.testing.assert_allclose(tau, tau_ref, rtol=1e-6)
        em, emm = pw.photon_moments(nj, eta, eta_h=0.07)
        mean, fact2 = cf.photon_moments(n, eta_ref, eta_h=0.07, core_capacity=k)
        np.testing.assert_allclose(em, mean, rtol=1e-5)
        np.testing.assert_allclose(emm, fact2, rtol=1e-5)
        phi_1, phi_2 = pw.rates_ladder(nj, 0.01, eta, 0.07, 2.5e6)
        per = [cf.emitted_per_pulse(v, eta_ref, eta_h=0.07, core_capacity=k) for v in n]
        core = np.array([d["x"] + d["bx"] + d["mx"] for d in per]) * 0.01 * 2.5e6
        np.testing.assert_allclose(phi_1, core, rtol=1e-5)
        shell = np.array([d["shell"] for d in per]) * 0.01 * 2.5e6
        np.testing.assert_allclose(phi_2, shell, rtol=1e-5, atol=1e-6)
        em, emm = pw.photon_moments(nj, eta, tau, 0.07, 0.5e-9, 2.5e-9)
        ref = np.array([_gated_moments_brute(v, eta_ref, tau_ref, 0.07, 0.5e-9, 2.5e-9) for v in n])
        np.testing.assert_allclose(em, ref[:, 0], rtol=2e-5)
        np.testing.assert_allclose(emm, ref[:, 1], rtol=2e-5)


@pytest.fixture(scope="module")
def series():
    """The paper's dot at five powers: counts and pulsed g2(0) (0.6 s of CPU)."""
    durations = [20.0, 20.0, 20.0, 2.0, 2.0]
    counts, g2, g2_sd = [], [], []
    for i, (p, d) in enumerate(zip(POWERS, durations, strict=True)):
        sim = qdsim.simulate(qdsim.presets.paper_qd(), power_w=p, duration_s=d, rng=100 + i)
        counts.append(len(sim.stream.channel))
        r = qdinfer.pulsed_g2_zero(sim.stream)
        g2.append(r.value)
        g2_sd.append(r.stderr)
    return durations, counts, g2, g2_sd


GATE_S = 2.5e-9


def _without_afterpulses(setup):
    dets = tuple(dc.replace(d, afterpulse_probability=0.0) for d in setup.detection.detectors)
    return dc.replace(setup, detection=dc.replace(setup.detection, detectors=dets))


def _gated_point(setup, power_w, duration_s, rng):
    """Gated g2(0) of a qdsim stream, the gate it really applied, its background, tau_X.

    ``qdinfer.gate(relative_to="irf_peak")`` keeps microtime bins at least
    ``ceil(gate / bin)`` bins after the IRF-peak bin (the smoothed maximum
    of the decay), whose start lies after the emission (the detector
    delay): relative to the emission the gate is ``(peak + ceil(gate /
    bin)) bin - delay``, 2.71 ns for 2.5 ns here (3.03 ns at 0.01 uW, where
    the peak falls two bins later).  rho_A rho_B (truth: the emitter's share of
    the gated photons per channel) dilutes the model's g2(0).
    """
    sim = qdsim.simulate(setup, power_w=power_w, duration_s=duration_s, rng=rng)
    s = sim.stream
    sel = qdinfer.gate(min_s=GATE_S, relative_to="irf_peak")
    g = qdinfer.pulsed_g2_zero(s, selection=sel)
    ungated = qdinfer.pulsed_g2_zero(s)
    res = s.microtime_resolution_s
    peaks = qdinfer.irf_peak_bins(s)
    steps = np.ceil(GATE_S / res - 1e-9)
    delays = [setup.detection.detectors[c].delay_s for c in (0, 1)]
    gate_eff = float(np.mean([(peaks[c] + steps) * res - delays[c] for c in (0, 1)]))
    # afterpulses count as neither signal nor background (the model has none)
    proc = sim.truth.process
    kept = sel.mask(s) & (proc != qdsim.truth.Process.AFTERPULSE)
    emitter = proc <= qdsim.truth.Process.SHELL
    rho = np.prod([np.mean(emitter[kept & (s.channel == c)]) for c in (0, 1)])
    # the X lifetime from the decay tail, 20-200 ns after the IRF peak
    decay = qdinfer.decay_histogram(s)
    peak = qdinfer.estimate_irf(decay).peak_s
    tail = qdinfer.fit_decay(decay, n_exp=1, fit_range_s=(peak + 20e-9, peak + 200e-9))
    n = setup.mean_absorbed(power_w)
    return {
        "g2": g.value,
        "sd": g.stderr,
        "gate_s": gate_eff,
        "rho2": rho,
        "n": n,
        "tau_x": tail.tau_s[0],
        "tau_x_sd": tail.tau_stderr_s[0],
        "counts": len(s),
        "g2_ungated": ungated.value,
        "sd_ungated": ungated.stderr,
    }


@pytest.fixture(scope="module")
def gated():
    """Gated g2(0) of the paper's dot, without afterpulses, at the five powers (~4 s)."""
    setup = _without_afterpulses(qdsim.presets.paper_qd())
    durations = [100.0, 100.0, 60.0, 60.0, 60.0]
    pts = [
        _gated_point(setup, p, d, 300 + i)
        for i, (p, d) in enumerate(zip(POWERS, durations, strict=True))
    ]
    return setup, pts


def _model_gated(setup, pt, n_levels=2):
    st = setup.emitter.states[0]
    em = setup.emitter
    lv = (st.eta_x, st.tau_x_s, st.eta_bx, st.tau_bx_s)
    eta, tau = pw.ladder_levels(*(jnp.float32(v) for v in lv), n_levels)
    m1, m2 = pw.photon_moments(jnp.float32(pt["n"]), eta, tau, em.eta_h, em.tau_h_s, pt["gate_s"])
    return pt["rho2"] * float(m2 / m1**2) + 1.0 - pt["rho2"]


def test_gated_g2_matches_qdsim_at_five_powers(gated):
    """The model's gated g2(0) (shell photons included) equals qdsim's within 4 sigma.

    Three things had made the model's number differ from the measured one
    at 1.8 and 4 uW: shell photons that outlive a 2.5 ns gate (e^-5 of 1.6
    per pulse at 4 uW: +0.016, 4.6 sigma of a 200 s run), the gate starting
    at the IRF-peak bin (2.71 ns after the emission: -0.01) and afterpulses
    (next test).
    """
    setup, pts = gated
    for p, pt in zip(POWERS, pts, strict=True):
        pred = _model_gated(setup, pt)
        assert abs(pt["g2"] - pred) < 4 * pt["sd"], (p, pt["g2"], pt["sd"], pred)


def test_afterpulses_raise_the_gated_g2():
    """2 % afterpulsing (the preset's SPADs) raises gated g2(0) at 4 uW by ~0.05 (> 4 sigma).

    An afterpulse comes 77 ns + Exp(200 ns) after its avalanche, so those of
    the early photons (BX, shell: gated out) land in the gate of the same
    pulse, carrying the ungated correlations (g2 ~ 0.87) into the gated set.
    The model assumes afterpulse-free gated data.
    """
    setup = qdsim.presets.paper_qd()
    pt = _gated_point(setup, 4e-6, 60.0, 77)
    pred = _model_gated(setup, pt)
    assert pt["g2"] - pred > 4 * pt["sd"]


def test_joint_recovers_paper_parameters(series, gated):
    """Rates, g2(0), gated g2(0) and tau_X at five powers: 90 % intervals cover the truth.

    The gated g2(0) and the X lifetimes come from afterpulse-free twins of
    the acquisitions (the model's gated g2 assumes no afterpulses).
    """
    durations, counts, g2, g2_sd = series
    _, pts = gated
    res = fit_power_series(
        POWERS,
        counts,
        durations,
        g2=(g2, g2_sd),
        g2_gated=([pt["g2"] for pt in pts], [pt["sd"] for pt in pts]),
        gate_s=[pt["gate_s"] for pt in pts],
        tau_x_s=([pt["tau_x"] for pt in pts], [pt["tau_x_sd"] for pt in pts]),
        afterpulse_probability=0.02,  # the preset's SPADs
        n_detectors_dead_time=2,  # 77 ns dead time: one photon per detector per pulse
        seed=0,
    )
    assert res.diagnostics["r_hat"] < 1.01
    assert res.diagnostics["divergences"] == 0
    for name, truth in {**TRUTH, "tau_x_s": 60e-9, "tau_bx_s": 3.15e-9}.items():
        lo, hi = res.interval(name, 0.9)
        assert lo < truth < hi, (name, lo, hi)
    # sigma_abs is as uncertain as the spot prior (log sd 0.3) allows
    assert 0.2 < np.std(np.log(res.draws("sigma_abs_m2"))) < 0.4


def test_options_fraction_overdispersion_svi(series):
    """Spectral fraction (NUTS); negative-binomial counts through the SVI path.

    With five points the overdispersion concentration is barely identified
    and NUTS meets its funnel (divergences): use it with many more points.
    """
    from qdinfer.models import SamplerSettings

    durations, counts, _, _ = series
    a = cf.diffraction_limited_spot_area_m2(405e-9, 0.8)
    n = cf.mean_absorbed_photons(
        np.array(POWERS),
        sigma_abs_m2=2.3e-18,
        spot_area_m2=a,
        wavelength_m=405e-9,
        rep_rate_hz=2.5e6,
    )
    kw = {"eta_c": 0.01, "rep_rate_hz": 2.5e6}
    p1 = cf.phi_1(n, eta_x=1.0, eta_bx=0.21, **kw)
    p2 = cf.phi_2(n, eta_h=0.07, **kw)
    frac = p1 / (p1 + p2)  # A_red / (A_red + A_blue), exact, quoted with 0.01 errors
    common = dict(afterpulse_probability=0.02, n_detectors_dead_time=2)
    res = fit_power_series(
        POWERS,
        counts,
        durations,
        red_fraction=(frac, np.full(5, 0.01)),
        settings=SamplerSettings(num_samples=1000),  # r_hat of 2 x 500 scatters by ~0.01
        seed=0,
        **common,
    )
    assert res.diagnostics["r_hat"] < 1.01
    for name in ("eta_c", "eta_h"):
        lo, hi = res.interval(name, 0.9)
        assert lo < TRUTH[name] < hi, (name, lo, hi)
    svi = fit_power_series(
        POWERS,
        counts,
        durations,
        settings=SamplerSettings(method="svi", svi_steps=3000),
        overdispersion=True,
        seed=0,
        **common,
    )
    assert svi.diagnostics["method"] == "svi"
    assert np.isfinite(svi.diagnostics["svi_final_loss"])
    # the variational mean of eta_C within 10 % of the truth
    assert svi.mean("eta_c") == pytest.approx(0.01, rel=0.1)
    # latent sites too (the guide's draws), not only deterministic ones
    lo, hi = svi.interval("eta_h", 0.9)
    assert 0 < lo < hi < 1 and svi.draws("eta_bx").shape == svi.draws("eta_c").shape


@pytest.mark.slow
def test_ladder_recovers_parameters():
    """A qdsim 4-level ladder (statistical scaling) at five powers, fitted as a ladder.

    Counts, g2(0), gated g2(0) and tau_X, no afterpulses: 90 % intervals
    cover sigma_abs, eta_C, eta_BX, eta_H, tau_X and tau_BX; the reduced
    model's g2(0) at 4 uW (0.87) falls short of this ladder's (0.88 + MX).
    """
    base = _without_afterpulses(qdsim.presets.paper_qd())
    setup = dc.replace(base, emitter=dc.replace(base.emitter, model="ladder", max_excitons=4))
    # short acquisitions (1e5 counts per point): with 1e6 the posterior of eta_C (0.2 %)
    # resolves detection details the model leaves out (power-proportional leakage,
    # the long-pass filter's 1 % of the shell light) and misses eta_C by 2 %
    durations = [20.0, 20.0, 20.0, 4.0, 4.0]
    counts, g2, g2_sd, pts = [], [], [], []
    for i, (p, d) in enumerate(zip(POWERS, durations, strict=True)):
        pt = _gated_point(setup, p, d, 500 + i)
        pts.append(pt)
        counts.append(pt["counts"])
        g2.append(pt["g2_ungated"])
        g2_sd.append(pt["sd_ungated"])
    res = fit_power_series(
        POWERS,
        counts,
        durations,
        g2=(g2, g2_sd),
        g2_gated=([pt["g2"] for pt in pts], [pt["sd"] for pt in pts]),
        gate_s=[pt["gate_s"] for pt in pts],
        tau_x_s=([pt["tau_x"] for pt in pts], [pt["tau_x_sd"] for pt in pts]),
        n_detectors_dead_time=2,
        cascade="ladder",
        n_levels=4,
        seed=0,
    )
    assert res.diagnostics["r_hat"] < 1.01
    assert res.diagnostics["divergences"] == 0
    for name, truth in {**TRUTH, "tau_x_s": 60e-9, "tau_bx_s": 3.15e-9}.items():
        lo, hi = res.interval(name, 0.9)
        assert lo < truth < hi, (name, lo, hi)


def test_poisson_relative_is_the_poisson_likelihood():
    """The count likelihood differs from scipy's Poisson log-pmf by a constant (1e6 counts)."""
    from scipy import stats

    y = np.array([0.0, 3.0, 1.2e6, 2.1e6])
    mus = [y * (1 + 1e-3) + 0.5, y * (1 - 2e-3) + 2.0]
    ours = [float(pw._poisson_relative(jnp.asarray(y, jnp.float32), jnp.asarray(m))) for m in mus]
    ref = [float(stats.poisson.logpmf(y, m).sum()) for m in mus]
    assert ours[0] - ours[1] == pytest.approx(ref[0] - ref[1], abs=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cascade": "tree"}, "cascade='tree'"),
        ({"cascade": "reduced", "n_levels": 4}, "n_levels=4"),
        ({"cascade": "ladder", "n_levels": 1}, "n_levels=1"),
        ({"cascade": "ladder", "auger_scaling": "cubic"}, "auger_scaling='cubic'"),
        ({"g2_gated": ([0.1] * 5, [0.01] * 5)}, "gate_s"),
        ({"g2_gated": ([0.1] * 5, [0.01] * 5), "gate_s": 1e-6}, "gate_s=1e-06"),
        ({"g2_gated": ([0.1] * 5, [0.01] * 5), "gate_s": [1e-9] * 3}, "one per power"),
        ({"shell_lifetime_s": 0.0}, "shell_lifetime_s=0.0"),
    ],
)
def test_bad_options_name_the_value(kwargs, match):
    """Bad cascade options raise ValueError naming the option and value, before any fit."""
    with pytest.raises(ValueError, match=match):
        fit_power_series(POWERS, [1e3] * 5, 1.0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"leakage_hz_per_w": -1.0}, "leakage_hz_per_w=-1.0 must be a rate >= 0"),
        ({"leakage_hz_per_w": float("nan")}, "leakage_hz_per_w"),
        ({"rate_systematic": 1.5}, r"rate_systematic=1.5 must be in \[0, 1\)"),
        ({"rate_systematic": 0.01, "overdispersion": True}, "pick one"),
        ({"g2_counts": ([1] * 5, [4] * 5, [4] * 5), "g2": ([0.2] * 5, [0.1] * 5)}, "not both"),
        ({"g2_counts": ([1] * 4, [4] * 4, [4] * 4)}, "with 5 entries"),
        ({"g2_counts": ([1] * 5, [4] * 5, [0] * 5)}, r"side weights .* must be finite and > 0"),
        ({"g2_counts": ([2.5] + [1] * 4, [4] * 5, [2] * 5)}, "point 0 has centre 2.5"),
        ({"g2_counts": ([float("nan")] + [1] * 4, [4] * 5, [2] * 5)}, "whole numbers"),
    ],
)
def test_detection_options_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_power_series(POWERS, [1e4] * 5, 10.0, **kwargs)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([float("nan"), 1e4, 1e4, 1e4, 1e4], r"counts \[nan\] at point\(s\) \[0\]"),
        ([-1, 1e4, 1e4, 1e4, 1e4], "must be finite and >= 0"),
        ([0] * 5, "no photons at any power"),
    ],
)
def test_bad_counts_named(counts, match):
    with pytest.raises(ValueError, match=match):
        fit_power_series(POWERS, counts, 10.0)


def test_zero_count_point_starts():
    """A power without photons drops out of the starting-point search (no inf / NaN)."""
    from qdinfer.models.power import _initial

    data = {
        "counts": np.array([0.0, 300.0, 3e4]),
        "duration_s": np.ones(3),
        "afterpulse": 0.0,
        "rep_rate_hz": 2.5e6,
        "photons_per_pulse": np.array([1e3, 1e4, 1e5]),
        "power_w": np.array([1e-8, 1e-7, 1e-6]),
        "spot_area_m2": 3e-13,
        "eta_x": 1.0,
    }
    init = _initial(data, {"fix_eta_x": True})
    assert all(np.isfinite(v) for v in init.values())
