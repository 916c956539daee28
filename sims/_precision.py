"""The dtype policy of simulations: float32 default, float64 only under x64, never a silent cast."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_dtype(dtype) -> np.dtype:
    """Allow float32/bfloat16 always and float64 only when x64 is enabled (no silent cast)."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64), np.dtype(jnp.bfloat16)):
        raise ValueError(f"dtype must be float32, bfloat16 or float64, got {dt}")
    if dt == np.dtype(np.float64) and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype=float64 needs 64-bit mode: wrap the call in `with jax.enable_x64(True):`"
        )
    return dt
