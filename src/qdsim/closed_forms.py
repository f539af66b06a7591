"""Closed forms of MODEL.md section 3: the numbers the Monte Carlo must reproduce.

These are the "plan" numbers: mean absorbed photons per pulse from the laser
power, detected core and shell photon rates (phi_1, phi_2 [paper]), pulsed
g2(0) of the reduced X/BX model and of the general N-exciton ladder, the
time-gated g2(0), and the effect of uncorrelated background.  Every function
is vectorised over the mean absorbed photon number ``n`` (a float or an
array) and returns floats or arrays of the same shape.

The simulator (:func:`qdsim.simulate`) draws photons from the generative
model of MODEL.md section 2; the tests hold it to these formulas within
statistical error.  Conventions: SI units, ``n`` = mean number of absorbed
photons per pulse, absorption ``m ~ Poisson(n)``.

References
----------
.. [paper] Dhawan et al., "Feature-Resolved Photoluminescence Analysis:
   Probing Emission Beyond Conventional Photon Statistics".
.. [nair] G. Nair, J. Zhao, M. G. Bawendi, Nano Lett. 11, 1136 (2011),
   doi:10.1021/nl104054t.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import special

__all__ = [
    "C_LIGHT",
    "H_PLANCK",
    "POISSON_TAIL",
    "absorbed_pmf",
    "diffraction_limited_spot_area_m2",
    "emitted_per_pulse",
    "g2_background_corrected",
    "g2_zero_gated",
    "g2_zero_ladder",
    "g2_zero_reduced",
    "g2_zero_with_background",
    "ladder_levels",
    "mean_absorbed_photons",
    "nonparalysable_rate",
    "phi_1",
    "phi_2",
    "photon_energy_j",
    "photon_moments",
    "poisson_cutoff",
    "power_for_mean_absorbed",
]

H_PLANCK = 6.62607015e-34  # J s (exact, SI 2019)
C_LIGHT = 299_792_458.0  # m / s (exact)
POISSON_TAIL = 1e-15  # Poisson sums stop where the remaining tail is below this

RadiativeScaling = Literal["quadratic", "linear", "constant"]
AugerScaling = Literal["statistical", "quadratic", "constant"]


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


# -- excitation ---------------------------------------------------------------
def photon_energy_j(wavelength_m: float) -> float:
    """Energy of one photon, ``h c / lambda``, in joules.

    >>> round(photon_energy_j(405e-9) / 1.602176634e-19, 3)  # eV
    3.061
    """
    return H_PLANCK * C_LIGHT / wavelength_m


def diffraction_limited_spot_area_m2(wavelength_m: float, numerical_aperture: float) -> float:
    """Area of the Airy disk, ``pi (0.61 lambda / NA)^2``, in m^2.

    The radius is the first zero of the Airy pattern (Rayleigh criterion).
    At 405 nm and NA 0.8 it is 3.0e-9 cm^2, the value MODEL.md quotes (it
    gives n ~ 0.06 at 0.01 uW and n ~ 25 at 4 uW with sigma_abs =
    2.3e-14 cm^2).

    >>> round(diffraction_limited_spot_area_m2(405e-9, 0.8) * 1e4, 11)  # cm^2
    3e-09
    """
    radius_m = 0.61 * wavelength_m / numerical_aperture
    return math.pi * radius_m**2


def mean_absorbed_photons(
    power_w: float | np.ndarray,
    *,
    sigma_abs_m2: float,
    spot_area_m2: float,
    wavelength_m: float,
    rep_rate_hz: float,
) -> float | np.ndarray:
    """Mean absorbed photons per pulse, ``n = sigma_abs P / (A_spot (h c / lambda) f_rep)``.

    Parameters
    ----------
    power_w : float or ndarray
        Average laser power at the sample, in watts.
    sigma_abs_m2 : float
        Absorption cross-section at the laser wavelength, in m^2.
    spot_area_m2 : float
        Area of the excitation spot, in m^2.
    wavelength_m : float
        Laser wavelength, in metres.
    rep_rate_hz : float
        Pulse repetition rate, in hertz.

    Examples
    --------
    >>> a = diffraction_limited_spot_area_m2(405e-9, 0.8)
    >>> kw = dict(sigma_abs_m2=2.3e-18, spot_area_m2=a, wavelength_m=405e-9, rep_rate_hz=2.5e6)
    >>> round(mean_absorbed_photons(0.01e-6, **kw), 4), round(mean_absorbed_photons(4e-6, **kw), 2)
    (0.0626, 25.04)
    """
    energy = photon_energy_j(wavelength_m)
    n = sigma_abs_m2 * np.asarray(power_w, float) / (spot_area_m2 * energy * rep_rate_hz)
    return _out(n)


def power_for_mean_absorbed(
    n: float | np.ndarray,
    *,
    sigma_abs_m2: float,
    spot_area_m2: float,
    wavelength_m: float,
    rep_rate_hz: float,
) -> float | np.ndarray:
    """Average power (W) that gives ``n`` absorbed photons per pulse (inverse of
    :func:`mean_absorbed_photons`)."""
    energy = photon_energy_j(wavelength_m)
    return _out(np.asarray(n, float) * spot_area_m2 * energy * rep_rate_hz / sigma_abs_m2)


def poisson_cutoff(n: float, tail: float = POISSON_TAIL) -> int:
    """Smallest ``M`` with ``P(m > M; n) < tail`` (at least 2).

    >>> poisson_cutoff(1.0), poisson_cutoff(25.0)
    (17, 74)
    """
    if n <= 0:
        return 2
    m = max(2, int(n + 10 * math.sqrt(n) + 10))
    # P(m > M) = regularised lower incomplete gamma P(M + 1, n)
    while m > 2 and special.gammainc(m, n) < tail:
        m -= 1
    while special.gammainc(m + 1, n) >= tail:
        m += 1
    return m


def absorbed_pmf(n: float, m_max: int) -> np.ndarray:
    """``P(m; n)`` for m = 0..m_max, renormalised to sum to 1 (float64, shape (m_max+1,))."""
    m = np.arange(m_max + 1)
    if n <= 0:
        pmf = np.zeros(m_max + 1)
        pmf[0] = 1.0
        return pmf
    pmf = np.exp(m * math.log(n) - n - special.gammaln(m + 1))
    return pmf / pmf.sum()


# -- emission ladders -----------------------------------------------------------
def ladder_levels(
    *,
    eta_x: float,
    tau_x_s: float,
    eta_bx: float,
    tau_bx_s: float,
    n_levels: int,
    radiative_scaling: RadiativeScaling = "quadratic",
    auger_scaling: AugerScaling = "statistical",
) -> tuple[np.ndarray, np.ndarray]:
    """Emission yield and lifetime of the levels N = 1..n_levels of the exciton ladder.

    Level N (N excitons present) decays to N - 1 with total rate
    ``k_r(N) + k_A(N)`` and emits a photon with probability
    ``eta_N = k_r(N) / (k_r(N) + k_A(N))``.  Level 1 is the exciton
    (``eta_x``, ``tau_x_s``) and level 2 the biexciton (``eta_bx``,
    ``tau_bx_s``), both as measured.  Levels N >= 3 scale from the
    biexciton:

    - ``radiative_scaling``: ``k_r(N) = k_r(2) s(N) / s(2)`` with
      s(N) = N^2 ("quadratic", statistical), N ("linear") or 1 ("constant");
    - ``auger_scaling``: ``k_A(N) = k_A(2) a(N) / a(2)`` with
      a(N) = N^2 (N - 1) / 4 ("statistical", tau_A,3 = tau_A,2 / 4.5),
      N^2 ("quadratic", Klimov et al., Science 287, 1011 (2000)) or 1.

    With the statistical laws from N = 1 as well, ``eta_bx = 4 tau_bx /
    tau_x,r``; :func:`qdsim.params.ladder_state` builds such a state from rates.

    Returns
    -------
    eta : ndarray of float64, shape (n_levels,)
        ``eta[N - 1]`` is the emission yield of level N.
    tau_s : ndarray of float64, shape (n_levels,)
        ``tau_s[N - 1]`` is the lifetime of level N, in seconds.

    Examples
    --------
    >>> eta, tau = ladder_levels(eta_x=1.0, tau_x_s=60e-9, eta_bx=0.2, tau_bx_s=3e-9, n_levels=3)
    >>> eta.round(4).tolist(), (tau * 1e9).round(4).tolist()
    ([1.0, 0.2, 0.1111], [60.0, 3.0, 0.7407])
    """
    n_levels = int(n_levels)
    eta = np.empty(n_levels)
    tau = np.empty(n_levels)
    eta[0], tau[0] = eta_x, tau_x_s
    if n_levels >= 2:
        eta[1], tau[1] = eta_bx, tau_bx_s
    if n_levels >= 3:
        k_r2 = eta_bx / tau_bx_s
        k_a2 = (1.0 - eta_bx) / tau_bx_s
        big_n = np.arange(3, n_levels + 1, dtype=float)
        s_r = {"quadratic": big_n**2 / 4.0, "linear": big_n / 2.0, "constant": 1.0 + 0 * big_n}
        s_a = {
            "statistical": big_n**2 * (big_n - 1.0) / 4.0,
            "quadratic": big_n**2 / 4.0,
            "constant": 1.0 + 0 * big_n,
        }
        k_r = k_r2 * s_r[radiative_scaling]
        k_a = k_a2 * s_a[auger_scaling]
        total = k_r + k_a
        eta[2:] = k_r / total
        tau[2:] = 1.0 / total
    return eta, tau


def _moments_one(n: float, eta_levels: np.ndarray, eta_h: float, core: int) -> tuple:
    m_max = max(poisson_cutoff(n), core)
    pmf = absorbed_pmf(n, m_max)
    big_n = np.arange(m_max + 1)
    eta = np.zeros(m_max + 1)
    k = min(core, len(eta_levels), m_max)
    eta[1 : k + 1] = eta_levels[:k]
    s1_core = np.cumsum(eta)  # S1(N) for N <= core, core levels only
    s2_core = np.cumsum(eta**2)
    capped = np.minimum(big_n, core)
    shell = np.maximum(big_n - core, 0)
    s1 = s1_core[capped] + shell * eta_h
    s2 = s2_core[capped] + shell * eta_h**2
    mean = float(pmf @ s1)
    fact2 = float(pmf @ (s1**2 - s2))
    return mean, fact2


def photon_moments(
    n: float | np.ndarray,
    eta_levels: np.ndarray,
    *,
    eta_h: float = 0.0,
    core_capacity: int | None = None,
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """First and second factorial moments of the photons emitted per pulse.

    ``m ~ Poisson(n)`` absorbed photons make ``N = min(m, core_capacity)``
    core excitons that cascade down the ladder (level k emits with
    ``eta_levels[k - 1]``, independently) and ``max(m - core_capacity, 0)``
    shell carriers that each emit with ``eta_h``.  With ``S1 = sum eta``,
    ``S2 = sum eta^2`` over the emitting steps of a pulse,
    ``E[m] = E[S1]`` and ``E[m (m - 1)] = E[S1^2 - S2]`` (MODEL.md section 3).

    Parameters
    ----------
    n : float or ndarray
        Mean absorbed photons per pulse.
    eta_levels : array_like, shape (K,)
        Emission yield of ladder levels 1..K.
    eta_h : float
        Emission yield of each shell carrier.
    core_capacity : int, optional
        Most core excitons (2 in the paper's reduced model).  Default: the
        length of ``eta_levels`` (levels beyond emit nothing).

    Returns
    -------
    mean, fact2 : float or ndarray
        ``E[m]`` and ``E[m (m - 1)]`` per pulse.
    """
    eta_levels = np.asarray(eta_levels, float)
    core = len(eta_levels) if core_capacity is None else int(core_capacity)
    n_arr = np.asarray(n, float)
    res = np.array([_moments_one(float(v), eta_levels, eta_h, core) for v in n_arr.ravel()])
    mean = res[:, 0].reshape(n_arr.shape)
    fact2 = res[:, 1].reshape(n_arr.shape)
    return _out(mean), _out(fact2)


def emitted_per_pulse(
    n: float,
    eta_levels: np.ndarray,
    *,
    eta_h: float = 0.0,
    core_capacity: int | None = None,
) -> dict[str, float]:
    """Mean photons emitted per pulse by each process: "x", "bx", "mx", "shell".

    X is level 1, BX level 2, MX levels >= 3 of the ladder; shell photons come
    from the ``max(m - core_capacity, 0)`` carriers beyond the core.

    >>> e = emitted_per_pulse(1.0, [1.0, 0.21], eta_h=0.07, core_capacity=2)
    >>> {k: round(v, 5) for k, v in e.items()}
    {'x': 0.63212, 'bx': 0.05549, 'mx': 0.0, 'shell': 0.00725}
    """
    eta_levels = np.asarray(eta_levels, float)
    core = len(eta_levels) if core_capacity is None else int(core_capacity)
    m_max = max(poisson_cutoff(n), core)
    pmf = absorbed_pmf(n, m_max)
    surv = pmf[::-1].cumsum()[::-1]  # surv[k] = P(m >= k)
    k = min(core, len(eta_levels), m_max)
    per_level = eta_levels[:k] * surv[1 : k + 1]
    shell = eta_h * float(pmf @ np.maximum(np.arange(m_max + 1) - core, 0))
    return {
        "x": float(per_level[0]) if k >= 1 else 0.0,
        "bx": float(per_level[1]) if k >= 2 else 0.0,
        "mx": float(per_level[2:].sum()),
        "shell": shell,
    }


# -- rates ------------------------------------------------------------------------
def phi_1(
    n: float | np.ndarray, *, eta_x: float, eta_bx: float, eta_c: float, rep_rate_hz: float
) -> float | np.ndarray:
    """Detected core photon rate [paper], in counts per second.

    ``phi_1 = eta_C f_rep [eta_X P(1; n) + (eta_X + eta_BX) P(>1; n)]``.

    >>> round(phi_1(1.0, eta_x=1.0, eta_bx=0.21, eta_c=0.01, rep_rate_hz=2.5e6), 1)
    17190.3
    """
    n = np.asarray(n, float)
    p1 = n * np.exp(-n)
    p_gt1 = -np.expm1(-n) - p1
    return _out(eta_c * rep_rate_hz * (eta_x * p1 + (eta_x + eta_bx) * p_gt1))


def phi_2(
    n: float | np.ndarray,
    *,
    eta_h: float,
    eta_c: float,
    rep_rate_hz: float,
    t_max: int = 50,
) -> float | np.ndarray:
    """Detected shell photon rate [paper], in counts per second.

    ``phi_2 = eta_C f_rep sum_{m=3..T} P(m; n) (m - 2) eta_H`` with
    ``T = t_max`` (50 in the paper; use a larger one for n > 25).

    >>> round(phi_2(1.0, eta_h=0.07, eta_c=0.01, rep_rate_hz=2.5e6), 2)
    181.37
    """
    n = np.asarray(n, float)
    m = np.arange(3, t_max + 1)
    logp = m * np.log(np.maximum(n[..., None], 1e-300)) - n[..., None] - special.gammaln(m + 1)
    total = (np.exp(logp) * (m - 2)).sum(axis=-1)
    return _out(eta_c * rep_rate_hz * eta_h * total)


def nonparalysable_rate(rate_in_hz: float | np.ndarray, dead_time_s: float) -> float | np.ndarray:
    """Detected rate behind a non-paralysable dead time: ``r / (1 + r tau_d)``.

    Exact for a Poisson input (Knoll, Radiation Detection and Measurement).

    >>> round(nonparalysable_rate(1e6, 77e-9))
    928505
    """
    r = np.asarray(rate_in_hz, float)
    return _out(r / (1.0 + r * dead_time_s))


# -- g2 -----------------------------------------------------------------------------
def g2_zero_reduced(n: float | np.ndarray, *, eta_x: float, eta_bx: float) -> float | np.ndarray:
    """Pulsed g2(0) of the reduced model (X and BX only), MODEL.md section 3.

    ``g2(0) = 2 eta_X eta_BX P(>=2) / (eta_X P(>=1) + eta_BX P(>=2))^2``;
    it tends to ``eta_BX / eta_X`` at weak pumping [nair] and to
    ``2 eta_X eta_BX / (eta_X + eta_BX)^2`` at strong pumping.

    >>> [round(g2_zero_reduced(n, eta_x=0.95, eta_bx=0.30), 4) for n in (0.1, 1.0, 3.0)]
    [0.3164, 0.3259, 0.3494]
    """
    n = np.asarray(n, float)
    p_ge1 = -np.expm1(-n)
    p_ge2 = p_ge1 - n * np.exp(-n)
    with np.errstate(invalid="ignore", divide="ignore"):
        g2 = 2 * eta_x * eta_bx * p_ge2 / (eta_x * p_ge1 + eta_bx * p_ge2) ** 2
        # weak-pumping limit where P(>=2) underflows
        small = n < 1e-6
        g2 = np.where(small, eta_x * eta_bx / (eta_x + eta_bx * n / 2) ** 2, g2)
    return _out(g2)


def g2_zero_ladder(
    n: float | np.ndarray,
    eta_levels: np.ndarray,
    *,
    eta_h: float = 0.0,
    core_capacity: int | None = None,
) -> float | np.ndarray:
    """Pulsed g2(0) = E[m (m - 1)] / E[m]^2 of the general ladder (with shell carriers).

    See :func:`photon_moments` for the model.  With ``eta_levels = [eta_X,
    eta_BX]`` and ``eta_h = 0`` it equals :func:`g2_zero_reduced`.

    >>> round(g2_zero_ladder(1.0, [0.95, 0.30]), 4)
    0.3259
    """
    mean, fact2 = photon_moments(n, eta_levels, eta_h=eta_h, core_capacity=core_capacity)
    return _out(np.asarray(fact2) / np.asarray(mean) ** 2)


def g2_zero_gated(
    n: float | np.ndarray,
    *,
    eta_x: float,
    eta_bx: float,
    tau_x_s: float,
    tau_bx_s: float,
    gate_s: float,
) -> float | np.ndarray:
    """Time-gated pulsed g2(0) of the reduced model: photons emitted later than ``gate_s``.

    With ``p1 = P(1; n)``, ``p2 = P(>=2; n)``, ``s_X1 = exp(-t_g / tau_X)``,
    ``s_X2`` the survival of the sum of the BX and X waits and
    ``s_BX = exp(-t_g / tau_BX)``: ``E[m] = eta_X (p1 s_X1 + p2 s_X2) +
    eta_BX p2 s_BX`` and ``E[m (m - 1)] = 2 eta_X eta_BX p2 s_BX``.

    >>> kw = dict(eta_x=1.0, eta_bx=0.3, tau_x_s=60e-9, tau_bx_s=2e-9)
    >>> [round(g2_zero_gated(1.0, gate_s=g, **kw), 3) for g in (0.0, 2.5e-9)]
    [0.313, 0.113]
    """
    n = np.asarray(n, float)
    p1 = n * np.exp(-n)
    p2 = -np.expm1(-n) - p1
    s_x1 = math.exp(-gate_s / tau_x_s)
    s_bx = math.exp(-gate_s / tau_bx_s)
    if tau_x_s == tau_bx_s:
        s_x2 = (1.0 + gate_s / tau_x_s) * s_x1
    else:
        s_x2 = (tau_x_s * s_x1 - tau_bx_s * s_bx) / (tau_x_s - tau_bx_s)
    mean = eta_x * (p1 * s_x1 + p2 * s_x2) + eta_bx * p2 * s_bx
    fact2 = 2 * eta_x * eta_bx * p2 * s_bx
    return _out(fact2 / mean**2)


def g2_zero_with_background(
    g2_signal: float | np.ndarray,
    mu_signal: float | np.ndarray,
    mu_background: float | np.ndarray,
) -> float | np.ndarray:
    """Measured g2(0) with uncorrelated background, per detector and per pulse.

    ``g2_meas = (M_s + 2 mu_s mu_b + mu_b^2) / (mu_s + mu_b)^2`` where
    ``mu_s`` is the mean signal count per pulse on each detector,
    ``M_s = g2_signal mu_s^2`` the mean product of the two detectors' signal
    counts in one pulse, and ``mu_b`` the background count per pulse per
    detector (dark counts and flat background count ``rate x period``).

    >>> round(g2_zero_with_background(0.0, 1e-3, 1e-3), 3)
    0.75
    """
    mu_s = np.asarray(mu_signal, float)
    mu_b = np.asarray(mu_background, float)
    m_s = np.asarray(g2_signal, float) * mu_s**2
    return _out((m_s + 2 * mu_s * mu_b + mu_b**2) / (mu_s + mu_b) ** 2)


def g2_background_corrected(
    g2_raw: float | np.ndarray, rho_a: float | np.ndarray, rho_b: float | np.ndarray
) -> float | np.ndarray:
    """Background-corrected g2(0): ``(g2_raw - (1 - rho_a rho_b)) / (rho_a rho_b)``.

    ``rho = S / (S + B)`` is the signal fraction on each channel.

    >>> round(g2_background_corrected(0.75, 0.5, 0.5), 6)
    0.0
    """
    rr = np.asarray(rho_a, float) * np.asarray(rho_b, float)
    return _out((np.asarray(g2_raw, float) - (1.0 - rr)) / rr)
