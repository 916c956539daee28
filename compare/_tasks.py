"""Tasks: a data distribution and a target whose spectrum the theory reads and whose samples the
simulation draws, from one definition (so the two halves of a comparison cannot drift apart).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from theorysim.checks import check_choice, check_scalar
from theorysim.theory import power_law_spectrum

from ._configio import ExperimentConfig, param

__all__ = ["MODELS", "DigitsImages", "InContextRegression", "ModularAddition", "PGridConfig",
           "PowerLawConfig", "SweepConfig", "SyntheticImages", "TanhTeacher", "log_grid",
           "model_for"]


def log_grid(lo: float, hi: float, n: int) -> list[int]:
    """``n`` log-spaced integers from ``lo`` to ``hi`` (rounded, duplicates merged).

    >>> log_grid(10, 1000, 5)
    [10, 32, 100, 316, 1000]
    """
    return sorted({int(round(p)) for p in np.geomspace(lo, hi, n)})


@dataclasses.dataclass(frozen=True)
class SweepConfig(ExperimentConfig):
    """The config field every :class:`theorysim.compare.Sweep` reads: the per-point threshold
    of its agreement criterion (the family-wise test of :func:`theorysim.compare.agreement`)."""

    z_max: float = param(3.0, "criterion: SE beyond which a point counts as off (no point beyond "
                         "the family-wise bound, at most the chance number of off points)",
                         lo=0.0, lo_open=True)


@dataclasses.dataclass(frozen=True)
class PowerLawConfig(SweepConfig):
    r"""Config fields of the power-law task: Gaussian features
    :math:`\psi \sim N(0, \mathrm{diag}(\lambda))` and a linear target,

    .. math::

        \lambda_k = k^{-b}, \qquad \lambda_k w_k^2 = k^{-a}, \qquad
        y = \sum_k w_k \psi_k + \epsilon, \quad \epsilon \sim N(0, \text{noise}^2).

    Ridgeless, noiseless learning curves decay as ``P^-min(a-1, 2b)`` (Bordelon, Canatar,
    Pehlevan 2020, arXiv 2002.02561). The simulations sample the features from
    :meth:`spectrum` (``theorysim.sims``); the theory reads the same spectrum.

    >>> cfg = PowerLawConfig(M=3, a=2.0, b=1.0)
    >>> cfg.spectrum()[1].round(3).tolist(), cfg.learning_curve_exponent
    ([1.0, 0.25, 0.111], 1.0)
    """

    M: int = param(1000, "number of modes (features)", lo=1, hi=10**7)
    a: float = param(2.0, "target-power exponent: lam_k w_k^2 = k^-a (> 1: finite power)",
                     lo=1.0, lo_open=True)
    b: float = param(1.5, "spectral exponent: lam_k = k^-b", lo=0.0, lo_open=True)
    noise: float = param(0.0, "label-noise standard deviation", lo=0.0)

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(eigvals, target_power), float64, each of shape (M,)."""
        spec = power_law_spectrum(self.M, self.b, self.a)
        return np.asarray(spec.eigvals), np.asarray(spec.target_power)

    @property
    def learning_curve_exponent(self) -> float:
        """Predicted ridgeless, noiseless decay exponent of E_g(P): min(a - 1, 2b)."""
        return min(self.a - 1.0, 2.0 * self.b)


@dataclasses.dataclass(frozen=True)
class PGridConfig(SweepConfig):
    """Config fields of a learning curve: log-spaced training-set sizes."""

    P_min: int = param(10, "smallest training set", lo=1)
    P_max: int = param(1000, "largest training set", lo="P_min", hi=10**6)
    n_P: int = param(10, "log-spaced training-set sizes", lo=2, hi=1000)

    @property
    def P_values(self) -> list[int]:
        return log_grid(self.P_min, self.P_max, self.n_P)

    def check(self):
        if len(self.P_values) < 2:
            raise ValueError(f"n_P: P_min..P_max holds fewer than 2 distinct P "
                             f"({self.P_values}); a learning curve needs 2")


# ----------------------------------------------------------------------------- simulation tasks
# Frozen, hashable data distributions: ``task(key, batch) -> (x, y)`` is a sampler the engine
# compiles once per value (no identity caches), ``task.sample(n, seed)`` a fixed set from it.

MODELS = ("mlp", "cnn", "transformer")


