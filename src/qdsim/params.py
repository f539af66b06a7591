"""Parameters of the emitter model: frozen dataclasses in SI units, with validation.

A :class:`Setup` gathers everything :func:`qdsim.simulate` needs except the
laser power and the acquisition time: the :class:`Excitation` (laser and
spot), the :class:`Emitter` (absorption cross-section, cascade model, shell
emission and the blink :class:`BlinkState` s with their yields and
lifetimes), the :class:`Blinking` dynamics (:class:`Transition` rates that
may grow with excitation, optional :class:`PowerLawDwell` times), the
:class:`Spectra` (a :class:`LineShape` per process), the
:class:`Detection` chain (collection efficiency, one :class:`Detector` per
channel with :class:`SpectralFilter`, :class:`Irf`, dead time, dark counts,
afterpulsing and background, and the :class:`Tcspc` electronics) and the
:class:`Spectrometer`.

Names carry their unit (``tau_x_s``, ``rep_rate_hz``, ``sigma_abs_m2``).  In
TOML files (:mod:`qdsim.config`) the same keys appear without the unit suffix
and take strings with units ("60 ns", "2.5 MHz", "2.3e-14 cm^2") or SI
numbers.  ``validate()`` raises ValueError naming the key path, the value and
what was expected; constructors do not check values (change parameters with
:func:`dataclasses.replace`, then validate).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from qdio.units import format_quantity

from . import closed_forms as cf

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
    "Setup",
    "Spectra",
    "SpectralFilter",
    "Spectrometer",
    "Tcspc",
    "Transition",
    "ladder_state",
]

_SUFFIX = {"s": "_s", "Hz": "_hz", "m": "_m", "m^2": "_m2", "W": "_w"}


def _q(default: Any, unit: str | None = None, key: str | None = None) -> Any:
    """A dataclass field with its unit and TOML key in the metadata."""
    return field(default=default, metadata={"unit": unit, "key": key})


def field_key(f: Any) -> str:
    """TOML key of a dataclass field: its name without the unit suffix."""
    key = f.metadata.get("key")
    if key:
        return key
    unit = f.metadata.get("unit")
    suffix = _SUFFIX.get(unit or "")
    if suffix and f.name.endswith(suffix):
        return f.name[: -len(suffix)]
    return f.name


def _show(value: Any, unit: str | None) -> str:
    if isinstance(value, float):
        if unit and unit != "1":
            if math.isfinite(value) and value != 0:
                return format_quantity(value, unit, digits=6)
            return f"{value:g} {unit}"
        return f"{value:.6g}"
    return repr(value)


class _Check:
    """Value checks that raise ValueError naming ``prefix + key``, the value and the rule."""

    def __init__(self, obj: Any, prefix: str):
        self.obj = obj
        self.prefix = prefix
        self.fields = {f.name: f for f in fields(obj)}

    def fail(self, name: str, rule: str) -> None:
        f = self.fields[name]
        value = getattr(self.obj, name)
        raise ValueError(
            f"{self.prefix}{field_key(f)} = {_show(value, f.metadata.get('unit'))} {rule}"
        )

    def number(
        self,
        name: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
        hi_open: bool = False,
        allow_inf: bool = False,
    ) -> None:
        value = getattr(self.obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(name, "must be a number")
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not allow_inf):
            self.fail(name, "must be a finite number")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            self._range(name, lo, hi, lo_open, hi_open)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            self._range(name, lo, hi, lo_open, hi_open)

    def _range(self, name, lo, hi, lo_open, hi_open) -> None:
        unit = self.fields[name].metadata.get("unit")
        if lo is not None and hi is not None:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            self.fail(
                name, f"must be in {left}{_show(float(lo), unit)}, {_show(float(hi), unit)}{right}"
            )
        if lo is not None:
            self.fail(name, f"must be {'>' if lo_open else '>='} {_show(float(lo), unit)}")
        self.fail(name, f"must be {'<' if hi_open else '<='} {_show(float(hi), unit)}")

    def fraction(self, name: str) -> None:
        self.number(name, lo=0.0, hi=1.0)

    def positive(self, name: str, allow_inf: bool = False) -> None:
        self.number(name, lo=0.0, lo_open=True, allow_inf=allow_inf)

    def nonneg(self, name: str) -> None:
        self.number(name, lo=0.0)

    def choice(self, name: str, options: tuple[str, ...]) -> None:
        if getattr(self.obj, name) not in options:
            self.fail(name, f"must be one of {list(options)}")


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if is_dataclass(value):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = [v.to_dict() if is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


class _Base:
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of the fields (SI values, names with unit suffixes)."""
        return _to_dict(self)


