"""Argument checks shared by every package (kernels, theory, sims, compare).

Every check raises ``ValueError`` naming the argument and the allowed range, and runs on the
host before any expensive work. They take array-likes and return NumPy arrays so callers can
validate, then hand clean arrays to jitted code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def as_finite_array(name: str, value, *, ndim: int | None = None, nonneg: bool = False,
                    positive: bool = False, allow_inf: bool = False,
                    min_size: int = 0) -> np.ndarray:
    """Return ``value`` as a float64 NumPy array after checking it.

    Raises ``ValueError`` naming ``name`` when the array has the wrong rank, holds NaN (or inf
    unless ``allow_inf``), is negative with ``nonneg``, is not strictly positive with
    ``positive``, or has fewer than ``min_size`` entries.
    """
    arr = as_real_array(name, value).astype(np.float64, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} must have at least {min_size} entries, got {arr.size}")
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if np.any(bad):
        allowed = "not NaN" if allow_inf else "finite"
        raise ValueError(f"{name} must be {allowed}; found {int(bad.sum())} bad entries")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got min {arr.min()!r}")
    if nonneg and np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got min {arr.min()!r}")
    return arr


def as_real_array(name: str, value) -> np.ndarray:
    """``value`` as a NumPy array of real numbers (integer or float dtype kept), refusing what
    is not already numeric: ``None``, strings and bytes (``'100'`` is not silently parsed),
    booleans, object arrays and ragged nests."""
    if value is None:
        raise ValueError(f"{name} must be a numeric array, got None")
    if isinstance(value, str | bytes):
        raise ValueError(f"{name} must be numeric, got the string {value!r}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nests
        raise ValueError(f"{name} must be a numeric array, got {_short(value)}") from err
    if raw.dtype.kind not in "iuf":
        kind = {"b": "booleans", "U": "strings", "S": "bytes", "O": "objects",
                "c": "complex numbers"}.get(raw.dtype.kind, f"dtype {raw.dtype}")
        raise ValueError(f"{name} must hold real numbers, got {kind}: {_short(value)}")
    return raw


def check_magnitude(name: str, arr: np.ndarray, dtype) -> np.ndarray:
    """Refuse entries of ``arr`` so large that products of two of them (``x x^T``, squares)
    overflow ``dtype``: ``|x| <= sqrt(finfo(dtype).max) / 1000`` (1.8e16 in float32, 1.3e151
    in float64); e.g. ``1e200`` cast to float32 is ``inf``. Returns ``arr``."""
    limit = math.sqrt(float(np.finfo(dtype).max)) / 1e3
    big = float(np.max(np.abs(arr))) if arr.size else 0.0
    if big > limit:
        raise ValueError(f"{name} entries must be at most {limit:.3g} in absolute value in "
                         f"{np.dtype(dtype).name} (products of two would overflow), got "
                         f"{big:.3g}: rescale the inputs"
                         + ("" if np.dtype(dtype).itemsize >= 8 else
                            " or compute in float64 (jax.enable_x64(True))"))
    return arr


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_scalar(name: str, value, *, lo: float = -math.inf, hi: float = math.inf,
                 lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> float:
    """Check a scalar lies in the interval ``lo .. hi`` (open ends as flagged); return it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {_short(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond float64 (e.g. 10**400): out of any usable range
        raise ValueError(f"{name} must be in [{lo}, {hi}] and representable as a float64, "
                         f"got an integer of {len(str(abs(value)))} digits") from None
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    if integer and (math.isinf(v) or int(v) != v):
        raise ValueError(f"{name} must be a finite integer, got {value!r}")
    too_low = v <= lo if lo_open else v < lo
    too_high = v >= hi if hi_open else v > hi
    if too_low or too_high:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}")
    return int(v) if integer else v


#: the largest standard deviation (of weights, biases or data) :func:`check_std` accepts: a
#: layer multiplies by its square, and the product of two such squares (1e304) is still finite
#: in float64; a larger one can only overflow (``W_std=1e200`` raised ``OverflowError`` at
#: ``W_std**2`` before any kernel was computed)
MAX_STD = 1e76


def check_std(name: str, value, *, positive: bool = True) -> float:
    """A standard deviation: finite, ``> 0`` (``>= 0`` unless ``positive``) and at most
    :data:`MAX_STD`; return it as a float.

    >>> check_std("W_std", 1.5)
    1.5
    >>> check_std("W_std", 1e200)
    Traceback (most recent call last):
    ...
    ValueError: W_std must be in (0.0, 1e+76], got 1e+200
    """
    return check_scalar(name, value, lo=0.0, lo_open=positive, hi=MAX_STD)


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    """Check ``value`` is one of ``choices``; return it."""
    if not isinstance(value, str | int | float | type(None)) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_same_length(names: Sequence[str], *arrays: np.ndarray) -> None:
    """Check the first axes of ``arrays`` agree."""
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) > 1:
        pairs = ", ".join(f"{n}: {k}" for n, k in zip(names, lengths, strict=True))
        raise ValueError(f"{' and '.join(names)} must have the same length, got {pairs}")


