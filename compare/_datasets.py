"""Data sets shared by experiments: scikit-learn's digits (its Gram matrices and spectra) and
a harmonic target on the sphere.

The population of the digits experiments is the whole set (n = 1797 images); the kernel
operator on it has the eigenvalues of K/n and the one-hot target has power
``|U_k^T y|^2 / n`` in eigenvector k (Canatar, Bordelon, Pehlevan 2021, arXiv 2006.13198).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from theorysim import kernels as K

__all__ = ["N_DIGITS", "SphereHarmonics", "digits_data", "digits_gram", "digits_spectrum",
           "gram", "sphere_ntk"]

N_DIGITS = 1797  # images in scikit-learn's load_digits


def _digits_pixels_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, (n, 64) pixels 0..16 and (n,) labels: read from the CSV that
    scikit-learn ships (``datasets/data/digits.csv.gz``, what ``load_digits`` reads) without
    importing scikit-learn (~1 CPU-s of import); ``load_digits`` where the file is not there."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            if data.shape == (N_DIGITS, 65):
                return data[:, :-1], data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data, data.target


@functools.cache
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """Digits images scaled to [0, 1] (n, 64), and centred one-hot targets (n, 10)."""
    pixels, labels = _digits_pixels_and_labels()
    X = pixels.astype(np.float64) / 16.0
    Y = np.eye(10)[labels]
    return X, Y - Y.mean(axis=0)


@functools.cache
def digits_gram(kernel: str, rbf_scale: float = 1.0, depth: int = 2) -> np.ndarray:
    """The Gram matrix of the whole digits set (cached)."""
    return gram(kernel, digits_data()[0], rbf_scale, depth)


def gram(kernel: str, X: np.ndarray, rbf_scale: float = 1.0, depth: int = 2) -> np.ndarray:
    """Gram matrix of a data set: RBF exp(-|x-x'|^2 / (2 l^2)) with l = rbf_scale times the
    median pairwise distance, linear (x - mean) . (x' - mean) / d, or ``ntk``: the
    infinite-width NTK of a depth-``depth`` ReLU network (``kernels.mlp_kernel``, float64)."""
    if kernel == "ntk":
        with jax.enable_x64(True):
            return np.asarray(K.mlp_kernel(depth, "relu")(X).ntk)
    if kernel == "linear":
        Xc = X - X.mean(axis=0)
        return Xc @ Xc.T / X.shape[1]
    sq = np.sum(X**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    ell2 = (rbf_scale**2) * np.median(d2[np.triu_indices_from(d2, k=1)])
    return np.exp(-d2 / (2 * ell2))


@functools.cache
def digits_spectrum(kernel: str, rbf_scale: float = 1.0,
                    depth: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of K/n (descending, clipped at 0) and target powers summed over the 10
    outputs (``kernels.gram_spectrum``)."""
    spec = K.gram_spectrum(digits_gram(kernel, rbf_scale, depth), digits_data()[1])
    return spec.eigvals, spec.target_power


@dataclasses.dataclass(frozen=True)
class SphereHarmonics:
    r"""Inputs uniform on :math:`S^{d-1}` and the target
    :math:`y = \sqrt{p_1 d}\,x_1 + \sqrt{p_2}\,(x_2^2 - 1/d)/\sigma_2`: power ``p1`` in the
    degree-1 and ``p2`` in the degree-2 spherical harmonics (:math:`\sigma_2` the sd of
    :math:`x_2^2`).

    >>> x, y = SphereHarmonics(10, 1.0, 1.0).sample(jax.random.key(0), 4000)
    >>> bool(np.allclose(np.linalg.norm(x, axis=1), 1.0)), bool(abs(np.mean(y**2) - 2) < 0.15)
    (True, True)
    """

    d: int
    p1: float
    p2: float

    def sample(self, key: jax.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` float64 draws ``(x (n, d), y (n,))``, a function of ``key`` (a JAX PRNG key).

        Drawn by numpy's generator seeded with the key's bits: a float64
        ``jax.random.normal`` compiles once per sample size (~1-2 s of XLA on CPU each, most of
        a quick learning curve's cost), numpy compiles nothing."""
        d = self.d
        try:
            bits = np.asarray(jax.random.key_data(key), np.uint32).ravel()
        except (TypeError, ValueError):
            raise ValueError(f"key must be a JAX PRNG key, got {type(key).__name__}") from None
        x = np.random.default_rng(bits.tolist()).standard_normal((n, d))
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sigma2 = math.sqrt(3.0 / (d * (d + 2)) - 1.0 / d**2)
        return x, (math.sqrt(self.p1 * d) * x[:, 0]
                   + math.sqrt(self.p2) * (x[:, 1] ** 2 - 1.0 / d) / sigma2)


@functools.cache
def sphere_ntk(d: int, depth: int):
    """The NTK of ``mlp_kernel(depth, "relu")`` for unit-norm inputs in d dimensions as a
    function of the cosine (``Kernel.dot_product``, float64), evaluated on fixed blocks of 2^15
    entries: one compiled program for every shape (``k(x)`` compiles once per shape, ~1 s each
    on CPU). ``sphere_ntk(d, depth)(x @ x.T)`` is ``mlp_kernel(depth, "relu")(x).ntk``:

    >>> x = SphereHarmonics(10, 1.0, 1.0).sample(jax.random.key(0), 5)[0]
    >>> with jax.enable_x64(True):
    ...     k = np.asarray(K.mlp_kernel(2, "relu")(x).ntk)
    >>> bool(np.allclose(sphere_ntk(10, 2)(x @ x.T), k, rtol=1e-13, atol=0))
    True
    """
    k, n = K.mlp_kernel(depth, "relu"), 2**15
    f = jax.jit(lambda t: k.dot_product(t, q=1.0 / d).ntk)

    def ntk(t):
        t = np.clip(np.asarray(t, float), -1.0, 1.0)
        with jax.enable_x64(True):
            out = [f(jnp.asarray(b)) for b in np.pad(t.ravel(), (0, -t.size % n)).reshape(-1, n)]
        return np.concatenate(out)[:t.size].reshape(t.shape)
    return ntk
