r"""Transformers with an explicit abc-parameterisation: attention, heads and depth (Flax NNX).

A sequence of :math:`T \le` ``max_len`` tokens (integer ids embedded, or real vectors of size
:math:`D`) goes through ``L = depth`` blocks of width :math:`N = H\,d_{\rm head}`
(``heads`` :math:`H`), each an attention branch and an MLP branch on an optional pre-LayerNorm
(:math:`\bar u = (u - \mathrm{mean}\,u)/\mathrm{std}\,u` over the N features, no learned gain):

.. math::

    h^0_t = a_E W^E x_t + a_P W^P_t, \qquad
    h^{l+\frac12} = h^l + \beta_L\, a_O W^O\, \mathrm{concat}_{\eta\le H}
        \sum_s \mathrm{softmax}_s\big(\alpha\, q^\eta_t\cdot k^\eta_s\big)\, v^\eta_s,

    h^{l+1} = h^{l+\frac12} + \beta_L\, a_2 W^2 \phi\big(a_1 W^1 \bar h^{l+\frac12}\big), \qquad
    f = \frac{a_R}{\gamma_0} W^R \bar h^L_{\rm read},

with :math:`q^\eta = a_Q (W^Q \bar h^l)^\eta` (likewise :math:`k, v`), a causal mask
:math:`s \le t` in decoder blocks (``causal=True``), and the readout at the last position or the
mean over positions. The abc numbers of every weight are the rows of the :mod:`._param` table
with the fan-in :math:`d` below (:math:`m` = ``mlp_ratio``):

==================  ==================  ======  ====================  ============================
weight              parameter path      row     fan-in :math:`d`       notes
==================  ==================  ======  ====================  ============================
:math:`W^E`         ``embed``           input   1 (ids), D (vectors)  a one-hot id has norm 1
:math:`W^P`         ``pos``             input   1                     learned positions
:math:`W^{Q,K,V,O}` ``blocks/l/wq`` ..  hidden  :math:`N`             in every block
:math:`W^1`         ``blocks/l/w1``     hidden  :math:`N`             output width :math:`mN`
:math:`W^2`         ``blocks/l/w2``     hidden  :math:`mN`
:math:`W^R`         ``readout``         output  :math:`N`
==================  ==================  ======  ====================  ============================

so under ``mup`` (Yang et al. arXiv 2203.03466, Table 3, "unit multiplier" form) embeddings
have :math:`\sigma^2 = 1` and SGD rate :math:`N` (Adam 1), hidden weights
:math:`\sigma^2 = 1/d`, SGD rate :math:`N/d`, Adam rate :math:`1/d`, and the readout
:math:`\sigma^2 = 1/N^2`, rates :math:`1/N`.

**Attention logits.** :math:`\alpha = 1/d_{\rm head}` under ``mup`` and ``mean_field`` and
:math:`1/\sqrt{d_{\rm head}}` under ``sp`` and ``ntk``. Why: after training, :math:`q` and
:math:`k` move by :math:`O(1)` per coordinate in a correlated direction, so
:math:`q\cdot k = \Theta(d_{\rm head})` (a law-of-large-numbers sum, not a CLT one) and only
:math:`1/d_{\rm head}` keeps the logit updates :math:`O(1)` as :math:`d_{\rm head}\to\infty`
(arXiv 2203.03466, section 4; Bordelon et al. arXiv 2405.15712, whose exponent
:math:`\alpha_A = 1` is muP and :math:`\alpha_A = 1/2` the standard choice). At
initialisation :math:`q\cdot k = O(\sqrt{d_{\rm head}})`, so under muP the logits start
:math:`O(d_{\rm head}^{-1/2})` (near-uniform attention). Varying :math:`H` at fixed
:math:`d_{\rm head}` leaves :math:`\alpha` fixed; :math:`W^O` (fan-in :math:`N = H d_{\rm head}`)
averages the heads with the :math:`1/N` of its table row, the mean-field head limit of
arXiv 2405.15712.

**Depth.** :math:`\beta_L = 1` (``branch_scale="none"``), :math:`L^{-1/2}` (``"sqrt_depth"``,
depth-muP: Bordelon et al. arXiv 2309.16620, Yang et al. arXiv 2310.02244) or :math:`L^{-1}`
(``"depth"``, arXiv 2405.15712). A branch weight :math:`W` gets a gradient
:math:`O(\beta_L)`, so one SGD step moves the branch by :math:`O(c\,\beta_L^2)` and the
:math:`L` branches together move :math:`h^L` by :math:`O(c\,L\,\beta_L^2)`; Adam steps are
:math:`O(c)` whatever the gradient, moving :math:`h^L` by :math:`O(c\,L\,\beta_L)`. Keeping
both :math:`O(1)` multiplies every branch rate by

================  =================  ==============  ==============
``branch_scale``  :math:`\beta_L`    SGD rate x      Adam rate x
================  =================  ==============  ==============
``none``          1                  1               1
``sqrt_depth``    :math:`L^{-1/2}`   1               :math:`L^{-1/2}`
``depth``         :math:`L^{-1}`     :math:`L`       1
================  =================  ==============  ==============

**Depth transfer: why 1/L for transformers.** Both rows keep the stream's step
:math:`O(\eta)`, but a block's branch holds two layers (:math:`W^Q, W^K` inside the logits,
:math:`W^V` then :math:`W^O`, :math:`W^1` then :math:`W^2`), whose inner features (q, k, the
MLP pre-activations) move by the branch's own Adam rate: :math:`\eta L^{-1/2}` under
``sqrt_depth``, so the blocks turn lazy as L grows (Yang et al. arXiv 2310.02244, block depth
2), against :math:`O(\eta)` at any L under ``depth`` (CompleteP, Dey et al. arXiv 2505.01618;
the 1/L sum over blocks is an average, an ODE limit in depth). Embeddings, positions and
readout are not depth-scaled, so under ``sqrt_depth`` the loss at a given :math:`\eta` mixes
an L-dependent inner step with L-independent outer ones and the loss-vs-rate curve changes
shape with depth; under ``depth`` the step is the same at every L to leading order and the
whole curve should transfer. Measured (``mup-transfer``'s task: in-context regression, D = 2,
4 context pairs, width 32, 4 heads, ``mlp_ratio`` 1, 100 Adam steps, batch 32, 8 seeds;
log test loss, seed mean, at :math:`\log_2\eta` = -5, -3, -1, +1): ``depth`` L = 2: -1.25,
-1.57, -1.47, -0.88; L = 8: -1.34, -1.69, -1.51, -0.85 (optimum -2.59 +- 0.16 and -2.74 +-
0.19, five-point parabola, bootstrap SE); ``sqrt_depth`` L = 2: -1.19, -1.57, -1.44, -1.00;
L = 8: -1.06, -1.46, -1.35, -1.39, flat from :math:`2^{-3}` to :math:`2^{1}` (optimum -2.5
+- 1.6: undetermined), with a higher minimum. SGD (muP rates above) needs longer: the task's
solution is a product of attention and value weights grown from their random start, and at
every stable rate the loss stays on its plateau (the context-free predictor's) for ~100
steps: width 32, 1/L, :math:`\eta = 2^{-1}`: log loss -0.88, -0.99, -1.63, -2.31 after 0,
100, 300, 1000 steps; rates :math:`\ge 2^2` collapse to the constant predictor.

Expected width exponents (checked by the tests, over :math:`H` at fixed :math:`d_{\rm head}`
and over :math:`d_{\rm head}` at fixed :math:`H`): initial output variance :math:`N^0` (sp, ntk)
and :math:`N^{-1}` (mup, mean_field); one-step change of the residual stream :math:`h^l` at
fixed :math:`\eta`: :math:`N^0` (mup, mean_field), :math:`N^{-1/2}` (ntk), and for sp
:math:`N^{-1/2}` (:math:`h^0`), :math:`N^{1/2}` (:math:`h^{l\ge1}`), :math:`N` (output).

**Coordinate checks under Adam** (``coord-check``, fixed rate :math:`\eta`, updates
:math:`h_T - h_0`). (i) The logit update :math:`\alpha\,\Delta(q\cdot k)` has a coherent part
:math:`\alpha(\Delta W^Q u\cdot k + q\cdot\Delta W^K u)` (Adam's step is aligned with k, resp. q:
an LLN sum over :math:`d_{\rm head}`, :math:`O(1)` under muP) and an incoherent part
:math:`\alpha(W^Q\Delta u\cdot k + q\cdot W^K\Delta u)` (the block input's change through the
independent random :math:`W^Q, W^K`: a CLT sum, :math:`O(d_{\rm head}^{-1/2})`), which makes a
fit over :math:`d_{\rm head}` = 32..256 read about -0.3 although the limit is flat; with
``zero_query`` it vanishes at first order (measured, 4 heads, Adam 0.01, 3 steps, d_head 32..256:
coherent part -0.03, incoherent -0.47, zero_query total -0.04). (ii) SP output: the backward
signal to the last features is along :math:`W^R` alone, so Adam moves them by
:math:`\eta N\,\mathrm{sign}(W^R)` per coordinate and :math:`\Delta f = \Delta W^R\cdot u +
W^R\cdot\Delta u \sim \eta N + \eta N\sum_i|W^R_i| \sim \eta N^{3/2}` (a CNN: measured 1.56).
Behind the pre-LN readout :math:`|\Delta u| \le 2\sqrt N` once the stream's update exceeds its
:math:`O(1)` start (:math:`\eta N\cdot\text{steps} \gg 1`), leaving :math:`\Delta W^R\cdot u \sim
\eta N` (measured at :math:`\eta` = 0.01, N = 128..512: 0.96; at :math:`\eta = 10^{-3}`, the
crossover, 0.18; at :math:`10^{-4}` 1.17, with the hidden layers there at 0.73-0.83 instead of 1:
not yet the asymptotic regime over heads at :math:`d_{\rm head}` = 16).

Inputs: integer ids of shape (P, T) (``vocab_size``) or real vectors (P, T, D) / flattened
(P, T*D) (``token_dim``), the form :func:`theorysim.sims.train` passes them in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ._cnn import _layer_observables
from ._param import (
    PRESETS,
    activation_fn,
    check_depth,
    check_preset_activation_gamma0,
    is_int,
    layer_scale,
)

BRANCH_SCALES = ("none", "sqrt_depth", "depth")
SEQ_READOUTS = ("last", "mean")


def attention_logit_scale(preset: str, d_head: int) -> float:
    r"""The logit factor :math:`\alpha`: :math:`1/d_{\rm head}` (mup, mean_field), else
    :math:`1/\sqrt{d_{\rm head}}` (sp, ntk).

    Example:
        >>> attention_logit_scale("mup", 16), attention_logit_scale("sp", 16)
        (0.0625, 0.25)
    """
    if preset not in PRESETS:
        raise ValueError(f"parameterization must be one of {list(PRESETS)}, got {preset!r}")
    return 1.0 / d_head if preset in ("mup", "mean_field") else 1.0 / math.sqrt(d_head)


def branch_factors(branch_scale: str, depth: int) -> tuple[float, float, float]:
    r"""``(beta_L, SGD rate factor, Adam rate factor)`` of the residual branches (module doc)."""
    if branch_scale == "none":
        return 1.0, 1.0, 1.0
    if branch_scale == "sqrt_depth":
        return 1.0 / math.sqrt(depth), 1.0, 1.0 / math.sqrt(depth)
    if branch_scale == "depth":
        return 1.0 / depth, float(depth), 1.0
    raise ValueError(f"branch_scale must be one of {list(BRANCH_SCALES)}, got {branch_scale!r}")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """A transformer of ``depth`` blocks, width ``width = heads * d_head``.

    Args:
        width: N = heads x d_head (>= 1, divisible by ``heads``).
        heads: H, attention heads per block.
        depth: L, number of blocks (>= 1).
        max_len: longest sequence accepted (size of the positional embedding).
        vocab_size: V for integer token inputs (ids in [0, V)); exclusive with ``token_dim``.
        token_dim: D for real-vector token inputs; exclusive with ``vocab_size``.
        mlp_ratio: m, the MLP block's hidden width is m N.
        causal: decoder blocks (causal mask) if True, encoder blocks otherwise.
        layer_norm: pre-LayerNorm (no learned gain) before each branch and the readout.
        branch_scale: residual branch factor ``none`` (1), ``sqrt_depth`` (L^-1/2, depth-muP)
            or ``depth`` (1/L); learning rates follow (module docstring).
        readout: ``last`` (the last position, for decoders) or ``mean`` (mean over positions).
        pos_embedding: add a learned positional embedding.
        parameterization: ``sp``, ``ntk``, ``mean_field`` or ``mup``.
        activation: of the MLP blocks, a name in ``ACTIVATIONS`` or a callable.
        gamma0: richness (> 0).
        out_dim: number of outputs (classes for cross-entropy).
        centre: train and report f(x) - f_0(x).
        zero_query: initialise :math:`W^Q = 0` (microsoft/mup's ``query_zero_init``, the
            practice of arXiv 2203.03466): attention starts uniform, and the logits are their
            own update, O(1) under muP however large d_head (the random-init part is
            :math:`O(d_{\rm head}^{-1/2})` under muP). The rate table is unchanged.

    Example:
        >>> cfg = TransformerConfig(width=32, heads=4, depth=2, vocab_size=10, max_len=8)
        >>> cfg.d_head
        8
    """

    width: int
    heads: int = 1
    depth: int = 2
    max_len: int = 64
    vocab_size: int | None = None
    token_dim: int | None = None
    mlp_ratio: int = 4
    causal: bool = True
    layer_norm: bool = True
    branch_scale: str = "sqrt_depth"
    readout: str = "last"
    pos_embedding: bool = True
    parameterization: str = "mup"
    activation: str | Callable = "gelu"
    gamma0: float = 1.0
    out_dim: int = 1
    centre: bool = False
    zero_query: bool = False

    def __post_init__(self):
        for name in ("width", "heads", "depth", "max_len", "mlp_ratio", "out_dim"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        check_depth(self.depth)
        if self.width % self.heads:
            raise ValueError(f"width must be divisible by heads (width = heads x d_head), got "
                             f"width={self.width}, heads={self.heads}")
        if (self.vocab_size is None) == (self.token_dim is None):
            raise ValueError("give exactly one of vocab_size (integer tokens) and token_dim "
                             f"(real vectors), got vocab_size={self.vocab_size!r}, "
                             f"token_dim={self.token_dim!r}")
        for name in ("vocab_size", "token_dim"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {v!r}")
        if self.branch_scale not in BRANCH_SCALES:
            raise ValueError(f"branch_scale must be one of {list(BRANCH_SCALES)}, "
                             f"got {self.branch_scale!r}")
        if self.readout not in SEQ_READOUTS:
            raise ValueError(f"readout must be one of {list(SEQ_READOUTS)}, got {self.readout!r}")
        check_preset_activation_gamma0(
            self, ("causal", "layer_norm", "pos_embedding", "centre", "zero_query"))

    @property
    def d_head(self) -> int:
        return self.width // self.heads

    def seq_len(self, in_dim: int) -> int:
        """Sequence length T of flattened inputs with ``in_dim`` columns (ValueError if bad)."""
        if not is_int(in_dim) or in_dim < 1:
            raise ValueError(f"in_dim must be an integer >= 1, got {in_dim!r}")
        d = 1 if self.vocab_size is not None else self.token_dim
        if in_dim % d:
            raise ValueError(f"x must have T x token_dim = T x {d} columns, got {in_dim}")
        t = in_dim // d
        if t > self.max_len:
            raise ValueError(f"x: sequence length {t} is longer than the model's max_len "
                             f"{self.max_len}")
        return t

    def layer_names(self) -> tuple[str, ...]:
        """Names of the recorded activations (``act_rms`` order)."""
        names = ["embed"]
        for l in range(self.depth):
            names += [f"block{l}/attn_logits", f"block{l}/attn_out", f"block{l}/mlp_hidden",
                      f"block{l}/stream"]
        return tuple(names)

    def check_inputs(self, x, name: str = "x") -> np.ndarray:
        """Return x flattened to (P, T) ids or (P, T * token_dim) vectors; ``ValueError`` naming
        ``name`` unless x is ids (P, T) in [0, vocab_size), or real vectors (P, T, token_dim) /
        (P, T * token_dim), with T <= max_len."""
        x = np.asarray(x)
        if self.vocab_size is not None:
            if x.ndim != 2:
                raise ValueError(f"{name} must be token ids of shape (P, T), got {x.shape}")
            if not np.issubdtype(x.dtype, np.integer):
                if not (np.issubdtype(x.dtype, np.floating) and np.all(x == np.round(x))):
                    raise ValueError(f"{name} must hold integer token ids, got {x.dtype}")
            if x.size and (x.min() < 0 or x.max() >= self.vocab_size):
                raise ValueError(f"{name}: token ids must be in [0, vocab_size={self.vocab_size}), "
                                 f"got [{x.min()}, {x.max()}]")
            t = x.shape[1]
        else:
            d = self.token_dim
            if x.ndim == 3 and x.shape[2] == d:
                t = x.shape[1]
            elif x.ndim == 2 and x.shape[1] % d == 0:
                t = x.shape[1] // d
            else:
                raise ValueError(f"{name} must have shape (P, T, {d}) or (P, T * {d}) for "
                                 f"token_dim={d}, got {x.shape}")
            if not np.all(np.isfinite(x)):
                raise ValueError(f"{name} must be finite")
        if t > self.max_len:
            raise ValueError(f"{name}: sequence length {t} is longer than the model's max_len "
                             f"{self.max_len}")
        return x.reshape(x.shape[0], -1)


def _layer_norm(u, eps=1e-6):
    mu = jnp.mean(u, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(u - mu), axis=-1, keepdims=True)
    return (u - mu) * jax.lax.rsqrt(var + eps)


def _param(rngs, std, shape, dtype):
    return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype))


class Block(nnx.Module):
    """One transformer block: attention branch then MLP branch (module docstring)."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        n, m, p = cfg.width, cfg.mlp_ratio * cfg.width, cfg.parameterization
        fan_in = {"wq": n, "wk": n, "wv": n, "wo": n, "w1": n, "w2": m}
        self.scales = {k: layer_scale(p, "hidden", d, n) for k, d in fan_in.items()}
        shapes = {"wq": (n, n), "wk": (n, n), "wv": (n, n), "wo": (n, n), "w1": (n, m),
                  "w2": (m, n)}
        for name, shp in shapes.items():
            std = 0.0 if name == "wq" and cfg.zero_query else self.scales[name].init_std
            setattr(self, name, _param(rngs, std, shp, dtype))

    def _dense(self, name, u):
        return self.scales[name].multiplier * (u @ getattr(self, name)[...])