# -- spectra ---------------------------------------------------------------------
@dataclass(frozen=True)
class LineShape(_Base):
    """Emission line of one process.

    Parameters
    ----------
    center_m : float
        Centre wavelength, in metres.
    fwhm_m : float
        Full width at half maximum, in metres.
    profile : {"gaussian", "lorentzian"}
        Line profile (in wavelength).
    """

    center_m: float = _q(635e-9, "m")
    fwhm_m: float = _q(25e-9, "m")
    profile: str = "gaussian"

    def validate(self, prefix: str = "LineShape.") -> LineShape:
        c = _Check(self, prefix)
        c.positive("center_m")
        c.positive("fwhm_m")
        c.choice("profile", ("gaussian", "lorentzian"))
        return self


@dataclass(frozen=True)
class SpectralFilter(_Base):
    """Transmission of a filter versus wavelength: a passband or a table.

    A passband transmits ``transmission`` inside ``[lo_m, hi_m)`` and
    ``blocking`` outside (``lo_m = 473e-9, hi_m = inf`` is a 473 nm long
    pass).  A table (``wavelengths_m``, ``transmissions``) is interpolated
    linearly and is zero outside its range; it replaces the passband.
    """

    lo_m: float = _q(0.0, "m")
    hi_m: float = _q(math.inf, "m")
    transmission: float = _q(1.0, "1")
    blocking: float = _q(0.0, "1")
    wavelengths_m: tuple[float, ...] = _q((), "m")
    transmissions: tuple[float, ...] = _q((), "1")

    def validate(self, prefix: str = "SpectralFilter.") -> SpectralFilter:
        c = _Check(self, prefix)
        c.nonneg("lo_m")
        c.number("hi_m", lo=0.0, lo_open=True, allow_inf=True)
        if not self.hi_m > self.lo_m:
            c.fail("hi_m", f"must be > lo = {_show(float(self.lo_m), 'm')}")
        c.fraction("transmission")
        c.fraction("blocking")
        if self.wavelengths_m or self.transmissions:
            w, t = self.wavelengths_m, self.transmissions
            if len(w) != len(t) or len(w) < 2:
                c.fail("transmissions", f"must have as many values as wavelengths ({len(w)}), >= 2")
            if any(not math.isfinite(x) or x <= 0 for x in w) or any(
                b <= a for a, b in itertools.pairwise(w)
            ):
                c.fail("wavelengths_m", "must be finite, > 0 and increasing")
            if any(not (0.0 <= x <= 1.0) for x in t):
                c.fail("transmissions", "must all be in [0, 1]")
        return self

    def transmission_at(self, wavelength_m: Any) -> Any:
        """Transmission (0..1) at the given wavelengths (float or ndarray, metres)."""
        import numpy as np

        lam = np.asarray(wavelength_m, float)
        if self.wavelengths_m:
            out = np.interp(lam, self.wavelengths_m, self.transmissions, left=0.0, right=0.0)
        else:
            inside = (lam >= self.lo_m) & (lam < self.hi_m)
            out = np.where(inside, self.transmission, self.blocking)
        return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Spectra(_Base):
    """Line shapes of the emission processes and the wavelength grid they are sampled on.

    Defaults: X at 635 nm (25 nm FWHM, ~80 meV, a room-temperature CdSe/CdS
    giant QD), BX 10 nm bluer [paper], multi-excitons (ladder levels >= 3)
    another 10 nm bluer, CdS shell emission at 515 nm, 40 nm wide (490-580 nm
    [paper]).  Photon wavelengths are drawn on the grid (bins of
    ``grid_step_m``, uniform within a bin); lines are cut at the grid ends.
    """

    x: LineShape = LineShape(635e-9, 25e-9)
    bx: LineShape = LineShape(625e-9, 30e-9)
    mx: LineShape = LineShape(615e-9, 35e-9)
    shell: LineShape = LineShape(515e-9, 40e-9)
    grid_min_m: float = _q(350e-9, "m")
    grid_max_m: float = _q(900e-9, "m")
    grid_step_m: float = _q(0.05e-9, "m")

    def validate(self, prefix: str = "Spectra.") -> Spectra:
        for name in ("x", "bx", "mx", "shell"):
            getattr(self, name).validate(f"{prefix}{name}.")
        c = _Check(self, prefix)
        c.positive("grid_min_m")
        c.positive("grid_max_m")
        c.positive("grid_step_m")
        if not self.grid_max_m > self.grid_min_m:
            c.fail("grid_max_m", f"must be > grid_min = {_show(self.grid_min_m, 'm')}")
        if (self.grid_max_m - self.grid_min_m) / self.grid_step_m > 2_000_000:
            c.fail("grid_step_m", "is too fine: the grid would have more than 2e6 points")
        return self

    def line(self, process: str) -> LineShape:
        """Line of "x", "bx", "mx" or "shell"."""
        return getattr(self, process)


