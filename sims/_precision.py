"""The dtype policy of simulations: float32 default, float64 only under x64, never a silent cast."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.contract import ConvergenceError


def check_dtype(dtype) -> np.dtype:
    """Allow float32/bfloat16 always and float64 only when x64 is enabled (no silent cast)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32, bfloat16 or float64, got {dtype!r}") from None
    allowed = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(jnp.bfloat16))
    if dtype is None or dt not in allowed:  # np.dtype(None) is float64
        raise ValueError(f"dtype must be float32, bfloat16 or float64, got {dt}")
    if dt == np.dtype(np.float64) and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype=float64 needs 64-bit mode: wrap the call in `with jax.enable_x64(True):`"
        )
    return dt


def finite_or_raise(values, *, throw: bool, caller: str, hint: str):
    """Return ``values``; with ``throw``, raise :class:`theorysim.ConvergenceError` (carrying
    them) when any is NaN/inf, naming ``caller`` and what to change (``hint``)."""
    arr = np.asarray(values)
    if throw and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ConvergenceError(f"{caller} produced {bad} non-finite values of {arr.size}: "
                               f"{hint}; pass throw=False to get them anyway", values)
    return values