class Transformer(nnx.Module):
    """The transformer of a :class:`TransformerConfig` (module docstring).

    Args:
        cfg: the config.
        rngs: NNX random streams (``params`` used).
        dtype: parameter dtype.

    Besides ``__call__(x, gamma0=None)`` it has ``features(x, gamma0)`` ->
    ``(f, [h^0, h^1, ..., h^L])`` (the residual stream after the embedding and after each
    block), ``activations`` (attention logits, attention and MLP outputs, streams),
    ``lr_scales(optimizer)`` and ``output_multiplier(gamma0)``.

    Example:
        >>> cfg = TransformerConfig(width=16, heads=2, depth=2, vocab_size=5, max_len=4)
        >>> Transformer(cfg, rngs=nnx.Rngs(0))(jnp.array([[1, 2, 3], [0, 4, 4]])).shape
        (2, 1)
    """

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg = cfg
        n, p = cfg.width, cfg.parameterization
        tokens = cfg.vocab_size is not None
        self.embed_scale = layer_scale(p, "input", 1 if tokens else cfg.token_dim, n)
        rows = cfg.vocab_size if tokens else cfg.token_dim
        self.embed = _param(rngs, self.embed_scale.init_std, (rows, n), dtype)
        self.pos_scale = layer_scale(p, "input", 1, n)
        if cfg.pos_embedding:
            self.pos = _param(rngs, self.pos_scale.init_std, (cfg.max_len, n), dtype)
        else:
            self.pos = None
        self.blocks = nnx.List([Block(cfg, rngs=rngs, dtype=dtype) for _ in range(cfg.depth)])
        self.readout_scale = layer_scale(p, "output", n, n)
        self.readout = _param(rngs, self.readout_scale.init_std, (n, cfg.out_dim), dtype)
        self.beta, self.branch_sgd, self.branch_adam = branch_factors(cfg.branch_scale, cfg.depth)
        self.alpha = attention_logit_scale(p, cfg.d_head)

    def _gamma0(self, gamma0):
        return self.cfg.gamma0 if gamma0 is None else gamma0

    def output_multiplier(self, gamma0=None):
        """The readout multiplier a_R / gamma0."""
        return self.readout_scale.multiplier / self._gamma0(gamma0)

    def _embed(self, x):
        cfg = self.cfg
        if not isinstance(x, jax.core.Tracer):
            cfg.check_inputs(x)
        if cfg.vocab_size is not None:
            ids = x if jnp.issubdtype(x.dtype, jnp.integer) else jnp.round(x).astype(jnp.int32)
            h = self.embed_scale.multiplier * self.embed[...][ids]
        else:
            x = x.reshape(x.shape[0], -1, cfg.token_dim)
            h = self.embed_scale.multiplier * (x @ self.embed[...])
        if self.pos is not None:
            h = h + self.pos_scale.multiplier * self.pos[...][: h.shape[1]]
        return h

    def _run(self, x, gamma0):
        cfg = self.cfg
        ln = _layer_norm if cfg.layer_norm else (lambda u: u)
        phi = activation_fn(cfg.activation)
        h = self._embed(x)
        P, T, N = h.shape
        H, dh = cfg.heads, cfg.d_head
        mask = jnp.tril(jnp.ones((T, T), bool)) if cfg.causal else jnp.ones((T, T), bool)
        acts = {"embed": h}
        streams = [h]
        for l, blk in enumerate(self.blocks):
            u = ln(h)
            q, k, v = (blk._dense(nm, u).reshape(P, T, H, dh) for nm in ("wq", "wk", "wv"))
            logits = self.alpha * jnp.einsum("pthd,pshd->phts", q, k)
            att = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
            o = jnp.einsum("phts,pshd->pthd", att, v).reshape(P, T, N)
            a_out = blk._dense("wo", o)
            h = h + self.beta * a_out
            pre = blk._dense("w1", ln(h))
            h = h + self.beta * blk._dense("w2", phi(pre))
            # masked entries excluded from the logits' RMS (zeroed, then renormalised)
            acts[f"block{l}/attn_logits"] = jnp.where(mask, logits, 0.0) * jnp.sqrt(
                T * T / jnp.sum(mask))
            acts[f"block{l}/attn_out"] = a_out
            acts[f"block{l}/mlp_hidden"] = pre
            acts[f"block{l}/stream"] = h
            streams.append(h)
        u = ln(h)
        z = u[:, -1] if cfg.readout == "last" else jnp.mean(u, axis=1)
        f = self.output_multiplier(gamma0) * (z @ self.readout[...])
        return f, streams, acts

    def features(self, x, gamma0=None):
        """Return ``(f, [h^0, ..., h^L])``, each h^l of shape (P, T, N)."""
        f, streams, _ = self._run(x, gamma0)
        return f, streams

    def activations(self, x, gamma0=None) -> dict[str, jax.Array]:
        """The recorded activations (``act_rms``) by name, in ``cfg.layer_names()`` order."""
        return self._run(x, gamma0)[2]

    def representations(self, x, gamma0=None) -> list[jax.Array]:
        """The feature maps of ``feature_kernels``: every recorded activation (layer axis of
        ``act_rms``)."""
        return list(self.activations(x, gamma0).values())

    def __call__(self, x, gamma0=None):
        return self._run(x, gamma0)[0]

    def lr_scales(self, optimizer: str) -> dict[str, float]:
        """Per-parameter learning-rate scales keyed by parameter path (gamma0 excluded)."""
        adam = optimizer == "adam"
        pick = lambda s: s.lr_adam if adam else s.lr_sgd
        out = {"embed": pick(self.embed_scale), "readout": pick(self.readout_scale)}
        if self.pos is not None:
            out["pos"] = pick(self.pos_scale)
        branch = self.branch_adam if adam else self.branch_sgd
        for l, blk in enumerate(self.blocks):
            for name, s in blk.scales.items():
                out[f"blocks/{l}/{name}"] = pick(s) * branch
        return out

    def layer_observables(self, x, gamma0, lr_scales, want) -> dict[str, jax.Array]:
        """act_rms and feature_kernels (one per ``cfg.layer_names()``; kernels normalised by
        the activation's size per example), ntk (P, P) from per-example gradients."""
        return _layer_observables(self, x, gamma0, lr_scales, want)
