"""numpyro models of decays, g2 histograms, power series and blinking states; SBC.

Every fit returns a :class:`FitResult` with the arviz 1.x posterior
(``.posterior``, an ``xarray.DataTree``), ``.interval(name, prob=0.9)``,
``.summary()`` and ``.diagnostics``.  Importing this package imports jax and
numpyro; ``import qdinfer`` alone does not.  See docs/bayes.md.
"""

from ._fit import (
    FitDiagnosticsWarning,
    FitResult,
    SamplerSettings,
    clear_cache,
    run_model,
    run_model_batch,
    warn_if_bad,
)
from .decay import (
    decay_expected,
    decay_inputs,
    decay_model,
    fit_decay_bayes,
    fit_decays_bayes,
)
from .g2 import fit_g2_bayes, g2_inputs, g2_model, ratio_from_g2
from .plots import plot_ppc, plot_states
from .power import fit_power_series, power_series_model
from .sbc import SbcResult, plot_ranks, rank_uniformity_pvalue, sbc
from .states import (
    StatesData,
    fit_states_bayes,
    fit_states_photons,
    state_probabilities,
    states_inputs,
    states_model,
    states_trajectory,
)

__all__ = [
    "FitDiagnosticsWarning",
    "FitResult",
    "SamplerSettings",
    "SbcResult",
    "StatesData",
    "clear_cache",
    "decay_expected",
    "decay_inputs",
    "decay_model",
    "fit_decay_bayes",
    "fit_decays_bayes",
    "fit_g2_bayes",
    "fit_power_series",
    "fit_states_bayes",
    "fit_states_photons",
    "g2_inputs",
    "g2_model",
    "plot_ppc",
    "plot_ranks",
    "plot_states",
    "power_series_model",
    "rank_uniformity_pvalue",
    "ratio_from_g2",
    "run_model",
    "run_model_batch",
    "sbc",
    "state_probabilities",
    "states_inputs",
    "states_model",
    "states_trajectory",
    "warn_if_bad",
]
