"""Bayesian model of a pulsed g2 histogram: peaks at multiples of the laser period.

Expected coincidences in lag bin ``[a, b)``::

    mu = b_bg (b - a) + A sum_p h_p [L_p(b - pT - delta) - L_p(a - pT - delta)]

with ``L`` the cumulative of a two-sided exponential (Laplace) of lifetime
``tau`` convolved with a Gaussian IRF of standard deviation ``sigma_irf``
(the difference of two detection delays: side peaks have the X lifetime
``tau_x_s``, the centre peak its own ``tau_c_s`` since BX-X pairs are
faster), ``h_0 = g2_zero`` and ``h_p = 1`` for the side peaks (normalised to
the side peaks in the window: blinking bunching is not modelled, so use a
window of a few periods), ``A`` the side-peak area, ``delta`` a small lag
offset and ``b_bg`` a flat background per second of lag.  Poisson likelihood
per bin.

From ``g2_zero`` the model derives ``eta_bx_over_eta_x``: with a mean number
of absorbed photons ``n_abs`` (data, default 0: the weak-pumping limit, where
g2(0) = eta_BX / eta_X) it inverts the reduced model
``g2 = 2 r p2 / (p1 + r p2)^2``, ``p1 = P(>=1)``, ``p2 = P(>=2)``
(MODEL.md section 3).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import log_ndtr, ndtr

from ..g2 import G2Histogram
from ._fit import FitResult, SamplerSettings, run_model

__all__ = ["fit_g2_bayes", "g2_inputs", "g2_model", "ratio_from_g2"]


def _exp_cdf(t, tau, sigma):
    """CDF of Exp(tau) convolved with N(0, sigma^2)."""
    z = t / sigma
    log_term = 0.5 * (sigma / tau) ** 2 - t / tau + log_ndtr(z - sigma / tau)
    return ndtr(z) - jnp.exp(log_term)


def _laplace_cdf(t, tau, sigma, smooth: bool):
    """CDF of a two-sided exponential (mean 0, scale tau), convolved with N(0, sigma^2).

    Without ``smooth`` (an IRF much narrower than the lag bins) the exact
    Laplace CDF.
    """
    if smooth:
        return 0.5 * (_exp_cdf(t, tau, sigma) + 1.0 - _exp_cdf(-t, tau, sigma))
    half = 0.5 * jnp.exp(-jnp.abs(t) / tau)
    return jnp.where(t >= 0.0, 1.0 - half, half)


def ratio_from_g2(g2_zero, n_abs):
    """eta_BX / eta_X from pulsed g2(0) at ``n_abs`` absorbed photons (reduced model).

    The smaller root of ``g2 (p1 + r p2)^2 = 2 r p2``, written without
    cancellation: ``r = g p1^2 / (p2 ((1 - a) + sqrt(1 - 2 a)))``,
    ``a = g p1``; it tends to ``g2`` as ``n_abs`` -> 0.  Where ``a > 1/2``
    (a g2 larger than the model allows at this power) the root is clipped.
    """
    n = jnp.maximum(n_abs, 1e-4)
    p1 = -jnp.expm1(-n)
    # p2 = P(>=2) = 1 - e^-n (1 + n), by series for small n
    p2_series = n**2 / 2 - n**3 / 3 + n**4 / 8
    p2 = jnp.where(n < 1e-2, p2_series, p1 - n * jnp.exp(-n))
    a = g2_zero * p1
    root = jnp.sqrt(jnp.maximum(1.0 - 2.0 * a, 0.0))
    return g2_zero * p1**2 / (p2 * ((1.0 - a) + root))


def g2_model(data=None, *, n_peaks: int = 3, smooth: bool = False):
    """numpyro model of a g2 histogram (see the module docstring).

    ``data``: ``edges_s`` (lag bin edges), ``period_s``, ``sigma_irf_s``,
    ``scale`` (typical side-peak area, counts), ``tau_loc_s`` (prior
    median of the lifetimes), ``n_abs`` and optionally ``counts``.  Peaks
    ``p = -n_peaks .. n_peaks`` are summed; ``smooth`` convolves them with the
    Gaussian IRF (chosen when ``sigma_irf_s`` exceeds a tenth of the bin
    width; narrower IRFs change the binned peaks by < 1e-3).  Priors: ``g2_zero ~
    Uniform(0, 2)``; ``log(A / scale) ~ Normal(0, 1)``; lifetimes
    ``LogNormal(log tau_loc, 1)``; background fraction of a period's counts
    ``Beta(1, 3)``; offset ``Normal(0, 0.5 ns)``.
    """
    edges = data["edges_s"]
    period = data["period_s"]
    sigma = data["sigma_irf_s"]
    g2_zero = numpyro.sample("g2_zero", dist.Uniform(0.0, 2.0))
    z = numpyro.sample("log_area_rel", dist.Normal(0.0, 1.0))
    area = numpyro.deterministic("side_peak_area", data["scale"] * jnp.exp(z))
    tau_ns = numpyro.sample(
        "tau_ns", dist.LogNormal(jnp.log(data["tau_loc_s"] * 1e9), 1.0).expand([2]).to_event(1)
    )
    tau_x = numpyro.deterministic("tau_x_s", tau_ns[0] * 1e-9)
    tau_c = numpyro.deterministic("tau_c_s", tau_ns[1] * 1e-9)
    f_bg = numpyro.sample("background_fraction", dist.Beta(1.0, 3.0))
    offset = numpyro.sample("offset_ns", dist.Normal(0.0, 0.5)) * 1e-9
    numpyro.deterministic("offset_s", offset)
    # background per second of lag: a fraction f_bg of a period's coincidences
    bg_rate = area * f_bg / (1.0 - f_bg) / period
    numpyro.deterministic("background_per_bin", bg_rate * (edges[1] - edges[0]))
    mu = bg_rate * (edges[1:] - edges[:-1])
    for p in range(-n_peaks, n_peaks + 1):
        t = edges - p * period - offset
        tau = tau_c if p == 0 else tau_x
        h = g2_zero if p == 0 else 1.0
        cdf = _laplace_cdf(t, tau, sigma, smooth)
        mu = mu + area * h * (cdf[1:] - cdf[:-1])
    mu = numpyro.deterministic("mu", jnp.maximum(mu, 1e-6))
    numpyro.deterministic("eta_bx_over_eta_x", ratio_from_g2(g2_zero, data["n_abs"]))
    numpyro.sample("obs", dist.Poisson(mu).to_event(1), obs=data.get("counts"))


def g2_inputs(
    hist: G2Histogram,
    *,
    period_s: float,
    sigma_irf_s: float = 50e-12,
    tau_prior_s: float | None = None,
    n_abs: float = 0.0,
) -> tuple[dict[str, np.ndarray], int]:
    """Data dict for :func:`g2_model` and the number of side peaks per side."""
    edges = np.asarray(hist.edges_s, np.float64)
    counts = np.asarray(hist.counts, np.float64)
    half = max(abs(edges[0]), abs(edges[-1]))
    n_side = math.floor(half / period_s + 0.5)
    if n_side < 1:
        raise ValueError(
            f"g2_inputs: the lag window (+-{half:.3g} s) must reach the first side peak "
            f"(period {period_s:.3g} s)"
        )
    n_peaks_in = 2 * n_side + 1
    scale = max(counts.sum() / n_peaks_in, 1.0)
    if tau_prior_s is None:
        tau_prior_s = period_s / 20
    data = {
        "counts": counts,
        "edges_s": edges,
        "period_s": float(period_s),
        "sigma_irf_s": max(float(sigma_irf_s), 1e-3 * hist.bin_width_s),
        "scale": float(scale),
        "tau_loc_s": float(tau_prior_s),
        "n_abs": float(n_abs),
    }
    return data, n_side + 1


def fit_g2_bayes(
    hist: G2Histogram,
    *,
    period_s: float,
    sigma_irf_s: float = 50e-12,
    tau_prior_s: float | None = None,
    n_abs: float = 0.0,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    warn: bool = True,
) -> FitResult:
    """Posterior of g2(0) (and eta_BX / eta_X) from a pulsed g2 histogram.

    Parameters
    ----------
    hist : G2Histogram
        From :func:`qdinfer.g2_histogram`, covering at least one side peak
        on each side.
    period_s : float
        Laser period.
    sigma_irf_s : float
        Standard deviation of the pair IRF (the two detectors' jitters).
    tau_prior_s : float, optional
        Prior median of the lifetimes (default: period / 20).
    n_abs : float
        Mean absorbed photons per pulse for ``eta_bx_over_eta_x`` (0: the
        weak-pumping limit, ratio = g2(0)).

    Returns
    -------
    FitResult
        Parameters ``g2_zero``, ``eta_bx_over_eta_x``, ``tau_x_s``,
        ``tau_c_s``, ``side_peak_area``, ``background_per_bin``.
    """
    data, n_peaks = g2_inputs(
        hist, period_s=period_s, sigma_irf_s=sigma_irf_s, tau_prior_s=tau_prior_s, n_abs=n_abs
    )
    # starting point: side-peak area and centre / side ratio from the counts
    c = hist.centers_s
    near = np.abs(c) < 0.5 * period_s
    side = (np.abs(c) >= 0.5 * period_s) & (np.abs(c) < (n_peaks - 0.5) * period_s)
    n_side_peaks = 2 * (n_peaks - 1)
    area = max(hist.counts[side].sum() / n_side_peaks, 1.0)
    g0 = float(np.clip(hist.counts[near].sum() / area, 0.02, 1.9))
    init = {
        "g2_zero": g0,
        "log_area_rel": math.log(area / data["scale"]),
        "tau_ns": np.full(2, data["tau_loc_s"] * 1e9),
        "background_fraction": 0.05,
        "offset_ns": 0.0,
    }
    params = ["g2_zero", "eta_bx_over_eta_x", "tau_x_s", "tau_c_s", "side_peak_area"]
    params.append("background_per_bin")
    units = {"tau_x_s": "s", "tau_c_s": "s", "side_peak_area": "counts"}
    units["background_per_bin"] = "counts"
    return run_model(
        g2_model,
        data,
        static={"n_peaks": n_peaks, "smooth": bool(sigma_irf_s > 0.1 * hist.bin_width_s)},
        init_values=init,
        params=params,
        units=units,
        settings=settings,
        seed=seed,
        observed=data["counts"],
        model_name="g2 histogram",
        info={"x_s": c, "x_label": "lag (s)", "edges_s": data["edges_s"]},
        warn=warn,
    )
