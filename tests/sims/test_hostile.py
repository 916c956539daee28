"""Hostile input to the simulations (issue 14): every bad argument gets a ``ValueError`` naming
it within a second, before anything is compiled or allocated; runs that would exhaust memory or
take 10^8+ steps are refused up front with the override to pass; a diverging or singular run
raises :class:`theorysim.ConvergenceError` instead of returning inf/NaN silently.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorysim import ConvergenceError
from theorysim.sims import (
    CNNConfig,
    EnsembleSpec,
    ModelConfig,
    TrainConfig,
    TransformerConfig,
    activation_updates,
    kernel_regression_split_errors,
    linear_ridge_error,
    random_feature_dynamics,
    random_feature_online_sgd,
    random_feature_ridge_error,
    sample_gaussian_features,
    train,
)

#: the issue's bound for a refusal (host-side checks only; measured 0.0-0.15 s)
WITHIN_S = 1.0
D, P = 4, 12
RNG = np.random.default_rng(0)
X = RNG.standard_normal((P, D))
Y = np.tanh(X[:, 0])
SMALL = ModelConfig(width=8, depth=1)
TC = TrainConfig(steps=3, num_records=2)
LAM = 1.0 / np.arange(1, 21) ** 1.5
TP = 1.0 / np.arange(1, 21) ** 2.0
KEY = jax.random.key(0)
XK = np.linspace(-1, 1, 10)
GRAM = np.exp(-(XK[:, None] - XK[None, :]) ** 2)
TF = TransformerConfig(width=8, vocab_size=5, max_len=4)


@dataclasses.dataclass(frozen=True)
class _Gaussian:
    dim: int

    def __call__(self, key, batch):
        return jax.random.normal(key, (batch, self.dim)), jnp.zeros(batch)


def _sampler_function(key, batch):  # a plain function: cannot be compared by value
    return jax.random.normal(key, (batch, D)), jnp.zeros(batch)


CASES = {
    # sizes that would exhaust memory or run "forever"
    "train width 1e9": (lambda: train(ModelConfig(width=10**9), TC, x=X, y=Y),
                        r"width 1000000000.*max_memory_gb"),
    "train huge ensemble": (lambda: train(ModelConfig(width=2048), TC, x=X, y=Y,
                                          ensemble=EnsembleSpec(seeds=tuple(range(10**4)))),
                            r"ensemble \(10000 members\).*max_memory_gb"),
    "train huge records": (lambda: train(SMALL, TrainConfig(steps=3, observables=("ntk",)),
                                         x=np.ones((60000, D)), y=np.ones(60000)),
                           r"records.*max_memory_gb"),
    "train max_memory_gb honoured": (lambda: train(SMALL, TC, x=X, y=Y, max_memory_gb=1e-9),
                                     r"the given max_memory_gb"),
    "1e12 records": (lambda: TrainConfig(steps=10**7, num_records=10**12), r"num_records"),
    "sampler batch 1e11": (lambda: train(SMALL, TrainConfig(steps=3, batch_size=10**11),
                                         sampler=_Gaussian(D)), r"batch_size \(10+\)"),
    "train 1e9 steps": (lambda: train(SMALL, TrainConfig(steps=10**9), x=X, y=Y),
                        r"steps=1000000000 exceeds max_steps"),
    "online sgd 1e12 steps": (lambda: random_feature_online_sgd(KEY, LAM, TP, [1e9], 8,
                                                                lr=1e-3),
                              r"max_steps"),
    "rf dynamics N 1e9": (lambda: random_feature_dynamics(KEY, LAM, TP, [1.0], 10**9, 100),
                          r"N \(1000000000\).*max_memory_gb"),
    "ridge P 1e9": (lambda: linear_ridge_error(KEY, LAM, TP, 10**9, 1e-3),
                    r"P \(1000000000\).*max_memory_gb"),
    "rf ridge N 1e9": (lambda: random_feature_ridge_error(KEY, LAM, TP, 10, 10**9, 1e-3),
                       r"N \(1000000000\)"),
    "features n 1e12": (lambda: sample_gaussian_features(KEY, LAM, 10**12), r"n \(10+\)"),
    "krr splits": (lambda: kernel_regression_split_errors(KEY, GRAM, XK, 5, 1e-3,
                                                          n_splits=10**9), r"n_splits"),
    # step counts that round to zero
    "online sgd t rounds to 0 steps": (
        lambda: random_feature_online_sgd(KEY, LAM, TP, [0.01, 1.0], 8, lr=0.05),
        r"t must be >= lr / 2.*rounds to 0 steps"),
    "gd t rounds to 0 steps": (
        lambda: random_feature_dynamics(KEY, LAM, TP, [1e-12], 8, 10, lr=1.0),
        r"t must be >= lr.*0 steps"),
    # string numbers, non-finite scalars, non-bool flags
    "steps string": (lambda: TrainConfig(steps="10"), r"steps"),
    "steps fractional": (lambda: TrainConfig(steps=2.5), r"steps"),
    "lr string": (lambda: TrainConfig(steps=3, lr="0.1"), r"lr"),
    "lr nan": (lambda: TrainConfig(steps=3, lr=math.nan), r"lr"),
    "lr inf": (lambda: TrainConfig(steps=3, lr=math.inf), r"lr"),
    "ensemble lr inf": (lambda: EnsembleSpec(lrs=(0.1, math.inf)), r"lr"),
    "adam_b2 out of range": (lambda: TrainConfig(steps=3, adam_b2=1.5), r"adam_b2"),
    "progress not bool": (lambda: TrainConfig(steps=3, progress="yes"), r"progress"),
    "return_params not bool": (lambda: TrainConfig(steps=3, return_params=1), r"return_params"),
    "shard not bool": (lambda: EnsembleSpec(shard="no"), r"shard"),
    "throw not bool": (lambda: train(SMALL, TC, x=X, y=Y, throw="no"), r"throw"),
    "krr replace not bool": (lambda: kernel_regression_split_errors(KEY, GRAM, XK, 5, 1e-3,
                                                                    replace="no"), r"replace"),
    "max_memory_gb string": (lambda: train(SMALL, TC, x=X, y=Y, max_memory_gb="3"),
                             r"max_memory_gb"),
    "ridge P string": (lambda: linear_ridge_error(KEY, LAM, TP, "100", 1e-3), r"P"),
    "ridge nan": (lambda: linear_ridge_error(KEY, LAM, TP, 10, math.nan), r"ridge"),
    "krr ridge string": (lambda: kernel_regression_split_errors(KEY, GRAM, XK, 5, "0.1"),
                         r"ridge"),
    "seeds not integers": (lambda: EnsembleSpec(seeds=(0.5,)), r"seeds"),
    "seeds not a tuple": (lambda: EnsembleSpec(seeds=5), r"seeds"),
    "seed beyond 64 bits": (lambda: EnsembleSpec(seeds=(10**30,)), r"seeds"),
    # None, wrong types, shape mismatches
    "x and sampler None": (lambda: train(SMALL, TC), r"x and y .* or sampler .* must be given"),
    "y None": (lambda: train(SMALL, TC, x=X, y=None), r"y must be given"),
    "x strings": (lambda: train(SMALL, TC, x=X.astype(str), y=Y), r"x must hold real numbers"),
    "x nan": (lambda: train(SMALL, TC, x=np.where(X > 1, np.nan, X), y=Y), r"x must be finite"),
    "x 1-d": (lambda: train(SMALL, TC, x=X[:, 0], y=Y), r"x must have shape \(P, D\)"),
    "y wrong rows": (lambda: train(SMALL, TC, x=X, y=Y[:-2]), r"y must have 12 rows"),
    "probe_x wrong columns": (lambda: train(SMALL, TC, x=X, y=Y, probe_x=X[:, :2]),
                              r"probe_x must have 4 columns"),
    "config not a TrainConfig": (lambda: train(SMALL, {"steps": 3}, x=X, y=Y), r"config"),
    "model None": (lambda: train(None, TC, x=X, y=Y), r"model"),
    "sampler plain function": (lambda: train(SMALL, TrainConfig(steps=3, batch_size=4),
                                             sampler=_sampler_function),
                               r"sampler must be a frozen dataclass"),
    "observables unknown": (lambda: TrainConfig(steps=3, observables=("loss", "bogus")),
                            r"observables"),
    # non-keys where a PRNG key is expected
    "rf dynamics key int": (lambda: random_feature_dynamics(0, LAM, TP, [1.0], 8, 10), r"key"),
    "rf dynamics key floats": (lambda: random_feature_dynamics(jnp.zeros(3), LAM, TP, [1.0], 8,
                                                               10), r"key"),
    "online sgd key None": (lambda: random_feature_online_sgd(None, LAM, TP, [1.0], 8), r"key"),
    "ridge key int": (lambda: linear_ridge_error(0, LAM, TP, 10, 1e-3), r"key"),
    "krr key None": (lambda: kernel_regression_split_errors(None, GRAM, XK, 5, 1e-3), r"key"),
    # kernels that are not Gram matrices
    "krr non-symmetric K": (lambda: kernel_regression_split_errors(
        KEY, GRAM + np.triu(np.ones_like(GRAM), 1), XK, 5, 1e-3), r"K must be symmetric"),
    "krr negative diagonal": (lambda: kernel_regression_split_errors(KEY, -GRAM, XK, 5, 1e-3),
                              r"K must be positive semi-definite"),
    # second probe (session 5): numpy scalars, 0-d arrays, complex, non-bool flags, sizes
    "gamma0 0-d array": (lambda: ModelConfig(width=8, gamma0=np.array(0.5)), r"gamma0"),
    "gamma0 complex": (lambda: ModelConfig(width=8, gamma0=1j), r"gamma0"),
    "bias not bool": (lambda: ModelConfig(width=8, bias="yes"), r"bias must be a bool"),
    "residual not bool": (lambda: ModelConfig(width=8, residual=1), r"residual must be a bool"),
    "centre None": (lambda: ModelConfig(width=8, centre=None), r"centre must be a bool"),
    "activation a list": (lambda: ModelConfig(width=8, activation=["relu"]), r"activation"),
    "depth 1e6": (lambda: ModelConfig(width=8, depth=10**6), r"depth must be an integer in"),
    "cnn depth 1e6": (lambda: CNNConfig(width=4, input_shape=(8, 8, 1), depth=10**6),
                      r"depth"),
    "transformer depth 1e6": (lambda: TransformerConfig(width=8, heads=2, depth=10**6,
                                                        vocab_size=5), r"depth"),
    "cnn w_std inf": (lambda: CNNConfig(width=4, input_shape=(8, 8, 1), w_std=math.inf),
                      r"w_std"),
    "cnn b_std nan": (lambda: CNNConfig(width=4, input_shape=(8, 8, 1), b_std=math.nan),
                      r"b_std"),
    "lr 0-d array": (lambda: TrainConfig(steps=3, lr=np.array(0.1)), r"lr"),
    "lr complex": (lambda: TrainConfig(steps=3, lr=0.1 + 0j), r"lr"),
    "dtype garbage": (lambda: TrainConfig(steps=3, dtype="float17"), r"dtype"),
    "check_dtype garbage": (lambda: linear_ridge_error(KEY, LAM, TP, 10, 1e-3,
                                                       dtype="float17"), r"dtype"),
    "lrs entry negative": (lambda: EnsembleSpec(lrs=(-0.1,)), r"lrs entry"),
    "x empty": (lambda: train(SMALL, TC, x=np.zeros((0, D)), y=np.zeros(0)),
                r"x must have at least one row"),
    "x overflows float32": (lambda: train(SMALL, TC, x=X * 1e30, y=Y), r"x entries must be"),
    "x complex": (lambda: train(SMALL, TC, x=X + 0j, y=Y), r"x must hold real numbers"),
    "ridge n_seeds 1e12": (lambda: linear_ridge_error(KEY, LAM, TP, 10, 1e-3, n_seeds=10**12),
                           r"n_seeds"),
    "rf dynamics n_seeds 1e12": (lambda: random_feature_dynamics(KEY, LAM, TP, [1.0], 8, 10,
                                                                 n_seeds=10**12), r"n_seeds"),
    "activation_updates None": (lambda: activation_updates(
        CNNConfig(width=4, input_shape=(8, 8, 1), depth=1), None, None,
        np.ones((2, 8, 8, 1))), r"before must be the params dict"),
    # third probe (session 6): transformer and CNN configs and inputs, float32 overflow of
    # scalars (ridge = 1e300 became inf and NaN errors; noise = 1e30 blamed the ridge system),
    # a held-out set left empty (P >= n gave NaN and blamed positive-definiteness)
    "transformer width not divisible by heads": (
        lambda: TransformerConfig(width=10, heads=3, vocab_size=5), r"divisible by heads"),
    "transformer depth 0": (lambda: TransformerConfig(width=8, depth=0, vocab_size=5),
                            r"depth"),
    "transformer vocab and token_dim": (
        lambda: TransformerConfig(width=8, vocab_size=5, token_dim=3), r"exactly one of"),
    "transformer sequence longer than max_len": (
        lambda: train(TF, TC, x=np.zeros((3, 6), int), y=np.zeros(3)), r"longer than.*max_len"),
    "transformer token ids out of vocab": (
        lambda: train(TF, TC, x=np.full((3, 4), 7), y=np.zeros(3)), r"token ids must be in"),
    "transformer fractional token ids": (
        lambda: train(TF, TC, x=np.full((3, 4), 1.5), y=np.zeros(3)), r"integer token ids"),
    "transformer probe_x out of vocab": (
        lambda: train(TF, TC, x=np.zeros((3, 4), int), y=np.zeros(3),
                      probe_x=np.full((2, 4), 9)), r"probe_x: token ids"),
    "cnn kernel larger than input with VALID": (
        lambda: CNNConfig(width=4, input_shape=(3, 3, 1), kernel_size=5, padding="VALID"),
        r"kernel_size 5 of layer 0 is larger"),
    "cnn depth 0": (lambda: CNNConfig(width=4, input_shape=(8, 8, 1), depth=0), r"depth"),
    "cnn kernel_size 2.5": (lambda: CNNConfig(width=4, input_shape=(8, 8, 1), kernel_size=2.5),
                            r"kernel_size must be one integer"),
    "cnn w_std 1e200": (lambda: CNNConfig(width=4, input_shape=(8, 8, 1), w_std=1e200),
                        r"w_std"),
    "cnn images of the wrong size": (
        lambda: train(CNNConfig(width=4, input_shape=(8, 8, 1)), TC, x=np.zeros((4, 7, 7, 1)),
                      y=np.zeros(4)), r"x must be images of shape"),
    "ridge 1e300 overflows float32": (lambda: linear_ridge_error(KEY, LAM, TP, 10, 1e300),
                                      r"ridge entries must be at most"),
    "ridge noise 1e30 (noise^2 overflows)": (
        lambda: linear_ridge_error(KEY, LAM, TP, 10, 1e-3, noise=1e30), r"noise entries"),
    "rf ridge 1e300": (lambda: random_feature_ridge_error(KEY, LAM, TP, 10, 8, 1e300),
                       r"ridge entries"),
    "rf dynamics noise 1e30": (lambda: random_feature_dynamics(KEY, LAM, TP, [1.0], 8, 10,
                                                               noise=1e30), r"noise entries"),
    "krr P >= n (no held-out points)": (
        lambda: kernel_regression_split_errors(KEY, GRAM, XK, 10, 1e-3), r"P must be < n = 10"),
    "batch larger than the data": (
        lambda: train(SMALL, TrainConfig(steps=3, batch_size=100), x=X, y=Y), r"batch_size"),
}

ACCEPTED = {  # numpy scalar types are numbers: accepted where a Python number is
    "gamma0 np.float32": lambda: ModelConfig(width=8, gamma0=np.float32(0.5)),
    "width np.int64": lambda: ModelConfig(width=np.int64(8), depth=np.int32(1)),
    "cnn gamma0 np.float32": lambda: CNNConfig(width=4, input_shape=(8, 8, 1),
                                               gamma0=np.float32(1.0), w_std=np.float32(1.5)),
    "lr np.float32": lambda: TrainConfig(steps=np.int64(3), lr=np.float32(0.1)),
    "seeds np.int64": lambda: EnsembleSpec(seeds=(np.int64(1), np.int32(2))),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_numpy_scalars_are_accepted(name):
    assert ACCEPTED[name]() is not None


@pytest.mark.parametrize("name", list(CASES))
def test_refused_fast_with_the_argument_named(name):
    call, match = CASES[name]
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        call()
    assert time.perf_counter() - start < WITHIN_S


def test_diverging_members_flagged_and_all_diverged_raises():
    """An unstable learning rate: diverged members are flagged (NaN records after the
    divergence, not inf); when every member diverged, ConvergenceError carries the result, and
    throw=False returns it flagged. The three calls share one compiled program."""
    tc = TrainConfig(steps=6, lr=1e9, record_steps=(0, 6), observables=("loss",))
    mixed = train(SMALL, tc, x=X, y=Y, ensemble=EnsembleSpec(seeds=(0,), lrs=(0.1, 1e9)))
    assert mixed.diverged.tolist() == [False, True]
    assert mixed.to_xarray().attrs["n_diverged"] == 1
    assert np.isfinite(mixed.records["loss"][0]).all()
    ens = EnsembleSpec(seeds=(0, 1))
    with pytest.raises(ConvergenceError, match="all 2 members diverged") as err:
        train(SMALL, tc, x=X, y=Y, ensemble=ens)
    res = err.value.result
    assert res.diverged.all() and res.n_diverged == 2
    flagged = train(SMALL, tc, x=X, y=Y, ensemble=ens, throw=False)
    np.testing.assert_array_equal(flagged.diverged, res.diverged)
    assert np.isfinite(flagged.records["loss"][:, 0]).all()
    assert np.isnan(flagged.records["loss"][:, -1]).all()


def test_unstable_online_sgd_raises():
    with pytest.raises(ConvergenceError, match="lr = 1e\\+03 is above the SGD stability"):
        random_feature_online_sgd(KEY, LAM, TP, [1e3 * 40], 8, lr=1e3, batch=4, n_seeds=2)
    out = random_feature_online_sgd(KEY, LAM, TP, [1e3 * 40], 8, lr=1e3, batch=4, n_seeds=2,
                                    throw=False)
    assert not np.isfinite(out).all()


def test_unstable_gd_dynamics_raises():
    with pytest.raises(ConvergenceError, match="GD is unstable"):
        random_feature_dynamics(KEY, LAM, TP, 1e3 * np.array([1.0, 60.0]), 16, 20, lr=1e3,
                                n_seeds=2)


def test_singular_krr_raises():
    """A symmetric matrix with a nonnegative diagonal that is not PSD: the Cholesky solve fails
    and the error says so instead of returning NaN."""
    bad = np.ones((10, 10)) - 1.5 * np.eye(10) + 2.0 * np.eye(10)[::-1]
    bad = 0.5 * (bad + bad.T) + 0.6 * np.eye(10)
    assert np.linalg.eigvalsh(bad).min() < -1e-3 and np.all(np.diag(bad) >= 0)
    with pytest.raises(ConvergenceError, match="positive semi-definite"):
        kernel_regression_split_errors(KEY, bad, XK, 6, 1e-6, n_splits=4)
