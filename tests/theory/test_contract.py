"""The solver contract (issue 9, :mod:`theorysim.contract`) on every public theory solver of the
ridge / random-feature / scaling-law family: the diagnostics ``converged``/``residual``/
``iterations`` under the same names and types, ``tol`` deciding ``converged``, an iteration cap
forcing non-convergence (flagged with ``throw=False``, raised as ``ConvergenceError`` with
``throw=True``), and ``throw`` that is not a bool refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theorysim import ConvergenceError
from theorysim.contract import DIAGNOSTICS, diagnostics
from theorysim.theory import (
    compute_optimal,
    random_feature_risk,
    ridge_risk,
    scaling_law_dynamics,
    scaling_law_dynamics_gd,
)

K = np.arange(1, 201, dtype=np.float64)
LAM, TP = K**-1.5, K**-2.0

#: name -> a small call of the solver with extra keyword arguments
SOLVERS = {
    "ridge_risk": lambda **kw: ridge_risk(LAM, TP, [10.0, 50.0, 400.0], [1e-3, 1e-3, 0.0],
                                          **kw),
    "random_feature_risk": lambda **kw: random_feature_risk(LAM, TP, 50.0, [20.0, 80.0], 1e-3,
                                                            **kw),
    "scaling_law_dynamics": lambda **kw: scaling_law_dynamics(LAM, TP, 60.0, 120.0,
                                                              [1.0, 10.0], **kw),
    "scaling_law_dynamics_gd": lambda **kw: scaling_law_dynamics_gd(LAM, TP, 60.0,
                                                                    [40.0, 120.0], 0.5, 20,
                                                                    **kw),
    "compute_optimal": lambda **kw: compute_optimal(LAM, TP, 1e2, 1e3, N_max=200.0,
                                                    per_decade=2, **kw),
}
#: the tolerance each solver iterates to by default
DEFAULT_TOL = {"ridge_risk": 1e-12, "random_feature_risk": 1e-12,
               "scaling_law_dynamics": 1e-12, "scaling_law_dynamics_gd": 1e-12,
               "compute_optimal": 1e-12}


@pytest.mark.parametrize("name", SOLVERS)
def test_converged_result_carries_the_diagnostics(name):
    r = SOLVERS[name]()
    assert all(hasattr(r, d) for d in DIAGNOSTICS)
    assert type(r.converged) is bool and type(r.residual) is float
    assert type(r.iterations) is int
    assert r.converged and 0.0 <= r.residual <= DEFAULT_TOL[name] and r.iterations >= 1
    assert diagnostics(r) == {"converged": True, "residual": r.residual,
                              "iterations": r.iterations}


@pytest.mark.parametrize("name", SOLVERS)
def test_iteration_cap_of_one_is_flagged_or_raised(name):
    flagged = SOLVERS[name](max_iter=1, throw=False)
    assert flagged.converged is False
    assert math.isfinite(flagged.residual) and flagged.residual > DEFAULT_TOL[name]
    assert flagged.iterations >= 1
    with pytest.raises(ConvergenceError, match=name) as err:
        SOLVERS[name](max_iter=1)
    assert isinstance(err.value, RuntimeError)
    assert err.value.result is not None and err.value.result.converged is False


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("throw", ["yes", 1, None, np.array([True])])
def test_throw_must_be_a_bool(name, throw):
    with pytest.raises(ValueError, match="throw"):
        SOLVERS[name](throw=throw)


@pytest.mark.parametrize("name", SOLVERS)
def test_tol_is_the_tolerance_that_decides_converged(name):
    """A loose ``tol`` stops earlier (fewer or equal iterations) and is met; the residual the
    result reports is measured in the same units the solver iterates on."""
    tight = SOLVERS[name]()
    loose = SOLVERS[name](tol=1e-3)
    assert loose.converged and loose.residual <= 1e-3
    assert loose.iterations <= tight.iterations
    with pytest.raises(ValueError, match="tol"):
        SOLVERS[name](tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        SOLVERS[name](max_iter=0)


def test_ridge_per_point_diagnostics():
    r = ridge_risk(LAM, TP, np.geomspace(5, 500, 7)[:, None], [0.0, 1e-4, 1.0])
    assert r.point_residual.shape == r.point_iterations.shape == (7, 3)
    assert r.residual == r.point_residual.max()
    assert r.iterations == r.point_iterations.max()
    # the interpolation peak is a meaningful inf, not a failure; NaN never appears
    peak = ridge_risk(LAM, TP, 200.0, 0.0, noise=0.5)
    assert peak.converged and np.isinf(peak.error)


def test_non_finite_output_is_flagged_never_silent():
    """GD far beyond the stability edge: the loss grows geometrically (a finite 1e203 after 60
    steps is the prediction) until it overflows; throw=False flags that."""
    r = scaling_law_dynamics_gd(LAM, TP, math.inf, math.inf, 50.0, 100, throw=False)
    assert not r.converged and not np.all(np.isfinite(r.loss))
    with pytest.raises(ConvergenceError, match="non-finite"):
        scaling_law_dynamics_gd(LAM, TP, math.inf, math.inf, 50.0, 100)