class _Task:
    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws (x flattened, y) from the key ``seed``, as NumPy arrays."""
        import jax

        check_scalar("n", n, lo=1, integer=True)
        x, y = self(jax.random.key(seed), n)
        return np.asarray(x), np.asarray(y)

    def model_shape(self) -> dict:
        """The input-shape arguments of a model config for this task (none: flat vectors)."""
        return {}


def model_for(model: str, task, width: int, depth: int, parameterization: str, **kw):
    """The ``sims`` config of a ``model`` in :data:`MODELS` sized for ``task``'s inputs.

    >>> model_for("cnn", SyntheticImages(), 8, 2, "mup").input_shape
    (8, 8, 1)
    """
    from theorysim.sims import CNNConfig, ModelConfig, TransformerConfig

    check_choice("model", model, MODELS)
    shape = {} if model == "mlp" else task.model_shape()
    if model != "mlp" and not shape:
        raise ValueError(f"model: {model} needs images or sequences, got {type(task).__name__}")
    cls = {"mlp": ModelConfig, "cnn": CNNConfig, "transformer": TransformerConfig}[model]
    return cls(width=width, depth=depth, parameterization=parameterization, **shape, **kw)


@dataclasses.dataclass(frozen=True)
class TanhTeacher(_Task):
    r"""Gaussian vectors :math:`x \sim N(0, I_D)` and a fixed random two-layer teacher
    :math:`y = \tanh(x W_1)\, w_2`, :math:`W_1 \sim N(0, 1/D)`, :math:`w_2 \sim N(0, 1/m)`."""

    D: int = 16
    width: int = 32
    seed: int = 0

    def weights(self):
        import jax.numpy as jnp

        rng = np.random.default_rng(self.seed + 1000)
        return (jnp.asarray(rng.standard_normal((self.D, self.width)) / np.sqrt(self.D),
                            jnp.float32),
                jnp.asarray(rng.standard_normal(self.width) / np.sqrt(self.width), jnp.float32))

    def __call__(self, key, batch):
        import jax
        import jax.numpy as jnp

        w1, w2 = self.weights()
        x = jax.random.normal(key, (batch, self.D))
        return x, jnp.tanh(x @ w1) @ w2


@dataclasses.dataclass(frozen=True)
class SyntheticImages(_Task):
    r"""Gaussian-pixel images :math:`x \in \mathbb R^{H\times W\times C}` and a fixed random
    convolutional teacher :math:`y = |S|^{-1/2}\sum_{\alpha\in S}\tanh(w\cdot x_{\alpha})`
    over the :math:`k\times k` patches :math:`x_\alpha` (SAME padding),
    :math:`w\sim N(0, 1/(k^2C))`: a translation-invariant target, unit-variance projections."""

    shape: tuple[int, int, int] = (8, 8, 1)
    kernel: int = 3
    seed: int = 0

    def __post_init__(self):
        if len(self.shape) != 3:
            raise ValueError(f"shape must be (H, W, C), got {self.shape!r}")
        for v in self.shape:
            check_scalar("shape", v, lo=1, integer=True)
        check_scalar("kernel", self.kernel, lo=1, hi=min(self.shape[:2]), integer=True)

    def model_shape(self):
        return {"input_shape": tuple(self.shape)}

    def __call__(self, key, batch):
        import jax
        import jax.numpy as jnp

        k, c = self.kernel, self.shape[2]
        w = np.random.default_rng(self.seed + 2000).standard_normal((k, k, c, 1)) / (k * np.sqrt(c))
        x = jax.random.normal(key, (batch, *self.shape))
        z = jax.lax.conv_general_dilated(x, jnp.asarray(w, x.dtype), (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = jnp.sum(jnp.tanh(z), axis=(1, 2, 3)) / np.sqrt(self.shape[0] * self.shape[1])
        return x.reshape(batch, -1), y


@dataclasses.dataclass(frozen=True)
class DigitsImages(_Task):
    r"""scikit-learn's 8 x 8 digits as (8, 8, 1) images, pixels standardised over the set, with
    the label :math:`y = +1` for digits 5-9 and :math:`-1` for 0-4; :meth:`split` is a
    ``seed``-fixed disjoint train/test split, ``task(key, batch)`` draws training images."""

    n_train: int = 32
    n_test: int = 32
    seed: int = 0

    def __post_init__(self):
        check_scalar("n_train", self.n_train, lo=1, integer=True)
        check_scalar("n_test", self.n_test, lo=1, hi=1797 - self.n_train, integer=True)

    def model_shape(self):
        return {"input_shape": (8, 8, 1)}

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_test, y_test)``: images flattened (n, 64), float32 labels."""
        from ._datasets import digits_data

        X, Y = digits_data()
        X = ((X - X.mean()) / X.std()).astype(np.float32)
        y = np.where(np.argmax(Y, axis=1) >= 5, 1.0, -1.0).astype(np.float32)
        idx = np.random.default_rng(self.seed).permutation(len(X))
        tr, te = idx[:self.n_train], idx[self.n_train:self.n_train + self.n_test]
        return X[tr], y[tr], X[te], y[te]

    def __call__(self, key, batch):
        import jax

        x, y = self.split()[:2]
        i = jax.random.randint(key, (batch,), 0, self.n_train)
        return jax.numpy.asarray(x)[i], jax.numpy.asarray(y)[i]


