"""Bayesian decay model: 1 to 3 periodic exponentials convolved with the IRF.

The expected counts in bin ``i`` (bin units) are::

    mu_i = N [ sum_k f_k sum_j w_j g_k(i - j - s) + f_b / n ],
    g(d) = int_{-1}^{1} (1 - |v|) F(d + v) dv,

with ``F(t) = exp(-r/tau) / (tau (1 - exp(-P/tau)))``, ``r = t mod P``, the
exponential summed over all earlier pulses (the periodic tail), ``w_j`` the
IRF weights on the decay's bins and ``s`` the IRF shift.  The triangle
kernel is the binned convolution done right: an IRF photon spread uniformly
over its bin, the decay photon integrated over the detection bin (putting
the IRF photon at the bin's start instead shifts the fit by half a bin: the
half-bin correction).  It is :func:`qdinfer.fit_decay`'s model, evaluated
in a float32-safe form.  ``N`` is the expected photons per period, ``f``
(Dirichlet) splits it among the components and the flat background
``f_b``.  Likelihood: Poisson per bin over the fit bins (a gate or fit range
masks the others).

Sites: ``tau_ns`` (ordered vector, internal), ``tau_1_s`` ... (seconds),
``frac`` (Dirichlet, internal), ``fraction_1`` ... (intensity fractions of
the signal), ``background_per_bin``, ``shift_s``, ``n_per_period``, ``mu``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ..decay import DecayHistogram, Irf, _irf_weights, fit_decay, mean_arrival_time
from ._fit import FitResult, SamplerSettings, run_model, run_model_batch

__all__ = [
    "decay_expected",
    "decay_inputs",
    "decay_model",
    "fit_decay_bayes",
    "fit_decays_bayes",
]


def _component(lag, w, tau, period):
    """Expected fraction per bin of a unit-area periodic exponential (bin units).

    ``g(d) = int_{-1}^{1} (1 - |v|) F(d + v) dv`` at lags ``d = i - j - s``,
    convolved with the IRF weights (``lag`` holds consecutive lags).  Where no
    period boundary lies within one bin of ``d``:
    ``g = e^{-r/tau} 4 tau sinh^2(1/(2 tau)) / den`` with ``r = d mod P``;
    otherwise the second difference of a local second antiderivative around
    the boundary (small numbers only: float32-safe).
    """
    den = -jnp.expm1(-period / tau)
    # no boundary in [d - 1, d + 1]
    q = jnp.floor((lag - 1.0) / period)
    r = lag - q * period
    inside = jnp.floor((lag + 1.0) / period) == q
    h = 0.5 / tau
    small = h < 10.0
    hs = jnp.where(small, h, 1.0)
    g_smooth = jnp.exp(-r / tau) * 4.0 * tau * jnp.sinh(hs) ** 2
    r1 = jnp.maximum(r - 1.0, 0.0)
    g_sharp = tau * (
        jnp.exp(-r1 / tau) - 2.0 * jnp.exp(-(r1 + 1.0) / tau) + jnp.exp(-(r1 + 2.0) / tau)
    )
    g_in = jnp.where(small, g_smooth, g_sharp)
    # a boundary k P within one bin: y = d - k P in [-1, 1]
    k = jnp.round(lag / period)
    y = jnp.clip(lag - k * period, -1.0, 1.0)
    e_p = jnp.exp(-period / tau)

    def dtilde(x):
        pos = tau * jnp.expm1(-jnp.maximum(x, 0.0) / tau) + jnp.maximum(x, 0.0)
        xn = jnp.minimum(x, 0.0)
        # e^{-P/tau} (tau expm1(-x/tau) + x), written without overflow for tiny tau
        neg_tiny = tau * jnp.exp(-jnp.maximum(period + xn, 0.0) / tau) - tau * e_p + e_p * xn
        t_big = jnp.maximum(tau, 0.1)
        neg_big = e_p * (t_big * jnp.expm1(-xn / t_big) + xn)
        neg = jnp.where(tau > 0.1, neg_big, neg_tiny)
        return jnp.where(x >= 0.0, pos, neg)

    g_cross = dtilde(y + 1.0) - 2.0 * dtilde(y) + dtilde(y - 1.0)
    g = jnp.where(inside, g_in, g_cross) / den
    return jnp.convolve(g, w, mode="valid")


def decay_expected(data, tau_bins, frac, shift_bins, n_per_period):
    """Expected counts per bin for lifetimes ``tau_bins`` (jax arrays)."""
    lag = data["lag"] - shift_bins
    period = data["period_bins"]
    comps = jnp.stack([_component(lag, data["irf_w"], t, period) for t in tau_bins])
    n_bins = comps.shape[1]
    signal = jnp.sum(frac[:-1, None] * comps, axis=0)
    return n_per_period * (signal + frac[-1] / n_bins)


def decay_model(data=None, *, n_exp: int = 1):
    """numpyro model of a decay histogram (see the module docstring).

    ``data`` holds the geometry (``lag``, ``irf_w``, ``period_bins``,
    ``bin_s``, ``mask``), the prior hyperparameters (``log_tau_loc``,
    ``log_tau_scale`` for log(tau_1 / ns), ``shift_loc``, ``shift_scale`` in
    bins, ``scale`` the typical photons per period) and optionally
    ``counts``; without counts the model draws them (prior predictive).
    Priors: ``log tau_1 ~ Normal(loc, scale)``, each further log-lifetime
    adds ``LogNormal(0.7, 0.6)`` (ordered lifetimes), fractions
    ``Dirichlet(1)``, ``log(N / scale) ~ Normal(0, 1)``, shift
    ``Normal(shift_loc, shift_scale)``.
    """
    bin_ns = data["bin_s"] * 1e9
    log_tau1 = numpyro.sample(
        "log_tau1_ns", dist.Normal(data["log_tau_loc"], data["log_tau_scale"])
    )
    logs = [log_tau1]
    for k in range(1, n_exp):
        step = numpyro.sample(f"log_ratio_{k + 1}", dist.LogNormal(0.7, 0.6))
        logs.append(logs[-1] + step)
    tau_ns = jnp.exp(jnp.stack(logs))
    frac = numpyro.sample("frac", dist.Dirichlet(jnp.ones(n_exp + 1)))
    z = numpyro.sample("log_n_rel", dist.Normal(0.0, 1.0))
    n_per_period = numpyro.deterministic("n_per_period", data["scale"] * jnp.exp(z))
    shift = numpyro.sample("shift_bins", dist.Normal(data["shift_loc"], data["shift_scale"]))
    for k in range(n_exp):
        numpyro.deterministic(f"tau_{k + 1}_s", tau_ns[k] * 1e-9)
        numpyro.deterministic(f"fraction_{k + 1}", frac[k] / jnp.sum(frac[:-1]))
    n_bins = data["mask"].shape[0]
    numpyro.deterministic("background_per_bin", n_per_period * frac[-1] / n_bins)
    numpyro.deterministic("shift_s", shift * data["bin_s"])
    mu = decay_expected(data, tau_ns / bin_ns, frac, shift, n_per_period)
    mu = numpyro.deterministic("mu", jnp.maximum(mu, 1e-6))
    mask = data["mask"] > 0.5
    numpyro.sample("obs", dist.Poisson(mu).mask(mask).to_event(1), obs=data.get("counts"))


def decay_inputs(
    decay: DecayHistogram,
    irf: Irf | DecayHistogram | str | None = None,
    *,
    fit_range_s: tuple[float, float] | None = None,
    gate_s: float | None = None,
    tau_prior_ns: tuple[float, float] | None = None,
    shift_prior_s: tuple[float, float] | None = None,
    scale: float | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Data dict for :func:`decay_model` from a histogram and an IRF.

    ``gate_s`` keeps the bins starting ``gate_s`` or later after the IRF
    peak; ``fit_range_s`` keeps bin centres in ``[lo, hi)`` (as in
    :func:`qdinfer.fit_decay`).  ``tau_prior_ns = (median_ns, log_sd)``
    (default: the mean-arrival-time lifetime, log sd 2);
    ``shift_prior_s = (mean, sd)`` (default 0, 1 ns).
    Returns the data dict and extras (edges, the Irf).
    """
    n = decay.n_full_bins
    if n < 4:
        raise ValueError(f"decay_inputs: the decay has only {n} bins in the period")
    w_s = decay.bin_width_s
    irf_w, irf_obj = _irf_weights(irf, decay, n)
    keep = np.flatnonzero(irf_w > 1e-7 * irf_w.max())
    j = np.arange(keep[0], keep[-1] + 1)
    # lags i - j of every (decay bin i, IRF bin j) pair, ascending; the model
    # evaluates the kernel there and convolves it with the IRF weights
    lag = np.arange(-j[-1], n - j[0], dtype=np.float64)
    centers = decay.centers_s[:n]
    mask = np.ones(n, bool)
    if fit_range_s is not None:
        lo, hi = (float(x) for x in fit_range_s)
        if not hi > lo:
            raise ValueError(f"fit_range_s={fit_range_s!r} must be (start, stop) with stop > start")
        mask &= (centers >= lo) & (centers < hi)
    if gate_s is not None:
        start = decay.edges_s[:n]
        mask &= ((start - irf_obj.peak_s) % decay.period_s) >= float(gate_s)
    if mask.sum() < 4:
        raise ValueError("decay_inputs: fewer than 4 bins left after the gate / fit range")
    counts = decay.counts[:n].astype(np.float64)
    if tau_prior_ns is None:
        try:
            tau0 = mean_arrival_time(decay, irf=irf_obj).tau_s * 1e9
        except ValueError:
            tau0 = 10.0
        tau_prior_ns = (float(np.clip(tau0, 0.05, 1e5)), 2.0)
    if shift_prior_s is None:
        shift_prior_s = (0.0, 1e-9)
    if scale is None:
        frac_bins = mask.sum() / n
        scale = max(float(counts[mask].sum()) / frac_bins, 1.0)
    data = {
        "counts": counts,
        "mask": mask.astype(np.float64),
        "lag": lag,
        "irf_w": irf_w[j] / irf_w[j].sum(),
        "period_bins": decay.period_s / w_s,
        "bin_s": w_s,
        "log_tau_loc": math.log(tau_prior_ns[0]),
        "log_tau_scale": float(tau_prior_ns[1]),
        "shift_loc": shift_prior_s[0] / w_s,
        "shift_scale": shift_prior_s[1] / w_s,
        "scale": float(scale),
    }
    return data, {"edges_s": decay.edges_s[: n + 1], "irf": irf_obj, "mask": mask}