@dataclass(frozen=True)
class Spectrometer(_Base):
    """Spectrometer that records the emission spectrum of the acquisition.

    It counts ``efficiency`` of the emitted photons (after the collection
    filter), in bins of ``bin_m`` from ``min_m`` to ``max_m``, with Poisson
    noise.  Default 0.7 x eta_C = 0.007: the 70 % of the collected light that
    the paper's setup can send to its spectrometer [paper].  It sees the same
    emitter over the same blink trajectory but takes no light from the
    detectors (a virtual second acquisition).
    """

    efficiency: float = _q(0.007, "1")
    min_m: float = _q(450e-9, "m")
    max_m: float = _q(750e-9, "m")
    bin_m: float = _q(0.5e-9, "m")

    def validate(self, prefix: str = "Spectrometer.") -> Spectrometer:
        c = _Check(self, prefix)
        c.fraction("efficiency")
        c.positive("min_m")
        c.positive("max_m")
        c.positive("bin_m")
        if not self.max_m > self.min_m:
            c.fail("max_m", f"must be > min = {_show(self.min_m, 'm')}")
        if (self.max_m - self.min_m) / self.bin_m > 1_000_000:
            c.fail("bin_m", "is too fine: more than 1e6 bins")
        return self


# -- detection ---------------------------------------------------------------------
@dataclass(frozen=True)
class Irf(_Base):
    """Timing jitter of a detector (instrument response function).

    Either a Gaussian core (``fwhm_s``) plus, with probability
    ``tail_fraction``, an exponential delay of mean ``tail_tau_s`` (the
    diffusion tail of a SPAD), or a measured histogram (``histogram``,
    counts per bin of ``histogram_bin_s``), sampled bin by bin (uniform
    within a bin) and taken relative to the centre of its highest bin.  The
    IRF peak then sits at the detector's ``delay_s`` after the laser pulse.
    """

    fwhm_s: float = _q(50e-12, "s")
    tail_fraction: float = _q(0.0, "1")
    tail_tau_s: float = _q(150e-12, "s")
    histogram: tuple[float, ...] = ()
    histogram_bin_s: float = _q(0.0, "s")

    def validate(self, prefix: str = "Irf.") -> Irf:
        c = _Check(self, prefix)
        c.nonneg("fwhm_s")
        c.fraction("tail_fraction")
        c.nonneg("tail_tau_s")
        if self.histogram:
            c.positive("histogram_bin_s")
            if (
                any(not math.isfinite(x) or x < 0 for x in self.histogram)
                or sum(self.histogram) <= 0
            ):
                c.fail("histogram", "must hold finite counts >= 0 with a positive sum")
        return self

    @property
    def is_histogram(self) -> bool:
        """True when the IRF is a measured histogram."""
        return bool(self.histogram)


