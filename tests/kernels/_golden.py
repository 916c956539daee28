"""Loader for the frozen neural-tangents values (see tests/data/neural_tangents_golden.md)."""

from __future__ import annotations

import functools
import pathlib

import numpy as np

PATH = pathlib.Path(__file__).resolve().parents[1] / "data" / "neural_tangents_golden.npz"


@functools.cache
def golden() -> dict[str, np.ndarray]:
    with np.load(PATH) as f:
        return {k: f[k] for k in f.files}


def kernel_pairs(result_xx, result_x12, prefix):
    """Yield (our array, reference array, name) for nngp/ntk on K(X, X) and K(X, X2)."""
    g = golden()
    for res, suffix in ((result_xx, ""), (result_x12, "_x12")):
        for name in ("nngp", "ntk"):
            key = f"{prefix}_{name}{suffix}"
            yield np.asarray(getattr(res, name)), g[key], key
