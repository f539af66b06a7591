"""Photon rate versus power, and joint power-series fits (reduced model or N-level ladder).

Per power ``P_i`` the mean absorbed photons per pulse are
``n_i = sigma_abs P_i / (A_spot (h c / lambda) f_rep)`` (MODEL.md section 2)
and the detected rates [paper]::

    phi_1 = eta_C f_rep [eta_X P(>=1; n) + eta_BX P(>=2; n)]
    phi_2 = eta_C f_rep eta_H sum_{m>=3} P(m; n) (m - 2)
          = eta_C f_rep eta_H (n - 2 + (2 + n) e^-n)          (closed form, T = inf)

The general ladder (``n_levels`` = K > 2, MODEL.md section 2): ``min(m, K)``
excitons cascade down K levels whose yields and lifetimes above the
biexciton follow a radiative and an Auger scaling law
(:func:`ladder_levels`), ``max(m - K, 0)`` carriers go to the shell;
``phi_1 = eta_C f sum_k eta_k P(m >= k)`` (:func:`rates_ladder`).

Likelihoods (each optional but the first), sharing one set of parameters
across the powers:

* counts ``N_i`` in ``duration_i``: Poisson (or negative binomial with a
  concentration ``phi``, the overdispersion option) with mean
  ``duration_i ((phi_1 + phi_2)(1 + p_ap) + b)``, ``p_ap`` the known
  afterpulsing probability and ``b`` a free background rate (dark counts,
  scattered light);
* the spectral fraction ``A_red / (A_red + A_blue) = phi_1 / (phi_1 + phi_2)``
  measured with a standard error (Normal);
* pulsed g2(0) with a standard error: ``E[M(M-1)] / E[M]^2`` of the photons
  per pulse (core levels and shell carriers, each emitting independently,
  :func:`photon_moments`), diluted by the background:
  ``g2_raw = rho^2 g2 + 1 - rho^2``, ``rho = phi / (phi + b)``; or, better
  at weak excitation where the centre peak holds a few pairs, the peak
  counts themselves: centre ``C`` and side total ``S`` over side weights
  ``W``, ``C | C + S ~ Binomial(C + S, g2_raw / (g2_raw + W))``;
* gated g2(0): the same ratio for the photons later than ``gate_s`` after
  the emission, from the cascade's survival at the gate (X and BX: MODEL.md
  section 3's formula) and the shell photons that outlive it
  (``exp(-gate / tau_H)``, ``tau_H`` known).  The data must be free of
  afterpulses (docs/bayes.md: afterpulses of gated-out photons land in the
  gate with their correlations);
* lifetimes: measured X (and BX) lifetimes with standard errors.

``sigma_abs`` and the spot area enter only as their ratio: the spot is a
prior (``LogNormal(log A_spot, spot_log_sd)``, default a diffraction-limited
spot with a log sd of 0.3), so the posterior of ``sigma_abs_m2`` is as wide
as the spot is uncertain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import expm
from jax.scipy.special import gammaln
from scipy import optimize

from ._fit import FitResult, SamplerSettings, run_model

__all__ = [
    "detected_rate_one_per_pulse",
    "fit_power_series",
    "ladder_levels",
    "photon_moments",
    "power_series_model",
    "rates",
    "rates_ladder",
]

H_C = 6.62607015e-34 * 299792458.0
M_MAX = 96  # absorbed photons summed over (n <= 40 keeps the Poisson tail < 1e-12)


def rates(n, eta_c, eta_x, eta_bx, eta_h, rep_rate_hz):
    """Detected core and shell rates ``(phi_1, phi_2)`` in counts per second."""
    e = jnp.exp(-n)
    p1 = -jnp.expm1(-n)
    p2 = p1 - n * e
    phi_1 = eta_c * rep_rate_hz * (eta_x * p1 + eta_bx * p2)
    phi_2 = eta_c * rep_rate_hz * eta_h * jnp.maximum(n - 2.0 + (2.0 + n) * e, 0.0)
    return phi_1, phi_2


def ladder_levels(
    eta_x,
    tau_x,
    eta_bx,
    tau_bx,
    n_levels: int,
    radiative_scaling: str = "quadratic",
    auger_scaling: str = "statistical",
):
    """Yields and lifetimes ``(eta, tau)`` of the ladder levels 1..n_levels (jax).

    Level 1 is X, level 2 BX; levels N >= 3 scale the biexciton's radiative
    and Auger rates as :func:`qdsim.closed_forms.ladder_levels` does
    (``radiative_scaling`` "quadratic" / "linear" / "constant",
    ``auger_scaling`` "statistical" / "quadratic" / "constant").  The yields
    of N >= 3 depend on ``eta_bx`` alone, their lifetimes scale with
    ``tau_bx``.

    >>> eta, tau = ladder_levels(1.0, 60e-9, 0.2, 3e-9, 3)
    >>> [round(float(e), 4) for e in eta], [round(float(t) * 1e9, 4) for t in tau]
    ([1.0, 0.2, 0.1111], [60.0, 3.0, 0.7407])
    """
    k = int(n_levels)
    if k < 2:
        raise ValueError(f"n_levels={n_levels!r} must be >= 2")
    if radiative_scaling not in _RADIATIVE or auger_scaling not in _AUGER:
        raise ValueError(
            f"radiative_scaling={radiative_scaling!r} / auger_scaling={auger_scaling!r}: "
            f"use one of {sorted(_RADIATIVE)} / {sorted(_AUGER)}"
        )
    big_n = np.arange(3, k + 1, dtype=np.float64)
    s_r = jnp.asarray(_RADIATIVE[radiative_scaling](big_n), jnp.float32)
    s_a = jnp.asarray(_AUGER[auger_scaling](big_n), jnp.float32)
    k_r = eta_bx * s_r  # in units of 1 / tau_bx
    k_a = (1.0 - eta_bx) * s_a
    total = k_r + k_a
    eta = jnp.concatenate([jnp.stack([eta_x, eta_bx]), k_r / total])
    tau = jnp.concatenate([jnp.stack([tau_x, tau_bx]), tau_bx / total])
    return eta, tau


_RADIATIVE = {
    "quadratic": lambda n: n**2 / 4.0,
    "linear": lambda n: n / 2.0,
    "constant": lambda n: np.ones_like(n),
}
_AUGER = {
    "statistical": lambda n: n**2 * (n - 1.0) / 4.0,
    "quadratic": lambda n: n**2 / 4.0,
    "constant": lambda n: np.ones_like(n),
}


def _absorbed(n):
    """``m = 0..M_MAX-1`` and ``P(m; n)``, shape ``n.shape + (M_MAX,)``."""
    m = jnp.arange(M_MAX, dtype=jnp.float32)
    n_ = jnp.asarray(n)[..., None]
    return m, jnp.exp(m * jnp.log(jnp.maximum(n_, 1e-30)) - n_ - gammaln(m + 1.0))


def _core_survival(k: int, tau, gate):
    """``G[N, l - 1] = P(level l's photon comes later than gate | N excitons at t = 0)``.

    The cascade is a pure-death chain (level j decays with rate 1 / tau_j);
    photon l is emitted at the jump l -> l - 1, after the gate iff the chain
    is still at a level >= l at the gate: ``exp(Q gate)`` of the generator.
    Shape ``(K + 1, K)``; without a gate, ``1{l <= N}``.
    """
    if gate is None:
        return jnp.asarray(np.tri(k + 1, k, -1), jnp.float32)
    rate = 1.0 / tau
    idx = jnp.arange(1, k + 1)
    q = jnp.zeros((k + 1, k + 1)).at[idx, idx].set(-rate).at[idx, idx - 1].set(rate)
    p = expm(q * gate)
    # P(state >= l) = sum_{j >= l} P(state = j), l = 1..K
    return jnp.flip(jnp.cumsum(jnp.flip(p, -1), -1), -1)[:, 1:]


def photon_moments(n, eta, tau=None, eta_h=0.0, tau_h=None, gate=None):
    """``(E[M], E[M (M - 1)])`` of the photons per pulse later than ``gate`` (any ladder).

    ``m ~ Poisson(n)`` absorbed photons give ``N = min(m, K)`` core excitons
    (``K = len(eta)``) cascading down levels with yields ``eta`` and
    lifetimes ``tau``, and ``c = max(m - K, 0)`` shell carriers emitting
    with ``eta_h`` after ``Exp(tau_h)``, all independent.  With ``G_l(N)``
    the probability that photon l comes after the gate (every photon when
    ``gate`` is None; then ``tau`` and ``tau_h`` are not needed)::

        E[M | m] = sum_l eta_l G_l(N) + eta_h s_h c
        E[M (M - 1) | m] = 2 sum_l eta_l G_l(N) S1(l - 1)
                           + 2 eta_h s_h c E[M_core | N] + (eta_h s_h)^2 c (c - 1)

    (photon l later than the gate implies every lower level's photon is,
    ``S1(l - 1) = eta_1 + ... + eta_{l-1}``, ``s_h = exp(-gate / tau_h)``),
    averaged over m.  ``n`` of any shape.
    """
    eta = jnp.asarray(eta)
    k = eta.shape[-1]
    g = _core_survival(k, None if gate is None else jnp.asarray(tau), gate)
    s1_below = jnp.cumsum(eta) - eta
    core_mean = g @ eta  # (K + 1,) by N
    core_fact = 2.0 * (g @ (eta * s1_below))
    s_h = 1.0 if gate is None else jnp.exp(-gate / tau_h)
    r_h = eta_h * s_h
    m, p = _absorbed(n)
    big_n = jnp.minimum(m, k).astype(jnp.int32)
    c = jnp.maximum(m - k, 0.0)
    mean = core_mean[big_n] + r_h * c
    fact = core_fact[big_n] + 2.0 * r_h * c * core_mean[big_n] + r_h**2 * c * (c - 1.0)
    return jnp.sum(p * mean, -1), jnp.sum(p * fact, -1)


def rates_ladder(n, eta_c, eta, eta_h, rep_rate_hz):
    """Detected core and shell rates ``(phi_1, phi_2)`` of a ladder with ``K = len(eta)`` levels.

    ``phi_1 = eta_C f sum_k eta_k P(m >= k)`` (k <= K) and
    ``phi_2 = eta_C f eta_H E[max(m - K, 0)]``; :func:`rates` for K = 2.
    """
    eta = jnp.asarray(eta)
    k = eta.shape[-1]
    m, p = _absorbed(n)
    s1 = jnp.concatenate([jnp.zeros(1), jnp.cumsum(eta)])
    core = jnp.sum(p * s1[jnp.minimum(m, k).astype(jnp.int32)], -1)
    shell = jnp.sum(p * jnp.maximum(m - k, 0.0), -1)
    return eta_c * rep_rate_hz * core, eta_c * rep_rate_hz * eta_h * shell


def detected_rate_one_per_pulse(n, eta_c, eta, eta_h, rep_rate_hz, n_detectors):
    """Detected rate when each detector records at most one photon per pulse.

    With a dead time longer than the emission (SPADs: ~77 ns) a detector
    that gets k >= 1 photons of one pulse records 1.  Each emitted photon
    reaches a given detector with ``q = eta_C / n_detectors``, so the rate is
    ``n_det f (1 - E[prod_i (1 - q eta_i)])`` over the emitters of a pulse
    (the ladder levels ``eta`` below ``min(m, K)`` and ``max(m - K, 0)``
    shell carriers, ``K = len(eta)``; ``[eta_X, eta_BX]`` for the reduced
    model) and ``m ~ Poisson(n)``.
    """
    eta = jnp.asarray(eta)
    k = eta.shape[-1]
    q = eta_c / n_detectors
    m, p = _absorbed(n)
    log_levels = jnp.concatenate([jnp.zeros(1), jnp.cumsum(jnp.log1p(-q * eta))])
    log_shell = jnp.log1p(-q * eta_h) * jnp.maximum(m - k, 0.0)
    log_none = log_levels[jnp.minimum(m, k).astype(jnp.int32)] + log_shell
    # 1 - E[prod] = E[1 - prod], with expm1 for precision at small q
    return n_detectors * rep_rate_hz * jnp.sum(p * -jnp.expm1(log_none), -1)


def _poisson_relative(y, mu):
    """Poisson log-likelihood of counts ``y`` less its value at ``mu = y`` (summed).

    ``y log(mu / y) - (mu - y) = -y (r - log1p(r))``, ``r = (mu - y) / y``:
    the plain form subtracts terms of ``y log y`` (3e7 at 1e6 counts), which
    float32 resolves to a few units only, enough to stall NUTS; this one
    keeps ~1e-3.
    """
    r = (mu - y) / jnp.maximum(y, 1.0)
    return jnp.sum(jnp.where(y > 0, -y * (r - jnp.log1p(r)), -mu))


def _ratio(emm, em):
    """``E[M(M-1)] / E[M]^2``, finite where ``E[M]`` underflows (n -> 0 far in the prior)."""
    return emm / jnp.maximum(em, 1e-15) ** 2


def _diluted(g2, rho):
    return rho**2 * g2 + 1.0 - rho**2


def power_series_model(
    data=None,
    *,
    overdispersion: bool = False,
    use_fraction: bool = False,
    use_g2: bool = False,
    use_g2_counts: bool = False,
    use_g2_gated: bool = False,
    use_tau_x: bool = False,
    use_tau_bx: bool = False,
    fix_eta_x: bool = True,
    one_per_pulse: int = 0,
    n_levels: int = 2,
    radiative_scaling: str = "quadratic",
    auger_scaling: str = "statistical",
):
    """numpyro model of a power series (see the module docstring).

    ``data``: ``power_w``, ``photons_per_pulse`` (laser photons per pulse,
    ``P lambda / (h c f_rep)``), ``duration_s``, ``counts`` (optional: prior
    predictive without), ``rep_rate_hz``,
    ``spot_area_m2``, ``spot_log_sd``, ``afterpulse``, ``background_scale_hz``
    and for the optional likelihoods ``red_fraction(_sd)``, ``g2(_sd)``,
    ``g2_gated(_sd)``, ``gate_s``, ``tau_h_s``, ``tau_x_obs_s(_sd)``,
    ``tau_bx_obs_s(_sd)``.

    ``n_levels`` = K core levels (2: the reduced model; K > 2: the ladder
    with levels >= 3 scaled by ``radiative_scaling`` / ``auger_scaling``,
    :func:`ladder_levels`); ``max(m - K, 0)`` carriers go to the shell.

    Priors: ``log10(sigma_abs / m^2) ~ Normal(-18, 1)``; spot
    ``LogNormal(log A, spot_log_sd)``; ``eta_C ~ LogNormal(log 0.01, 1.5)``
    (truncated below 1); ``eta_X`` fixed at ``data["eta_x"]`` (``fix_eta_x``,
    the paper's assumption for giant QDs; it is degenerate with eta_C in the
    rates) or ``Beta(20, 1)``; ``eta_BX, eta_H ~
    Uniform(0, 1)``; background ``HalfNormal(background_scale_hz)``;
    ``tau_X ~ LogNormal(log 50 ns, 1)``, ``tau_BX / tau_X ~ Beta(1, 4)``;
    overdispersion concentration ``LogNormal(log 1e3, 2)``.  Optional data
    ``log10_sigma_prior`` and ``log_eta_c_prior`` (loc, sd) replace the
    first two (simulation-based calibration draws from narrower ones).  With
    ``one_per_pulse`` = the number of detectors, the counts' mean uses
    :func:`detected_rate_one_per_pulse` (dead time longer than the emission).
    """
    f = data["rep_rate_hz"]
    s_loc, s_sd = data["log10_sigma_prior"] if "log10_sigma_prior" in data else (-18.0, 1.0)
    log10_sigma = numpyro.sample("log10_sigma_abs_m2", dist.Normal(s_loc, s_sd))
    sigma = numpyro.deterministic("sigma_abs_m2", 10.0**log10_sigma)
    numpyro.deterministic("sigma_abs_cm2", sigma * 1e4)
    spot_rel = numpyro.sample("spot_log_rel", dist.Normal(0.0, 1.0))
    spot = numpyro.deterministic(
        "spot_area_m2", data["spot_area_m2"] * jnp.exp(data["spot_log_sd"] * spot_rel)
    )
    c_loc, c_sd = data["log_eta_c_prior"] if "log_eta_c_prior" in data else (math.log(0.01), 1.5)
    log_eta_c = numpyro.sample("log_eta_c", dist.TruncatedNormal(c_loc, c_sd, high=0.0))
    eta_c = numpyro.deterministic("eta_c", jnp.exp(log_eta_c))
    if fix_eta_x:
        eta_x = numpyro.deterministic("eta_x", jnp.asarray(data["eta_x"]))
    else:
        eta_x = numpyro.sample("eta_x", dist.Beta(20.0, 1.0))
    eta_bx = numpyro.sample("eta_bx", dist.Uniform(0.0, 1.0))
    eta_h = numpyro.sample("eta_h", dist.Uniform(0.0, 1.0))
    numpyro.deterministic("eta_bx_over_eta_x", eta_bx / eta_x)
    bg_rel = numpyro.sample("background_rel", dist.HalfNormal(1.0))
    bg = numpyro.deterministic("background_hz", data["background_scale_hz"] * bg_rel)
    tau_x = tau_bx = None
    if use_g2_gated or use_tau_x or use_tau_bx:
        log_tau_x = numpyro.sample("log_tau_x_ns", dist.Normal(math.log(50.0), 1.0))
        tau_x = numpyro.deterministic("tau_x_s", jnp.exp(log_tau_x) * 1e-9)
        ratio = numpyro.sample("tau_ratio", dist.Beta(1.0, 4.0))
        # below 1e-4 tau_X the ratio changes nothing measurable; float32 expm would give NaN
        tau_bx = numpyro.deterministic("tau_bx_s", tau_x * jnp.maximum(ratio, 1e-4))
    # yields (and lifetimes) of the K core levels; tau only matters for the gate
    eta, tau = ladder_levels(
        eta_x,
        1.0 if tau_x is None else tau_x,
        eta_bx,
        1.0 if tau_bx is None else tau_bx,
        n_levels,
        radiative_scaling,
        auger_scaling,
    )
    # n = (sigma / A) (P / (h c / lambda) / f_rep); the photons per pulse are
    # precomputed in float64 (the product A h c / lambda underflows float32 gradients)
    n = numpyro.deterministic("n_abs", (sigma / spot) * data["photons_per_pulse"])
    if n_levels == 2:
        phi_1, phi_2 = rates(n, eta_c, eta_x, eta_bx, eta_h, f)
    else:
        phi_1, phi_2 = rates_ladder(n, eta_c, eta, eta_h, f)
    phi = phi_1 + phi_2
    numpyro.deterministic("phi_1_hz", phi_1)
    numpyro.deterministic("phi_2_hz", phi_2)
    detected = phi
    if one_per_pulse:
        detected = detected_rate_one_per_pulse(n, eta_c, eta, eta_h, f, one_per_pulse)
    # known laser leakage (scattered excitation light, grows with the power) and afterpulses
    leak = data["leakage_hz_per_w"] * data["power_w"] if "leakage_hz_per_w" in data else 0.0
    mean = numpyro.deterministic(
        "mu", data["duration_s"] * ((detected + leak) * (1.0 + data["afterpulse"]) + bg)
    )
    if overdispersion:
        conc = numpyro.sample("concentration", dist.LogNormal(math.log(1e3), 2.0))
        numpyro.sample(
            "obs", dist.NegativeBinomial2(mean, conc).to_event(1), obs=data.get("counts")
        )
    elif "rate_systematic" in data:
        # counting noise and a known relative systematic of the rate model (Normal: counts
        # of a power series are large)
        sd = jnp.sqrt(mean + (data["rate_systematic"] * mean) ** 2)
        numpyro.sample("obs", dist.Normal(mean, sd).to_event(1), obs=data.get("counts"))
    elif data.get("counts") is None:
        numpyro.sample("obs", dist.Poisson(mean).to_event(1))
    else:
        numpyro.factor("obs", _poisson_relative(data["counts"], mean))
    if use_fraction:
        frac = phi_1 / phi
        numpyro.sample(
            "red_fraction_obs",
            dist.Normal(frac, data["red_fraction_sd"]).to_event(1),
            obs=data.get("red_fraction"),
        )
    if use_g2 or use_g2_counts:
        em, emm = photon_moments(n, eta, eta_h=eta_h)
        g2_signal = _ratio(emm, em)  # one photon per detector and pulse: +0.001 at n = 25
        # afterpulses copy detections 0.2-1 period later: a fraction p_ap of the pairs
        # loses its pulse correlation (measured on qdsim: +0.014 at g2 0.28 with 1.8 %)
        g2 = _diluted(g2_signal, phi / (phi + bg + leak))
        g2 = numpyro.deterministic(
            "g2_zero_model", (1.0 - data["afterpulse"]) * g2 + data["afterpulse"]
        )
        if use_g2:
            numpyro.sample("g2_obs", dist.Normal(g2, data["g2_sd"]).to_event(1), obs=data.get("g2"))
        else:
            # centre C ~ Poisson(g2 A), side peaks S ~ Poisson(W A): given C + S, C is
            # Binomial(C + S, g2 / (g2 + W)); exact for the few pairs of weak excitation
            q = g2 / (g2 + data["g2_side_weight"])
            numpyro.sample(
                "g2_obs",
                dist.Binomial(data["g2_pairs"], probs=q).to_event(1),
                obs=data.get("g2_centre"),
            )
    if use_g2_gated:
        gate = jnp.broadcast_to(data["gate_s"], jnp.shape(n))  # one per power

        def gated_moments(n_i, gate_i):
            return photon_moments(n_i, eta, tau, eta_h, data["tau_h_s"], gate_i)

        em_g, emm_g = jax.vmap(gated_moments)(n, gate)
        phi_g = eta_c * f * em_g
        keep = 1.0 - gate * f
        g2g = numpyro.deterministic(
            "g2_gated_model", _diluted(_ratio(emm_g, em_g), phi_g / (phi_g + bg * keep))
        )
        numpyro.sample(
            "g2_gated_obs",
            dist.Normal(g2g, data["g2_gated_sd"]).to_event(1),
            obs=data.get("g2_gated"),
        )
    if use_tau_x:
        numpyro.sample(
            "tau_x_obs",
            dist.Normal(tau_x * 1e9, data["tau_x_obs_s_sd"] * 1e9).to_event(1),
            obs=data["tau_x_obs_s"] * 1e9 if "tau_x_obs_s" in data else None,
        )
    if use_tau_bx:
        numpyro.sample(
            "tau_bx_obs",
            dist.Normal(tau_bx * 1e9, data["tau_bx_obs_s_sd"] * 1e9).to_event(1),
            obs=data["tau_bx_obs_s"] * 1e9 if "tau_bx_obs_s" in data else None,
        )


_OPTIONAL = {
    "use_fraction": ("red_fraction", "red_fraction_sd"),
    "use_g2": ("g2", "g2_sd"),
    "use_g2_gated": ("g2_gated", "g2_gated_sd"),
    "use_tau_x": ("tau_x_obs_s", "tau_x_obs_s_sd"),
    "use_tau_bx": ("tau_bx_obs_s", "tau_bx_obs_s_sd"),
}


def fit_power_series(
    power_w: Sequence[float],
    counts: Sequence[float],
    duration_s: Sequence[float] | float,
    *,
    red_fraction: tuple[Sequence[float], Sequence[float]] | None = None,
    g2: tuple[Sequence[float], Sequence[float]] | None = None,
    g2_counts: tuple[Sequence[float], Sequence[float], Sequence[float]] | None = None,
    g2_gated: tuple[Sequence[float], Sequence[float]] | None = None,
    gate_s: float | Sequence[float] | None = None,
    tau_x_s: tuple[Sequence[float], Sequence[float]] | None = None,
    tau_bx_s: tuple[Sequence[float], Sequence[float]] | None = None,
    wavelength_m: float = 405e-9,
    rep_rate_hz: float = 2.5e6,
    numerical_aperture: float = 0.8,
    spot_area_m2: float | None = None,
    spot_log_sd: float = 0.3,
    afterpulse_probability: float = 0.0,
    leakage_hz_per_w: float = 0.0,
    rate_systematic: float = 0.0,
    overdispersion: bool = False,
    eta_x: float | None = 1.0,
    n_detectors_dead_time: int = 0,
    cascade: str = "reduced",
    n_levels: int | None = None,
    radiative_scaling: str = "quadratic",
    auger_scaling: str = "statistical",
    shell_lifetime_s: float = 0.5e-9,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    warn: bool = True,
) -> FitResult:
    """Posterior of sigma_abs, eta_C, eta_X, eta_BX, eta_H from a power series.

    With only ``counts`` this is the rate-versus-power model; adding
    ``g2`` / ``g2_gated`` / ``tau_x_s`` / ``red_fraction`` (each a pair
    ``(values, standard errors)``, one entry per power; NaN entries are
    dropped by giving them an infinite error) makes it the joint model.
    ``g2`` is the raw (uncorrected) ratio, ``PulsedG2.raw_value`` /
    ``raw_stderr``: the model applies the background and afterpulse
    dilution itself (a corrected ``value`` would be corrected twice).
    ``g2_counts = (centre_counts, side_total, side_weight)`` per power (from
    :class:`qdinfer.PulsedG2`: ``centre_counts``, ``side_counts.sum()``,
    ``side_weights.sum()``) replaces ``g2`` by the exact binomial likelihood
    of the peak counts.

    Parameters
    ----------
    power_w, counts, duration_s
        Average power, detected photons (all detectors) and acquisition
        time per point.
    gate_s : float or sequence of float
        Gate of ``g2_gated`` (one, or one per power), delay after the
        emission.  A
        ``qdinfer.gate(min_s, relative_to="irf_peak")`` keeps bins
        ``ceil(min_s / bin)`` bins after the IRF-peak bin, which starts up
        to a bin after the emission: 2.71 ns for ``min_s`` = 2.5 ns with
        128 ps bins in qdsim's paper preset.
    spot_area_m2 : float, optional
        Prior median of the spot area (default diffraction-limited,
        ``pi (0.61 lambda / NA)^2``), with log sd ``spot_log_sd``.
    afterpulse_probability : float
        Known detector afterpulsing (adds to the counts in proportion).
    leakage_hz_per_w : float
        Known laser leakage (excitation light reaching the detectors, all
        of them together), counts per second per watt of excitation:
        measure it with the laser on and no emitter in focus.  It adds
        ``leakage_hz_per_w * P`` to the rate; left out, a few hundred
        counts per second at the highest power bias eta_H upward.
    rate_systematic : float
        Relative systematic uncertainty of the modelled rate (dead-time and
        afterpulse details the model simplifies; e.g. 0.005): the counts
        become Normal with variance ``mu + (rate_systematic mu)^2``.  At
        1e5-1e6 counts per point a 0.3 % model error is otherwise several
        standard deviations.
    overdispersion : bool
        Negative-binomial counts (blinking, drifts) instead of Poisson.
    eta_x : float or None
        The X emission yield, fixed (default 1, as the paper assumes for
        giant QDs: the rates only fix the products eta_C eta_X and
        eta_C eta_BX), or None to infer it with a Beta(20, 1) prior.
    n_detectors_dead_time : int
        0: counts = phi_1 + phi_2.  k > 0: k detectors whose dead time
        exceeds the emission, so each records at most one photon per pulse
        (matters at high power: ~1 % at n = 25 with eta_C = 0.01).
    cascade : {"reduced", "ladder"}
        "reduced": X and BX, ``m - 2`` carriers to the shell (the paper's
        model).  "ladder": ``min(m, n_levels)`` excitons cascade down
        ``n_levels`` levels (qdsim's ``model="ladder"`` with
        ``max_excitons=n_levels``), levels >= 3 scaled from the biexciton
        by ``radiative_scaling`` and ``auger_scaling`` (as in
        :func:`qdsim.closed_forms.ladder_levels`); the rest go to the shell.
    n_levels : int, optional
        Core levels of the ladder (>= 2; default 6).  Each new value
        compiles the model once.
    shell_lifetime_s : float
        Known shell emission time, for the shell photons that outlive the
        gate of ``g2_gated`` (exp(-2.5 / 0.5) of them: +0.02 on g2 at
        n = 25).  ``g2_gated`` must be free of afterpulses: afterpulses of
        the early (BX, shell) photons land in the gate carrying their
        same-pulse correlations (docs/bayes.md).

    Returns
    -------
    FitResult
        Parameters ``sigma_abs_m2``, ``eta_c``, ``eta_x``, ``eta_bx``,
        ``eta_h``, ``background_hz`` (and ``tau_x_s``, ``tau_bx_s`` when
        lifetimes or gated g2 are given).
    """
    p = np.asarray(power_w, np.float64)
    k = len(p)
    if cascade == "reduced":
        if n_levels not in (None, 2):
            raise ValueError(f"n_levels={n_levels!r}: the reduced cascade has 2 levels")
        n_levels = 2
    elif cascade == "ladder":
        n_levels = 6 if n_levels is None else n_levels
        if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2:
            raise ValueError(f"n_levels={n_levels!r} must be an integer >= 2")
        if n_levels >= M_MAX:
            raise ValueError(f"n_levels={n_levels!r} must be < {M_MAX}")
    else:
        raise ValueError(f"cascade={cascade!r} must be 'reduced' or 'ladder'")
    if radiative_scaling not in _RADIATIVE:
        raise ValueError(
            f"radiative_scaling={radiative_scaling!r}: use one of {sorted(_RADIATIVE)}"
        )
    if auger_scaling not in _AUGER:
        raise ValueError(f"auger_scaling={auger_scaling!r}: use one of {sorted(_AUGER)}")
    if not shell_lifetime_s > 0:
        raise ValueError(f"shell_lifetime_s={shell_lifetime_s!r} must be > 0")
    if spot_area_m2 is None:
        spot_area_m2 = math.pi * (0.61 * wavelength_m / numerical_aperture) ** 2
    dur = np.broadcast_to(np.asarray(duration_s, np.float64), (k,)).copy()
    y = np.asarray(counts, np.float64)
    if y.shape != (k,) or np.any(p <= 0) or np.any(dur <= 0):
        raise ValueError("power_w, counts and duration_s need one positive entry per power")
    bad = ~np.isfinite(y) | (y < 0)
    if bad.any():
        raise ValueError(f"counts {y[bad].tolist()} at point(s) {np.flatnonzero(bad).tolist()}: "
                         "photon counts must be finite and >= 0")  # fmt: skip
    if not np.any(y > 0):
        raise ValueError("counts: no photons at any power")
    rate_min = float(np.min(y[y > 0] / dur[y > 0]))
    data: dict[str, np.ndarray | float] = {
        "power_w": p,
        "duration_s": dur,
        "counts": y,
        "rep_rate_hz": rep_rate_hz,
        "photons_per_pulse": p * wavelength_m / (H_C * rep_rate_hz),
        "spot_area_m2": spot_area_m2,
        "spot_log_sd": spot_log_sd,
        "afterpulse": afterpulse_probability,
        "background_scale_hz": max(rate_min, 1.0),
    }
    if not (math.isfinite(leakage_hz_per_w) and leakage_hz_per_w >= 0):
        raise ValueError(f"leakage_hz_per_w={leakage_hz_per_w!r} must be a rate >= 0")
    if leakage_hz_per_w > 0:
        data["leakage_hz_per_w"] = leakage_hz_per_w
    if not (math.isfinite(rate_systematic) and 0 <= rate_systematic < 1):
        raise ValueError(f"rate_systematic={rate_systematic!r} must be in [0, 1)")
    if rate_systematic > 0:
        if overdispersion:
            raise ValueError("rate_systematic and overdispersion are two noise models: pick one")
        data["rate_systematic"] = rate_systematic
    static = {
        "overdispersion": bool(overdispersion),
        "fix_eta_x": eta_x is not None,
        "one_per_pulse": int(n_detectors_dead_time),
        "n_levels": int(n_levels),
        "radiative_scaling": radiative_scaling,
        "auger_scaling": auger_scaling,
    }
    if eta_x is not None:
        if not 0 < eta_x <= 1:
            raise ValueError(f"eta_x={eta_x!r} must be in (0, 1] or None")
        data["eta_x"] = float(eta_x)
    given = {
        "use_fraction": red_fraction,
        "use_g2": g2,
        "use_g2_gated": g2_gated,
        "use_tau_x": tau_x_s,
        "use_tau_bx": tau_bx_s,
    }
    for flag, pair in given.items():
        static[flag] = pair is not None
        if pair is None:
            continue
        v, sd = (np.asarray(x, np.float64) for x in pair)
        if v.shape != (k,) or sd.shape != (k,):
            raise ValueError(f"{_OPTIONAL[flag][0]}: need (values, errors) with {k} entries each")
        bad = ~np.isfinite(v) | ~np.isfinite(sd) | (sd <= 0)
        name, name_sd = _OPTIONAL[flag]
        fill = np.nanmedian(v[~bad]) if np.any(~bad) else 0.0
        data[name] = np.where(bad, fill, v)
        data[name_sd] = np.where(bad, 1e6 * max(abs(fill), 1.0), sd)
    static["use_g2_counts"] = g2_counts is not None
    if g2_counts is not None:
        if g2 is not None:
            raise ValueError("give g2 (values, errors) or g2_counts (peak counts), not both")
        centre, side, weight = (np.asarray(x, np.float64) for x in g2_counts)
        if not centre.shape == side.shape == weight.shape == (k,):
            raise ValueError(f"g2_counts: need (centre, side total, side weight) with {k} entries")
        whole = np.isfinite(centre) & np.isfinite(side) & (centre >= 0) & (side >= 0)
        whole &= (centre == np.round(centre)) & (side == np.round(side))
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise ValueError(
                f"g2_counts: point {i} has centre {float(centre[i])!r}, side "
                f"{float(side[i])!r}: peak counts must be whole numbers >= 0 (raw pair "
                "counts, not background-corrected)"
            )
        if not np.all(np.isfinite(weight) & (weight > 0)):
            raise ValueError(f"g2_counts: side weights {weight.tolist()} must be finite and > 0")
        data["g2_centre"] = centre
        data["g2_pairs"] = centre + side
        data["g2_side_weight"] = weight
    if g2_gated is not None:
        if gate_s is None:
            raise ValueError("g2_gated needs gate_s")
        gates = np.asarray(gate_s, np.float64)
        if gates.ndim and gates.shape != (k,):
            raise ValueError(f"gate_s: need one gate or {k} (one per power), got {gates.shape}")
        gates = np.broadcast_to(gates, (k,)).copy()
        if np.any(~(gates >= 0)) or np.any(gates >= 1 / rep_rate_hz):
            raise ValueError(f"gate_s={gate_s!r} must be in [0, {1 / rep_rate_hz:g}) s")
        data["gate_s"] = gates
        data["tau_h_s"] = float(shell_lifetime_s)
    init = _initial(data, static)
    params = ["sigma_abs_m2", "eta_c", "eta_bx", "eta_h", "background_hz"]
    if eta_x is None:
        params.insert(2, "eta_x")
    if static["use_g2_gated"] or static["use_tau_x"] or static["use_tau_bx"]:
        params += ["tau_x_s", "tau_bx_s"]
    units = {
        "sigma_abs_m2": "m^2",
        "background_hz": "1/s",
        "tau_x_s": "s",
        "tau_bx_s": "s",
    }
    return run_model(
        power_series_model,
        data,
        static=static,
        init_values=init,
        params=params,
        units=units,
        settings=settings,
        seed=seed,
        observed=y,
        model_name="power series" if n_levels == 2 else f"power series ({n_levels}-level ladder)",
        info={"x_s": p, "x_label": "power (W)"},
        warn=warn,
    )


def _initial(data: Mapping, static: Mapping) -> dict[str, float]:
    """A start fitted to the rates: least squares over a grid of n at the highest power.

    With eta_X and eta_BX held at typical values the rates are linear in
    eta_C and eta_C eta_H for a given n-per-watt scale: nonnegative least
    squares in relative residuals per grid point, the best point wins.
    Without it, long acquisitions (1e6 counts per point) left NUTS stuck
    at a start that was a factor 2 off.
    """
    y = np.asarray(data["counts"]) / np.asarray(data["duration_s"])
    y = y / (1.0 + float(data["afterpulse"]))
    leak = float(data.get("leakage_hz_per_w", 0.0)) * np.asarray(data["power_w"])
    y = np.maximum(y - leak, 0.5 * y)
    y = np.where(y > 0, y, np.inf)  # rows without photons drop out below (1 / inf = 0)
    f = float(data["rep_rate_hz"])
    eta_x = float(data["eta_x"]) if static.get("fix_eta_x") else 0.95
    eta_bx = 0.2
    ppp = np.asarray(data["photons_per_pulse"], np.float64)
    best = (math.inf, 1.0, 0.01, 0.05)
    for n_top in np.geomspace(1e-3, 80.0, 300):
        n = n_top * ppp / ppp.max()
        p1 = -np.expm1(-n)
        p2 = p1 - n * np.exp(-n)
        shell = np.maximum(n - 2.0 + (2.0 + n) * np.exp(-n), 0.0)
        design = np.stack([(eta_x * p1 + eta_bx * p2) * f / y, shell * f / y], axis=1)
        design = design[np.isfinite(y)]  # relative residuals: a point without photons drops out
        (u, v), _ = optimize.nnls(design, np.ones(len(design)))
        cost = float(np.sum((design @ [u, v] - 1.0) ** 2))
        if u > 0 and cost < best[0]:
            best = (cost, float(n_top), float(u), float(v / u))
    _, n_top, eta_c, eta_h = best
    eta_c = float(np.clip(eta_c, 1e-5, 0.5))
    eta_h = float(np.clip(eta_h, 1e-3, 0.9))
    sigma = n_top * float(data["spot_area_m2"]) / float(ppp.max())
    init = {
        "log10_sigma_abs_m2": math.log10(sigma),
        "spot_log_rel": 0.0,
        "log_eta_c": math.log(eta_c),
        "eta_bx": eta_bx,
        "eta_h": eta_h,
        "background_rel": 0.1,
    }
    if not static.get("fix_eta_x"):
        init["eta_x"] = eta_x
    if static.get("overdispersion"):
        init["concentration"] = 1e3
    if static.get("use_g2_gated") or static.get("use_tau_x") or static.get("use_tau_bx"):
        tau = 50.0
        if "tau_x_obs_s" in data:
            tau = float(np.median(data["tau_x_obs_s"])) * 1e9
        init["log_tau_x_ns"] = math.log(max(tau, 0.1))
        init["tau_ratio"] = 0.1
    return init