@dataclass(frozen=True)
class Detector(_Base):
    """One detection channel (an SPAD behind the beam splitter).

    Parameters
    ----------
    split : float
        Fraction of the collected light sent to this detector (0.5 each in a
        50/50 HBT).  Splits of all detectors sum to at most 1.
    filter : SpectralFilter, optional
        Spectral filter in front of this detector (none: all wavelengths).
    irf : Irf
        Timing jitter.
    delay_s : float
        Position of the IRF peak after the laser pulse (cable delays), in s.
    dead_time_s : float
        Non-paralysable dead time of the detector (77 ns: MPD PDM SPAD).
    dark_rate_hz : float
        Dark count rate (Poisson, uniform in time).
    afterpulse_probability : float
        Probability that a registered avalanche releases an afterpulse.
    afterpulse_delay_s : float
        Mean of the exponential delay of an afterpulse after the end of the
        dead time (so afterpulses come ``dead_time_s + Exp(afterpulse_delay_s)``
        after their parent).
    background_rate_hz : float
        Flat background (autofluorescence, room light) reaching this
        detector, Poisson and uniform in time.
    leakage_rate_hz : float
        Laser light leaking to this detector at the reference power of
        :class:`Detection` (IRF-shaped in time, proportional to
        ``(power / reference) ** leakage_exponent``).
    """

    split: float = _q(0.5, "1")
    filter: SpectralFilter | None = None
    irf: Irf = Irf(fwhm_s=50e-12, tail_fraction=0.05, tail_tau_s=150e-12)
    delay_s: float = _q(1e-9, "s")
    dead_time_s: float = _q(77e-9, "s")
    dark_rate_hz: float = _q(50.0, "Hz")
    afterpulse_probability: float = _q(0.02, "1")
    afterpulse_delay_s: float = _q(200e-9, "s")
    background_rate_hz: float = _q(0.0, "Hz")
    leakage_rate_hz: float = _q(0.0, "Hz")

    def validate(self, prefix: str = "Detector.") -> Detector:
        c = _Check(self, prefix)
        c.fraction("split")
        if self.filter is not None:
            self.filter.validate(f"{prefix}filter.")
        self.irf.validate(f"{prefix}irf.")
        c.number("delay_s")
        c.nonneg("dead_time_s")
        c.nonneg("dark_rate_hz")
        c.fraction("afterpulse_probability")
        if self.afterpulse_probability >= 1.0:
            c.fail("afterpulse_probability", "must be < 1")
        c.nonneg("afterpulse_delay_s")
        c.nonneg("background_rate_hz")
        c.nonneg("leakage_rate_hz")
        return self


@dataclass(frozen=True)
class Tcspc(_Base):
    """TCSPC electronics in T3 mode (PicoHarp 300 defaults).

    ``resolution_s`` is the microtime bin (4 ps base x binning 32 = 128 ps
    covers 524 ns > 400 ns), ``n_bins`` the microtime range (4096: 12 bits),
    ``dead_time_s`` the non-paralysable dead time after each recorded event,
    per channel, or shared by all channels when ``shared_dead_time`` (one
    TDC behind a router).
    """

    resolution_s: float = _q(128e-12, "s")
    n_bins: int = 4096
    dead_time_s: float = _q(95e-9, "s")
    shared_dead_time: bool = False

    def validate(self, prefix: str = "Tcspc.") -> Tcspc:
        c = _Check(self, prefix)
        c.positive("resolution_s")
        if isinstance(self.n_bins, bool) or not isinstance(self.n_bins, int) or self.n_bins < 1:
            c.fail("n_bins", "must be an integer >= 1")
        if self.n_bins > 2**31 - 1:
            c.fail("n_bins", "must fit int32")
        c.nonneg("dead_time_s")
        if not isinstance(self.shared_dead_time, bool):
            c.fail("shared_dead_time", "must be true or false")
        return self


@dataclass(frozen=True)
class Detection(_Base):
    """Collection and detection chain.

    Parameters
    ----------
    eta_c : float
        Probability that an emitted photon is collected and detected
        (optics, filters in the common path and detector efficiency; 0.01
        [paper]), before the beam splitter.
    detectors : tuple of Detector
        One per channel (channel = index); default a 50/50 HBT pair.
    collection_filter : SpectralFilter, optional
        Filter in the common path (default the paper's 473 nm long pass);
        it also applies to the spectrometer.
    leakage_reference_power_w : float
        Power at which each detector's ``leakage_rate_hz`` is given.
    leakage_exponent : float
        Leakage grows as ``(power / reference) ** leakage_exponent``.
    tcspc : Tcspc
        The time-tagging electronics.
    """

    eta_c: float = _q(0.01, "1")
    detectors: tuple[Detector, ...] = (Detector(), Detector())
    collection_filter: SpectralFilter | None = SpectralFilter(lo_m=473e-9)
    leakage_reference_power_w: float = _q(1e-6, "W")
    leakage_exponent: float = _q(1.0, "1")
    tcspc: Tcspc = Tcspc()

    def validate(self, prefix: str = "Detection.") -> Detection:
        c = _Check(self, prefix)
        c.fraction("eta_c")
        if not isinstance(self.detectors, tuple) or not 1 <= len(self.detectors) <= 255:
            c.fail("detectors", "must be 1 to 255 detectors")
        for i, det in enumerate(self.detectors):
            det.validate(f"{prefix}detectors[{i}].")
        total = sum(d.split for d in self.detectors)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"{prefix}detectors: the splits sum to {total:.6g}; they must sum to <= 1"
            )
        if self.collection_filter is not None:
            self.collection_filter.validate(f"{prefix}collection_filter.")
        c.positive("leakage_reference_power_w")
        c.nonneg("leakage_exponent")
        self.tcspc.validate(f"{prefix}tcspc.")
        return self

    @property
    def n_channels(self) -> int:
        """Number of detector channels."""
        return len(self.detectors)


