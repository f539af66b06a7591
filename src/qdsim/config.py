"""Setups from TOML files and plain dicts, with units, validated at load.

The schema mirrors the dataclasses of :mod:`qdsim.params`: one table per
component (``[excitation]``, ``[emitter]``, ``[emitter.states.NAME]``,
``[[blinking.transitions]]``, ``[spectra.x]``, ``[detection]``,
``[[detection.detectors]]``, ``[spectrometer]``).  Quantities are written
with units ("60 ns", "2.5 MHz", "2.3e-14 cm^2", "21%") or as SI numbers.
Keys are the field names without their unit suffix (``tau_x``); the
suffixed name with an SI number (``tau_x_s = 6e-8``) is accepted too, which
is what :meth:`Setup.to_dict` writes.  Unknown keys, wrong types and values
out of range raise ValueError naming the key path, e.g.
``emitter.states.grey.eta_x = 1.3 must be in [0, 1]``.  See
docs/qdsim_config.md for the schema and examples/paper_qd.toml.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from qdio.units import parse_quantity

from . import params as p
from .params import field_key

__all__ = ["load_config", "load_setup", "setup_from_dict"]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> Any:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _quantity(value: Any, unit: str | None, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{path} = {value!r}: expected a number or a quantity string")
    return parse_quantity(value, unit or "1", name=path)


def _convert(value: Any, tp: Any, unit: str | None, path: str, base: Path | None) -> Any:
    tp = _unwrap_optional(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{path} = {value!r}: expected a table")
        return _build(tp, value, path + ".", base)
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path} = {value!r}: expected an array")
        return tuple(_convert(v, item_tp, unit, f"{path}[{i}]", base) for i, v in enumerate(value))
    if tp is float:
        return _quantity(value, unit, path)
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ValueError(f"{path} = {value!r}: expected an integer")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path} = {value!r}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{path} = {value!r}: expected a string")
        return value
    raise TypeError(f"{path}: unsupported field type {tp!r}")  # pragma: no cover


def _build(cls: type, data: dict[str, Any], prefix: str, base: Path | None) -> Any:
    hints = _hints(cls)
    by_key: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        by_key[f.name] = f
        by_key[field_key(f)] = f
    data = dict(data)
    kwargs: dict[str, Any] = {}
    if cls is p.Irf and "histogram_file" in data:
        kwargs["histogram"] = _load_histogram(data.pop("histogram_file"), prefix, base)
    if cls is p.Emitter and "states" in data:
        kwargs["states"] = _states(data.pop("states"), prefix + "states", base)
    for key, value in data.items():
        f = by_key.get(key)
        if f is None:
            allowed = sorted({field_key(f) for f in dataclasses.fields(cls)})
            raise ValueError(f"unknown key {prefix}{key} (allowed: {', '.join(allowed)})")
        if f.name in kwargs:
            raise ValueError(f"{prefix}{key}: {f.name} is given twice")
        kwargs[f.name] = _convert(value, hints[f.name], f.metadata.get("unit"), prefix + key, base)
    return cls(**kwargs)


def _states(value: Any, path: str, base: Path | None) -> tuple[p.BlinkState, ...]:
    if isinstance(value, dict):
        out = []
        for name, table in value.items():
            if not isinstance(table, dict):
                raise ValueError(f"{path}.{name} = {table!r}: expected a table")
            if "name" in table and table["name"] != name:
                raise ValueError(f"{path}.{name}.name = {table['name']!r} differs from the key")
            table = {k: v for k, v in table.items() if k != "name"}
            out.append(_build(p.BlinkState, {"name": name, **table}, f"{path}.{name}.", base))
        return tuple(out)
    if isinstance(value, list):
        return tuple(_build(p.BlinkState, t, f"{path}[{i}].", base) for i, t in enumerate(value))
    raise ValueError(f"{path} = {value!r}: expected tables named after the states")


def _load_histogram(value: Any, prefix: str, base: Path | None) -> tuple[float, ...]:
    if not isinstance(value, str):
        raise ValueError(f"{prefix}histogram_file = {value!r}: expected a file name")
    path = Path(value)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        arr = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=1)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{prefix}histogram_file = {value!r}: cannot read {path}: {exc}") from exc
    arr = np.asarray(arr, float)
    if arr.ndim == 2:  # two columns: time, counts
        arr = arr[:, -1]
    return tuple(float(x) for x in arr.ravel())


def setup_from_dict(data: dict[str, Any], *, base_dir: str | os.PathLike | None = None) -> p.Setup:
    """Build and validate a :class:`~qdsim.params.Setup` from a nested dict (parsed TOML).

    Parameters
    ----------
    data : dict
        Tables as in the TOML schema; missing keys take the dataclass
        defaults (which are the paper's values).
    base_dir : path-like, optional
        Folder that relative file names (``irf.histogram_file``) refer to.

    Raises
    ------
    ValueError
        Unknown keys, wrong types, unparsable quantities and values out of
        range, naming the key path and the value.

    Examples
    --------
    >>> s = setup_from_dict({"emitter": {"states": {"on": {"tau_x": "50 ns"}}}})
    >>> s.emitter.states[0].tau_x_s
    5e-08
    >>> setup_from_dict({"emitter": {"states": {"grey": {"eta_x": 1.3}}}})
    Traceback (most recent call last):
    ...
    ValueError: emitter.states.grey.eta_x = 1.3 must be in [0, 1]
    """
    if not isinstance(data, dict):
        raise ValueError(f"setup: expected a table, got {type(data).__name__}")
    base = None if base_dir is None else Path(base_dir)
    setup = _build(p.Setup, data, "", base)
    return setup.validate()


def load_config(path: str | os.PathLike) -> p.Setup:
    """Read a TOML setup file (schema: docs/qdsim_config.md) and validate it.

    Raises
    ------
    ValueError
        Invalid TOML (with the file name) or invalid values (naming the key).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    data.setdefault("name", path.stem)
    return setup_from_dict(data, base_dir=path.parent)


def load_setup(config: str | os.PathLike) -> p.Setup:
    """A setup from a preset name ("paper_qd", "blinking_qd") or a TOML file path.

    >>> load_setup("paper_qd").name
    'paper_qd'
    """
    from . import presets

    text = os.fspath(config)
    if text in presets.PRESETS:
        return presets.PRESETS[text]()
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"{text!r} is neither a preset ({', '.join(sorted(presets.PRESETS))}) nor a file"
        )
    return load_config(path)
