"""Fitting machinery shared by the numpyro models: NUTS or SVI, compiled once.

:func:`run_model` runs a model (a plain numpyro function ``model(data=None,
**static)``) on a dict of data arrays and returns a :class:`FitResult`.  The
whole fit (kernel set-up, warm-up and sampling) is one ``jax.jit``-compiled
function, cached per model, static configuration, sampler settings and
data shapes: numpyro's ``MCMC.run`` recompiles on every call, the cached
function does not (../shared/PITFALLS.md).  Chains are vectorised
(``chain_method="vectorized"``) inside the compiled function; a new ``MCMC``
object is built at trace time, so numpyro issue 1640 does not arise.

:class:`FitResult` carries the arviz 1.x ``DataTree`` (``.posterior``), the
draws as NumPy arrays, diagnostics (r_hat, ESS, divergences; a
:class:`FitDiagnosticsWarning` when they are bad), credible intervals and a
summary table in physical units.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_median, init_to_value
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.util import unconstrain_fn

__all__ = [
    "FitDiagnosticsWarning",
    "FitResult",
    "SamplerSettings",
    "clear_cache",
    "run_model",
    "run_model_batch",
    "warn_if_bad",
]

R_HAT_MAX = 1.01
ESS_MIN = 100.0


class FitDiagnosticsWarning(UserWarning):
    """The sampler's diagnostics are bad (r_hat > 1.01, divergences, low ESS)."""


@dataclass(frozen=True)
class SamplerSettings:
    """How to fit: ``method`` "nuts" (default) or "svi", and its settings.

    Attributes
    ----------
    method : {"nuts", "svi"}
    num_warmup, num_samples, num_chains : int
        NUTS warm-up and kept draws per chain, and chains (vectorised).
    target_accept_prob : float
    max_tree_depth : int
    dense_mass : bool
        Adapt a dense mass matrix (default; the models have few parameters
        and correlated ones, such as lifetimes and fractions).
    chain_method : {"map", "vectorized", "sequential"}
        How the chains run inside the compiled fit: "map" (default) compiles
        one chain and runs the chains one after another with ``lax.map``;
        "vectorized" steps them together (each waits for the longest tree);
        "sequential" compiles a copy per chain.
    init_jitter : float
        Standard deviation of the per-chain perturbation of the initial
        point in unconstrained space (so that chains start apart).
    svi_steps : int
        Adam steps of the SVI fit (AutoNormal guide).
    svi_learning_rate : float
    """

    method: str = "nuts"
    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    target_accept_prob: float = 0.85
    max_tree_depth: int = 8
    dense_mass: bool = True
    chain_method: str = "map"
    init_jitter: float = 0.05
    svi_steps: int = 3000
    svi_learning_rate: float = 0.01

    def __post_init__(self) -> None:
        if self.chain_method not in ("map", "vectorized", "sequential"):
            raise ValueError(
                f"chain_method={self.chain_method!r}: 'map', 'vectorized' or 'sequential'"
            )
        if self.method not in ("nuts", "svi"):
            raise ValueError(f"method={self.method!r} must be 'nuts' or 'svi'")
        for name in ("num_warmup", "num_samples", "num_chains", "svi_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1")


_CACHE: dict[Any, Callable] = {}


def clear_cache() -> None:
    """Forget the compiled fits (they are kept per model, settings and shapes)."""
    _CACHE.clear()


