r"""Observables of one network on a probe set: kernels, activation sizes, the empirical NTK.

For the models of :mod:`._models` (which expose ``features``), on probe inputs
:math:`x_1..x_P`:

.. math::

    \Phi^l_{\mu\nu} = \frac{1}{N}\phi(h^l_\mu)\cdot\phi(h^l_\nu), \qquad
    G^l_{\mu\nu} = \frac{1}{N} g^l_\mu\cdot g^l_\nu, \quad
    g^l = \frac{1}{a_{\rm out}}\frac{\partial f}{\partial h^l},

with :math:`a_{\rm out}` the output multiplier (:math:`1/(\gamma_0 N)` in ``mean_field``, so
:math:`g^l = \gamma_0 N\,\partial f/\partial h^l` as in Bordelon & Pehlevan arXiv 2205.09653).
The empirical NTK is the tangent kernel of the SGD dynamics including the per-layer rates,

.. math::

    K_{\mu\nu} = \gamma_0^2 \sum_p c_p\, \partial_{\theta_p} f_\mu\, \partial_{\theta_p} f_\nu,

so that linearised full-batch GD on :math:`\mathcal L = \frac{1}{2P}\sum_\mu |f_\mu - y_\mu|^2`
reads :math:`f_{t+1} - f_t = -\frac{\eta}{P} K (f_t - y)`. For the MLPs it is assembled layer by
layer from :math:`\phi(h^l)` and :math:`\partial f/\partial h^{l+1}` (exact, no Jacobian
materialised); for any other model from per-example gradients (small models only). With
several outputs, G and K are averaged over the output index. Kernel-target alignment
:math:`A = y^\top K y / (\|K\|_F \|y\|^2)` (Cristianini et al. 2001).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._param import activation_fn


def path_name(path) -> str:
    """``layers/0/kernel`` for a pytree key path (NNX ``value`` attributes dropped)."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            if k.name != "value":
                parts.append(k.name)
        else:
            parts.append(str(k))
    return "/".join(parts)


