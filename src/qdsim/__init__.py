"""qdsim: Monte-Carlo model of a single quantum dot under pulsed excitation.

It produces :class:`~qdio.PhotonStream` s identical in form to what qdio
reads from TCSPC files, plus the ground truth of every photon, so that every
analysis can be checked against known answers and experiments planned
before they are run.  The physics is MODEL.md section 2; the closed forms it
must agree with are in :mod:`qdsim.closed_forms`.

>>> import qdsim
>>> setup = qdsim.presets.paper_qd()
>>> res = qdsim.simulate(setup, power_w=0.17e-6, duration_s=0.01, rng=1)
>>> sorted(res.stream.counts_per_channel())
[0, 1]
>>> qdsim.load_setup("blinking_qd").state_names
('bright', 'grey', 'dark')
"""

from __future__ import annotations

from . import closed_forms, presets
from .blinking import Trajectory, trajectory
from .config import load_config, load_setup, setup_from_dict
from .params import (
    Blinking,
    BlinkState,
    Detection,
    Detector,
    Emitter,
    Excitation,
    Irf,
    LineShape,
    PowerLawDwell,
    Setup,
    Spectra,
    SpectralFilter,
    Spectrometer,
    Tcspc,
    Transition,
    ladder_state,
)
from .simulate import SimResult, power_series, simulate, simulate_chunks
from .spectra import Spectrum
from .truth import Process, Truth

__all__ = [
    "BlinkState",
    "Blinking",
    "Detection",
    "Detector",
    "Emitter",
    "Excitation",
    "Irf",
    "LineShape",
    "PowerLawDwell",
    "Process",
    "Setup",
    "SimResult",
    "Spectra",
    "SpectralFilter",
    "Spectrometer",
    "Spectrum",
    "Tcspc",
    "Trajectory",
    "Transition",
    "Truth",
    "__version__",
    "closed_forms",
    "ladder_state",
    "load_config",
    "load_setup",
    "power_series",
    "presets",
    "setup_from_dict",
    "simulate",
    "simulate_chunks",
    "trajectory",
]


def _get_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qdlight")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


__version__ = _get_version()
