"""Bring any model into the engine's functional form: ``init(key)``, ``apply(params, x, gamma0)``.

Accepted models: a built-in model config (:class:`ModelConfig` for the MLPs, and the other
configs of ``_models.MODEL_CONFIGS``; re-initialised per seed), an NNX
module instance (all members start from its parameters), a callable ``key -> nnx.Module``
(re-initialised per seed), or a pair ``(apply_fn, params)`` with ``apply_fn(params, x) -> (P, C)``.
Only ``nnx.Param`` variables are trained; other NNX state is held fixed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ._models import BUILTIN_MODELS, MODEL_CONFIGS, make_model
from ._observe import path_name


@dataclasses.dataclass(frozen=True)
class Adapted:
    init: Callable  # key -> params
    apply: Callable  # (params, x, gamma0) -> (P, C)
    module: Callable | None  # params -> the built-in model (MLP, CNN, ...), else None
    lr_scales: dict[str, float] | None  # per-parameter SGD scales keyed by path
    adam_scales: dict[str, float] | None
    width: int | None
    model_config: Any  # the built-in model config (ModelConfig, ...) or None
    supports_gamma0: bool
    abstract_params: Any
    in_dim: int | None = None


def _split(module):
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    return graphdef, params, rest


def is_builtin_config(model) -> bool:
    """Whether ``model`` is a built-in model config (hashable: its programs can be cached)."""
    return isinstance(model, MODEL_CONFIGS)


def adapt(model, in_dim: int, dtype) -> Adapted:
    """``model`` in the engine's form; for a built-in config from a cache by value (building
    the abstract model costs ~70 ms of host time per :func:`~theorysim.sims.train` call at
    width 256, depth 4: 1-2 % of a 10-step run, the engine's largest fixed cost)."""
    if is_builtin_config(model):
        try:
            return _adapt_builtin(model, in_dim, dtype)
        except TypeError:  # a config with an unhashable field: no cache
            pass
    return dataclasses.replace(_adapt(model, in_dim, dtype), in_dim=in_dim)


@functools.lru_cache(maxsize=64)
def _adapt_builtin(model, in_dim: int, dtype) -> Adapted:
    return dataclasses.replace(_adapt(model, in_dim, dtype), in_dim=in_dim)


def _adapt(model, in_dim: int, dtype) -> Adapted:
    if is_builtin_config(model):  # MLP, CNN and transformer configs
        cfg = model

        def build(key):
            return make_model(cfg, in_dim, key=key, dtype=dtype)

        return _from_factory(build, cfg)
    if isinstance(model, nnx.Module):
        graphdef, params, rest = _split(model)
        return _from_graph(graphdef, rest, model, lambda key: params)
    if isinstance(model, tuple) and len(model) == 2 and callable(model[0]):
        apply_fn, params = model
        abstract = jax.eval_shape(lambda: params)
        return Adapted(init=lambda key: params, apply=lambda p, x, g: apply_fn(p, x),
                       module=None, lr_scales=None, adam_scales=None, width=None,
                       model_config=None, supports_gamma0=False, abstract_params=abstract)
    if callable(model):
        return _from_factory(model, None)
    names = "/".join(c.__name__ for c in MODEL_CONFIGS)
    raise ValueError(f"model must be a {names}, an nnx.Module, a callable key -> nnx.Module "
                     f"or a pair (apply_fn, params); got {type(model).__name__}")


def _from_factory(build, cfg):
    abstract = nnx.eval_shape(lambda: build(jax.random.key(0)))
    if not isinstance(abstract, nnx.Module):
        raise ValueError("model factory must return an nnx.Module")
    graphdef, _, rest = _split(abstract)

    def init(key):
        return _split(build(key))[1]

    return _from_graph(graphdef, rest, abstract, init, cfg)


def _from_graph(graphdef, rest, example, init, cfg=None):
    builtin = isinstance(example, BUILTIN_MODELS)

    def merged(params):
        return nnx.merge(graphdef, params, rest)

    def apply(params, x, gamma0):
        m = merged(params)
        return m(x, gamma0) if builtin else m(x)

    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                            _split(example)[1])
    if builtin:
        return Adapted(init=init, apply=apply, module=merged,
                       lr_scales=example.lr_scales("sgd"), adam_scales=example.lr_scales("adam"),
                       width=example.cfg.width, model_config=example.cfg, supports_gamma0=True,
                       abstract_params=abstract)
    return Adapted(init=init, apply=apply, module=None, lr_scales=None, adam_scales=None,
                   width=None, model_config=cfg, supports_gamma0=False, abstract_params=abstract)


def as_dtype(name: str):
    if name == "float64":
        if not jax.config.jax_enable_x64:
            raise ValueError("dtype='float64' needs x64: run inside `with jax.enable_x64(True):`")
        return jnp.float64
    return jnp.float32


def with_params(module, params: dict):
    """Return a copy of NNX ``module`` whose ``nnx.Param`` leaves are ``params`` (``{path: a}``).

    ``params`` is keyed by parameter path as in ``TrainResult.params`` (one member's slice).
    """
    graphdef, state, rest = _split(module)
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    missing = [path_name(p) for p, _ in leaves if path_name(p) not in params]
    if missing:
        raise ValueError(f"params is missing entries {missing}")
    new = jax.tree.unflatten(jax.tree.structure(state),
                             [jnp.asarray(params[path_name(p)]) for p, _ in leaves])
    return nnx.merge(graphdef, new, rest)


def activation_updates(cfg, before: dict, after: dict, x) -> tuple[tuple[str, ...], Any]:
    r"""RMS over the inputs ``x`` of the change of every recorded activation and of the output
    between two parameter sets of the built-in CNN or transformer config ``cfg``:
    :math:`\mathrm{RMS}(h^l_{\rm after} - h^l_{\rm before})` (the update a coordinate check
    measures; the random-init part cancels).

    Args:
        cfg: a :class:`CNNConfig` or :class:`TransformerConfig`.
        before, after: ``TrainResult.params`` of two runs with the same seeds (``{path: (E,
            ...)}``), e.g. ``steps=0`` and ``steps=T`` with ``return_params=True``.
        x: inputs (P, D) as given to :func:`theorysim.sims.train`.

    Returns:
        ``(names, rms)``: ``cfg.layer_names() + ("output",)`` and an array (E, len(names)).
    """
    import numpy as np

    if not hasattr(cfg, "layer_names") or isinstance(cfg, MODEL_CONFIGS[0]):
        raise ValueError(f"cfg must be a CNNConfig or TransformerConfig, got {type(cfg).__name__}")
    for name, p in (("before", before), ("after", after)):
        if not isinstance(p, dict) or not p:
            raise ValueError(f"{name} must be the params dict of a TrainResult (train(..., "
                             f"return_params=True).params), got {type(p).__name__}")
    if set(before) != set(after):
        raise ValueError("before and after must hold the same parameters (the same model)")
    x = jnp.asarray(cfg.check_inputs(x))
    model = make_model(cfg, x.shape[1], key=jax.random.key(0))
    rms = []
    for e in range(len(next(iter(after.values())))):
        m0, m1 = (with_params(model, {k: v[e] for k, v in p.items()}) for p in (before, after))
        a0, a1 = m0.activations(x), m1.activations(x)
        diffs = [a1[k] - a0[k] for k in cfg.layer_names()] + [m1(x) - m0(x)]
        rms.append([float(jnp.sqrt(jnp.mean(jnp.square(d)))) for d in diffs])
    return (*cfg.layer_names(), "output"), np.asarray(rms)
