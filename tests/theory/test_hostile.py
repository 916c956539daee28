"""Hostile input to the ridge / random-feature / scaling-law solvers (issue 14's classes):
non-finite or absurd scalars, string numbers, non-bool flags, shape mismatches, ``None``,
errors that must name the argument the user passed, and work that cannot finish (refused up
front with the override named). Each case must raise ``ValueError`` naming the argument,
within a second (before any compute), and return nothing (so no NaN)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from theorysim.theory import (
    compute_optimal,
    fit_power_law,
    power_law_spectrum,
    random_feature_risk,
    ridge_risk,
    scaling_law_dynamics,
    scaling_law_dynamics_gd,
)

K = np.arange(1, 101, dtype=np.float64)
LAM, TP = K**-1.5, K**-2.0


def ridge(**kw):
    return ridge_risk(**({"eigvals": LAM, "target_power": TP, "P": 10.0, "ridge": 1e-3} | kw))


def rf(**kw):
    return random_feature_risk(**({"eigvals": LAM, "target_power": TP, "P": 10.0, "N": 20.0,
                                   "ridge": 1e-3} | kw))


def flow(**kw):
    return scaling_law_dynamics(**({"eigvals": LAM, "target_power": TP, "P": 10.0, "N": 20.0,
                                    "t": [1.0, 2.0]} | kw))


def gd(**kw):
    return scaling_law_dynamics_gd(**({"eigvals": LAM, "target_power": TP, "P": 10.0,
                                       "N": 20.0, "lr": 0.1, "n_steps": 10} | kw))


def frontier(**kw):
    return compute_optimal(**({"eigvals": LAM, "target_power": TP, "C_min": 1e2,
                               "C_max": 1e3} | kw))


CASES = [
    # non-finite or absurd scalars
    ("M=inf", lambda: power_law_spectrum(math.inf, 1.5, 2.0), "M"),
    ("M=nan", lambda: power_law_spectrum(math.nan, 1.5, 2.0), "M"),
    ("M=1e12 (16 TB)", lambda: power_law_spectrum(10**12, 1.5, 2.0), "max_modes"),
    ("b=inf", lambda: power_law_spectrum(100, math.inf, 2.0), "b"),
    ("ridge P=nan", lambda: ridge(P=math.nan), "P"),
    ("ridge=inf", lambda: ridge(ridge=math.inf), "ridge"),
    ("noise=1e200 (noise**2 overflows)", lambda: ridge(noise=1e200), "noise"),
    ("flow noise=inf", lambda: flow(noise=math.inf), "noise"),
    ("gd lr=nan", lambda: gd(lr=math.nan), "lr"),
    ("gd n_steps=inf", lambda: gd(n_steps=math.inf), "n_steps"),
    ("flow t=1e300", lambda: flow(t=[1.0, 1e300]), "t"),
    ("tol=nan", lambda: ridge(tol=math.nan), "tol"),
    ("max_iter=2.5", lambda: flow(max_iter=2.5), "max_iter"),
    # string numbers and non-bool flags
    ("ridge P='100'", lambda: ridge(P="100"), "P"),
    ("ridge ridge='0.1'", lambda: ridge(ridge="0.1"), "ridge"),
    ("ridge noise='0'", lambda: ridge(noise="0"), "noise"),
    ("rf ensemble='2'", lambda: rf(ensemble="2"), "ensemble"),
    ("M='100'", lambda: power_law_spectrum("100", 1.5, 2.0), "M"),
    ("flow t='10'", lambda: flow(t="10"), "t"),
    ("gd lr='0.1'", lambda: gd(lr="0.1"), "lr"),
    ("compute_optimal C_min='1e2'", lambda: frontier(C_min="1e2"), "C_min"),
    ("fit x strings", lambda: fit_power_law(["1", "2"], [1.0, 0.5]), "x"),
    ("ridge P=True", lambda: ridge(P=True), "P"),
    ("compress='yes'", lambda: ridge(compress="yes"), "compress"),
    ("flow modes='yes'", lambda: flow(modes="yes"), "modes"),
    ("gd modes=1", lambda: gd(modes=1), "modes"),
    ("ridge throw='no'", lambda: ridge(throw="no"), "throw"),
    # shape mismatches and None
    ("ridge P (3,) vs ridge (2,)", lambda: ridge(P=[10.0, 20.0, 30.0], ridge=[0.0, 1.0]),
     "P, ridge must broadcast"),
    ("rf P (3,) vs N (2,)", lambda: rf(P=[10.0, 20.0, 30.0], N=[5.0, 6.0]),
     "P, N, ridge must broadcast"),
    ("eigvals vs target_power lengths", lambda: ridge(target_power=TP[:-1]),
     "eigvals and target_power"),
    ("eigvals=None", lambda: ridge(eigvals=None), "eigvals"),
    ("target_power=None", lambda: flow(target_power=None), "target_power"),
    ("flow N 2-D", lambda: flow(N=[[10.0, 20.0]]), "N"),
    ("gd P=None", lambda: gd(P=None), "P"),
    ("compute_optimal P grid", lambda: frontier(P=[10.0, 20.0]), "P"),
    ("fit x vs y lengths", lambda: fit_power_law([1.0, 2.0, 3.0], [1.0, 0.5]), "x and y"),
    # errors must name what the user passed, not an internal argument
    ("compute_optimal C_min=1e-320 (times underflow)",
     lambda: frontier(C_min=1e-320, C_max=1e2), "C_min"),
    ("compute_optimal C_max <= N_min with N_max defaulted",
     lambda: frontier(C_min=0.1, C_max=0.5), "C_max"),
    # work that cannot finish: refused up front, the override named
    ("gd n_steps=1e9", lambda: gd(n_steps=10**9), "max_steps"),
    ("gd n_steps=1e8 with lr", lambda: gd(lr=1e-8, n_steps=10**8), "max_steps"),
    ("compute_optimal lattice of 1e8 points",
     lambda: frontier(C_min=1e-100, C_max=1e100, per_decade=64), "max_points"),
    ("flow modes=True profile of 8 GB",
     lambda: flow(N=np.arange(1.0, 101.0), P=np.arange(1.0, 101.0),
                  t=np.geomspace(1, 10, 1000), modes=True), "modes"),
]


@pytest.mark.parametrize("case, call, name", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_a_value_error_naming_the_argument(case, call, name):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=name) as err:
        call()
    # refused before any compute (a generous bound: the machine is shared and loaded)
    assert time.perf_counter() - start < 1.0, case
    assert "Traceback" not in str(err.value)


def test_cases_cover_every_solver():
    assert len(CASES) >= 15
    names = {c[0].split()[0] for c in CASES}
    assert {"ridge", "rf", "flow", "gd", "compute_optimal", "M=inf", "fit"} <= names