def _init_from_mle(decay, irf_obj, data, n_exp, fit_range_s) -> dict[str, np.ndarray]:
    """Starting point from the scipy maximum-likelihood fit (fallback: the prior)."""
    n = len(data["mask"])
    try:
        mle = fit_decay(decay, n_exp=n_exp, irf=irf_obj, fit_range_s=fit_range_s)
        taus = np.maximum(mle.tau_s * 1e9, 1e-3)
        amps = np.maximum(mle.counts, 1e-3 * max(mle.counts.sum(), 1.0))
        bg = max(mle.background_per_bin * n, 1e-3 * amps.sum())
        shift = mle.shift_s / data["bin_s"]
    except (ValueError, np.linalg.LinAlgError):
        taus = math.exp(data["log_tau_loc"]) * np.geomspace(0.3, 3, n_exp)
        amps = np.full(n_exp, data["scale"] / (n_exp + 1))
        bg = data["scale"] / (n_exp + 1)
        shift = data["shift_loc"]
    total = amps.sum() + bg
    frac = np.append(amps, bg) / total
    taus = np.sort(taus)
    init = {
        "log_tau1_ns": np.log(taus[0]),
        "frac": frac,
        "log_n_rel": np.log(total / data["scale"]),
        "shift_bins": shift,
    }
    for k in range(1, n_exp):
        init[f"log_ratio_{k + 1}"] = max(math.log(taus[k] / taus[k - 1]), 0.05)
    return init