def _shape_key(tree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return (treedef, tuple((np.shape(x), np.asarray(x).dtype.str) for x in leaves))


def _nuts_runner(model: Callable, settings: SamplerSettings) -> Callable:
    s = settings

    def run(key, data, init_values):
        k_init, k_run = jax.random.split(key)
        # initial points: the given values, jittered per chain in unconstrained space
        base = unconstrain_fn(model, (), {"data": data}, init_values)
        keys = jax.random.split(k_init, len(base))
        init = {
            name: v[None] + s.init_jitter * jax.random.normal(k, (s.num_chains, *jnp.shape(v)))
            for (name, v), k in zip(sorted(base.items()), keys, strict=True)
        }
        kernel = NUTS(
            model,
            init_strategy=init_to_median(num_samples=15),
            target_accept_prob=s.target_accept_prob,
            max_tree_depth=s.max_tree_depth,
            dense_mass=s.dense_mass,
        )
        fields = ("diverging", "num_steps")
        if s.chain_method == "map":
            # one chain's sampler, compiled once, run chain after chain (lax.map):
            # no chain waits for another's longer trees, and no second copy to compile

            def one(args):
                k, init_one = args
                mcmc = MCMC(
                    kernel,
                    num_warmup=s.num_warmup,
                    num_samples=s.num_samples,
                    num_chains=1,
                    progress_bar=False,
                )
                mcmc.run(k, data=data, init_params=init_one, extra_fields=fields)
                extra = mcmc.get_extra_fields()
                return mcmc.get_samples(), extra["diverging"], extra["num_steps"]

            keys = jax.random.split(k_run, s.num_chains)
            return jax.lax.map(one, (keys, init))
        mcmc = MCMC(
            kernel,
            num_warmup=s.num_warmup,
            num_samples=s.num_samples,
            num_chains=s.num_chains,
            chain_method=s.chain_method,
            progress_bar=False,
        )
        mcmc.run(k_run, data=data, init_params=init, extra_fields=fields)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        return mcmc.get_samples(group_by_chain=True), extra["diverging"], extra["num_steps"]

    return run


def _svi_runner(model: Callable, settings: SamplerSettings) -> Callable:
    s = settings

    def run(key, data, init_values):
        k_fit, k_draw = jax.random.split(key)
        guide = AutoNormal(model, init_loc_fn=init_to_value(values=init_values), init_scale=0.01)
        svi = SVI(model, guide, numpyro.optim.Adam(s.svi_learning_rate), Trace_ELBO())
        res = svi.run(k_fit, s.svi_steps, data=data, progress_bar=False)
        # latent draws from the guide, then the model's deterministic sites for each of them
        # (Predictive with guide= returns only deterministic and observed sites)
        k_latent, k_det = jax.random.split(k_draw)
        latent = guide.sample_posterior(k_latent, res.params, sample_shape=(s.num_samples,))
        det = numpyro.infer.Predictive(model, posterior_samples=latent)(k_det, data=data)
        draws = {k: v[None] for k, v in {**det, **latent}.items() if not k.endswith("obs")}
        return draws, jnp.zeros((1, s.num_samples), bool), res.losses

    return run


def _compiled(
    model, static: Mapping[str, Any], settings, data, init_values, *, batched: bool = False
) -> Callable:
    key = (
        model,
        tuple(sorted(static.items())),
        settings,
        _shape_key(data),
        _shape_key(init_values),
        batched,
    )
    fn = _CACHE.get(key)
    if fn is None:

        def bound(data=None):
            return model(data=data, **static)

        # the model must be the same object for every call of the cached function
        runner = (_nuts_runner if settings.method == "nuts" else _svi_runner)(bound, settings)
        # batched: one compiled function fits a stack of datasets (vmap over the first axis
        # of the key, the data and the initial values): on an accelerator they run together
        fn = jax.jit(jax.vmap(runner) if batched else runner)
        _CACHE[key] = fn
    return fn


@dataclass(eq=False)
class FitResult:
    """Posterior of a fitted model.

    Attributes
    ----------
    posterior : xarray.DataTree
        arviz 1.x data tree: groups ``posterior`` (every sampled and
        deterministic site), ``sample_stats`` (``diverging``) and
        ``observed_data``.
    samples : dict of ndarray
        The same draws, shape ``(chain, draw, ...)``.
    params : tuple of str
        The physical parameters (SI units) summarised and checked.
    units : dict of str
        Unit of each parameter ("s", "m^2", "" ...).
    diagnostics : dict
        ``r_hat`` (max over ``params``), ``ess_bulk`` (min), ``divergences``,
        ``r_hat_by_param``, ``ess_by_param``, ``method``, ``wall_s``.
    observed : ndarray or None
        The data the likelihood saw (for posterior predictive checks).
    model_name : str
    info : dict
        Model-specific extras (e.g. the decay's bin edges, the mask).
    """

    posterior: Any
    samples: dict[str, np.ndarray]
    params: tuple[str, ...]
    units: dict[str, str]
    diagnostics: dict[str, Any]
    observed: np.ndarray | None = None
    model_name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def draws(self, name: str) -> np.ndarray:
        """All draws of a site, chains pooled: shape ``(chain * draw, ...)``."""
        if name not in self.samples:
            raise KeyError(f"{name!r} is not a site of this fit; sites: {sorted(self.samples)}")
        v = self.samples[name]
        return v.reshape(-1, *v.shape[2:])

    def mean(self, name: str) -> float:
        """Posterior mean of a scalar site."""
        return float(np.mean(self.draws(name)))

    def sd(self, name: str) -> float:
        """Posterior standard deviation of a scalar site."""
        return float(np.std(self.draws(name), ddof=1))

    def interval(self, name: str, prob: float = 0.9) -> tuple[float, float]:
        """Equal-tailed credible interval of a scalar site, e.g. ``("tau_1_s", 0.9)``."""
        if not 0 < prob < 1:
            raise ValueError(f"prob={prob!r} must be in (0, 1)")
        d = self.draws(name)
        if d.ndim != 1:
            raise ValueError(f"{name!r} is not scalar (draws of shape {d.shape[1:]})")
        lo, hi = np.quantile(d, [(1 - prob) / 2, (1 + prob) / 2])
        return float(lo), float(hi)

    def summary(self, prob: float = 0.9, var_names: Sequence[str] | None = None):
        """arviz summary table (pandas) of the physical parameters, SI units.

        Columns: mean, sd, ``eti{prob}`` bounds, ess_bulk, ess_tail, r_hat,
        mcse; plus a ``unit`` column.
        """
        names = list(var_names or self.params)
        table = az.summary(
            self.posterior, var_names=names, ci_kind="eti", ci_prob=prob, round_to="none"
        )
        table["unit"] = [self.units.get(str(i).split("[")[0], "") for i in table.index]
        return table

    def to_dict(self, prob: float = 0.9) -> dict[str, Any]:
        """JSON-friendly summary: per parameter mean, sd and interval; diagnostics."""
        out: dict[str, Any] = {"model": self.model_name, "params": {}}
        for p in self.params:
            lo, hi = self.interval(p, prob)
            out["params"][p] = {
                "mean": self.mean(p),
                "sd": self.sd(p),
                "interval": [lo, hi],
                "prob": prob,
                "unit": self.units.get(p, ""),
            }
        diag = {
            k: v
            for k, v in self.diagnostics.items()
            if isinstance(v, (int, float, str, bool)) or v is None
        }
        out["diagnostics"] = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in diag.items()
        }
        return out


