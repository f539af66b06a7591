"""Blinking states: a Bayesian hidden Markov model over binned intensity (jax forward pass).

Counts per bin ``y_t`` (width ``dt``) come from a hidden state ``s_t`` in
``1..K``: ``y_t ~ Poisson(I_{s_t} dt)``.  The states switch as a
continuous-time Markov chain with rates ``k_ij`` (i != j), so the transition
matrix between bins is ``expm(Q dt)``; the first bin starts from the
stationary distribution.  The likelihood sums over the state paths with the
forward algorithm (``lax.scan`` in log space).

Per-state decays (optional): each bin's emission is then its count *and*
the microtime histogram ``h_t`` of its photons (``M`` coarse microtime
bins over the laser period).  Given the state, the photons of a bin are
multinomial over the microtime bins with probabilities ``p_k``: the
normalised decay of state ``k``, a mono-exponential of lifetime ``tau_k``
convolved with the IRF, with the periodic tail and the half-bin-correct
binning of :mod:`qdinfer.models.decay` (its ``_component``), plus a flat
background fraction ``f_k`` of its own (as :func:`qdinfer.fit_decay` fits a
background per state-resolved decay: on real dots the flat part of a dim
state also absorbs what a mono-exponential misses), one IRF shift for all.
The emission log-likelihood of all bins and states is one matrix product
``H @ log(p).T``, and the forward algorithm still marginalises the states
exactly.

Priors: log intensities ordered (``I_1 < I_2 < ...``: no label switching),
``log(I_1 / scale) ~ Normal(0, 2)`` with ``scale`` the mean count rate,
log ratios of successive intensities ``~ LogNormal(0, 1)``; switching rates
``log(k_ij / (1/T)) ~ Normal(log 100, 3)`` (T the trace duration).  With
decays: ``log(tau_k / ns) ~ Normal(log tau_0, 2)`` independently per state
(``tau_0`` the pooled mean-arrival-time lifetime), ``f_k ~ Uniform(0, 1)``,
IRF shift ``~ Normal(s_0, 1 microtime bin)`` with ``s_0`` the shift of
the pooled maximum-likelihood fit (:func:`qdinfer.fit_decay`).

Posterior state probabilities per bin (:func:`state_probabilities`) are the
forward-backward marginals averaged over posterior draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import expm
from jax.scipy.special import gammaln, logsumexp, xlogy
from scipy import linalg

from qdio import PhotonStream

from ..decay import (
    DecayHistogram,
    Irf,
    _irf_weights,
    _n_period_ticks,
    decay_histogram,
    fit_decay,
    mean_arrival_time,
)
from ..hmm import _forward_backward, _log_emission
from ..intensity import intensity_trace, trace_bin_index
from ..selection import Selection, select
from ..states import StateTrajectory, state_labels
from ._fit import FitResult, SamplerSettings, run_model
from .decay import _component, decay_inputs

__all__ = [
    "StatesData",
    "fit_states_bayes",
    "fit_states_photons",
    "hmm_log_likelihood",
    "state_probabilities",
    "states_inputs",
    "states_model",
    "states_trajectory",
]


#: most sub-bins per microtime bin on which the state decays are computed
SUB_BINS = 8


def _sub_bins(bin_s: float, irf: Irf) -> int:
    """Sub-bins per microtime bin: enough for two per IRF FWHM, 1 to SUB_BINS."""
    fwhm = irf.fwhm_s
    if not (math.isfinite(fwhm) and fwhm > 0):
        return SUB_BINS
    return int(min(SUB_BINS, max(1, math.ceil(2.0 * bin_s / fwhm))))


def _forward(log_em, log_trans, log_init):
    """log sum over state paths of ``exp(log_em)`` (forward algorithm, ``lax.scan``).

    The forward variables are normalised at every step and the log
    normalisers summed at the end: accumulating them in the float32 carry
    loses ~0.01 per step at a log-likelihood of 1e5, noise that shrank NUTS's
    steps to maximal trees on long traces.
    """
    alpha0 = log_init + log_em[0]
    c0 = logsumexp(alpha0)

    def step(alpha, le):
        alpha = logsumexp(alpha[:, None] + log_trans, axis=0) + le
        c = logsumexp(alpha)
        return alpha - c, c

    _, cs = jax.lax.scan(step, alpha0 - c0, log_em[1:])
    return c0 + jnp.sum(cs)


def hmm_log_likelihood(counts, log_rate_per_bin, log_trans, log_init):
    """log p(counts) of a Poisson HMM by the forward algorithm (jax)."""
    lam = jnp.exp(log_rate_per_bin)
    log_em = (
        counts[:, None] * log_rate_per_bin[None, :] - lam[None, :] - gammaln(counts + 1)[:, None]
    )
    return _forward(log_em, log_trans, log_init)


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


def _micro_probs(data, tau_bins, bg_frac, shift_bins):
    """(K, M) normalised microtime distribution of each state (jax).

    :mod:`qdinfer.models.decay`'s ``_component`` (periodic exponential, IRF,
    binning) on the sub-bins, vectorised over the states, plus the flat
    background, summed into the microtime bins.
    """
    lag = data["micro_lag"] - shift_bins
    comps = jax.vmap(lambda t: _component(lag, data["micro_irf_w"], t, data["micro_period_bins"]))(
        tau_bins
    )
    # background: flat over the period (a fraction 1 / period_bins per sub-bin)
    bg = bg_frac[:, None] / data["micro_period_bins"]
    mu = (1.0 - bg_frac)[:, None] * comps + bg
    mu = jnp.maximum(mu, 1e-30).reshape(tau_bins.shape[0], data["log_micro_ref"].shape[0], -1)
    mu = mu.sum(axis=2)
    return mu / jnp.sum(mu, axis=1, keepdims=True)


def states_model(data=None, *, n_states: int = 2):
    """numpyro HMM of binned counts (see the module docstring).

    ``data``: ``counts`` (T,), ``count_offset`` (T,, a data constant
    subtracted from the log-likelihood for float32 accuracy), ``bin_s``,
    ``scale_hz`` (mean rate), ``rate_scale_hz`` (1 / duration).  With
    per-state decays also ``micro_hist`` (T, M), ``log_micro_ref`` (M,,
    subtracted like the offset), the decay geometry ``micro_lag``,
    ``micro_irf_w``, ``micro_period_bins``, ``micro_bin_s`` (see
    :func:`qdinfer.models.decay_inputs`) and the priors ``log_tau_loc``,
    ``log_tau_scale`` (log ns), ``shift_loc``, ``shift_scale`` (microtime bins).
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
    log_em = None
    if data.get("counts") is not None:
        lam = jnp.exp(log_i) * dt
        y = data["counts"][:, None]
        off = data.get("count_offset")
        off = gammaln(data["counts"] + 1.0) if off is None else off
        log_em = xlogy(y, lam[None, :]) - lam[None, :] - off[:, None]
    if "micro_hist" in data:
        bin_ns = data["micro_bin_s"] * 1e9
        log_tau = numpyro.sample(
            "log_tau_ns",
            dist.Normal(data["log_tau_loc"], data["log_tau_scale"]).expand([k]).to_event(1),
        )
        tau_ns = jnp.exp(log_tau)
        f_bg = numpyro.sample("bg_frac", dist.Uniform(0.0, 1.0).expand([k]).to_event(1))
        shift = numpyro.sample("shift_bins", dist.Normal(data["shift_loc"], data["shift_scale"]))
        for j in range(k):
            numpyro.deterministic(f"tau_{j + 1}_s", tau_ns[j] * 1e-9)
            numpyro.deterministic(f"background_fraction_{j + 1}", f_bg[j])
        numpyro.deterministic("shift_s", shift * data["micro_bin_s"])
        p = _micro_probs(data, tau_ns / bin_ns, f_bg, shift)
        p = numpyro.deterministic("micro_prob", p)
        if log_em is not None:
            log_em = log_em + data["micro_hist"] @ (jnp.log(p) - data["log_micro_ref"]).T
    if log_em is not None:
        numpyro.factor("obs", _forward(log_em, log_trans, jnp.log(pi)))


