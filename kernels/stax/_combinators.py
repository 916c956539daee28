r"""Combinators: ``serial``, ``parallel``, ``FanOut``, ``FanInSum``, ``FanInConcat``,
``FanInProd``, ``repeat`` (neural-tangents' names and semantics, arXiv 1912.02803).

Fan-in kernels assume independent zero-mean Gaussian branches (each branch has its own
weights): sums add kernels, products multiply NNGPs (with the product rule for the NTK),
channel concatenation averages kernels weighted by channel counts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from theorysim.checks import check_scalar

from .._analytic import MAX_DEPTH
from ._core import KState, Layer, layer_of


def _split(rng, n):
    return [None] * n if rng is None else list(jax.random.split(rng, n))


class _Serial(Layer):
    name = "serial"

    def __init__(self, layers):
        self.layers = layers

    def init(self, key, shape):
        params = []
        for layer, k in zip(self.layers, jax.random.split(key, max(len(self.layers), 1)),
                            strict=False):
            shape, p = layer.init(k, shape)
            params.append(p)
        return shape, tuple(params)

    def apply(self, params, x, *, rng=None, **kwargs):
        if not isinstance(params, tuple | list) or len(params) != len(self.layers):
            raise ValueError(f"params must hold one entry per layer ({len(self.layers)}), got "
                             f"{type(params).__name__}")
        for layer, p, r in zip(self.layers, params, _split(rng, len(self.layers)), strict=True):
            x = layer.apply(p, x, rng=r, **kwargs)
        return x

    def kernel(self, st):
        for layer in self.layers:
            st = layer.kernel(st)
        return st

    def needs_full(self, out_full):
        for layer in reversed(self.layers):
            out_full = layer.needs_full(out_full)
        return out_full


def serial(*layers):
    """Compose layers in sequence: ``serial(Dense(512), Relu(), Dense(1))``."""
    return _Serial([layer_of(ly, f"serial argument {i}") for i, ly in enumerate(layers)]).triple()


class _Parallel(Layer):
    name = "parallel"

    def __init__(self, layers):
        self.layers = layers

    def _check(self, xs, what):
        if not isinstance(xs, list | tuple) or len(xs) != len(self.layers):
            raise ValueError(f"parallel of {len(self.layers)} layers needs a list of "
                             f"{len(self.layers)} {what}")

    def init(self, key, shapes):
        self._check(shapes, "input shapes")
        out = [ly.init(k, s) for ly, k, s in
               zip(self.layers, jax.random.split(key, len(self.layers)), shapes, strict=True)]
        return [o[0] for o in out], tuple(o[1] for o in out)

    def apply(self, params, xs, *, rng=None, **kwargs):
        self._check(xs, "inputs")
        return [ly.apply(p, x, rng=r, **kwargs) for ly, p, x, r in
                zip(self.layers, params, xs, _split(rng, len(self.layers)), strict=True)]

    def kernel(self, sts):
        if not isinstance(sts, list) or len(sts) != len(self.layers):
            raise ValueError(f"parallel of {len(self.layers)} layers needs {len(self.layers)} "
                             "branches (put a FanOut before it)")
        return [ly.kernel(s) for ly, s in zip(self.layers, sts, strict=True)]

    def needs_full(self, out_full):
        reqs = out_full if isinstance(out_full, list) else [out_full] * len(self.layers)
        return [ly.needs_full(r) for ly, r in zip(self.layers, reqs, strict=True)]


def parallel(*layers):
    """Apply ``layers[i]`` to the ``i``-th input of a list (after :func:`FanOut`)."""
    return _Parallel([layer_of(ly, f"parallel argument {i}")
                      for i, ly in enumerate(layers)]).triple()


class _FanOut(Layer):
    name = "FanOut"

    def __init__(self, num):
        self.num = num

    def init(self, key, shape):
        return [tuple(shape)] * self.num, ()

    def apply(self, params, x, **kwargs):
        return [x] * self.num

    def kernel(self, st):
        if isinstance(st, list):
            raise ValueError("FanOut needs a single input, got a list of branches")
        return [st] * self.num

    def needs_full(self, out_full):
        return any(out_full) if isinstance(out_full, list) else out_full


def FanOut(num: int):
    """Copy the input into ``num`` branches."""
    num = check_scalar("num", num, lo=1, integer=True)
    return _FanOut(num).triple()


class _FanIn(Layer):
    def __init__(self, mode, axis=-1):
        self.mode, self.axis = mode, axis
        self.name = {"sum": "FanInSum", "prod": "FanInProd", "concat": "FanInConcat"}[mode]

    def _shapes(self, shapes):
        if not isinstance(shapes, list | tuple) or not shapes:
            raise ValueError(f"{self.name} needs a list of branches")
        first = tuple(shapes[0])
        for s in shapes[1:]:
            same = tuple(s)[:-1] == first[:-1] if self.mode == "concat" else tuple(s) == first
            if not same:
                raise ValueError(f"{self.name}: branch shapes differ: {first} vs {tuple(s)}")
        return first

    def init(self, key, shapes):
        first = self._shapes(shapes)
        if self.mode == "concat":
            chans = [s[-1] for s in shapes]
            return first[:-1] + (None if None in chans else sum(chans),), ()
        return first, ()

    def apply(self, params, xs, **kwargs):
        self._shapes([x.shape for x in xs])
        if self.mode == "sum":
            return sum(xs[1:], xs[0])
        if self.mode == "prod":
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return out
        return jnp.concatenate(xs, axis=-1)

    def needs_full(self, out_full):
        return out_full

    def kernel(self, sts):
        if not isinstance(sts, list) or not sts:
            raise ValueError(f"{self.name} needs a list of branches (after FanOut/parallel)")
        first = sts[0]
        for s in sts[1:]:
            if s.spatial != first.spatial or s.full != first.full:
                raise ValueError(f"{self.name}: branch spatial shapes differ: {first.spatial} "
                                 f"vs {s.spatial}")
            if self.mode != "concat" and s.channels != first.channels:
                raise ValueError(f"{self.name}: branch channel counts differ: "
                                 f"{first.channels} vs {s.channels}")
        if self.mode == "sum":
            return _combine(sts, lambda xs, w: sum(xs[1:], xs[0]), first.channels)
        if self.mode == "concat":
            total = sum(s.channels for s in sts)
            weights = [s.channels / total for s in sts]
            # a channel mixture of Gaussians of different variances: not one Gaussian kernel
            return _combine(sts, lambda xs, w: sum(wi * x for wi, x in zip(w, xs, strict=True)),
                            total, weights).replace(gaussian=False)
        return _product(sts)      # independent branches: E[fg f'g'] = E[ff'] E[gg']


def _add_none(xs):
    vals = [x for x in xs if x is not None]
    return None if not vals else sum(vals[1:], vals[0])


def _combine(sts, op, channels, weights=None):
    first = sts[0]
    symmetric = all(s.symmetric for s in sts)
    nngp = op([s.nngp for s in sts], weights)
    ntks = [s.ntk for s in sts]
    if all(t is None for t in ntks):
        ntk = None
    else:
        ntk = op([jnp.zeros_like(s.nngp) if t is None else t for s, t in zip(sts, ntks,
                                                                          strict=True)],
                 weights)
    cov1 = None if symmetric else op([s.cov1 for s in sts], weights)
    cov2 = None if symmetric else op([s.cov2 for s in sts], weights)
    return KState(nngp, ntk, cov1, cov2, first.full, first.spatial, channels, first.want_ntk,
                  gaussian=all(s.gaussian for s in sts), **_quad(sts))


def _product(sts):
    first = sts[0]
    nngp = sts[0].nngp
    for s in sts[1:]:
        nngp = nngp * s.nngp
    ntk = None
    for i, s in enumerate(sts):
        if s.ntk is None:
            continue
        term = s.ntk
        for j, o in enumerate(sts):
            if j != i:
                term = term * o.nngp
        ntk = term if ntk is None else ntk + term
    cov1 = cov2 = None
    if not first.symmetric:
        cov1, cov2 = sts[0].cov1, sts[0].cov2
        for s in sts[1:]:
            cov1, cov2 = cov1 * s.cov1, cov2 * s.cov2
    return KState(nngp, ntk, cov1, cov2, first.full, first.spatial, first.channels,
                  first.want_ntk, gaussian=False, **_quad(sts))


def _quad(sts):
    err = sts[0].quad_err
    for s in sts[1:]:
        err = jnp.maximum(err, s.quad_err)
    return {"quad_err": err, "quad_nodes": max(s.quad_nodes for s in sts)}


def FanInSum():
    """Sum of the branches (kernels add: independent zero-mean branches)."""
    return _FanIn("sum").triple()


def FanInProd():
    """Elementwise product of the branches (NNGPs multiply; NTK by the product rule)."""
    return _FanIn("prod").triple()


def FanInConcat(axis: int = -1):
    """Concatenation along the channel axis (``axis=-1``): kernels averaged with weights
    proportional to the branches' channel counts."""
    if isinstance(axis, bool) or not isinstance(axis, int) or axis != -1:
        raise ValueError(f"FanInConcat supports axis=-1 (the channel axis) only, got {axis!r}")
    return _FanIn("concat", axis).triple()


