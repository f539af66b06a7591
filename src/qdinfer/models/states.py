"""Blinking states: a Bayesian hidden Markov model over binned intensity (jax forward pass).

Counts per bin ``y_t`` (width ``dt``) come from a hidden state ``s_t`` in
``1..K``: ``y_t ~ Poisson(I_{s_t} dt)``.  The states switch as a
continuous-time Markov chain with rates ``k_ij`` (i != j), so the transition
matrix between bins is ``expm(Q dt)``; the first bin starts from the
stationary distribution.  The likelihood sums over the state paths with the
forward algorithm (``lax.scan`` in log space).

Priors: log intensities ordered (``I_1 < I_2 < ...``: no label switching),
``log(I_1 / scale) ~ Normal(0, 2)`` with ``scale`` the mean count rate,
log ratios of successive intensities ``~ LogNormal(0, 1)``; switching rates
``log(k_ij / (1/T)) ~ Normal(log 100, 3)`` (T the trace duration).
Per-state decays (state lifetimes) are not part of this model.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import expm
from jax.scipy.special import gammaln, logsumexp

from ._fit import FitResult, SamplerSettings, run_model

__all__ = ["fit_states_bayes", "hmm_log_likelihood", "states_model"]


def hmm_log_likelihood(counts, log_rate_per_bin, log_trans, log_init):
    """log p(counts) of a Poisson HMM by the forward algorithm (jax)."""
    lam = jnp.exp(log_rate_per_bin)
    log_em = (
        counts[:, None] * log_rate_per_bin[None, :] - lam[None, :] - gammaln(counts + 1)[:, None]
    )
    alpha0 = log_init + log_em[0]

    def step(alpha, le):
        alpha = logsumexp(alpha[:, None] + log_trans, axis=0) + le
        return alpha, None

    alpha, _ = jax.lax.scan(step, alpha0, log_em[1:])
    return logsumexp(alpha)


def _generator(rates, k):
    q = jnp.zeros((k, k))
    idx = 0
    for i in range(k):
        for j in range(k):
            if i != j:
                q = q.at[i, j].set(rates[idx])
                idx += 1
    return q - jnp.diag(jnp.sum(q, axis=1))


def _stationary(q, k):
    # solve pi Q = 0 with sum(pi) = 1
    a = jnp.concatenate([q.T, jnp.ones((1, k))], axis=0)
    b = jnp.concatenate([jnp.zeros(k), jnp.ones(1)])
    pi = jnp.linalg.lstsq(a, b)[0]
    pi = jnp.clip(pi, 1e-12, 1.0)
    return pi / pi.sum()


def states_model(data=None, *, n_states: int = 2):
    """numpyro HMM of binned counts (see the module docstring).

    ``data``: ``counts`` (T,), ``bin_s``, ``scale_hz`` (mean rate),
    ``rate_scale_hz`` (1 / duration).
    """
    k = n_states
    dt = data["bin_s"]
    log_i1 = numpyro.sample("log_i1_rel", dist.Normal(0.0, 2.0))
    logs = [log_i1]
    for j in range(1, k):
        logs.append(logs[-1] + numpyro.sample(f"log_ratio_{j + 1}", dist.LogNormal(0.0, 1.0)))
    log_i = jnp.stack(logs) + jnp.log(data["scale_hz"])
    for j in range(k):
        numpyro.deterministic(f"intensity_{j + 1}_hz", jnp.exp(log_i[j]))
    n_rates = k * (k - 1)
    log_k = numpyro.sample(
        "log_rates_rel", dist.Normal(math.log(100.0), 3.0).expand([n_rates]).to_event(1)
    )
    rates = jnp.exp(log_k) * data["rate_scale_hz"]
    idx = 0
    for i in range(k):
        for j in range(k):
            if i != j:
                numpyro.deterministic(f"rate_{i + 1}{j + 1}_hz", rates[idx])
                idx += 1
    q = _generator(rates, k)
    trans = expm(q * dt)
    log_trans = jnp.log(jnp.clip(trans, 1e-30, 1.0))
    pi = _stationary(q, k)
    for j in range(k):
        numpyro.deterministic(f"occupancy_{j + 1}", pi[j])
    if data.get("counts") is not None:
        ll = hmm_log_likelihood(data["counts"], log_i + jnp.log(dt), log_trans, jnp.log(pi))
        numpyro.factor("obs", ll)


def fit_states_bayes(
    counts: np.ndarray,
    bin_width_s: float,
    *,
    n_states: int = 2,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    warn: bool = True,
) -> FitResult:
    """Posterior of state intensities, switching rates and occupancies.

    Parameters
    ----------
    counts : ndarray of int, shape (T,)
        Photons per bin (e.g. ``qdinfer.intensity_trace(...).counts``).
    bin_width_s : float
    n_states : int
        2 to 4.

    Returns
    -------
    FitResult
        Parameters ``intensity_k_hz`` (ascending), ``rate_ij_hz`` (state i
        to state j), ``occupancy_k``.
    """
    y = np.asarray(counts, np.float64)
    if y.ndim != 1 or len(y) < 10:
        raise ValueError(f"counts must be 1-D with >= 10 bins, got shape {y.shape}")
    if not 2 <= n_states <= 4:
        raise ValueError(f"n_states={n_states!r} must be 2, 3 or 4")
    dur = len(y) * bin_width_s
    scale = max(y.mean() / bin_width_s, 1e-3)
    data = {"counts": y, "bin_s": bin_width_s, "scale_hz": scale, "rate_scale_hz": 1.0 / dur}
    # start: intensities at quantiles of the counts, switching every ~10 bins
    qs = np.quantile(y, np.linspace(0.1, 0.9, n_states)) / bin_width_s
    qs = np.maximum.accumulate(np.maximum(qs, 0.05 * scale))
    qs = qs * np.geomspace(1.0, 1.01, n_states)
    init = {"log_i1_rel": math.log(qs[0] / scale)}
    for j in range(1, n_states):
        init[f"log_ratio_{j + 1}"] = max(math.log(qs[j] / qs[j - 1]), 0.05)
    rate0 = 0.1 / bin_width_s
    init["log_rates_rel"] = np.full(n_states * (n_states - 1), math.log(rate0 * dur))
    params = [f"intensity_{j + 1}_hz" for j in range(n_states)]
    params += [
        f"rate_{i + 1}{j + 1}_hz" for i in range(n_states) for j in range(n_states) if i != j
    ]
    params += [f"occupancy_{j + 1}" for j in range(n_states)]
    units = {p: "1/s" for p in params if p.endswith("_hz")}
    return run_model(
        states_model,
        data,
        static={"n_states": n_states},
        init_values=init,
        params=params,
        units=units,
        settings=settings,
        seed=seed,
        model_name=f"HMM states ({n_states})",
        info={"bin_width_s": bin_width_s},
        warn=warn,
    )