def fit_decay_bayes(
    decay: DecayHistogram,
    *,
    n_exp: int = 1,
    irf: Irf | DecayHistogram | str | None = None,
    fit_range_s: tuple[float, float] | None = None,
    gate_s: float | None = None,
    tau_prior_ns: tuple[float, float] | None = None,
    shift_prior_s: tuple[float, float] | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    init: str = "mle",
    warn: bool = True,
) -> FitResult:
    """Posterior of a decay: lifetimes, fractions, background and IRF shift.

    Parameters
    ----------
    decay : DecayHistogram
    n_exp : {1, 2, 3}
    irf : Irf, DecayHistogram, path or None
        As for :func:`qdinfer.fit_decay` (None: a Gaussian from the rising edge).
    fit_range_s, gate_s, tau_prior_ns, shift_prior_s
        See :func:`decay_inputs`.
    settings : SamplerSettings, optional
        NUTS (default 2 chains x 500) or SVI.
    init : {"mle", "prior"}
        Start the chains at the scipy MLE (default) or at prior medians.

    Returns
    -------
    FitResult
        Parameters ``tau_1_s`` ..., ``fraction_1`` ..., ``background_per_bin``,
        ``shift_s``; ``samples["mu"]`` holds the expected counts per bin.
    """
    problem = _problem(decay, n_exp, irf, fit_range_s, gate_s, tau_prior_ns, shift_prior_s, init)
    return run_model(decay_model, **problem, settings=settings, seed=seed, warn=warn)


