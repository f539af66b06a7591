"""Physical quantities as people type them: "2.5ns", "0.17 uW", "2.3e-14 cm^2".

Code works in SI (seconds, watts, metres, hertz, m^2); the command line and
TOML configs accept numbers with units and convert at the edge with
:func:`parse_quantity`.  :func:`format_quantity` does the reverse for
printing.  No unit library: a table of prefixes and base units is enough.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["format_quantity", "parse_quantity"]

_PREFIX = {
    "Y": 24,
    "Z": 21,
    "E": 18,
    "P": 15,
    "T": 12,
    "G": 9,
    "M": 6,
    "k": 3,
    "h": 2,
    "": 0,
    "d": -1,
    "c": -2,
    "m": -3,
    "u": -6,
    "µ": -6,
    "μ": -6,
    "n": -9,
    "p": -12,
    "f": -15,
    "a": -18,
}  # fmt: skip  (decimal exponents)

# unit symbol -> (SI unit it measures, factor to that unit, power applied to the prefix)
_UNITS: dict[str, tuple[str, float, int]] = {
    "s": ("s", 1.0, 1),
    "Hz": ("Hz", 1.0, 1),
    "W": ("W", 1.0, 1),
    "m": ("m", 1.0, 1),
    "m^2": ("m^2", 1.0, 2),
    "m2": ("m^2", 1.0, 2),
    "J": ("J", 1.0, 1),
    "eV": ("J", 1.602176634e-19, 1),
    "min": ("s", 60.0, 0),
    "h": ("s", 3600.0, 0),
    "%": ("1", 0.01, 0),
    "": ("1", 1.0, 0),
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)"
_PATTERN = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\s\d.+-][^\s]*)?\s*$")


def _split_unit(unit: str) -> tuple[str, float, int, str] | None:
    unit = unit.replace("²", "^2").replace("**", "^")
    if unit in _UNITS and unit != "m":
        base, factor, power = _UNITS[unit]
        return base, factor, power, ""
    for sym in sorted(_UNITS, key=len, reverse=True):
        if sym and unit.endswith(sym):
            prefix = unit[: len(unit) - len(sym)]
            if prefix in _PREFIX and _UNITS[sym][2] > 0:
                base, factor, power = _UNITS[sym]
                return base, factor, power, prefix
    return None


def parse_quantity(text: str | float | int, unit: str, *, name: str = "value") -> float:
    """Convert ``text`` (a number with an optional unit) to the SI ``unit``.

    Parameters
    ----------
    text : str or number
        E.g. "2.5ns", "0.17 uW", "2.5 MHz", "2.3e-14 cm^2", "60 s", "1 min".
        A bare number is taken to be in ``unit`` already.
    unit : {"s", "Hz", "W", "m", "m^2", "J", "1"}
        The SI unit wanted.  "1" is dimensionless ("21%" -> 0.21).
    name : str
        Name of the option or key, used in error messages.

    Returns
    -------
    float
        The value in ``unit``.

    Raises
    ------
    ValueError
        Unparsable text, an unknown unit, or a unit that measures something
        else ("5 ns" for a power), naming ``name`` and the text.

    Examples
    --------
    >>> parse_quantity("2.5ns", "s")
    2.5e-09
    >>> parse_quantity("0.17 uW", "W")
    1.7e-07
    >>> parse_quantity("2.3e-14 cm^2", "m^2")
    2.3e-18
    >>> parse_quantity(400e-9, "s")
    4e-07
    """
    if isinstance(text, bool):
        raise ValueError(f"{name}={text!r}: expected a number with unit {unit!r}")
    if isinstance(text, (int, float)):
        return float(text)
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"{name}={text!r}: expected a number with a unit, e.g. '2.5 {unit}'")
    sym = match["unit"] or ""
    split = _split_unit(sym)
    if split is None:
        raise ValueError(f"{name}={text!r}: unknown unit {sym!r} (expected {unit!r})")
    base, factor, power, prefix = split
    if sym and base != unit:
        raise ValueError(f"{name}={text!r}: {sym!r} is not a unit of {unit!r}")
    # decimal arithmetic so that "0.17 uW" is exactly the float 1.7e-07
    value = Decimal(match["num"]) * Decimal(10) ** (_PREFIX[prefix] * power)
    return float(value) * factor


def format_quantity(value: float, unit: str, digits: int = 4) -> str:
    """``value`` (SI) with an engineering prefix: ``format_quantity(2.5e-9, "s") == "2.5 ns"``.

    >>> format_quantity(1.7e-07, "W")
    '170 nW'
    >>> format_quantity(2.5e6, "Hz")
    '2.5 MHz'
    """
    if not math.isfinite(value) or value == 0 or unit in ("1", "m^2"):
        return f"{value:.{digits}g} {unit}".rstrip() if unit != "1" else f"{value:.{digits}g}"
    exp3 = math.floor(math.log10(abs(value)) / 3) * 3
    exp3 = max(-18, min(exp3, 24))
    prefix = {e: p for p, e in _PREFIX.items() if p in "YZEPTGMkmunpfa"}.get(exp3, "")
    return f"{value / 10.0**exp3:.{digits}g} {prefix}{unit}"
