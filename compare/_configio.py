"""Experiment configs: fields declared once (default, range, meaning), checked generically,
parsed from ``--set`` strings, and written to / read back from a run's manifest.

A config field is declared with :func:`param`; its range and help text live in the field's
metadata, so validation, ``theorysim show NAME`` and the error messages all read one
declaration:

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Demo(ExperimentConfig):
...     P_min: int = param(10, "smallest training set", lo=1)
...     P_max: int = param(100, "largest training set", lo="P_min")
>>> Demo(P_max=50).P_max
50
>>> Demo(P_max=5)
Traceback (most recent call last):
...
ValueError: P_max must be in [10, 1000000] (P_min = 10), got 5

(an int field without ``hi`` is bounded by :data:`MAX_COUNT` = 10^6, a float field without
``lo``/``hi`` by -/+ :data:`MAX_MAGNITUDE` = 10^9).
>>> config_from_dict(Demo, config_to_dict(Demo(P_min=3))) == Demo(P_min=3)
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any

from theorysim.checks import check_bool, check_choice, check_scalar

__all__ = ["MAX_COUNT", "MAX_MAGNITUDE", "ExperimentConfig", "config_from_dict", "config_hash",
           "config_to_dict", "describe_config", "field_bounds", "param", "parse_field"]

#: the upper bound of an int field (or int-tuple entry) that declares none: every count
#: (seeds, sizes, steps) is bounded, so an absurd value (``seeds=1e9``) is refused up front
MAX_COUNT = 10**6
#: the bound on |value| of a float field (or float-tuple entry) that declares no ``hi`` / ``lo``:
#: finite but absurd scalars (``ridge=1e300``: ``P * ridge`` overflows float32) are refused
#: with the field named before any work, not inside every simulated point
MAX_MAGNITUDE = 1e9


def param(default, help: str, *, lo: float | str = -math.inf, hi: float | str = math.inf,
          lo_open: bool = False, hi_open: bool = False, inf_ok: bool = False,
          choices: tuple[str, ...] | None = None, min_len: int = 1):
    """A config field: its default, one line of meaning and its allowed range.

    Args:
        default: the quick preset's value.
        help: what the field means (shown by ``theorysim show``).
        lo, hi: bounds (inclusive unless ``lo_open``/``hi_open``); a string names another
            field of the same config whose value is the bound (e.g. ``lo="P_min"``). An int
            field without ``hi`` is bounded by :data:`MAX_COUNT`, a float field without
            ``hi`` (``lo``) by :data:`MAX_MAGNITUDE` (its negative).
        inf_ok: ``inf`` is allowed (e.g. ``P = inf``: the population limit).
        choices: the allowed strings of a ``str`` field.
        min_len: the least number of entries of a tuple field.
    """
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
            "inf_ok": inf_ok, "choices": choices, "min_len": min_len}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Base of experiment configs: fields declared with :func:`param`, the quick preset as
    defaults, every field an int, float, bool, str or tuple of those (hashable, JSON-able,
    settable with ``--set key=value``; tuples as ``1,2,3``; numeric tuples are grids, strictly
    increasing).

    ``__post_init__`` checks every field against its declared range (``ValueError`` naming the
    field) and then calls :meth:`check` for constraints across fields.
    """

    seed: int = param(0, "root of every random draw of the experiment", lo=0, hi=2**31 - 1)

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_field(self, f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Constraints across fields (override; raise ``ValueError`` naming the field)."""


def _hi(meta, tp):
    """The declared upper bound; :data:`MAX_COUNT` (:data:`MAX_MAGNITUDE`) for an int (a
    float) without one."""
    hi = meta.get("hi", math.inf) if meta else math.inf
    default = {int: MAX_COUNT, float: MAX_MAGNITUDE}.get(tp, math.inf)
    return default if hi == math.inf else hi


def _lo(meta, tp):
    """The declared lower bound; -:data:`MAX_MAGNITUDE` for a float without one."""
    lo = meta.get("lo", -math.inf) if meta else -math.inf
    return -MAX_MAGNITUDE if tp is float and lo == -math.inf else lo


def _bound(cfg, meta, which: str, tp=None) -> tuple[float, str]:
    b = _hi(meta, tp) if which == "hi" else _lo(meta, tp)
    if isinstance(b, str):
        return getattr(cfg, b), f" ({b} = {getattr(cfg, b)})"
    return b, ""


def field_bounds(cfg) -> dict[str, tuple[float, float]]:
    """``name -> (lo, hi)``: the bounds every numeric field (or tuple entry) of the config
    ``cfg`` is checked against, with bounds naming other fields resolved."""
    hints = typing.get_type_hints(type(cfg))
    out = {}
    for f in dataclasses.fields(cfg):
        tp = hints[f.name]
        tp = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
        if tp in (int, float):
            out[f.name] = (_bound(cfg, f.metadata, "lo", tp)[0],
                           _bound(cfg, f.metadata, "hi", tp)[0])
    return out


def _check_field(cfg, f: dataclasses.Field, tp, value):
    meta = f.metadata
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, tuple | list):
            raise ValueError(f"{f.name} must be a tuple, got {value!r}")
        if len(value) < meta.get("min_len", 1):
            raise ValueError(f"{f.name} must have at least {meta.get('min_len', 1)} "
                             f"entries, got {len(value)}")
        elem = typing.get_args(tp)[0]
        out = tuple(_check_scalar_field(cfg, f.name, meta, elem, v) for v in value)
        if elem in (int, float) and any(b <= a for a, b in zip(out[:-1], out[1:], strict=True)):
            # a grid: repeats would be one sweep point twice, and fits need distinct values
            raise ValueError(f"{f.name} must be strictly increasing (a grid, no repeats), got "
                             f"{_text(out)}")
        return out
    return _check_scalar_field(cfg, f.name, meta, tp, value)


def _check_scalar_field(cfg, name: str, meta, tp, value):
    if tp is bool:
        return check_bool(name, value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return check_choice(name, value, meta["choices"]) if meta.get("choices") else value
    if meta.get("inf_ok") and isinstance(value, float) and value == math.inf:
        return value
    if tp is float and isinstance(value, numbers.Real) and math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo, lo_txt = _bound(cfg, meta, "lo", tp)
    hi, hi_txt = _bound(cfg, meta, "hi", tp)
    try:
        v = check_scalar(name, value, lo=lo, hi=hi, lo_open=meta.get("lo_open", False),
                         hi_open=meta.get("hi_open", False), integer=tp is int)
    except ValueError as err:
        if "must be in" not in str(err):
            raise
        raise ValueError(str(err).replace(", got", f"{lo_txt}{hi_txt}, got", 1)) from None
    return float(v) if tp is float else v


def describe_config(cfg_type: type, presets: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> list[dict[str, str]]:
    """One row per field: key, type, default (quick), other presets' values, range, meaning."""
    hints = typing.get_type_hints(cfg_type)
    rows = []
    for f in dataclasses.fields(cfg_type):
        meta = f.metadata
        tp = hints[f.name]
        elem = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
        row = {"key": f.name, "type": _type_name(tp), "default": _text(f.default),
               "range": _range_text(meta, elem), "meaning": meta.get("help", "")}
        for name, values in (presets or {}).items():
            if f.name in values and name != "quick":
                row[name] = _text(values[f.name])
        rows.append(row)
    return rows


def _type_name(tp) -> str:
    if typing.get_origin(tp) is tuple:
        return f"{typing.get_args(tp)[0].__name__},..."
    return tp.__name__


def _text(v) -> str:
    if isinstance(v, tuple):
        return ",".join(map(_text, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _range_text(meta, tp) -> str:
    if not meta:
        return ""
    if meta.get("choices"):
        return " | ".join(meta["choices"])
    if tp is bool or tp is str:
        return ""
    lo, hi = _lo(meta, tp), _hi(meta, tp)
    left = "(" if meta["lo_open"] else "["
    right = ")" if meta["hi_open"] or hi == math.inf else "]"
    text = f"{left}{_text(lo)}, {_text(hi)}{right}"
    return text + (" or inf" if meta.get("inf_ok") else "")


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as JSON-able values (tuples as lists, ``inf`` as the string ``'inf'``)."""
    return {f.name: _jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


def config_from_dict(cfg_type: type, values: Mapping[str, Any]) -> ExperimentConfig:
    """Inverse of :func:`config_to_dict` (reads a manifest back); ``ValueError`` on unknown or
    bad keys."""
    hints = typing.get_type_hints(cfg_type)
    known = {f.name for f in dataclasses.fields(cfg_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown} for {cfg_type.__name__}")
    out = {}
    for key, v in values.items():
        if typing.get_origin(hints[key]) is tuple:
            elem = typing.get_args(hints[key])[0]
            out[key] = tuple(_from_json(elem, x) for x in v) if isinstance(v, list) else v
        else:
            out[key] = _from_json(hints[key], v)
    return cfg_type(**out)


def _from_json(tp, v):
    if tp is float and isinstance(v, str | int) and not isinstance(v, bool):
        return float(v)
    return v


def config_hash(name: str, cfg: ExperimentConfig) -> str:
    """A short stable hash of the experiment name and its config (the run directory name)."""
    blob = json.dumps({"experiment": name, "config": config_to_dict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def parse_field(cfg_type: type, key: str, text: str) -> Any:
    """Parse ``--set key=text`` for a field of ``cfg_type``; ``ValueError`` on unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cfg_type)}
    if key not in fields:
        raise ValueError(f"unknown --set key {key!r}; allowed keys: {', '.join(sorted(fields))}"
                         " (see `theorysim show NAME`)")
    return _parse_value(key, typing.get_type_hints(cfg_type)[key], text)


def _parse_value(key: str, tp, text: str):
    if typing.get_origin(tp) is tuple:
        elem = typing.get_args(tp)[0]
        return tuple(_parse_value(key, elem, p.strip()) for p in text.split(",") if p.strip())
    try:
        if tp is bool:
            low = text.strip().lower()
            if low not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return low in {"true", "1", "yes"}
        if tp is int:
            as_float = float(text)
            if not math.isfinite(as_float) or as_float != int(as_float):
                raise ValueError
            return int(as_float)
        if tp is float:
            return float(text)
        return str(text)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"--set {key}={text!r}: expected {tp.__name__}") from err