@dataclasses.dataclass(frozen=True)
class InContextRegression(_Task):
    r"""In-context linear regression (Garg et al. 2022, arXiv 2208.01066): per sequence
    :math:`w\sim N(0, I_D/D)`, :math:`x_i\sim N(0, I_D)`, :math:`y_i = w\cdot x_i + \sigma
    \epsilon_i`; tokens :math:`(x_i, y_i)` for :math:`i\le n` and the query :math:`(x_q, 0)`
    (token_dim D + 1, length n + 1); the target is :math:`y_q`."""

    D: int = 4
    n_context: int = 8
    noise: float = 0.0

    def __post_init__(self):
        check_scalar("D", self.D, lo=1, integer=True)
        check_scalar("n_context", self.n_context, lo=1, integer=True)
        check_scalar("noise", self.noise, lo=0.0)

    def model_shape(self):
        return {"token_dim": self.D + 1, "max_len": self.n_context + 1}

    def __call__(self, key, batch):
        import jax
        import jax.numpy as jnp

        kw, kx, ke = jax.random.split(key, 3)
        n = self.n_context + 1
        w = jax.random.normal(kw, (batch, self.D)) / np.sqrt(self.D)
        x = jax.random.normal(kx, (batch, n, self.D))
        y = jnp.einsum("bnd,bd->bn", x, w) + self.noise * jax.random.normal(ke, (batch, n))
        tokens = jnp.concatenate([x, y.at[:, -1].set(0.0)[..., None]], axis=-1)
        return tokens.reshape(batch, -1), y[:, -1]


@dataclasses.dataclass(frozen=True)
class ModularAddition(_Task):
    r"""Modular addition with integer tokens (grokking, Power et al. 2022, arXiv 2201.02177):
    sequences :math:`(a, b, =)` with ids :math:`a, b < p` and ``=`` as id :math:`p` (vocabulary
    :math:`p + 1`), class label :math:`(a + b) \bmod p` (cross-entropy, ``out_dim = p``);
    :meth:`split` puts a ``seed``-fixed ``train_fraction`` of the :math:`p^2` pairs in training."""

    p: int = 11
    train_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self):
        check_scalar("p", self.p, lo=2, integer=True)
        check_scalar("train_fraction", self.train_fraction, lo=0.0, hi=1.0, lo_open=True,
                     hi_open=True)

    def model_shape(self):
        return {"vocab_size": self.p + 1, "max_len": 3, "out_dim": self.p}

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_test, y_test)``: ids (n, 3) int32 and labels (n,) int32."""
        a, b = (g.ravel() for g in np.meshgrid(np.arange(self.p), np.arange(self.p),
                                               indexing="ij"))
        x = np.stack([a, b, np.full_like(a, self.p)], axis=1).astype(np.int32)
        y = ((a + b) % self.p).astype(np.int32)
        idx = np.random.default_rng(self.seed).permutation(len(y))
        k = max(1, min(len(y) - 1, int(round(self.train_fraction * len(y)))))
        return x[idx[:k]], y[idx[:k]], x[idx[k:]], y[idx[k:]]

    def __call__(self, key, batch):
        import jax

        x, y = self.split()[:2]
        i = jax.random.randint(key, (batch,), 0, len(y))
        return jax.numpy.asarray(x)[i], jax.numpy.asarray(y)[i]
