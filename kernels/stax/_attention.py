r"""``GlobalSelfAttention`` (Hron et al. 2020, arXiv 2006.10540; neural-tangents' arguments).

``linear_scaling=True`` (keys and queries tied, logits scaled by :math:`1/(C n_k)`): the
logits converge to :math:`\sigma_{QK}K_{11}(x)`, so with
:math:`G = \mathrm{attn}(\sigma_{QK}K_{11})` (softmax over the attended positions)

.. math::
    K' = \sigma_{OV}^2\, G_1 K G_2^\top + \sigma_b^2,\qquad
    \Theta' = \sigma_{OV}^2\, G_1\Theta G_2^\top + \sigma_b^2 + 2(K' - \sigma_b^2).

``linear_scaling=False`` has a closed form only for the ``IDENTITY`` mechanism.
No positional embedding (``pos_emb_type="NONE"``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from theorysim.checks import check_choice, check_scalar, check_std

from ._core import KState, Layer, batch_cov

MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")
_LETTERS = "abcdefghijklmnopqrstuvw"


def _mechanism(name):
    return {"SOFTMAX": jax.nn.softmax, "IDENTITY": lambda x, axis=None: x,
            "ABS": lambda x, axis=None: jnp.abs(x),
            "RELU": lambda x, axis=None: jnp.maximum(x, 0.0)}[name]


class _Attention(Layer):
    name = "GlobalSelfAttention"

    def __init__(self, n_out, n_key, n_val, n_heads, linear_scaling, qk_std, ov_std, b_std,
                 mechanism):
        self.n_out, self.n_key, self.n_val, self.n_heads = n_out, n_key, n_val, n_heads
        self.linear_scaling, self.qk_std, self.ov_std = linear_scaling, qk_std, ov_std
        self.b_std, self.mechanism = b_std, mechanism
        self.w_query_std = 1.0

    def init(self, key, shape):
        c = shape[-1]
        kq, kk, kv, ko, kb = jax.random.split(key, 5)
        keys = jax.random.normal(kk, (self.n_heads, c, self.n_key))
        vals = jax.random.normal(kv, (self.n_heads, c, self.n_val))
        w_out = jax.random.normal(ko, (self.n_val * self.n_heads, self.n_out))
        b = None if self.b_std is None else jax.random.normal(kb, (1,) * (len(shape) - 1)
                                                              + (self.n_out,))
        queries = None if self.linear_scaling else jax.random.normal(
            kq, (self.n_heads, c, self.n_key))
        return tuple(shape[:-1]) + (self.n_out,), (queries, keys, vals, w_out, b, None)

    def apply(self, params, x, **kwargs):
        queries_w, keys_w, vals_w, w_out, b, _ = params
        n, spatial, c = x.shape[0], x.shape[1:-1], x.shape[-1]
        flat = x.reshape(n, -1, c)

        def dot(m):
            return jnp.moveaxis(jnp.dot(flat, m), 2, 0)            # (heads, n, S, k)

        values, keys = dot(vals_w), dot(keys_w)
        queries = keys if self.linear_scaling else dot(queries_w)
        g = jnp.matmul(queries, jnp.swapaxes(keys, -1, -2))
        norm = c * self.n_key ** (1 if self.linear_scaling else 0.5)
        g = g * (self.qk_std / norm)
        g = _mechanism(self.mechanism)(g, axis=-1)
        heads = jnp.moveaxis(jnp.matmul(g, values), 0, -1)
        heads = heads.reshape(heads.shape[:-2] + (-1,))
        out = jnp.matmul(heads, w_out) * (self.ov_std / math.sqrt(self.n_val * self.n_heads * c))
        out = out.reshape((n,) + spatial + (self.n_out,))
        if b is not None:
            out = out + self.b_std * b
        return out

    def needs_full(self, out_full):
        return True

    def kernel(self, st: KState) -> KState:
        if not st.spatial:
            raise ValueError("GlobalSelfAttention needs inputs with spatial (sequence) axes "
                             "(N, *S, C)")
        if not st.full:
            raise ValueError("GlobalSelfAttention needs the full spatial covariance")
        b2 = 0.0 if self.b_std is None else self.b_std**2
        if self.linear_scaling:
            return self._linear(st, b2)
        if self.mechanism != "IDENTITY":
            raise ValueError(f"GlobalSelfAttention with linear_scaling=False and attention "
                             f"mechanism {self.mechanism} has no closed-form kernel; use "
                             "linear_scaling=True, the IDENTITY mechanism, or "
                             "theorysim.kernels.monte_carlo_kernel")
        return self._identity_sqrt(st, b2)

    def _linear(self, st, b2):
        nsp = len(st.spatial)
        fn = _mechanism(self.mechanism)

        def weights(cov):
            axes = tuple(2 + 2 * i for i in range(nsp))
            return fn(self.qk_std * cov, axis=axes)

        g1 = weights(batch_cov(st, 1))
        g2 = g1 if st.symmetric else weights(st.cov2)
        ov2 = self.ov_std**2

        def weigh(mat, ga, gb, pair):
            # ga: (n, s1, t1, s2, t2, ...) ; mat (n[, m], t1, u1, ...) ; gb (m, r1, u1, ...)
            sa, ta = _LETTERS[:nsp], _LETTERS[nsp:2 * nsp]
            sb, tb = _LETTERS[2 * nsp:3 * nsp], _LETTERS[3 * nsp:4 * nsp]
            ga_s = "x" + "".join(s + t for s, t in zip(sa, ta, strict=True))
            bidx = "y" if pair else "x"
            gb_s = bidx + "".join(s + t for s, t in zip(sb, tb, strict=True))
            lead = "xy" if pair else "x"
            m_s = lead + "".join(t + u for t, u in zip(ta, tb, strict=True))
            r_s = lead + "".join(s + r for s, r in zip(sa, sb, strict=True))
            return jnp.einsum(f"{ga_s},{m_s},{gb_s}->{r_s}", ga, mat, gb, optimize=True)

        nngp = ov2 * weigh(st.nngp, g1, g2, True) + b2
        ntk = None
        if st.want_ntk:
            base = 0.0 if st.ntk is None else ov2 * weigh(st.ntk, g1, g2, True)
            ntk = base + b2 + 2 * (nngp - b2)
        cov1 = cov2 = None
        if not st.symmetric:
            cov1 = ov2 * weigh(st.cov1, g1, g1, False) + b2
            cov2 = ov2 * weigh(st.cov2, g2, g2, False) + b2
        return st.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, channels=self.n_out,
                          is_input=False, gaussian=True)

    def _identity_sqrt(self, st, b2):
        std2 = (self.qk_std * self.ov_std) ** 2

        def dot(a, b, batch_ndim):
            axes = tuple(range(batch_ndim, a.ndim))
            return jnp.sum(a * b, axes, keepdims=True)

        nngp_in = st.nngp
        dot12 = dot(nngp_in, nngp_in, 2)
        nngp = std2 * (dot12 * nngp_in) + b2
        ntk = None
        if st.want_ntk:
            ntk_in = jnp.zeros_like(nngp_in) if st.ntk is None else st.ntk
            t = 2 * dot(nngp_in, ntk_in, 2)
            ntk = std2 * (t * nngp_in + dot12 * (ntk_in + 4 * nngp_in)) + b2
        cov1 = cov2 = None
        if not st.symmetric:
            cov1 = std2 * (dot(st.cov1, st.cov1, 1) * st.cov1) + b2
            cov2 = std2 * (dot(st.cov2, st.cov2, 1) * st.cov2) + b2
        return st.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, channels=self.n_out,
                          is_input=False, gaussian=True)


def GlobalSelfAttention(n_chan_out: int, n_chan_key: int, n_chan_val: int, n_heads: int,
                        linear_scaling: bool = True, W_key_std: float = 1.0,
                        W_value_std: float = 1.0, W_query_std: float = 1.0,
                        W_out_std: float = 1.0, b_std: float | None = None,
                        attention_mechanism: str = "SOFTMAX", pos_emb_type: str = "NONE",
                        batch_axis: int = 0, channel_axis: int = -1, **kwargs):
    """Global scaled dot-product self-attention over all spatial positions (module docstring).
    Parameters ``(W_query | None, W_key, W_value, W_out, b, None)`` as neural-tangents."""
    sizes = [check_scalar(n, v, lo=1, integer=True) for n, v in
             (("n_chan_out", n_chan_out), ("n_chan_key", n_chan_key),
              ("n_chan_val", n_chan_val), ("n_heads", n_heads))]
    if not isinstance(linear_scaling, bool):
        raise ValueError(f"linear_scaling must be a bool, got {linear_scaling!r}")
    stds = [check_std(n, v) for n, v in
            (("W_key_std", W_key_std), ("W_value_std", W_value_std),
             ("W_query_std", W_query_std), ("W_out_std", W_out_std))]
    if b_std is not None:
        b_std = check_std("b_std", b_std, positive=False)
    if not isinstance(attention_mechanism, str):
        raise ValueError(f"attention_mechanism must be one of {MECHANISMS}")
    mech = attention_mechanism.upper()
    check_choice("attention_mechanism", mech, MECHANISMS)
    if not isinstance(pos_emb_type, str) or pos_emb_type.upper() != "NONE":
        raise ValueError(f"pos_emb_type: only 'NONE' is supported, got {pos_emb_type!r}")
    if kwargs:
        raise ValueError(f"unsupported GlobalSelfAttention arguments {sorted(kwargs)} "
                         "(positional embeddings are not implemented)")
    if batch_axis != 0 or channel_axis != -1:
        raise ValueError("GlobalSelfAttention: only batch_axis=0, channel_axis=-1 supported")
    qk_std = stds[2] * stds[0]
    ov_std = stds[3] * stds[1]
    return _Attention(*sizes, linear_scaling, qk_std, ov_std, b_std, mech).triple()