@dataclass(frozen=True, eq=False)
class StatesData:
    """Binned counts with the microtime histogram of every bin (:func:`states_inputs`).

    Attributes
    ----------
    counts : ndarray of int64, shape (T,)
        Photons per trace bin (all of the selection's photons).
    edges_s : ndarray of float64, shape (T + 1,)
        Trace bin edges, seconds from the acquisition start.
    micro_hist : ndarray of int64, shape (T, M)
        Photons of each trace bin per microtime bin (the bins of ``decay``;
        photons beyond the last whole microtime bin of the period are left
        out here, not in ``counts``).
    decay : DecayHistogram
        The pooled decay; its first ``M`` bins define the microtime bins.
    irf : Irf
    """

    counts: np.ndarray
    edges_s: np.ndarray
    micro_hist: np.ndarray
    decay: DecayHistogram
    irf: Irf

    @property
    def bin_width_s(self) -> float:
        """Trace bin width, seconds."""
        return float(self.edges_s[1] - self.edges_s[0])


def states_inputs(
    stream: PhotonStream,
    bin_width_s: float,
    *,
    n_micro_bins: int = 64,
    irf: Irf | DecayHistogram | str | None = None,
    selection: Selection | None = None,
) -> StatesData:
    """Trace bins and per-bin microtime histograms of a T3 stream.

    Parameters
    ----------
    stream : PhotonStream
        T3 photons.
    bin_width_s : float
        Trace bin (as :func:`qdinfer.intensity_trace`: bins from the
        acquisition start).
    n_micro_bins : int
        Microtime bins over the laser period, at most (the bin width is a
        whole number of TCSPC bins, so there may be fewer).
    irf : Irf, DecayHistogram, path or None
        As for :func:`qdinfer.fit_decay` (None: a Gaussian from the rising
        edge of the pooled decay).
    selection : Selection, optional
        Photons to use (e.g. ``qdinfer.channels(1)``).

    Returns
    -------
    StatesData
    """
    if not stream.is_t3:
        raise ValueError("states_inputs: per-state decays need a T3 stream (with microtimes)")
    if not isinstance(n_micro_bins, (int, np.integer)) or not 4 <= n_micro_bins <= 4096:
        raise ValueError(f"n_micro_bins={n_micro_bins!r} must be an int in 4..4096")
    trace = intensity_trace(stream, bin_width_s=bin_width_s, selection=selection)
    n_t = len(trace)
    if n_t < 10:
        raise ValueError(
            f"states_inputs: {n_t} trace bins of bin_width_s={bin_width_s!r} s; need >= 10"
        )
    tick = stream.microtime_resolution_s
    width = math.ceil(_n_period_ticks(stream) / n_micro_bins)
    decay = decay_histogram(stream, selection=selection, bin_width_s=width * tick)
    m = decay.n_full_bins
    sel = select(stream, selection)
    t_idx = trace_bin_index(sel.macrotime, stream.macrotime_resolution_s, bin_width_s)
    m_idx = sel.microtime.astype(np.int64) // width
    keep = (t_idx < n_t) & (m_idx < m)
    hist = np.bincount(t_idx[keep] * m + m_idx[keep], minlength=n_t * m).reshape(n_t, m)
    if not isinstance(irf, Irf):
        irf = _irf_weights(irf, decay, m)[1]
    return StatesData(trace.counts, trace.edges_s, hist.astype(np.int64), decay, irf)


