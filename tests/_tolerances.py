"""One tolerance table keyed by dtype, and one allclose helper.

A looser tolerance at a call site must carry a comment saying why.
"""

from __future__ import annotations

import numpy as np

RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
ATOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}


def assert_allclose(actual, desired, *, rtol: float | None = None, atol: float | None = None,
                    err_msg: str = "") -> None:
    """``np.testing.assert_allclose`` with defaults from the dtype of ``actual``."""
    actual = np.asarray(actual)
    dt = actual.dtype if actual.dtype in RTOL else np.dtype(np.float64)
    np.testing.assert_allclose(
        actual, np.asarray(desired),
        rtol=RTOL[dt] if rtol is None else rtol,
        atol=ATOL[dt] if atol is None else atol,
        err_msg=err_msg,
    )