# -- excitation ---------------------------------------------------------------------
@dataclass(frozen=True)
class Excitation(_Base):
    """Pulsed laser and excitation spot.

    Parameters
    ----------
    wavelength_m : float
        Laser wavelength (405 nm [paper]).
    rep_rate_hz : float
        Repetition rate (2.5 MHz [paper]); the sync period is its inverse.
    pulse_fwhm_s : float
        Pulse width: each pulse's absorption time is Gaussian around the
        sync with this FWHM (shared by all photons of the pulse).
    numerical_aperture : float
        NA of the objective, for the diffraction-limited spot.
    spot_area_m2 : float, optional
        Spot area; default the Airy disk ``pi (0.61 lambda / NA)^2``
        (3.0e-9 cm^2 at 405 nm, NA 0.8).
    """

    wavelength_m: float = _q(405e-9, "m")
    rep_rate_hz: float = _q(2.5e6, "Hz")
    pulse_fwhm_s: float = _q(0.0, "s")
    numerical_aperture: float = _q(0.8, "1")
    spot_area_m2: float | None = _q(None, "m^2")

    def validate(self, prefix: str = "Excitation.") -> Excitation:
        c = _Check(self, prefix)
        c.positive("wavelength_m")
        c.positive("rep_rate_hz")
        c.nonneg("pulse_fwhm_s")
        c.number("numerical_aperture", lo=0.0, hi=2.0, lo_open=True)
        if self.spot_area_m2 is not None:
            c.positive("spot_area_m2")
        return self

    @property
    def period_s(self) -> float:
        """Laser (sync) period, in seconds."""
        return 1.0 / self.rep_rate_hz

    @property
    def spot_area(self) -> float:
        """Spot area in m^2: the given one or the diffraction limit."""
        if self.spot_area_m2 is not None:
            return float(self.spot_area_m2)
        return cf.diffraction_limited_spot_area_m2(self.wavelength_m, self.numerical_aperture)


# -- emitter and blinking --------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawDwell(_Base):
    """Truncated power-law dwell times ``p(t) ~ t^-alpha exp(-t / T_c)`` for ``t >= min_dwell_s``.

    Frantsuzov et al., Nature Phys. 4, 519 (2008): alpha ~ 1.5.  The cutoff
    may shorten with excitation: ``1 / T_c(n) = 1 / cutoff_s +
    cutoff_rate_slope_hz * n ** cutoff_exponent``.  ``alpha <= 1`` needs a
    finite cutoff.  Where the state goes next follows the relative rates of
    its outgoing transitions.
    """

    alpha: float = _q(1.5, "1")
    min_dwell_s: float = _q(1e-4, "s")
    cutoff_s: float = _q(math.inf, "s")
    cutoff_rate_slope_hz: float = _q(0.0, "Hz")
    cutoff_exponent: float = _q(1.0, "1")

    def validate(self, prefix: str = "PowerLawDwell.") -> PowerLawDwell:
        c = _Check(self, prefix)
        c.positive("alpha")
        c.positive("min_dwell_s")
        c.positive("cutoff_s", allow_inf=True)
        c.nonneg("cutoff_rate_slope_hz")
        c.nonneg("cutoff_exponent")
        if self.alpha <= 1.0 and math.isinf(self.cutoff_s) and self.cutoff_rate_slope_hz == 0:
            c.fail("alpha", "must be > 1 when the cutoff is infinite (not normalisable)")
        return self

    def cutoff_at(self, n: float) -> float:
        """Cutoff time T_c (s) at ``n`` absorbed photons per pulse."""
        rate = 1.0 / self.cutoff_s + self.cutoff_rate_slope_hz * (
            n**self.cutoff_exponent if n > 0 else 0.0
        )
        return math.inf if rate == 0 else 1.0 / rate


