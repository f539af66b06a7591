"""Command-line quantities: "2.5ns", "0.17uW" parsed to SI and checked, errors naming the option."""

from __future__ import annotations

import math

from qdio.units import parse_quantity

__all__ = ["delay_option", "positive_option"]


def positive_option(text: str, unit: str, name: str) -> float:
    """``text`` (e.g. "10ms") in SI ``unit``, which must be finite and > 0.

    >>> positive_option("10ms", "s", "--trace-bin")
    0.01
    """
    value = parse_quantity(text, unit, name=name)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} {text!r} must be > 0")
    return value


def delay_option(text: str | None, name: str, hint: str = "") -> float | None:
    """A delay option (seconds, >= 0); None stays None.  ``hint`` ends the message.

    >>> delay_option("2.5ns", "--gate")
    2.5e-09
    """
    if text is None:
        return None
    value = parse_quantity(text, "s", name=name)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} {text!r} must be a delay >= 0{hint}")
    return value
