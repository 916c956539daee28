"""The shared core: argument checks and the solver contract."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from theorysim import ConvergenceError
from theorysim.checks import (
    as_finite_array,
    check_bool,
    check_choice,
    check_key,
    check_magnitude,
    check_scalar,
    check_spectrum,
)
from theorysim.contract import check_throw, diagnostics, finish


@pytest.mark.parametrize("value", ["100", b"1", None, [1, [2, 3]], [True, False],
                                   np.array(["1"]), [1 + 2j], object()])
def test_arrays_refuse_non_numbers(value):
    with pytest.raises(ValueError, match="^P must"):
        as_finite_array("P", value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "3", True, None, 2.5])
def test_integer_scalars_refuse_non_integers(value):
    with pytest.raises(ValueError, match="^M must"):
        check_scalar("M", value, lo=1, integer=True)


def test_scalar_range_message_names_interval():
    with pytest.raises(ValueError, match=r"ridge must be in \(0.0, inf\], got -1"):
        check_scalar("ridge", -1, lo=0.0, lo_open=True)
    assert check_scalar("M", np.int64(7), lo=1, integer=True) == 7


@pytest.mark.parametrize("value", ["yes", 1, 0, None, np.array([True])])
def test_flags_must_be_bools(value):
    with pytest.raises(ValueError, match="^flag must be a bool"):
        check_bool("flag", value)
    with pytest.raises(ValueError, match="^throw must be a bool"):
        check_throw(value)


def test_integers_beyond_float64_are_a_value_error():
    with pytest.raises(ValueError, match="M must be in .* got an integer of 401 digits"):
        check_scalar("M", 10**400, lo=1, integer=True)
    with pytest.raises(ValueError, match="^lr must be a number"):
        check_scalar("lr", np.array(0.1))  # 0-d arrays: refused like any non-scalar


def test_magnitude_is_checked_against_the_compute_dtype():
    x = np.full((2, 3), 1e20)
    with pytest.raises(ValueError, match=r"x entries must be at most 1.84e\+16 .* float32"):
        check_magnitude("x", x, np.float32)
    assert check_magnitude("x", x, np.float64) is x
    assert check_magnitude("x", np.zeros((0, 3)), np.float32).shape == (0, 3)


def test_choice_refuses_unhashables_and_unknowns():
    with pytest.raises(ValueError, match="get must be one of"):
        check_choice("get", ["nngp"], ("nngp", "ntk"))
    with pytest.raises(ValueError, match="get must be one of"):
        check_choice("get", "cntk", ("nngp", "ntk"))


@pytest.mark.parametrize("value", [0, None, np.zeros(2, np.uint32) + 1, jax.numpy.zeros(3),
                                   jax.random.split(jax.random.key(0), 2)])
def test_keys(value):
    with pytest.raises(ValueError, match="^key must be a PRNG key"):
        check_key("key", value)
    assert check_key("key", jax.random.key(1)) is not None
    assert check_key("key", jax.random.PRNGKey(1)).shape == (2,)


def test_spectrum_names_its_arguments():
    with pytest.raises(ValueError, match="eigvals and target_power must have the same length"):
        check_spectrum([1.0, 0.5], [1.0])
    with pytest.raises(ValueError, match="target_power must be 0 where eigvals is 0"):
        check_spectrum([1.0, 0.0], [1.0, 1.0])


@dataclasses.dataclass(frozen=True)
class _Result:
    value: np.ndarray
    converged: bool
    residual: float
    iterations: int


def test_contract_passes_a_converged_result_through():
    r = _Result(np.ones(3), True, 1e-13, 5)
    assert finish(r, throw=True, solver="demo") is r
    assert diagnostics(r) == {"converged": True, "residual": 1e-13, "iterations": 5}


def test_contract_raises_with_the_result_attached():
    r = _Result(np.ones(3), False, 0.25, 1)
    with pytest.raises(ConvergenceError, match="demo did not converge: residual 0.25 after 1 "
                                               "iterations; raise max_iter") as info:
        finish(r, throw=True, solver="demo", hint="raise max_iter")
    assert info.value.result is r
    assert isinstance(info.value, RuntimeError)
    assert finish(r, throw=False, solver="demo") is r


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_contract_never_returns_non_finite_output_silently(bad):
    r = _Result(np.array([1.0, bad]), True, np.nan, 3)
    flagged = finish(r, throw=False, solver="demo")
    assert flagged.converged is False and flagged.residual == math.inf
    with pytest.raises(ConvergenceError, match="demo produced non-finite value"):
        finish(r, throw=True, solver="demo")


def test_contract_requires_the_diagnostic_fields():
    @dataclasses.dataclass(frozen=True)
    class Bare:
        value: float

    with pytest.raises(TypeError, match="lacks the contract fields"):
        finish(Bare(1.0), throw=True, solver="demo")
