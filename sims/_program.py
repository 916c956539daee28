r"""Program building: one member's training step and observation, as pure functions.

:class:`MemberFns` holds what one ensemble member does (initialise, draw a batch, take a step,
record observables), written on a flat ``{parameter path: array}`` dict so that optax can give
every parameter its own learning-rate scale. :func:`program` turns these into the compiled
ensemble program of an execution strategy (:mod:`._execute`) and caches it by value: the key
is a :class:`ProgramSpec` built from frozen configs (model config, :class:`TrainConfig`,
sampler, observables, devices, strategy), never from object identity.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from . import _observe as obs
from ._adapt import Adapted, adapt, as_dtype, is_builtin_config
from ._config import TrainConfig

__all__ = ["MemberFns", "Program", "ProgramSpec", "loss_value", "program"]


def loss_value(kind: str, f, y):
    """Mean-squared error :math:`\\frac{1}{2P}\\sum_\\mu |f_\\mu - y_\\mu|^2` or the mean
    softmax cross-entropy of integer labels ``y``."""
    if kind == "mse":
        return 0.5 * jnp.mean(jnp.sum(jnp.square(f - y), axis=-1))
    logp = jax.nn.log_softmax(f, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


def optimizer(config: TrainConfig, ad: Adapted, names) -> optax.GradientTransformation:
    """optax transform with each parameter's abc learning-rate scale (Adam: after
    ``scale_by_adam``); the base rate and gamma0 factor are applied by the step."""
    scales = (ad.adam_scales if config.optimizer == "adam" else ad.lr_scales) or {}
    parts = optax.partition({n: optax.scale(float(scales.get(n, 1.0))) for n in names},
                            {n: n for n in names})
    if config.optimizer == "adam":
        return optax.chain(optax.scale_by_adam(config.adam_b1, config.adam_b2,
                                               config.adam_eps), parts)
    return parts


@dataclasses.dataclass(frozen=True, eq=False)
class MemberFns:
    """One member's dynamics. ``hyper`` holds the member's raw PRNG key, lr and gamma0."""

    ad: Adapted
    config: TrainConfig
    dtype: Any
    wanted: frozenset
    sampler: Callable | None
    names: tuple[str, ...]

    @functools.cached_property
    def tx(self):
        return optimizer(self.config, self.ad, self.names)

    @property
    def centre(self) -> bool:
        return bool(getattr(self.ad.model_config, "centre", False))

    def unflat(self, flat):
        treedef = jax.tree.structure(self.ad.abstract_params)
        return jax.tree.unflatten(treedef, [flat[n] for n in self.names])

    def out(self, flat, p0, xb, g0, f0=None):
        f = self.ad.apply(self.unflat(flat), xb, g0)
        if self.centre:
            f = f - (self.ad.apply(self.unflat(p0), xb, g0) if f0 is None else f0)
        return f

    def fixed_f0(self, state, hyper, d):
        """The initial network's outputs on the full training batch, which a centred network
        subtracts at every step: computed once per run (XLA does not hoist it out of the step
        loop; it was ~35% of a full-batch step). None when batches change or nothing is centred."""
        if self.centre and self.sampler is None and self.config.batch_size is None:
            return self.ad.apply(self.unflat(state["p0"]), d["x"], hyper["gamma0"])
        return None

    def init(self, raw_key):
        key = jax.random.wrap_key_data(raw_key)
        leaves = jax.tree.leaves(self.ad.init(jax.random.fold_in(key, 0)))
        flat = {n: jnp.asarray(v, self.dtype) for n, v in zip(self.names, leaves, strict=True)}
        return {"params": flat, "opt": self.tx.init(flat), "p0": flat if self.centre else {},
                "diverged": jnp.zeros((), bool), "diverged_step": -jnp.ones((), jnp.int32)}

    def _fresh(self, hyper, stream: int, t):
        """A fresh sampler batch (online SGD); stream 1 trains, stream 2 measures the loss."""
        key = jax.random.fold_in(jax.random.wrap_key_data(hyper["key"]), stream)
        xb, yb = self.sampler(jax.random.fold_in(key, t), self.config.batch_size)
        mse = self.config.loss == "mse"
        yb = jnp.asarray(yb, self.dtype) if mse else yb
        return jnp.asarray(xb, self.dtype), (yb[:, None] if yb.ndim == 1 and mse else yb)

    def batch(self, hyper, t, d):
        if self.sampler is not None:
            return self._fresh(hyper, 1, t)
        if self.config.batch_size is None:
            return d["x"], d["y"]
        key = jax.random.fold_in(jax.random.wrap_key_data(hyper["key"]), 1)
        idx = jax.random.permutation(jax.random.fold_in(key, t),
                                     d["x"].shape[0])[: self.config.batch_size]
        return d["x"][idx], d["y"][idx]

    def step(self, state, hyper, d, t, f0=None):
        """One optimiser step; a member whose loss or parameters turn non-finite is frozen.
        ``f0``: :meth:`fixed_f0` (or None: computed here)."""
        xb, yb = self.batch(hyper, t, d)
        g0 = hyper["gamma0"]

        def loss_fn(flat):
            return loss_value(self.config.loss, self.out(flat, state["p0"], xb, g0, f0), yb)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        upd, opt = self.tx.update(grads, state["opt"], state["params"])
        power = 2.0 if self.config.optimizer == "sgd" else 1.0
        lr = -hyper["lr"] * g0**power
        new = {n: state["params"][n] + (lr * upd[n]).astype(self.dtype) for n in self.names}
        ok = jnp.isfinite(loss)
        for v in new.values():
            ok = ok & jnp.all(jnp.isfinite(v))
        bad = state["diverged"] | ~ok
        keep = lambda old, nw: jnp.where(bad, old, nw)  # noqa: E731
        return {"params": jax.tree.map(keep, state["params"], new),
                "opt": jax.tree.map(keep, state["opt"], opt), "p0": state["p0"],
                "diverged": bad,
                "diverged_step": jnp.where(state["diverged"] | ok, state["diverged_step"], t)}

    def observe(self, state, hyper, d, t):
        """The wanted observables at step ``t`` (NaN for a diverged member)."""
        flat, p0, g0 = state["params"], state["p0"], hyper["gamma0"]
        rec = {}
        if "loss" in self.wanted:
            xb, yb = self._fresh(hyper, 2, t) if self.sampler is not None else (d["x"], d["y"])
            rec["loss"] = loss_value(self.config.loss, self.out(flat, p0, xb, g0), yb)
        if "test_loss" in self.wanted:
            rec["test_loss"] = loss_value(self.config.loss, self.out(flat, p0, d["xt"], g0),
                                          d["yt"])
        if "outputs" in self.wanted:
            rec["outputs"] = self.out(flat, p0, d["px"], g0)
        if "param_norms" in self.wanted:
            rec["param_norms"] = obs.param_norms([flat[n] for n in self.names])
        rec.update(self._kernels(flat, p0, d, g0))
        return jax.tree.map(lambda r: jnp.where(state["diverged"], jnp.nan, r), rec)

    def _kernels(self, flat, p0, d, g0):
        """Layer observables, the empirical NTK and the kernel-target alignment."""
        need = self.wanted & {"act_rms", "feature_kernels", "grad_kernels", "ntk", "alignment"}
        if not need:
            return {}
        scales = self.ad.lr_scales or {}
        if self.ad.module is not None:
            want = set(need) | ({"ntk"} if "alignment" in need else set())
            rec = obs.layer_observables(self.ad.module(self.unflat(flat)), d["px"], g0, scales,
                                        want)
        elif need & {"ntk", "alignment"}:
            rec = {"ntk": obs.generic_ntk(lambda p, xx: self.out(p, p0, xx, g0), flat, d["px"],
                                          obs.scale_tree_like(flat, scales), g0**2)}
        else:
            rec = {}
        if "alignment" in self.wanted:
            rec["alignment"] = obs.alignment(rec["ntk"], d["py"])
        return {k: v for k, v in rec.items() if k in self.wanted}


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """Everything the compiled program depends on. Hashable (and the cache key) when ``model``
    is a built-in config and ``sampler`` a frozen dataclass; array shapes are left to ``jit``."""

    model: Any
    in_dim: int
    dtype: str
    config: TrainConfig
    wanted: frozenset
    sampler: Any
    devices: tuple
    data_names: tuple[str, ...]
    strategy: str

    @property
    def cacheable(self) -> bool:
        return is_builtin_config(self.model)


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A built ensemble program: ``init(raw_keys) -> states`` and
    ``runner(states, hypers, data, starts, lengths) -> (states, records)`` (both jitted)."""

    init: Callable
    runner: Callable
    progress: Any
    names: tuple[str, ...]
    ad: Adapted
    mesh: Any


def program(spec: ProgramSpec, ad: Adapted) -> Program:
    """The program for ``spec``: from the cache for built-in model configs, else built anew
    (an ``nnx.Module`` or a function has no value to compare)."""
    if spec.cacheable:
        try:
            return _cached(spec)
        except TypeError:  # a config with an unhashable field: no cache, build anew
            pass
    return build(spec, ad)


@functools.lru_cache(maxsize=32)
def _cached(spec: ProgramSpec) -> Program:
    return build(spec, adapt(spec.model, spec.in_dim, as_dtype(spec.dtype)))


def build(spec: ProgramSpec, ad: Adapted) -> Program:
    from ._execute import Progress, compile_strategy, ensemble_mesh

    names = tuple(obs.param_names(ad.abstract_params))
    member = MemberFns(ad=ad, config=spec.config, dtype=as_dtype(spec.dtype),
                       wanted=spec.wanted, sampler=spec.sampler, names=names)
    progress = Progress(spec.config.steps, spec.config.progress)
    mesh = ensemble_mesh(spec.devices)
    init, runner = compile_strategy(member, spec.strategy, mesh, progress)
    return Program(init=init, runner=runner, progress=progress, names=names, ad=ad, mesh=mesh)
