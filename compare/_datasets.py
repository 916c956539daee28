"""Data sets shared by experiments: scikit-learn's digits, its Gram matrices and spectra.

The population of the digits experiments is the whole set (n = 1797 images); the kernel
operator on it has the eigenvalues of K/n and the one-hot target has power
``|U_k^T y|^2 / n`` in eigenvector k (Canatar, Bordelon, Pehlevan 2021, arXiv 2006.13198).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["N_DIGITS", "digits_data", "digits_gram", "digits_spectrum", "gram"]

N_DIGITS = 1797  # images in scikit-learn's load_digits


@functools.cache
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """Digits images scaled to [0, 1] (n, 64), and centred one-hot targets (n, 10)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = data.data.astype(np.float64) / 16.0
    Y = np.eye(10)[data.target]
    return X, Y - Y.mean(axis=0)


@functools.cache
def digits_gram(kernel: str, rbf_scale: float) -> np.ndarray:
    """The Gram matrix of the whole digits set (cached)."""
    return gram(kernel, digits_data()[0], rbf_scale)


def gram(kernel: str, X: np.ndarray, rbf_scale: float) -> np.ndarray:
    """Gram matrix of a data set: RBF exp(-|x-x'|^2 / (2 l^2)) with l = rbf_scale times the
    median pairwise distance, or linear (x - mean) . (x' - mean) / d."""
    if kernel == "linear":
        Xc = X - X.mean(axis=0)
        return Xc @ Xc.T / X.shape[1]
    sq = np.sum(X**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    ell2 = (rbf_scale**2) * np.median(d2[np.triu_indices_from(d2, k=1)])
    return np.exp(-d2 / (2 * ell2))


@functools.cache
def digits_spectrum(kernel: str, rbf_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of K/n (clipped at 0) and target powers summed over the 10 outputs."""
    _, Y = digits_data()
    K = digits_gram(kernel, rbf_scale)
    lam, U = np.linalg.eigh(K / K.shape[0])
    return np.clip(lam, 0.0, None), np.sum((U.T @ Y) ** 2, axis=1) / K.shape[0]