def param_names(params) -> list[str]:
    return [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def param_norms(params) -> jax.Array:
    """Frobenius norm of every parameter leaf, in :func:`param_names` order."""
    return jnp.stack([jnp.sqrt(jnp.sum(jnp.square(a))) for a in jax.tree.leaves(params)])


def _per_layer_grads(model, x, gamma0):
    """f (P, C), preactivations [h^l] and d f_c/d h^l for every output c: list of (C, P, N)."""
    zeros = [jnp.zeros((x.shape[0], model.cfg.width), x.dtype)] * model.cfg.depth

    def fwd(perturb):
        return model.features(x, gamma0, perturb)

    (f, hs), vjp = jax.vjp(fwd, zeros)
    c = f.shape[1]
    eye = jnp.eye(c, dtype=f.dtype)

    def one(e):
        cot = (jnp.broadcast_to(e, f.shape), [jnp.zeros_like(h) for h in hs])
        return vjp(cot)[0]

    dfdh = jax.vmap(one)(eye)  # list over layers of (C, P, N)
    return f, hs, dfdh


def layer_observables(model, x, gamma0, lr_scales, want: set[str]) -> dict[str, jax.Array]:
    """act_rms (L,), feature_kernels (L, P, P), grad_kernels (L, P, P), ntk (P, P) of an MLP."""
    if hasattr(model, "layer_observables"):  # CNN / transformer compute their own
        return model.layer_observables(x, gamma0, lr_scales, want)
    out = {}
    phi = activation_fn(model.cfg.activation)
    n = model.cfg.width
    need_grads = bool(want & {"grad_kernels", "ntk"})
    if need_grads:
        f, hs, dfdh = _per_layer_grads(model, x, gamma0)
    else:
        f, hs = model.features(x, gamma0)
    if "act_rms" in want:
        out["act_rms"] = jnp.stack([jnp.sqrt(jnp.mean(jnp.square(h))) for h in hs])
    zs = [phi(h) for h in hs]
    if "feature_kernels" in want:
        out["feature_kernels"] = jnp.stack([z @ z.T / n for z in zs])
    if "grad_kernels" in want:
        a_out = model.output_multiplier(gamma0)
        out["grad_kernels"] = jnp.stack(
            [jnp.einsum("cpi,cqi->pq", d, d) / (d.shape[0] * n * a_out**2) for d in dfdh])
    if "ntk" in want:
        g0 = model._gamma0(gamma0)
        c = f.shape[1]
        kern = jnp.zeros((x.shape[0], x.shape[0]), f.dtype)
        inputs = [x] + zs
        for i, layer in enumerate(model.layers):
            m = layer.scale.multiplier
            if model.kinds[i] == "hidden":
                m = m * model.branch_scale
            zz = inputs[i] @ inputs[i].T
            if i == len(model.layers) - 1:
                m = m / g0
                dd = jnp.ones_like(zz)  # d f_c / d u_c = 1, averaged over c
            else:
                d = dfdh[i]
                dd = jnp.einsum("cpi,cqi->pq", d, d) / c
            kern = kern + lr_scales[f"layers/{i}/kernel"] * m**2 * zz * dd
            if layer.bias is not None:
                kern = kern + lr_scales[f"layers/{i}/bias"] * dd
        out["ntk"] = g0**2 * kern
    return out


def generic_ntk(apply, params, x, lr_scale_tree, gamma0_factor,
                max_jac_bytes: int = 2**29) -> jax.Array:
    r"""Empirical NTK (P, P) of any ``apply(params, x) -> (P, C)`` from per-example gradients.

    :math:`K = \sum_\ell c_\ell J_\ell J_\ell^\top / C`. The Jacobian of all P probes takes
    P * C * (number of parameters) floats (and XLA holds ~3 copies). When it exceeds
    ``max_jac_bytes`` the probes are split into chunks of at most that size and the blocks
    :math:`J_a J_b^\top` are built one after another under ``lax.map`` (chunk a's Jacobian
    once per row of blocks, chunk b's once per block: ``P (n + 1)`` per-example gradients
    instead of P for n chunks), so memory stays near two chunks' Jacobians. Same numbers up to
    float rounding. A width-2048, depth-2 CNN (37.7M parameters, 151 MB per probe) on 24 probes:
    ~12 GB unchunked; chunks of 3 probes (the default 512 MiB): 3.2 GB peak, 88 CPU-s; 1 GiB
    chunks of 7 probes: ~10 GB process peak, which a shared 23 GB machine did not hold
    (2026-12-07, load 8).
    """
    def f_single(p, xi):
        return apply(p, xi[None])[0]

    def jac(xs):
        return jax.vmap(lambda xi: jax.jacrev(f_single)(params, xi))(xs)  # (P, C, *shape)

    def gram(ja, jb):
        kern = 0.0
        for a, b, c in zip(jax.tree.leaves(ja), jax.tree.leaves(jb),
                           jax.tree.leaves(lr_scale_tree), strict=True):
            a2, b2 = a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1)
            kern = kern + c * jnp.einsum("pci,qci->pq", a2, b2) / a2.shape[1]
        return kern

    p_count = x.shape[0]
    out_c = jax.eval_shape(lambda xi: f_single(params, xi), x[0]).shape[0]
    per_probe = out_c * sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(params))
    chunk = max(1, int(max_jac_bytes // max(per_probe, 1)))
    if chunk >= p_count:
        j = jac(x)
        return gamma0_factor * gram(j, j)
    n = -(-p_count // chunk)
    xs = jnp.concatenate([x, jnp.repeat(x[:1], n * chunk - p_count, axis=0)])
    xs = xs.reshape(n, chunk, *x.shape[1:])

    def row(xa):
        ja = jac(xa)
        return jax.lax.map(lambda xb: gram(ja, jac(xb)), xs)  # (n, chunk, chunk)

    blocks = jax.lax.map(row, xs)  # (n_a, n_b, chunk, chunk)
    kern = blocks.transpose(0, 2, 1, 3).reshape(n * chunk, n * chunk)[:p_count, :p_count]
    return gamma0_factor * kern


def alignment(kern: jax.Array, y: jax.Array) -> jax.Array:
    """Kernel-target alignment ``sum_c y_c^T K y_c / (|K|_F |y|^2)`` for y of shape (P, C)."""
    num = jnp.einsum("pc,pq,qc->", y, kern, y)
    return num / (jnp.linalg.norm(kern) * jnp.sum(jnp.square(y)))


def scale_tree_like(flat: dict, scales: dict[str, float]) -> dict[str, float]:
    """Per-leaf learning-rate scales for a flat ``{path: array}`` dict (1.0 where unknown)."""
    return {n: float(scales.get(n, 1.0)) for n in flat}