def _decay_data(micro_hist, decay, irf, n_states, counts, bin_width_s, init_i_hz):
    """Data entries and initial values of the per-state decay part."""
    m = decay.n_full_bins
    if micro_hist.ndim != 2 or micro_hist.shape != (len(counts), m):
        raise ValueError(
            f"micro_hist must have shape (len(counts), decay.n_full_bins) = ({len(counts)}, "
            f"{m}), got {micro_hist.shape}"
        )
    if np.any(micro_hist < 0) or np.any(micro_hist.sum(axis=1) > counts):
        raise ValueError("micro_hist must be >= 0 with row sums <= counts (photons per bin)")
    total = micro_hist.sum(axis=0)
    if total.sum() < 100:
        raise ValueError(f"per-state decays need >= 100 photons with microtimes, got {total.sum()}")
    pooled = DecayHistogram(total, decay.edges_s[: m + 1], decay.period_s, decay.channels)
    irf_obj = _irf_weights(irf, pooled, m)[1]
    w_s = pooled.bin_width_s
    # the pooled maximum-likelihood fit centres the IRF-shift prior and starts the
    # background (its overflow warnings on odd starting points do not matter here)
    shift_s, bg_per_bin = 0.0, 0.0
    with np.errstate(all="ignore"):
        for n_exp in (2, 1):
            try:
                mle = fit_decay(pooled, n_exp=n_exp, irf=irf_obj)
            except (ValueError, np.linalg.LinAlgError):
                continue
            shift_s, bg_per_bin = mle.shift_s, mle.background_per_bin
            break
    try:
        tau0_ns = mean_arrival_time(pooled, irf=irf_obj).tau_s * 1e9
    except ValueError:
        tau0_ns = 10.0
    tau0_ns = float(np.clip(tau0_ns if math.isfinite(tau0_ns) else 10.0, 0.05, 1e5))
    # the state decays are computed on sub-bins of each microtime bin and summed:
    # decay.py's model spreads an IRF photon uniformly over its bin, which biases
    # lifetimes when the IRF is narrower than a bin (1.6 % at 0.8 ns bins, 50 ps IRF)
    sub = _sub_bins(w_s, irf_obj)
    fine_w = w_s / sub
    fine = DecayHistogram(
        np.repeat(total, sub),
        pooled.edges_s[0] + fine_w * np.arange(m * sub + 1),
        pooled.period_s,
    )
    geo, _ = decay_inputs(fine, irf_obj, tau_prior_ns=(tau0_ns, 2.0), shift_prior_s=(shift_s, w_s))
    ref = (total + 0.5) / (total.sum() + 0.5 * m)
    data = {
        "micro_hist": micro_hist.astype(np.float64),
        "log_micro_ref": np.log(ref),
        "micro_lag": geo["lag"],
        "micro_irf_w": geo["irf_w"],
        "micro_period_bins": geo["period_bins"],
        "micro_bin_s": fine_w,
        "log_tau_loc": geo["log_tau_loc"],
        "log_tau_scale": geo["log_tau_scale"],
        "shift_loc": geo["shift_loc"],
        "shift_scale": geo["shift_scale"],
    }
    # start: each bin in the state of the nearest initial intensity, the
    # mean-arrival-time lifetime of each group
    tau0 = tau0_ns
    group = np.argmin(np.abs(counts[:, None] - init_i_hz[None, :] * bin_width_s), axis=1)
    taus = np.full(n_states, tau0)
    for k in range(n_states):
        h = micro_hist[group == k].sum(axis=0)
        try:
            tau = mean_arrival_time(
                DecayHistogram(h, pooled.edges_s, pooled.period_s), irf=irf_obj
            ).tau_s
        except ValueError:
            continue
        if math.isfinite(tau) and tau > 0:
            taus[k] = tau * 1e9
    duration = len(counts) * bin_width_s
    f0 = bg_per_bin * m / duration / init_i_hz
    init = {
        "log_tau_ns": np.log(np.clip(taus, 0.02, 1e5)),
        "bg_frac": np.clip(f0, 0.02, 0.9),
        "shift_bins": shift_s / fine_w,
    }
    info = {
        "micro_hist": micro_hist,
        "micro_edges_s": pooled.edges_s,
        "decay": pooled,
        "irf": irf_obj,
    }
    return data, init, info


