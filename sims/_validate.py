"""Validation: every argument of :func:`train` checked on the host, before anything compiles.

:func:`validate` returns a :class:`Request`: the adapted model, the resolved ensemble grid,
observables, probe set and devices. Bad input raises ``ValueError`` naming the argument; a run
that would not fit in memory or would take more than ``max_steps`` steps is refused with the
override to pass.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import as_real_array, check_magnitude, check_scalar

from . import _memory
from ._adapt import Adapted, adapt, as_dtype, is_builtin_config
from ._config import EnsembleSpec, TrainConfig
from ._param import ModelConfig
from ._program import ProgramSpec
from ._sampler import check_sampler

__all__ = ["PROBE_KEY", "Request", "validate"]

#: the fixed key of the default probe batch drawn from a sampler
PROBE_KEY = 2**31 - 1
#: default cap on ``TrainConfig.steps`` (override: ``train(..., max_steps=...)``)
MAX_STEPS = 10**8
_LAYER_OBS = frozenset({"act_rms", "feature_kernels", "grad_kernels"})


@dataclasses.dataclass(frozen=True, eq=False)
class Request:
    """A validated call of :func:`train`."""

    model: Any
    ad: Adapted
    config: TrainConfig
    ensemble: EnsembleSpec
    dtype: Any
    wanted: frozenset
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    gamma0s: tuple[float, ...]
    data: dict  # x, y, xt, yt, px, py (host arrays; absent when not given)
    sampler: Any
    devices: tuple

    @property
    def n_members(self) -> int:
        return len(self.seeds) * len(self.lrs) * len(self.gamma0s)

    def device_data(self) -> dict:
        """The data as JAX arrays: floats in the run's dtype, integer labels/tokens as they are."""
        def cast(a):
            return jnp.asarray(a) if np.issubdtype(a.dtype, np.integer) else jnp.asarray(
                a, self.dtype)
        return {k: cast(v) for k, v in self.data.items()}

    def spec(self) -> ProgramSpec:
        return ProgramSpec(model=self.model, in_dim=self.ad.in_dim, dtype=self.config.dtype,
                           config=self.config, wanted=self.wanted, sampler=self.sampler,
                           devices=self.devices, data_names=tuple(sorted(self.data)),
                           strategy=self.ensemble.strategy)


def _check_labels(name_y, y, n_rows, loss, out_dim):
    if y.shape[:1] != (n_rows,):
        raise ValueError(f"{name_y} must have {n_rows} rows, got shape {y.shape}")
    if loss == "cross_entropy":
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name_y} must be integer class labels of shape (P,) for "
                             f"cross_entropy, got {y.dtype} {y.shape}")
        if out_dim is not None and (y.min() < 0 or y.max() >= out_dim):
            raise ValueError(f"{name_y} labels must be in [0, {out_dim}), got "
                             f"[{y.min()}, {y.max()}]")
        return y
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or (out_dim is not None and y.shape[1] != out_dim):
        raise ValueError(f"{name_y} must have shape (P,) or (P, {out_dim}), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name_y} must be finite")
    return y


def check_data(name_x, x, name_y, y, loss, out_dim, in_dim=None, *, need_y=True,
               dtype="float32"):
    """A finite (P, D) input array (P >= 1, entries within ``dtype``'s range for products:
    :func:`theorysim.checks.check_magnitude`) and its targets (P,) / (P, C) or integer labels
    (P,)."""
    x = as_real_array(name_x, x)
    if x.ndim != 2:
        raise ValueError(f"{name_x} must have shape (P, D), got {x.shape}")
    if x.shape[0] < 1:
        raise ValueError(f"{name_x} must have at least one row (example), got shape {x.shape}")
    if in_dim is not None and x.shape[1] != in_dim:
        raise ValueError(f"{name_x} must have {in_dim} columns, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name_x} must be finite")
    check_magnitude(name_x, x, dtype)
    if y is None and not need_y:
        return x, None
    return x, _check_labels(name_y, as_real_array(name_y, y), x.shape[0], loss, out_dim)


def _check_sampler_shapes(sampler, B, out_dim):
    try:
        sx, sy = jax.eval_shape(lambda k: sampler(k, B), jax.random.key(0))
    except (TypeError, ValueError) as err:
        raise ValueError(f"sampler must return a pair (x, y): {err}") from err
    if len(sx.shape) != 2 or sx.shape[0] != B:
        raise ValueError(f"sampler must return x of shape ({B}, D), got {sx.shape}")
    ok_y = (sy.shape == (B,) or (len(sy.shape) == 2 and sy.shape[0] == B and
                                 (out_dim is None or sy.shape[1] == out_dim)))
    if not ok_y:
        raise ValueError(f"sampler must return y of shape ({B},) or ({B}, {out_dim}), "
                         f"got {sy.shape}")
    return sx


