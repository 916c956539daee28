"""Shared measurements for the abc-table tests of the CNN and the transformer.

Both measure what the tables in sims/_cnn.py and sims/_transformer.py predict: the initial
output variance, and the change of every recorded hidden representation and of the output after
one full-batch SGD step at a tiny fixed rate (linear response), as functions of the width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from theorysim.sims import EnsembleSpec, TrainConfig, make_model, train


def slope(xs, values):
    """Least-squares slope of log(values) against log(xs)."""
    return float(np.polyfit(np.log(xs), np.log(values), 1)[0])


def init_output_variance(cfg, x, seeds):
    """Mean of f^2 over seeds and inputs at initialisation (x flattened, (P, D))."""
    @jax.jit
    def out(key):
        return make_model(cfg, x.shape[1], key=key)(jnp.asarray(x, jnp.float32))

    f = np.concatenate([np.asarray(out(jax.random.key(s))) for s in range(seeds)])
    return float(np.mean(f**2))


def one_step(cfg, x, y, eta=1e-5, seed=0, optimizer="sgd"):
    """Models before and after one full-batch SGD step, and the step's output change.

    The step is the engine's rule written out, :math:`\\theta \\to \\theta - \\eta\\gamma_0^2
    c_\\theta \\nabla_\\theta \\mathcal L` with the model's ``lr_scales("sgd")`` and the MSE loss of
    the centred output f - f_0 (the first residual is -y at every width), in float64;
    ``test_train_step_is_the_abc_step`` checks that ``sims.train`` takes the same step.
    ``optimizer="adam"``: Adam's first step, :math:`-\\eta\\gamma_0 c^{\\rm Adam}_\\theta\\,
    \\mathrm{sign}\\,\\nabla_\\theta\\mathcal L` (bias-corrected moments of one gradient,
    epsilon 0).
    """
    adam = optimizer == "adam"
    with jax.enable_x64(True):
        m0 = make_model(cfg, x.shape[1], key=jax.random.fold_in(jax.random.key(seed), 0),
                        dtype=jnp.float64)
        graph, params, rest = nnx.split(m0, nnx.Param, ...)
        scales, rate = m0.lr_scales(optimizer), eta * (cfg.gamma0 if adam else cfg.gamma0**2)
        xj = jnp.asarray(x) if np.issubdtype(x.dtype, np.integer) else jnp.asarray(x, jnp.float64)
        yj = jnp.asarray(y, jnp.float64).reshape(len(y), -1)
        f0 = m0(xj)

        @jax.jit
        def step(params):
            def loss(p):
                f = nnx.merge(graph, p, rest)(xj) - f0
                return 0.5 * jnp.mean(jnp.sum((f - yj) ** 2, axis=-1))

            grads = jax.grad(loss)(params)
            return jax.tree_util.tree_map_with_path(
                lambda path, a, g: a - rate * scales[param_path(path)] * (
                    jnp.sign(g) if adam else g),
                params, grads)

        m1 = nnx.merge(graph, step(params), rest)
        return m0, m1, xj


def param_path(path) -> str:
    """``convs/0/kernel`` for a key path of an NNX parameter state."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.GetAttrKey):
            if k.name != "value":  # the array inside an nnx.Param
                parts.append(k.name)
        else:
            parts.append(str(getattr(k, "key", getattr(k, "idx", k))))
    return "/".join(parts)


def one_step_sizes(cfg, x, y, eta=1e-5, seeds=(0,), increments=False):
    """RMS change of each of ``model.features``' representations and of f after one SGD step
    (:func:`one_step`), averaged over ``seeds``: an array (representations + 1,).

    ``increments``: measure the change of :math:`h^l - h^{l-1}` for l >= 1 (a residual block's
    own contribution) instead of :math:`h^l`.
    """
    def incr(hs):
        return [hs[0]] + [b - a for a, b in zip(hs[:-1], hs[1:], strict=True)] if increments \
            else hs

    out = []
    with jax.enable_x64(True):
        for s in seeds:
            m0, m1, xj = one_step(cfg, x, y, eta, s)
            (f0, h0), (f1, h1) = m0.features(xj), m1.features(xj)
            h0, h1 = incr(h0), incr(h1)
            out.append([float(jnp.sqrt(jnp.mean((b - a) ** 2)))
                        for a, b in zip(h0 + [f0], h1 + [f1], strict=True)])
    return np.mean(np.array(out), axis=0)


def update_exponents(make_cfg, widths, x, y, seeds=(0,), increments=False):
    """Fitted width exponents of :func:`one_step_sizes` for configs ``make_cfg(width)``."""
    sizes = np.array([one_step_sizes(make_cfg(n), x, y, seeds=seeds, increments=increments)
                      for n in widths])
    return [slope(widths, sizes[:, j]) for j in range(sizes.shape[1])]


def train_one_step(cfg, x, y, eta=1e-5, seed=0):
    """The parameters after one step of ``sims.train`` (float64, full batch)."""
    with jax.enable_x64(True):
        res = train(cfg, TrainConfig(steps=1, lr=eta, dtype="float64", record_steps=(0, 1),
                                     observables=("outputs",), return_params=True),
                    x=x, y=y, ensemble=EnsembleSpec(seeds=(seed,), shard=False))
    return {k: v[0] for k, v in res.params.items()}