class _Repeat(Layer):
    name = "repeat"

    def __init__(self, layer, n):
        self.layer, self.n = layer, n

    def init(self, key, shape):
        out, _ = self.layer.init(key, shape)
        if tuple(out) != tuple(shape):
            raise ValueError(f"repeat needs a shape-preserving layer; it maps {tuple(shape)} to "
                             f"{tuple(out)} (use serial(*[layer] * n))")

        def one(k):
            return self.layer.init(k, shape)[1]

        return tuple(shape), jax.vmap(one)(jax.random.split(key, self.n))

    def apply(self, params, x, **kwargs):
        def step(h, p):
            return self.layer.apply(p, h, **kwargs), None

        return jax.lax.scan(step, x, params, self.n)[0]

    def kernel(self, st):
        for _ in range(self.n):
            st = self.layer.kernel(st)
        return st

    def needs_full(self, out_full):
        for _ in range(self.n):
            out_full = self.layer.needs_full(out_full)
        return out_full


def repeat(layer, n: int):
    """``layer`` composed with itself ``n`` times (independent weights per copy)."""
    # the kernel composes n copies one by one (no compiled loop): bounded like mlp_kernel's
    # depth, so that n = 10^9 is refused instead of running for days
    n = check_scalar("n", n, lo=0, hi=MAX_DEPTH, integer=True)
    return _Repeat(layer_of(layer, "layer"), n).triple()


__all__ = ["FanInConcat", "FanInProd", "FanInSum", "FanOut", "parallel", "repeat", "serial",
           "KState"]