def _diagnostics(dt, params, diverging, method) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "divergences": int(np.sum(diverging))}
    if method != "nuts":
        out.update(r_hat=float("nan"), ess_bulk=float("nan"), r_hat_by_param={}, ess_by_param={})
        return out
    with warnings.catch_warnings():
        # stuck chains give 0/0 in arviz-stats: r_hat is NaN then, which _check reports
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero encountered", RuntimeWarning)
        rh = az.rhat(dt, var_names=list(params))
        ess = az.ess(dt, var_names=list(params), method="bulk")
    r_by = {p: float(np.max(np.asarray(rh[p]))) for p in params}
    e_by = {p: float(np.min(np.asarray(ess[p]))) for p in params}
    out["r_hat_by_param"] = r_by
    out["ess_by_param"] = e_by
    out["r_hat"] = max(r_by.values()) if r_by else float("nan")
    out["ess_bulk"] = min(e_by.values()) if e_by else float("nan")
    return out


def _check(diag: dict[str, Any], model_name: str) -> list[str]:
    problems = []
    if diag["method"] != "nuts":
        return problems
    if not diag["r_hat"] <= R_HAT_MAX:
        worst = max(diag["r_hat_by_param"], key=diag["r_hat_by_param"].get)
        problems.append(f"r_hat {diag['r_hat']:.3f} > {R_HAT_MAX} ({worst})")
    if diag["divergences"] > 0:
        problems.append(f"{diag['divergences']} divergent transitions")
    if not diag["ess_bulk"] >= ESS_MIN:
        problems.append(f"bulk ESS {diag['ess_bulk']:.0f} < {ESS_MIN:.0f}")
    return problems


def warn_if_bad(
    diag: Mapping[str, Any], model_name: str = "", *, warn: bool = True, stacklevel: int = 2
) -> list[str]:
    """The problems in ``diag`` (r_hat > 1.01, divergences, bulk ESS < 100), warned about.

    Returns the list of problems (empty when the diagnostics are good) and
    emits one :class:`FitDiagnosticsWarning` naming them when ``warn``.
    """
    problems = _check(diag, model_name)
    if problems and warn:
        warnings.warn(
            f"{model_name or 'fit'}: " + "; ".join(problems) + " (more warm-up or samples, "
            "or a simpler model, may help)",
            FitDiagnosticsWarning,
            stacklevel=stacklevel,
        )
    return problems


def run_model(
    model: Callable,
    data: Mapping[str, Any],
    *,
    static: Mapping[str, Any] | None = None,
    init_values: Mapping[str, Any],
    params: Sequence[str],
    units: Mapping[str, str] | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    observed: np.ndarray | None = None,
    model_name: str = "",
    info: Mapping[str, Any] | None = None,
    warn: bool = True,
) -> FitResult:
    """Fit ``model(data=data, **static)`` and wrap the draws as a :class:`FitResult`.

    Parameters
    ----------
    model : callable
        numpyro model taking ``data`` (dict of arrays) and static keywords.
    data : dict of array
        Data and numeric hyperparameters (traced: new values reuse the
        compiled fit as long as the shapes are the same).
    static : dict, optional
        Hashable configuration (numbers of components, flags): part of the
        cache key.
    init_values : dict
        Starting values of the latent sites, in their constrained space.
    params : sequence of str
        Scalar physical sites to diagnose and summarise.
    settings : SamplerSettings, optional
    seed : int
        Seed of the sampler's PRNG key.
    warn : bool
        Emit :class:`FitDiagnosticsWarning` when r_hat > 1.01, any
        divergence or bulk ESS < 100.
    """
    settings = settings or SamplerSettings()
    static = dict(static or {})
    data_j = {k: jnp.asarray(v, jnp.float32) for k, v in data.items()}
    init_j = {k: jnp.asarray(v, jnp.float32) for k, v in init_values.items()}
    fn = _compiled(model, static, settings, data_j, init_j)
    t0 = time.perf_counter()
    samples, diverging, extra = fn(jax.random.PRNGKey(seed), data_j, init_j)
    samples = jax.device_get(samples)
    wall = time.perf_counter() - t0
    return _result(
        samples, diverging, extra, wall, params, units, settings, observed, model_name, info, warn
    )