def _check_source(config, out_dim, x, y, sampler):
    """The training data (x, y) or the sampler; returns (data, sampler, x_struct)."""
    B = config.batch_size
    if x is None and sampler is None:
        raise ValueError("x and y (a data set) or sampler (online SGD) must be given, got "
                         "x=None and sampler=None")
    if x is not None and sampler is not None:
        raise ValueError("give either x and y (a data set) or sampler (online SGD), not both")
    if sampler is not None:
        if B is None:
            raise ValueError("batch_size must be set in the TrainConfig when a sampler is given")
        sx = _check_sampler_shapes(check_sampler(sampler), B, out_dim)
        return {}, sampler, sx
    if y is None:
        raise ValueError("y must be given with x")
    x, y = check_data("x", x, "y", y, config.loss, out_dim, dtype=config.dtype)
    if B is not None and B > x.shape[0]:
        raise ValueError(f"batch_size must be <= the number of samples {x.shape[0]}, got {B}")
    rows = x.shape[0] if B is None else B
    return {"x": x, "y": y}, None, jax.ShapeDtypeStruct((rows, x.shape[1]), x.dtype)


def _check_call(model, config, ensemble, max_memory_gb, max_steps):
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    ensemble = EnsembleSpec() if ensemble is None else ensemble
    if not isinstance(ensemble, EnsembleSpec):
        raise ValueError(f"ensemble must be an EnsembleSpec, got {type(ensemble).__name__}")
    _memory.check_limit(max_memory_gb)
    max_steps = check_scalar("max_steps", max_steps, lo=1, integer=True)
    if config.steps > max_steps:
        raise ValueError(f"steps={config.steps} exceeds max_steps={max_steps} (a run that long "
                         "would not finish in reasonable time); pass max_steps= to train to "
                         "allow it")
    if model is None:
        raise ValueError("model must be a model config, an nnx.Module, a factory or a pair "
                         "(apply_fn, params), got None")
    return ensemble


def _model_inputs(model, x, x_test, probe_x):
    """CNN / transformer configs bring their own input checks (images, token ids)."""
    if not (is_builtin_config(model) and hasattr(model, "check_inputs")):
        return x, x_test, probe_x
    return tuple(None if a is None else model.check_inputs(a, name)
                 for a, name in ((x, "x"), (x_test, "x_test"), (probe_x, "probe_x")))


def _hyper_grid(model, ad, config, ensemble):
    seeds = tuple(int(s) for s in ensemble.seeds)
    lrs = tuple(float(v) for v in (ensemble.lrs or (config.lr,)))
    default_g0 = ad.model_config.gamma0 if ad.supports_gamma0 else 1.0
    if ensemble.gamma0s is not None and not ad.supports_gamma0:
        raise ValueError("ensemble gamma0s need a built-in model (a ModelConfig, ...)")
    return seeds, lrs, tuple(float(v) for v in (ensemble.gamma0s or (default_g0,)))


def _observables(ad, config, data, probe_y):
    wanted = set(config.observables)
    if ad.module is None:
        wanted -= _LAYER_OBS  # only the built-in models expose hidden layers
    if "xt" not in data:
        wanted.discard("test_loss")
    if "alignment" in wanted and probe_y is None:
        raise ValueError("probe_y must be given to record alignment")
    if "alignment" in wanted and config.loss == "cross_entropy":
        raise ValueError("observables: alignment is defined for mse targets only")
    return frozenset(wanted)


def _probe(data, sampler, probe_x, probe_y, config, out_dim, in_dim, max_memory_gb):
    """The probe set: given, else the test set, the training set or one sampler batch."""
    if probe_x is not None:
        return check_data("probe_x", probe_x, "probe_y", probe_y, config.loss, out_dim, in_dim,
                          need_y=False, dtype=config.dtype)
    if "xt" in data:
        return data["xt"], data["yt"]
    if "x" in data:
        return data["x"], data["y"]
    B = config.batch_size
    _memory.check_fits({"one sampler batch": 2 * B * (in_dim + 1) * 8}, limit_gb=max_memory_gb,
                       blame=f"batch_size ({B})")
    px, py = sampler(jax.random.key(PROBE_KEY), B)
    return check_data("sampler x", px, "sampler y", py, config.loss, out_dim, in_dim,
                      dtype=config.dtype)


def _devices_and_strategy(ensemble):
    devices = tuple(jax.devices() if ensemble.shard else jax.devices()[:1])
    if ensemble.strategy == "auto":
        strategy = "map" if devices[0].platform == "cpu" else "vmap"
        ensemble = dataclasses.replace(ensemble, strategy=strategy)
    return devices, ensemble