def fit_states_bayes(
    counts: np.ndarray,
    bin_width_s: float,
    *,
    n_states: int = 2,
    micro_hist: np.ndarray | None = None,
    decay: DecayHistogram | None = None,
    irf: Irf | DecayHistogram | str | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    warn: bool = True,
) -> FitResult:
    """Posterior of state intensities, switching rates, occupancies and (optionally) lifetimes.

    Parameters
    ----------
    counts : ndarray of int, shape (T,)
        Photons per bin (e.g. ``qdinfer.intensity_trace(...).counts``).
    bin_width_s : float
    n_states : int
        2 to 4.
    micro_hist : ndarray of int, shape (T, M), optional
        Photons of each bin per microtime bin: adds per-state decays
        (:func:`states_inputs` builds it; :func:`fit_states_photons` does both).
    decay : DecayHistogram
        With ``micro_hist``: its first ``M`` bins (``n_full_bins``) are the
        microtime bins.
    irf : Irf, DecayHistogram, path or None
        With ``micro_hist``: as for :func:`qdinfer.fit_decay` (None: a
        Gaussian from the rising edge of the pooled decay).

    Returns
    -------
    FitResult
        Parameters ``intensity_k_hz`` (ascending), ``rate_ij_hz`` (state i
        to state j), ``occupancy_k``; with ``micro_hist`` also ``tau_k_s``
        (lifetime of state k), ``background_fraction_k`` (flat part of its
        photons) and ``shift_s`` (IRF shift), and the site ``micro_prob``
        (K, M) of the state decay shapes.
        ``info["state_probability"]`` (T, K): posterior state probabilities
        per bin (:func:`state_probabilities`); ``info["edges_s"]``: bin edges
        from 0.
    """
    y = np.asarray(counts, np.float64)
    if y.ndim != 1 or len(y) < 10:
        raise ValueError(f"counts must be 1-D with >= 10 bins, got shape {y.shape}")
    bad = ~(np.isfinite(y) & (y >= 0) & (y == np.round(y)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"counts[{i}] = {float(y[i])!r}: photon counts must be whole numbers >= 0")
    if not 2 <= n_states <= 4:
        raise ValueError(f"n_states={n_states!r} must be 2, 3 or 4")
    if not (math.isfinite(bin_width_s) and bin_width_s > 0):
        raise ValueError(f"bin_width_s={bin_width_s!r} must be a finite number > 0")
    dur = len(y) * bin_width_s
    scale = max(y.mean() / bin_width_s, 1e-3)
    offset = np.where(y > 0, y * np.log(np.maximum(y, 1.0)), 0.0) - y
    data = {
        "counts": y,
        "count_offset": offset,
        "bin_s": bin_width_s,
        "scale_hz": scale,
        "rate_scale_hz": 1.0 / dur,
    }
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
    info = {
        "bin_width_s": bin_width_s,
        "n_states": n_states,
        "counts": np.asarray(counts),
        "edges_s": np.arange(len(y) + 1) * bin_width_s,
    }
    name = f"HMM states ({n_states})"
    if micro_hist is not None:
        if decay is None:
            raise ValueError("micro_hist needs decay= (the DecayHistogram defining its bins)")
        d_data, d_init, d_info = _decay_data(
            np.asarray(micro_hist), decay, irf, n_states, y, bin_width_s, qs
        )
        data.update(d_data)
        init.update(d_init)
        info.update(d_info)
        params += [f"tau_{j + 1}_s" for j in range(n_states)]
        params += [f"background_fraction_{j + 1}" for j in range(n_states)] + ["shift_s"]
        name = f"HMM states ({n_states}) with decays"
    units = {p: "1/s" for p in params if p.endswith("_hz")}
    units.update({p: "s" for p in params if p.endswith("_s")})
    res = run_model(
        states_model,
        data,
        static={"n_states": n_states},
        init_values=init,
        params=params,
        units=units,
        settings=settings,
        seed=seed,
        model_name=name,
        info=info,
        warn=warn,
    )
    res.info["state_probability"] = state_probabilities(res)
    return res


def fit_states_photons(
    stream: PhotonStream,
    bin_width_s: float,
    *,
    n_states: int = 2,
    irf: Irf | DecayHistogram | str | None = None,
    n_micro_bins: int = 64,
    selection: Selection | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    warn: bool = True,
) -> FitResult:
    """Blinking states with per-state lifetimes from a T3 stream.

    :func:`states_inputs` (trace bins of ``bin_width_s``, ``n_micro_bins``
    microtime bins, the IRF) then :func:`fit_states_bayes`.  T2 streams (no
    microtimes) get the count-only model.

    Returns
    -------
    FitResult
        As :func:`fit_states_bayes` with ``micro_hist``: ``tau_k_s``,
        ``intensity_k_hz``, ``rate_ij_hz``, ``occupancy_k``,
        ``background_fraction_k``, ``shift_s``.
    """
    if not stream.is_t3:
        trace = intensity_trace(stream, bin_width_s=bin_width_s, selection=selection)
        return fit_states_bayes(
            trace.counts, bin_width_s, n_states=n_states, settings=settings, seed=seed, warn=warn
        )
    d = states_inputs(stream, bin_width_s, n_micro_bins=n_micro_bins, irf=irf, selection=selection)
    return fit_states_bayes(
        d.counts,
        bin_width_s,
        n_states=n_states,
        micro_hist=d.micro_hist,
        decay=d.decay,
        irf=d.irf,
        settings=settings,
        seed=seed,
        warn=warn,
    )


def _rate_matrix(result: FitResult, k: int) -> np.ndarray:
    """Generator matrices ``Q`` of every draw, shape (n, K, K)."""
    n = len(result.draws("intensity_1_hz"))
    q = np.zeros((n, k, k))
    for i in range(k):
        for j in range(k):
            if i != j:
                q[:, i, j] = result.draws(f"rate_{i + 1}{j + 1}_hz")
    q[:, np.arange(k), np.arange(k)] = -q.sum(axis=2)
    return q


def state_probabilities(result: FitResult, *, n_draws: int = 200, seed: int = 0) -> np.ndarray:
    """Posterior probability of each state in each bin, shape (T, K).

    The forward-backward marginals ``p(s_t = k | data, theta)`` (numba,
    float64) averaged over ``n_draws`` posterior draws of ``theta`` (all
    draws when there are fewer): ``p(s_t = k | data)``.
    """
    info = result.info
    k = int(info["n_states"])
    counts = np.asarray(info["counts"], np.float64)
    dt = float(info["bin_width_s"])
    hist = info.get("micro_hist")
    inten = np.stack([result.draws(f"intensity_{j + 1}_hz") for j in range(k)], axis=1)
    occ = np.stack([result.draws(f"occupancy_{j + 1}") for j in range(k)], axis=1)
    q = _rate_matrix(result, k)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(inten), size=min(n_draws, len(inten)), replace=False)
    micro = result.draws("micro_prob") if hist is not None else None
    hist_f = None if hist is None else np.asarray(hist, np.float64)
    total = np.zeros((len(counts), k))
    for i in idx:
        le = _log_emission(counts, inten[i] * dt)
        if micro is not None:
            le = le + hist_f @ np.log(np.maximum(micro[i], 1e-300)).T
        log_a = np.log(np.maximum(linalg.expm(q[i] * dt), 1e-300))
        log_pi = np.log(np.maximum(occ[i] / occ[i].sum(), 1e-300))
        total += _forward_backward(np.ascontiguousarray(le), log_pi, log_a)[1]
    return total / len(idx)


def states_trajectory(
    result: FitResult, *, photon_times_s: np.ndarray | None = None
) -> StateTrajectory:
    """The most probable state of each bin as a :class:`qdinfer.StateTrajectory`.

    Bins take the state of largest posterior probability
    (``info["state_probability"]``); ``photon_times_s`` (macrotime clock,
    sorted) fills the photon counts.  Level intensities are the posterior
    means.  Use it with :func:`qdinfer.state_resolved` for model-free
    per-state decays on the same classification.
    """
    prob = result.info["state_probability"]
    k = prob.shape[1]
    edges = np.asarray(result.info["edges_s"])
    level = [result.mean(f"intensity_{j + 1}_hz") for j in range(k)]
    return StateTrajectory.build(
        edges[:-1],
        edges[1:],
        np.argmax(prob, axis=1),
        state_labels(k),
        photon_times_s=photon_times_s,
        level_intensity_hz=level,
        method="bayes hmm",
    )
