r"""The solver contract: one way for every iterative or analytic solver to report convergence.

Every public solver in :mod:`theorysim.theory` (and the iterative ones in
:mod:`theorysim.kernels`) returns a frozen result dataclass that carries, under these names,

- ``converged: bool``: whether the solver met its tolerance everywhere (all grid points);
- ``residual: float``: the largest final residual over the grid, in the solver's documented
  relative measure (finite whenever the solver ran; ``0.0`` for a closed form);
- ``iterations: int``: the largest number of iterations used over the grid (``0`` for a closed
  form).

and takes ``throw: bool = True``. :func:`finish` enforces the rest of the contract at the end of
every solver:

- non-finite output is never returned silently: it marks the result ``converged=False`` (the
  residual is kept finite) and says which field is bad;
- ``throw=True`` raises :class:`ConvergenceError` (a :class:`RuntimeError` carrying the
  result) when the result did not converge; ``throw=False`` returns it flagged.

Example:

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Result:
...     value: float
...     converged: bool
...     residual: float
...     iterations: int
>>> finish(Result(1.0, True, 1e-12, 3), throw=True, solver="demo").value
1.0
>>> r = finish(Result(float("nan"), True, 1e-12, 3), throw=False, solver="demo")
>>> r.converged
False
>>> try:
...     finish(Result(2.0, False, 0.5, 1), throw=True, solver="demo")
... except ConvergenceError as err:
...     print(err.result.residual)
0.5
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["DIAGNOSTICS", "ConvergenceError", "check_throw", "diagnostics", "finish"]

#: The names every solver result carries.
DIAGNOSTICS = ("converged", "residual", "iterations")


class ConvergenceError(RuntimeError):
    """A solver did not converge (or produced non-finite output); ``.result`` holds what it got."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


def check_throw(throw) -> bool:
    """Check the ``throw`` flag is a real bool (not a truthy string or number); return it."""
    if not isinstance(throw, bool | np.bool_):
        raise ValueError(f"throw must be a bool (True or False), got {throw!r}")
    return bool(throw)


def _non_finite_fields(result) -> list[str]:
    bad = []
    for field in dataclasses.fields(result):
        if field.name in DIAGNOSTICS:
            continue
        value = getattr(result, field.name)
        if isinstance(value, bool | str | type(None)) or callable(value):
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.size and not np.all(np.isfinite(arr)):
            bad.append(field.name)
    return bad


def finish(result, *, throw: bool, solver: str, hint: str = ""):
    """Apply the contract to a solver's ``result`` and return it (or raise).

    ``result`` is a frozen dataclass with the fields in :data:`DIAGNOSTICS`. Non-finite entries
    in any other numeric field set ``converged=False``; a NaN residual is reported as ``inf``.
    With ``throw`` the non-converged result raises
    :class:`ConvergenceError` naming ``solver``, the residual and the iterations, plus ``hint``.
    An ``inf`` entry that a solver documents as meaningful (e.g. an infinite limit) must be
    kept out of the result's numeric fields or listed in its ``_allow_inf`` class attribute.
    """
    missing = [n for n in DIAGNOSTICS if not hasattr(result, n)]
    if missing:
        raise TypeError(f"{type(result).__name__} lacks the contract fields {missing}")
    allow_inf = set(getattr(result, "_allow_inf", ()))
    bad = []
    for name in _non_finite_fields(result):
        arr = np.asarray(getattr(result, name), dtype=np.float64)
        if name in allow_inf and not np.any(np.isnan(arr)):
            continue
        bad.append(name)
    residual = float(result.residual)
    changes = {}
    if not math.isfinite(residual):
        changes["residual"] = math.inf
    if bad:
        changes["converged"] = False
    if changes:
        result = dataclasses.replace(result, **changes)
    if throw and not result.converged:
        what = (f"produced non-finite {', '.join(bad)}" if bad else "did not converge")
        msg = (f"{solver} {what}: residual {float(result.residual):.3g} after "
               f"{int(result.iterations)} iterations")
        if hint:
            msg += f"; {hint}"
        raise ConvergenceError(msg, result)
    return result


def diagnostics(result) -> dict[str, float | int | bool]:
    """The contract fields of ``result`` as a plain dict (for datasets and reports).

    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class R:
    ...     converged: bool
    ...     residual: float
    ...     iterations: int
    >>> diagnostics(R(True, 1e-12, 4))
    {'converged': True, 'residual': 1e-12, 'iterations': 4}
    """
    return {"converged": bool(result.converged), "residual": float(result.residual),
            "iterations": int(result.iterations)}