def fit_decays_bayes(
    decays: Sequence[DecayHistogram],
    *,
    n_exp: int = 1,
    irf: Irf | DecayHistogram | str | None = None,
    fit_range_s: tuple[float, float] | None = None,
    gate_s: float | None = None,
    tau_prior_ns: tuple[float, float] | None = None,
    shift_prior_s: tuple[float, float] | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    init: str = "mle",
    warn: bool = True,
) -> list[FitResult]:
    """:func:`fit_decay_bayes` of many decays with the same binning, as one vmapped fit.

    One compilation for the whole batch; on a GPU the fits run together
    (:func:`~qdinfer.models.run_model_batch`).  The arguments apply to every
    decay (``irf=None`` estimates each decay's own IRF).
    """
    problems = [
        _problem(d, n_exp, irf, fit_range_s, gate_s, tau_prior_ns, shift_prior_s, init)
        for d in decays
    ]
    if not problems:
        raise ValueError("fit_decays_bayes: no decays")
    first = problems[0]
    return run_model_batch(
        decay_model,
        [p["data"] for p in problems],
        static=first["static"],
        init_values=[p["init_values"] for p in problems],
        params=first["params"],
        units=first["units"],
        settings=settings,
        seed=seed,
        observed=[p["observed"] for p in problems],
        model_name=first["model_name"],
        info=[p["info"] for p in problems],
        warn=warn,
    )


def _problem(decay, n_exp, irf, fit_range_s, gate_s, tau_prior_ns, shift_prior_s, init) -> dict:
    """The keyword arguments of :func:`run_model` for one decay."""
    if n_exp not in (1, 2, 3):
        raise ValueError(f"n_exp={n_exp!r} must be 1, 2 or 3")
    data, extra = decay_inputs(
        decay,
        irf,
        fit_range_s=fit_range_s,
        gate_s=gate_s,
        tau_prior_ns=tau_prior_ns,
        shift_prior_s=shift_prior_s,
    )
    if init == "mle":
        init_values = _init_from_mle(decay, extra["irf"], data, n_exp, fit_range_s)
    elif init == "prior":
        init_values = _prior_init(data, n_exp)
    else:
        raise ValueError(f"init={init!r} must be 'mle' or 'prior'")
    params = [f"tau_{k + 1}_s" for k in range(n_exp)]
    if n_exp > 1:
        params += [f"fraction_{k + 1}" for k in range(n_exp)]
    params += ["background_per_bin", "shift_s"]
    units = {p: "s" for p in params if p.endswith("_s")}
    units["background_per_bin"] = "counts"
    return {
        "data": data,
        "static": {"n_exp": n_exp},
        "init_values": init_values,
        "params": params,
        "units": units,
        "observed": data["counts"],
        "model_name": f"decay ({n_exp} exponential{'s' if n_exp > 1 else ''})",
        "info": {**extra, "x_s": decay.centers_s[: len(data["mask"])], "x_label": "delay (s)"},
    }


def _prior_init(data, n_exp) -> dict[str, np.ndarray]:
    init = {
        "log_tau1_ns": data["log_tau_loc"],
        "frac": np.full(n_exp + 1, 1.0 / (n_exp + 1)),
        "log_n_rel": 0.0,
        "shift_bins": data["shift_loc"],
    }
    for k in range(1, n_exp):
        init[f"log_ratio_{k + 1}"] = 2.0
    return init


def prior_init(data, n_exp: int = 1) -> dict[str, np.ndarray]:
    """Prior-median starting values for :func:`decay_model` (used by SBC)."""
    return _prior_init(data, n_exp)