@dataclass(frozen=True)
class BlinkState(_Base):
    """One emission state (bright, grey, dark, ...) with its cascade parameters.

    Parameters
    ----------
    name : str
        Label of the state (index = position in ``Emitter.states``).
    eta_x, tau_x_s : float
        Exciton emission yield and lifetime (total decay time).
    eta_bx, tau_bx_s : float
        Biexciton emission yield and lifetime.
    excitation_efficiency : float
        Fraction of absorbed photons that reach the core in this state
        (n is multiplied by it): below 1 models B-type blinking (hot-carrier
        trapping: dimmer at constant lifetime).  A-type (charged, Auger
        quenched) states have lower yields and shorter lifetimes instead.
    wavelength_shift_m : float
        Shift of the core lines (X, BX, MX) in this state (trion red shift).
    power_law : PowerLawDwell, optional
        Dwell times of this state; default exponential with the total rate
        of its outgoing transitions (Markov).
    """

    name: str = "bright"
    eta_x: float = _q(1.0, "1")
    tau_x_s: float = _q(60e-9, "s")
    eta_bx: float = _q(0.21, "1")
    tau_bx_s: float = _q(3.15e-9, "s")
    excitation_efficiency: float = _q(1.0, "1")
    wavelength_shift_m: float = _q(0.0, "m")
    power_law: PowerLawDwell | None = None

    def validate(self, prefix: str = "BlinkState.") -> BlinkState:
        c = _Check(self, prefix)
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            c.fail("name", "must be a non-empty string without '.'")
        c.fraction("eta_x")
        c.positive("tau_x_s")
        c.fraction("eta_bx")
        c.positive("tau_bx_s")
        c.fraction("excitation_efficiency")
        c.number("wavelength_shift_m")
        if self.power_law is not None:
            self.power_law.validate(f"{prefix}power_law.")
        return self


def ladder_state(
    name: str,
    *,
    tau_x_s: float,
    eta_x: float = 1.0,
    tau_auger_bx_s: float,
    radiative_scaling: str = "quadratic",
    **kwargs: Any,
) -> BlinkState:
    """A :class:`BlinkState` whose biexciton follows from rates and a radiative scaling law.

    ``k_r(1) = eta_x / tau_x``; ``k_r(2) = s(2) k_r(1)`` with s(2) = 4
    ("quadratic", statistical), 2 ("linear") or 1 ("constant");
    ``k_A(2) = 1 / tau_auger_bx_s``.  Then ``tau_bx = 1 / (k_r(2) + k_A(2))``
    and ``eta_bx = k_r(2) tau_bx`` (= 4 tau_bx / tau_x,r with the
    statistical law, MODEL.md section 2).  Extra keyword arguments go to
    :class:`BlinkState`.

    >>> s = ladder_state("on", tau_x_s=60e-9, tau_auger_bx_s=4e-9)
    >>> round(s.eta_bx, 4), round(s.tau_bx_s * 1e9, 4)
    (0.2105, 3.1579)
    """
    factor = {"quadratic": 4.0, "linear": 2.0, "constant": 1.0}[radiative_scaling]
    k_r2 = factor * eta_x / tau_x_s
    k_a2 = 1.0 / tau_auger_bx_s
    tau_bx = 1.0 / (k_r2 + k_a2)
    return BlinkState(
        name=name, eta_x=eta_x, tau_x_s=tau_x_s, eta_bx=k_r2 * tau_bx, tau_bx_s=tau_bx, **kwargs
    )


@dataclass(frozen=True)
class Transition(_Base):
    """Switching from state ``source`` to state ``target`` (TOML keys "from" and "to").

    The rate grows with excitation: ``k(n) = rate_hz + rate_slope_hz * n ** exponent``
    with ``n`` the mean absorbed photons per pulse (charging at high power).
    """

    source: str = _q("", key="from")
    target: str = _q("", key="to")
    rate_hz: float = _q(0.0, "Hz")
    rate_slope_hz: float = _q(0.0, "Hz")
    exponent: float = _q(1.0, "1")

    def validate(self, prefix: str = "Transition.") -> Transition:
        c = _Check(self, prefix)
        c.nonneg("rate_hz")
        c.nonneg("rate_slope_hz")
        c.nonneg("exponent")
        return self

    def rate_at(self, n: float) -> float:
        """Switching rate (1/s) at ``n`` absorbed photons per pulse."""
        return self.rate_hz + self.rate_slope_hz * (n**self.exponent if n > 0 else 0.0)