def check_spectrum(eigvals, target_power, *, positive: bool = False,
                   zero_mode_power: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Check a spectrum: 1-D finite ``eigvals`` (``> 0`` with ``positive``, else ``>= 0``) and
    ``target_power >= 0`` of the same length, zero wherever an eigenvalue is zero unless
    ``zero_mode_power`` (a solver that treats power on null modes as unlearnable, e.g. from a
    rank-deficient Gram spectrum)."""
    lam = as_finite_array("eigvals", eigvals, ndim=1, nonneg=True, positive=positive,
                          min_size=1)
    tp = as_finite_array("target_power", target_power, ndim=1, nonneg=True, min_size=1)
    check_same_length(("eigvals", "target_power"), lam, tp)
    if not zero_mode_power and np.any((lam == 0) & (tp > 0)):
        raise ValueError("target_power must be 0 where eigvals is 0 (w = sqrt(tp / lam))")
    return lam, tp


def check_size_grid(name: str, values) -> np.ndarray:
    """A scalar or non-empty 1-D grid of positive sizes (widths, sample counts), ``inf``
    allowed (the infinite-width / infinite-data limit)."""
    return as_finite_array(name, np.atleast_1d(values), ndim=1, positive=True, allow_inf=True,
                           min_size=1)


def check_increasing(name: str, values) -> np.ndarray:
    """A non-empty 1-D grid of finite, positive, strictly increasing values (e.g. times)."""
    arr = as_finite_array(name, np.atleast_1d(values), ndim=1, positive=True, min_size=1)
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return arr


def check_int_tuple(name: str, values, *, lo: int = 1) -> tuple[int, ...]:
    """A non-empty tuple of integers ``>= lo`` (e.g. a config's widths)."""
    if not values:
        raise ValueError(f"{name} must be non-empty")
    return tuple(check_scalar(name, v, lo=lo, integer=True) for v in values)


def check_gram_and_targets(k_name: str, K, y_name: str, y) -> tuple[np.ndarray, np.ndarray]:
    """A finite square ``(n, n)`` Gram matrix and finite targets of shape ``(n,)`` or ``(n, c)``."""
    k = as_finite_array(k_name, K, ndim=2, min_size=1)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"{k_name} must be square, got shape {k.shape}")
    return k, check_targets(y_name, y, k.shape[0])


def check_targets(name: str, y, n: int) -> np.ndarray:
    """Finite targets of shape ``(n,)`` or ``(n, c)`` for ``n`` training points."""
    yy = as_finite_array(name, y)
    if yy.ndim not in (1, 2) or yy.shape[0] != n:
        raise ValueError(f"{name} must have shape (n,) or (n, c) with n = {n}, got {yy.shape}")
    return yy


def check_bool(name: str, value) -> bool:
    """Check ``value`` is a real bool (``True``/``False``, not ``"yes"`` or ``1``); return it."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def check_key(name: str, value):
    """Check ``value`` is a JAX PRNG key (new-style ``jax.random.key`` or a raw ``uint32[2]``
    from ``jax.random.PRNGKey``); return it."""
    import jax  # local: the checks module stays importable without initialising JAX

    ok = False
    if isinstance(value, jax.Array):
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            ok = value.ndim == 0
        else:
            ok = value.dtype == np.uint32 and value.shape == (2,)
    if not ok:
        raise ValueError(f"{name} must be a PRNG key (jax.random.key(seed)), got "
                         f"{_short(value)}")
    return value