def _result(samples, diverging, extra, wall, params, units, settings, observed, model_name,
            info, warn) -> FitResult:  # fmt: skip
    """A :class:`FitResult` from one fit's draws (NumPy or jax arrays)."""
    samples = {k: np.asarray(v, np.float64) for k, v in samples.items()}
    diverging = np.asarray(diverging)
    groups: dict[str, Any] = {
        "posterior": samples,
        "sample_stats": {"diverging": diverging},
    }
    if observed is not None:
        groups["observed_data"] = {"obs": np.asarray(observed)}
    dt = az.from_dict(groups)
    diag = _diagnostics(dt, params, diverging, settings.method)
    diag["wall_s"] = wall
    if settings.method == "svi":
        diag["svi_final_loss"] = float(np.asarray(extra)[-1])
    else:
        diag["mean_leapfrog_steps"] = float(np.mean(np.asarray(extra)))
    diag["ok"] = not warn_if_bad(diag, model_name, warn=warn, stacklevel=5)
    return FitResult(
        posterior=dt,
        samples=samples,
        params=tuple(params),
        units=dict(units or {}),
        diagnostics=diag,
        observed=None if observed is None else np.asarray(observed),
        model_name=model_name,
        info=dict(info or {}),
    )


def run_model_batch(
    model: Callable,
    data: Sequence[Mapping[str, Any]],
    *,
    static: Mapping[str, Any] | None = None,
    init_values: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    units: Mapping[str, str] | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    observed: Sequence[np.ndarray] | None = None,
    model_name: str = "",
    info: Sequence[Mapping[str, Any]] | None = None,
    warn: bool = True,
) -> list[FitResult]:
    """Fit many datasets of the same shapes with one compiled, vmapped function.

    The datasets are stacked along a new first axis and fitted together
    (``jax.vmap`` of the whole fit): one compilation for the batch, and on
    a GPU or TPU the fits run in parallel.  On a CPU the batch runs at the
    pace of its slowest fit at every step, so :func:`run_model` in a loop is
    usually as fast there (bench/bench_infer.py measures both).  Each
    dataset gets its own key (``seed``, split) and its own
    :class:`FitResult`, equal in distribution to :func:`run_model`'s.

    Raises
    ------
    ValueError
        Datasets with different keys or shapes (naming the first offender).
    """
    settings = settings or SamplerSettings()
    static = dict(static or {})
    n = len(data)
    if n == 0:
        raise ValueError("run_model_batch: no datasets")
    if len(init_values) != n:
        raise ValueError(f"run_model_batch: {len(init_values)} initial values for {n} datasets")
    stacked = {}
    for name, tree in (("data", data), ("init_values", init_values)):
        first = tree[0]
        for i, d in enumerate(tree):
            if set(d) != set(first):
                raise ValueError(
                    f"run_model_batch: {name}[{i}] has keys {sorted(d)}, "
                    f"{name}[0] has {sorted(first)}"
                )
            for k in first:
                if np.shape(d[k]) != np.shape(first[k]):
                    raise ValueError(
                        f"run_model_batch: {name}[{i}][{k!r}] has shape {np.shape(d[k])}, "
                        f"{name}[0] has {np.shape(first[k])} (batch datasets of one shape)"
                    )
        stacked[name] = {
            k: jnp.asarray(np.stack([np.asarray(d[k], np.float32) for d in tree])) for k in first
        }
    fn = _compiled(model, static, settings, stacked["data"], stacked["init_values"], batched=True)
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    t0 = time.perf_counter()
    samples, diverging, extra = jax.device_get(fn(keys, stacked["data"], stacked["init_values"]))
    wall = (time.perf_counter() - t0) / n
    return [
        _result(
            {k: v[i] for k, v in samples.items()},
            diverging[i],
            extra[i],
            wall,
            params,
            units,
            settings,
            None if observed is None else observed[i],
            model_name,
            None if info is None else info[i],
            warn,
        )
        for i in range(n)
    ]
