"""Ready-made setups: the paper's giant quantum dot, without and with blinking.

``paper_qd()`` takes every number the paper gives [paper]: sigma_abs =
2.3e-14 cm^2, eta_C = 0.01, eta_X = 1, eta_BX = 0.21, eta_H = 0.07, 405 nm,
2.5 MHz, and a diffraction-limited spot through an NA 0.8 objective
(``pi (0.61 lambda / NA)^2`` = 3.0e-9 cm^2, so n = 0.063 at 0.01 uW, 1.06 at
0.17 uW and 25 at 4 uW, as MODEL.md says).  Numbers the paper does not give
come from MODEL.md section 2: tau_X = 60 ns (giant QDs: 30-100 ns);
tau_BX = 3.15 ns, the value for which the statistical scaling
``eta_BX = 4 tau_BX / tau_X,r`` gives the paper's eta_BX = 0.21; shell
emission after 0.5 ns; pulses of 70 ps; two SPADs behind a 50/50 splitter
(77 ns dead time, 50 /s dark counts, 2 % afterpulsing 200 ns after the dead
time, IRF 50 ps FWHM with a 5 % diffusion tail of 150 ps, peak 1 ns after
the sync), 10 /s flat background and 20 /s laser leakage at 1 uW per
detector, the 473 nm long pass, and a PicoHarp 300 (128 ps bins, 4096 bins,
95 ns dead time).

``blinking_qd()`` is the same dot with three states like the paper's
Figure 5: bright (the paper's values), grey (QY 0.19, 8.5 ns: Spinicelli et
al., PRL 102, 136801 (2009)) and dark (Auger-quenched, QY 0.02, 1.5 ns),
with dwell times of ms to s and charging rates that grow with the
excitation.  Its detected core rate rises linearly at low power (region R1,
n < 2), falls as the dot spends more time grey and dark (R2, the "unusual"
response with g2(0) rising) and levels off at high power (R3), the
behaviour of the paper's Figure 4.
"""

from __future__ import annotations

from collections.abc import Callable

from .params import (
    Blinking,
    BlinkState,
    Detection,
    Detector,
    Emitter,
    Excitation,
    Irf,
    Setup,
    SpectralFilter,
    Tcspc,
    Transition,
)

__all__ = ["PRESETS", "blinking_qd", "paper_qd"]


def _detector() -> Detector:
    return Detector(
        split=0.5,
        irf=Irf(fwhm_s=50e-12, tail_fraction=0.05, tail_tau_s=150e-12),
        delay_s=1e-9,
        dead_time_s=77e-9,
        dark_rate_hz=50.0,
        afterpulse_probability=0.02,
        afterpulse_delay_s=200e-9,
        background_rate_hz=10.0,
        leakage_rate_hz=20.0,
    )


def paper_qd() -> Setup:
    """The paper's giant CdSe/CdS quantum dot and setup, no blinking.

    >>> s = paper_qd()
    >>> round(s.mean_absorbed(0.17e-6), 2), s.emitter.states[0].eta_bx
    (1.06, 0.21)
    """
    return Setup(
        name="paper_qd",
        excitation=Excitation(
            wavelength_m=405e-9, rep_rate_hz=2.5e6, pulse_fwhm_s=70e-12, numerical_aperture=0.8
        ),
        emitter=Emitter(
            sigma_abs_m2=2.3e-18,
            model="reduced",
            states=(BlinkState("bright", eta_x=1.0, tau_x_s=60e-9, eta_bx=0.21, tau_bx_s=3.15e-9),),
            eta_h=0.07,
            tau_h_s=0.5e-9,
        ),
        blinking=Blinking(),
        detection=Detection(
            eta_c=0.01,
            detectors=(_detector(), _detector()),
            collection_filter=SpectralFilter(lo_m=473e-9),
            leakage_reference_power_w=1e-6,
            tcspc=Tcspc(resolution_s=128e-12, n_bins=4096, dead_time_s=95e-9),
        ),
    )


def blinking_qd() -> Setup:
    """The paper's dot with bright, grey and dark states (Figure 5) and power-dependent charging.

    Switching rates (1/s) at n absorbed photons per pulse: bright -> grey
    2 + 10 n, grey -> bright 40 + 3 n, grey -> dark 1 + 4 n, dark -> grey
    20 + 1.5 n, bright -> dark 0.2 + 0.5 n, dark -> bright 5.

    >>> blinking_qd().state_names
    ('bright', 'grey', 'dark')
    """
    base = paper_qd()
    states = (
        BlinkState("bright", eta_x=1.0, tau_x_s=60e-9, eta_bx=0.21, tau_bx_s=3.15e-9),
        BlinkState("grey", eta_x=0.19, tau_x_s=8.5e-9, eta_bx=0.10, tau_bx_s=1.5e-9),
        BlinkState("dark", eta_x=0.02, tau_x_s=1.5e-9, eta_bx=0.01, tau_bx_s=0.5e-9),
    )
    transitions = (
        Transition("bright", "grey", rate_hz=2.0, rate_slope_hz=10.0),
        Transition("grey", "bright", rate_hz=40.0, rate_slope_hz=3.0),
        Transition("grey", "dark", rate_hz=1.0, rate_slope_hz=4.0),
        Transition("dark", "grey", rate_hz=20.0, rate_slope_hz=1.5),
        Transition("bright", "dark", rate_hz=0.2, rate_slope_hz=0.5),
        Transition("dark", "bright", rate_hz=5.0),
    )
    return Setup(
        name="blinking_qd",
        excitation=base.excitation,
        emitter=Emitter(
            sigma_abs_m2=base.emitter.sigma_abs_m2,
            model="reduced",
            states=states,
            eta_h=base.emitter.eta_h,
            tau_h_s=base.emitter.tau_h_s,
        ),
        blinking=Blinking(transitions=transitions, initial="stationary"),
        detection=base.detection,
    )


PRESETS: dict[str, Callable[[], Setup]] = {"paper_qd": paper_qd, "blinking_qd": blinking_qd}
