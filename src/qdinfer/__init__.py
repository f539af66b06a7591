"""qdinfer: select photons, then measure; Bayesian models in ``qdinfer.models``.

Estimators work on any :class:`qdio.PhotonStream`, read from a file or
simulated, and accumulate over :func:`qdio.iter_chunks` for files larger
than memory.  jax and numpyro are imported only by ``qdinfer.models``.
"""

from .selection import (
    Selection,
    channels,
    everything,
    gate,
    irf_peak_bins,
    select,
    state_intervals,
    time_window,
)

__all__ = [
    "Selection",
    "channels",
    "everything",
    "gate",
    "irf_peak_bins",
    "select",
    "state_intervals",
    "time_window",
]