def validate(model, config, *, x, y, sampler, x_test, y_test, probe_x, probe_y, ensemble,
             max_memory_gb, max_steps) -> Request:
    """Check every argument of :func:`train`; see there."""
    ensemble = _check_call(model, config, ensemble, max_memory_gb, max_steps)
    dtype = as_dtype(config.dtype)
    x, x_test, probe_x = _model_inputs(model, x, x_test, probe_x)
    out_dim = getattr(model, "out_dim", None) if is_builtin_config(model) else None
    data, sampler, x_struct = _check_source(config, out_dim, x, y, sampler)
    in_dim = x_struct.shape[1]
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    if x_test is not None:
        data["xt"], data["yt"] = check_data("x_test", x_test, "y_test", y_test, config.loss,
                                            out_dim, in_dim, dtype=config.dtype)
    ad = adapt(model, in_dim, dtype)
    seeds, lrs, gamma0s = _hyper_grid(model, ad, config, ensemble)
    px, py = _probe(data, sampler, probe_x, probe_y, config, out_dim, in_dim, max_memory_gb)
    wanted = _observables(ad, config, data, py)
    data["px"] = px
    if py is not None and (config.loss == "mse" or "alignment" in wanted):
        data["py"] = py
    devices, ensemble = _devices_and_strategy(ensemble)
    request = Request(model=model, ad=ad, config=config, ensemble=ensemble, dtype=dtype,
                      wanted=wanted, seeds=seeds, lrs=lrs, gamma0s=gamma0s, data=data,
                      sampler=sampler, devices=devices)
    _check_memory(request, x_struct, max_memory_gb)
    return request


def _check_memory(request: Request, x_struct, max_memory_gb) -> None:
    ad, config, wanted = request.ad, request.config, request.wanted
    n_dev = len(request.devices)
    E = request.n_members
    E_pad = -(-E // n_dev) * n_dev
    live = E_pad if request.ensemble.strategy == "vmap" else n_dev
    b = np.dtype(request.dtype).itemsize
    n_params = sum(math.prod(a.shape) for a in jax.tree.leaves(ad.abstract_params))
    slots = 2 if config.optimizer == "adam" else 0
    centre = int(bool(getattr(ad.model_config, "centre", False)))
    act = _forward_numbers(request, ad, x_struct)
    probe_rows = request.data["px"].shape[0]
    rec = _record_numbers(ad, wanted, probe_rows, n_params)
    jac = probe_rows * n_params if (wanted & {"ntk", "alignment"}
                                    and not isinstance(ad.model_config, ModelConfig)) else 0
    parts = {
        "parameters and optimiser state": E_pad * n_params * b * (1 + slots + centre),
        "gradients and updates": live * 3 * n_params * b,
        "activations": live * (3 * act + jac) * b,
        "records": 2 * E * len(config.schedule()) * rec * b,
        "data": n_dev * sum(a.nbytes for a in request.data.values()),
    }
    width = f"width {ad.width}, " if ad.width is not None else ""
    blame = (f"the model ({width}{n_params:.3g} parameters per member), the ensemble "
             f"({E} members), the batch ({x_struct.shape[0]} rows) or the records "
             f"({len(config.schedule())} record steps of {sorted(wanted)})")
    _memory.check_fits(parts, limit_gb=max_memory_gb, devices=request.devices, blame=blame)


def _forward_numbers(request, ad, x_struct) -> int:
    """:func:`._memory.estimate_forward` of the model (a trace, ~40 ms of host time per call):
    cached by value for built-in configs."""
    if is_builtin_config(request.model):
        try:
            return _builtin_forward_numbers(request.model, ad.in_dim, request.dtype,
                                            x_struct.shape, x_struct.dtype)
        except TypeError:  # unhashable config field
            pass
    return _trace_numbers(ad, x_struct)


def _trace_numbers(ad, x_struct) -> int:
    return _memory.estimate_forward(lambda p, xx: ad.apply(p, xx, 1.0), ad.abstract_params,
                                    x_struct)


@functools.lru_cache(maxsize=64)
def _builtin_forward_numbers(model, in_dim, dtype, shape, x_dtype) -> int:
    return _trace_numbers(adapt(model, in_dim, dtype), jax.ShapeDtypeStruct(shape, x_dtype))


def _record_numbers(ad, wanted, probe_rows, n_params) -> int:
    """Numbers recorded per member and record step."""
    out_dim = getattr(ad.model_config, "out_dim", 1)
    layers = getattr(ad.model_config, "depth", 1)
    size = {"loss": 1, "test_loss": 1, "alignment": 1, "outputs": probe_rows * out_dim,
            "param_norms": len(jax.tree.leaves(ad.abstract_params)), "act_rms": layers,
            "feature_kernels": layers * probe_rows**2, "grad_kernels": layers * probe_rows**2,
            "ntk": probe_rows**2}
    return sum(size[k] for k in wanted)
