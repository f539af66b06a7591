"""Ground truth of a simulation: what made every detected photon.

:class:`Truth` has one row per row of the simulated
:class:`~qdio.PhotonStream` (same order): the blink state, the
:class:`Process` (X, BX, multi-exciton, shell, dark count, afterpulse,
background), the emitted wavelength, the emission delay after the laser
pulse, the pulse and the number of photons it put into the emitter; plus the
blink :class:`~qdsim.blinking.Trajectory` and the run's settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from qdio._util import atomic_write

from .blinking import Trajectory

__all__ = ["Process", "Truth"]


class Process(IntEnum):
    """What produced a detection (``Truth.process`` codes).

    X, BX and MX are photons of ladder levels 1, 2 and >= 3; SHELL of shell
    carriers; DARK a dark count; AFTERPULSE a detector afterpulse;
    BACKGROUND flat background (wavelength NaN) or laser leakage (the laser
    wavelength, and the pulse it came from).
    """

    X = 0
    BX = 1
    MX = 2
    SHELL = 3
    DARK = 4
    AFTERPULSE = 5
    BACKGROUND = 6


_ARRAYS = {
    "state": np.uint8,
    "process": np.uint8,
    "wavelength_m": np.float64,
    "emission_delay_s": np.float64,
    "pulse": np.int64,
    "absorbed": np.int16,
}


@dataclass(frozen=True, eq=False)
class Truth:
    """Per-photon ground truth, aligned with the stream rows.

    Attributes
    ----------
    state : ndarray of uint8, shape (N,)
        Blink state (index into ``state_names``) at the photon's laser pulse
        (emitter photons) or at its detection (other events).
    process : ndarray of uint8, shape (N,)
        :class:`Process` code.
    wavelength_m : ndarray of float64, shape (N,)
        Emitted wavelength in metres (laser wavelength for leakage, NaN for
        dark counts, afterpulses and flat background).
    emission_delay_s : ndarray of float64, shape (N,)
        Emission time after the laser pulse, in seconds: the cascade time,
        without pulse width, IRF or detector delay (NaN for non-emitter events).
    pulse : ndarray of int64, shape (N,)
        Laser pulse (sync index) that excited the photon, -1 if none.  It
        differs from the macrotime when the photon came after the next sync.
    absorbed : ndarray of int16, shape (N,)
        Photons absorbed in that pulse (-1 for non-emitter events).
    trajectory : Trajectory
        The blink state trajectory of the whole acquisition.
    state_names : tuple of str
        Names of the state codes.
    mean_absorbed : float
        Mean absorbed photons per pulse at the simulated power (before
        per-state excitation efficiencies).
    n_pulses : int
        Laser pulses in the acquisition.
    power_w : float
        Average laser power, in watts.
    entropy : tuple of int
        Root entropy of the run's SeedSequence.
    """

    state: np.ndarray
    process: np.ndarray
    wavelength_m: np.ndarray
    emission_delay_s: np.ndarray
    pulse: np.ndarray
    absorbed: np.ndarray
    trajectory: Trajectory
    state_names: tuple[str, ...]
    mean_absorbed: float
    n_pulses: int
    power_w: float
    entropy: tuple[int, ...]

    def __post_init__(self) -> None:
        n = None
        for name, dtype in _ARRAYS.items():
            arr = np.asarray(getattr(self, name))
            if arr.dtype != dtype or arr.ndim != 1:
                raise TypeError(f"Truth.{name} must be a 1-D {np.dtype(dtype).name} array")
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"Truth.{name} has {arr.shape[0]} rows, state has {n}")
            n = arr.shape[0]

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def counts_by_process(self) -> dict[str, int]:
        """Number of detections of each :class:`Process`."""
        counts = np.bincount(self.process, minlength=len(Process))
        return {p.name: int(counts[p]) for p in Process}

    def is_emitter(self) -> np.ndarray:
        """Mask of photons emitted by the quantum dot (X, BX, MX, shell)."""
        return self.process <= Process.SHELL

    @classmethod
    def concatenate(cls, parts: list[Truth]) -> Truth:
        """Join the truths of consecutive chunks of one run (:func:`qdsim.simulate_chunks`)."""
        if not parts:
            raise ValueError("Truth.concatenate() needs at least one part")
        first = parts[0]
        arrays = {k: np.concatenate([getattr(t, k) for t in parts]) for k in _ARRAYS}
        return dataclasses.replace(first, **arrays)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Save to a compressed ``.npz`` (read back with :meth:`load_npz`)."""
        meta = {
            "state_names": list(self.state_names),
            "mean_absorbed": self.mean_absorbed,
            "n_pulses": self.n_pulses,
            "power_w": self.power_w,
            "entropy": [int(e) for e in self.entropy],
            "duration_s": self.trajectory.duration_s,
            "process_names": [p.name for p in Process],
        }
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        with atomic_write(path) as f:  # temporary file beside path, then rename
            np.savez_compressed(
                f,
                **arrays,
                trajectory_start_s=self.trajectory.start_s,
                trajectory_state=self.trajectory.state,
                meta=np.array(json.dumps(meta)),
            )
        return Path(path)

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> Truth:
        """Read a file written by :meth:`save_npz`."""
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {name: f[name].astype(dtype) for name, dtype in _ARRAYS.items()}
            names = tuple(meta["state_names"])
            traj = Trajectory(
                f["trajectory_start_s"], f["trajectory_state"], float(meta["duration_s"]), names
            )
        return cls(
            **arrays,
            trajectory=traj,
            state_names=names,
            mean_absorbed=float(meta["mean_absorbed"]),
            n_pulses=int(meta["n_pulses"]),
            power_w=float(meta["power_w"]),
            entropy=tuple(int(e) for e in meta["entropy"]),
        )