@dataclass(frozen=True)
class Blinking(_Base):
    """Switching between the emitter's states.

    ``initial`` is "stationary" (drawn from the stationary distribution at
    the simulated power) or the name of the state the acquisition starts in.
    """

    transitions: tuple[Transition, ...] = ()
    initial: str = "stationary"

    def validate(self, state_names: tuple[str, ...], prefix: str = "blinking.") -> Blinking:
        seen = set()
        for i, t in enumerate(self.transitions):
            p = f"{prefix}transitions[{i}]."
            t.validate(p)
            for key, name in (("from", t.source), ("to", t.target)):
                if name not in state_names:
                    raise ValueError(
                        f"{p}{key} = {name!r} is not a state (states: {list(state_names)})"
                    )
            if t.source == t.target:
                raise ValueError(f"{p}to = {t.target!r}: a transition must change the state")
            if (t.source, t.target) in seen:
                raise ValueError(f"{p}: a second transition {t.source!r} -> {t.target!r}")
            seen.add((t.source, t.target))
        if self.initial != "stationary" and self.initial not in state_names:
            raise ValueError(
                f"{prefix}initial = {self.initial!r} must be 'stationary' or a state "
                f"({list(state_names)})"
            )
        return self


@dataclass(frozen=True)
class Emitter(_Base):
    """The quantum dot: absorption, core cascade, shell emission and blink states.

    Parameters
    ----------
    sigma_abs_m2 : float
        Absorption cross-section at the laser wavelength (2.3e-14 cm^2 [paper]).
    model : {"reduced", "ladder"}
        "reduced": the paper's model: at most two core excitons (BX then X);
        ``m >= 3`` absorbed photons send ``m - 2`` carriers to the shell.
        "ladder": N = m excitons cascade down N -> N-1 -> ... -> 0 (levels
        >= 3 scale from the biexciton, see
        :func:`qdsim.closed_forms.ladder_levels`); with ``max_excitons > 0``
        the excess carriers go to the shell.
    states : tuple of BlinkState
        Emission states; the first is the default initial state.
    eta_h : float
        Emission yield of each shell carrier (0.07 [paper]).
    tau_h_s : float
        Shell emission time (fast, sub-ns).
    max_excitons : int
        Ladder only: most core excitons (0 = no limit).
    radiative_scaling : {"quadratic", "linear", "constant"}
        Ladder only: radiative rate versus N above the biexciton.
    auger_scaling : {"statistical", "quadratic", "constant"}
        Ladder only: Auger rate versus N above the biexciton.
    """

    sigma_abs_m2: float = _q(2.3e-18, "m^2")
    model: str = "reduced"
    states: tuple[BlinkState, ...] = (BlinkState(),)
    eta_h: float = _q(0.07, "1")
    tau_h_s: float = _q(0.5e-9, "s")
    max_excitons: int = 0
    radiative_scaling: str = "quadratic"
    auger_scaling: str = "statistical"

    def validate(self, prefix: str = "emitter.") -> Emitter:
        c = _Check(self, prefix)
        c.positive("sigma_abs_m2")
        c.choice("model", ("reduced", "ladder"))
        if not isinstance(self.states, tuple) or not 1 <= len(self.states) <= 255:
            c.fail("states", "must be 1 to 255 states")
        names = [s.name for s in self.states]
        for s in self.states:
            s.validate(f"{prefix}states.{s.name}.")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            c.fail("states", f"has repeated names {sorted(dup)}")
        c.fraction("eta_h")
        c.positive("tau_h_s")
        if isinstance(self.max_excitons, bool) or not isinstance(self.max_excitons, int):
            c.fail("max_excitons", "must be an integer")
        if self.model == "reduced" and self.max_excitons not in (0, 2):
            c.fail("max_excitons", "must be 0 (unused) or 2 in the reduced model")
        if self.max_excitons < 0:
            c.fail("max_excitons", "must be >= 0 (0 = no limit)")
        c.choice("radiative_scaling", ("quadratic", "linear", "constant"))
        c.choice("auger_scaling", ("statistical", "quadratic", "constant"))
        return self

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["states"] = {
            s.name: {k: v for k, v in s.to_dict().items() if k != "name"} for s in self.states
        }
        return out

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the states, in index order."""
        return tuple(s.name for s in self.states)

    def core_capacity(self, m_max: int) -> int:
        """Number of core ladder levels used when at most ``m_max`` photons are absorbed."""
        if self.model == "reduced":
            return 2
        return self.max_excitons if self.max_excitons > 0 else max(int(m_max), 2)

    def levels(self, state: BlinkState, n_levels: int) -> tuple[Any, Any]:
        """Yields and lifetimes of levels 1..n_levels in ``state`` (see
        :func:`qdsim.closed_forms.ladder_levels`)."""
        return cf.ladder_levels(
            eta_x=state.eta_x,
            tau_x_s=state.tau_x_s,
            eta_bx=state.eta_bx,
            tau_bx_s=state.tau_bx_s,
            n_levels=n_levels,
            radiative_scaling=self.radiative_scaling,  # type: ignore[arg-type]
            auger_scaling=self.auger_scaling,  # type: ignore[arg-type]
        )


# -- the whole setup ---------------------------------------------------------------------
@dataclass(frozen=True)
class Setup(_Base):
    """Everything :func:`qdsim.simulate` needs besides the power and the duration.

    ``block_duration_s`` fixes the blocks of laser pulses that each get their
    own random stream (SeedSequence child): the simulated stream depends on
    it, not on how many threads or chunks compute it.

    Examples
    --------
    >>> s = Setup()
    >>> round(s.mean_absorbed(0.17e-6), 3)
    1.064
    >>> s.validate().state_names
    ('bright',)
    """

    name: str = "custom"
    excitation: Excitation = Excitation()
    emitter: Emitter = Emitter()
    blinking: Blinking = Blinking()
    spectra: Spectra = Spectra()
    detection: Detection = Detection()
    spectrometer: Spectrometer = Spectrometer()
    block_duration_s: float = _q(1.0, "s")

    def validate(self) -> Setup:
        """Check every value; raise ValueError naming the key path. Returns self."""
        if not isinstance(self.name, str):
            raise ValueError(f"name = {self.name!r} must be a string")
        self.excitation.validate("excitation.")
        self.emitter.validate("emitter.")
        self.blinking.validate(self.state_names, "blinking.")
        names = self.state_names
        out_edges = {t.source for t in self.blinking.transitions}
        for s in self.emitter.states:
            if s.power_law is not None and len(names) > 1 and s.name not in out_edges:
                raise ValueError(
                    f"emitter.states.{s.name}.power_law: the state has power-law dwell "
                    "times but no outgoing transition to say where it goes next"
                )
        self.spectra.validate("spectra.")
        self.detection.validate("detection.")
        self.spectrometer.validate("spectrometer.")
        c = _Check(self, "")
        c.positive("block_duration_s")
        period = self.excitation.period_s
        if self.block_duration_s < period:
            c.fail("block_duration_s", f"must be >= the laser period {_show(period, 's')}")
        t = self.detection.tcspc
        if t.resolution_s * t.n_bins < period * (1 - 1e-12):
            raise ValueError(
                f"detection.tcspc: resolution x n_bins = {_show(t.resolution_s * t.n_bins, 's')}"
                f" must cover the laser period {_show(period, 's')}"
            )
        return self

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the blink states, in index order (the truth's state codes)."""
        return self.emitter.state_names

    def mean_absorbed(self, power_w: float) -> float:
        """Mean absorbed photons per pulse at ``power_w`` (before state efficiencies)."""
        e = self.excitation
        return float(
            cf.mean_absorbed_photons(
                power_w,
                sigma_abs_m2=self.emitter.sigma_abs_m2,
                spot_area_m2=e.spot_area,
                wavelength_m=e.wavelength_m,
                rep_rate_hz=e.rep_rate_hz,
            )
        )

    def power_for(self, n: float) -> float:
        """Average power (W) that gives ``n`` absorbed photons per pulse."""
        e = self.excitation
        return float(
            cf.power_for_mean_absorbed(
                n,
                sigma_abs_m2=self.emitter.sigma_abs_m2,
                spot_area_m2=e.spot_area,
                wavelength_m=e.wavelength_m,
                rep_rate_hz=e.rep_rate_hz,
            )
        )
