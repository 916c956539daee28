r"""The one training engine of theorysim: :func:`train`.

.. math::

    \theta^{(e)}_{t+1} = \theta^{(e)}_t - \eta_e\, \gamma_{0,e}^{k}\, C \odot
    \mathrm{opt}\big(\nabla_\theta \mathcal L(\theta^{(e)}_t; B^{(e)}_t)\big),
    \qquad e = 1..E \text{ ensemble members},

with per-layer scales :math:`C` (optax ``partition`` of ``scale`` transforms; abc table in
:mod:`theorysim.sims._param`), :math:`k = 2` for SGD and 1 for Adam, and the batch
:math:`B_t` the full data set (GD), a random minibatch without replacement (SGD) or fresh samples
``sampler(key_t, batch_size)`` (online SGD).

Implementation: every member's state is a pure pytree (``nnx.split`` -> params); all members run
inside one ``jit``; the steps run in a ``lax.scan`` over record segments, each a ``fori_loop``
over its steps, and observables are computed only at the record steps. Members are either
``vmap``-ed (``EnsembleSpec.strategy="vmap"``, default on GPU/TPU) or run one after another by
``lax.map`` (``"map"``, default on CPU where XLA's batched matmuls are slower per FLOP). The
ensemble axis is sharded over ``jax.devices()`` with a 1-D :class:`jax.sharding.Mesh`
(``NamedSharding(mesh, P("ensemble"))``; ``shard_map`` for ``"map"``); members never
communicate, so each device runs its own slice and the numbers equal the unsharded run bit for
bit (tested on 8 CPU devices). The ensemble is padded with copies of member 0 to a multiple of
the device count (padding members are dropped from the result).

Multi-host (TPU pods, GPU clusters): call ``jax.distributed.initialize()`` in every process
before calling :func:`train` with identical arguments; the mesh then spans all processes'
devices and the records are gathered to every host with
``jax.experimental.multihost_utils.process_allgather``. The engine never calls
``initialize`` itself.

A member whose loss or parameters become NaN/inf stops updating (its parameters stay at the last
finite values), is flagged in ``TrainResult.diverged`` and records NaN from then on; the other
members are unaffected bit for bit (their computations never mix with it).
"""

from __future__ import annotations

import dataclasses
import itertools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _observe as obs
from ._adapt import adapt, as_dtype
from ._config import EnsembleSpec, TrainConfig
from ._param import ModelConfig
from ._result import TrainResult

_PROBE_KEY = 2**31 - 1


def _loss(kind, f, y):
    if kind == "mse":
        return 0.5 * jnp.mean(jnp.sum(jnp.square(f - y), axis=-1))
    logp = jax.nn.log_softmax(f, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


class _Progress:
    """Text progress bar on stderr; ignores repeated or older steps (one line per record)."""

    def __init__(self, total: int, enabled: bool):
        self.reset(total, enabled)

    def reset(self, total: int, enabled: bool):
        self.total, self.enabled, self.last, self.members = max(total, 1), enabled, -1, 1

    def __call__(self, step, member=None):
        step = int(np.max(np.asarray(step)))
        if member is not None:  # "map" strategy: members run one after another
            m = int(np.max(np.asarray(member)))
            if m >= self.members:
                return  # padding member
            step, total, label = m * self.total + step, self.members * self.total, "member-steps"
        else:
            total, label = self.total, "step"
        if not self.enabled or step <= self.last:
            return
        self.last = step
        done = int(30 * step / total)
        end = "\n" if step >= total else ""
        sys.stderr.write(f"\rtrain [{'#' * done}{'.' * (30 - done)}] {label} {step}/{total}"
                         + end)
        sys.stderr.flush()


def _check_data(name_x, x, name_y, y, loss, out_dim, in_dim=None):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name_x} must have shape (P, D), got {x.shape}")
    if in_dim is not None and x.shape[1] != in_dim:
        raise ValueError(f"{name_x} must have {in_dim} columns, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name_x} must be finite")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name_y} must have {x.shape[0]} rows to match {name_x}, "
                         f"got shape {y.shape}")
    if loss == "cross_entropy":
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name_y} must be integer class labels of shape (P,) for "
                             f"cross_entropy, got {y.dtype} {y.shape}")
        if out_dim is not None and (y.min() < 0 or y.max() >= out_dim):
            raise ValueError(f"{name_y} labels must be in [0, {out_dim}), got "
                             f"[{y.min()}, {y.max()}]")
        return x, y
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or (out_dim is not None and y.shape[1] != out_dim):
        raise ValueError(f"{name_y} must have shape (P,) or (P, {out_dim}), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name_y} must be finite")
    return x, y


def train(model, config: TrainConfig, *, x=None, y=None, sampler=None, x_test=None,
          y_test=None, probe_x=None, probe_y=None,
          ensemble: EnsembleSpec | None = None) -> TrainResult:
    """Train an ensemble of networks in one compiled program and record observables.

    Args:
        model: a :class:`ModelConfig` (built-in MLP / residual MLP, re-initialised per seed),
            an ``nnx.Module`` (all members start from its parameters), a callable
            ``key -> nnx.Module``, or a pair ``(apply_fn, params)`` with
            ``apply_fn(params, x) -> (P, C)``.
        config: the :class:`TrainConfig`.
        x, y: training set, x of shape (P, D); y of shape (P,) or (P, C) (MSE) or integer
            labels (P,) (cross-entropy). Give either ``x, y`` or ``sampler``.
        sampler: ``sampler(key, batch_size) -> (x, y)`` drawing fresh samples (online SGD);
            requires ``config.batch_size``. The recorded ``loss`` is then measured on a fresh
            batch at each record step.
        x_test, y_test: optional test set (``test_loss`` recorded only when given).
        probe_x, probe_y: probe set for outputs and kernels (default: the test set if given,
            else the training set, else one sampler batch drawn with a fixed key).
        ensemble: the :class:`EnsembleSpec` (seeds x learning rates x gamma0s).

    Returns:
        :class:`TrainResult` with records of shape (members, record steps, ...); see
        ``TrainResult.to_xarray``.

    Raises:
        ValueError: naming the argument, before anything is compiled.

    Example:
        >>> cfg = ModelConfig(width=128, depth=2, parameterization="mean_field")
        >>> res = train(cfg, TrainConfig(steps=100, lr=0.5), x=x, y=y,
        ...             ensemble=EnsembleSpec(seeds=(0, 1, 2)))
        >>> res.to_xarray().loss.sel(step=100).mean("seed")
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    ensemble = EnsembleSpec() if ensemble is None else ensemble
    if not isinstance(ensemble, EnsembleSpec):
        raise ValueError(f"ensemble must be an EnsembleSpec, got {type(ensemble).__name__}")
    dtype = as_dtype(config.dtype)
    is_cfg = isinstance(model, ModelConfig)
    out_dim = model.out_dim if is_cfg else None
    B = config.batch_size

    # ---- data (host-side checks, nothing compiled) ----
    if (x is None) == (sampler is None):
        raise ValueError("give either x and y (a data set) or sampler (online SGD), not both")
    if sampler is not None:
        if not callable(sampler):
            raise ValueError("sampler must be a callable sampler(key, batch_size) -> (x, y)")
        if B is None:
            raise ValueError("batch_size must be set when a sampler is given")
        try:
            shp = jax.eval_shape(lambda k: sampler(k, B), jax.random.key(0))
            sx, sy = shp
        except (TypeError, ValueError) as err:
            raise ValueError(f"sampler must return a pair (x, y): {err}") from err
        if len(sx.shape) != 2 or sx.shape[0] != B:
            raise ValueError(f"sampler must return x of shape ({B}, D), got {sx.shape}")
        ok_y = (sy.shape == (B,) or (len(sy.shape) == 2 and sy.shape[0] == B and
                                     (out_dim is None or sy.shape[1] == out_dim)))
        if not ok_y:
            raise ValueError(f"sampler must return y of shape ({B},) or ({B}, {out_dim}), "
                             f"got {sy.shape}")
        in_dim = sx.shape[1]
    else:
        if y is None:
            raise ValueError("y must be given with x")
        x, y = _check_data("x", x, "y", y, config.loss, out_dim)
        in_dim = x.shape[1]
        if B is not None and B > x.shape[0]:
            raise ValueError(f"batch_size must be <= the number of samples {x.shape[0]}, "
                             f"got {B}")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    if x_test is not None:
        x_test, y_test = _check_data("x_test", x_test, "y_test", y_test, config.loss, out_dim,
                                     in_dim)
    if probe_x is not None:
        probe_x, probe_y = _check_data("probe_x", probe_x, "probe_y", probe_y, config.loss,
                                       out_dim, in_dim)

    ad = adapt(model, in_dim, dtype)
    seeds = tuple(int(s) for s in ensemble.seeds)
    lrs = tuple(float(v) for v in (ensemble.lrs or (config.lr,)))
    default_g0 = model.gamma0 if is_cfg else (ad.model_config.gamma0 if ad.model_config else 1.0)
    gamma0s = tuple(float(v) for v in (ensemble.gamma0s or (default_g0,)))
    if ensemble.gamma0s is not None and not ad.supports_gamma0:
        raise ValueError("ensemble gamma0s need a built-in MLP model (ModelConfig)")
    wanted = set(config.observables)
    layer_obs = wanted & {"act_rms", "feature_kernels", "grad_kernels"}
    if ad.module is None:
        wanted -= layer_obs  # only the built-in MLPs expose hidden layers
    if x_test is None:
        wanted.discard("test_loss")
    if probe_x is None:
        if x_test is not None:
            probe_x, probe_y = x_test, y_test
        elif x is not None:
            probe_x, probe_y = x, y
        else:
            px, py = sampler(jax.random.key(_PROBE_KEY), B)
            probe_x, probe_y = _check_data("sampler x", px, "sampler y", py, config.loss,
                                           out_dim, in_dim)
    if "alignment" in wanted and probe_y is None:
        raise ValueError("probe_y must be given to record alignment")
    if "alignment" in wanted and config.loss == "cross_entropy":
        raise ValueError("observables: alignment is defined for mse targets only")
    if config.loss == "cross_entropy" and probe_y is not None:
        probe_y = None if "alignment" not in wanted else probe_y

    return _run(ad, config, ensemble, dtype, wanted, seeds, lrs, gamma0s, x, y, sampler,
                x_test, y_test, probe_x, probe_y)


_CACHE: dict = {}


def _run(ad, config, ensemble, dtype, wanted, seeds, lrs, gamma0s, x, y, sampler, x_test,
         y_test, probe_x, probe_y):
    cast = lambda a: None if a is None else (
        jnp.asarray(a) if np.issubdtype(np.asarray(a).dtype, np.integer) else jnp.asarray(a, dtype))
    data = {"x": cast(x), "y": cast(y), "xt": cast(x_test), "yt": cast(y_test),
            "px": cast(probe_x), "py": cast(probe_y)}
    data = {k: v for k, v in data.items() if v is not None}
    devices = jax.devices() if ensemble.shard else jax.devices()[:1]
    if ensemble.strategy == "auto":
        strategy = "map" if devices[0].platform == "cpu" else "vmap"
        ensemble = dataclasses.replace(ensemble, strategy=strategy)
    mesh = Mesh(np.array(devices), ("ensemble",))
    ens = NamedSharding(mesh, PartitionSpec("ensemble"))
    # compiled programs are reused across calls for built-in models (same config and shapes)
    key = None
    if isinstance(ad.model_config, ModelConfig) and ad.module is not None:
        key = (ad.model_config, ad.in_dim, str(dtype), config,
               frozenset(wanted), sampler, tuple(devices), tuple(sorted(data)), ensemble.strategy)
    if key is None or key not in _CACHE:
        built = _build(ad, config, dtype, wanted, sampler, ens, ensemble.strategy)
        if key is not None:
            if len(_CACHE) > 32:
                _CACHE.clear()
            _CACHE[key] = built
    else:
        built = _CACHE[key]
    init_jit, runner, progress, names = built
    progress.reset(config.steps, config.progress)
    progress.members = len(seeds) * len(lrs) * len(gamma0s)
    return _execute(init_jit, runner, names, ad, config, ensemble, dtype, wanted, seeds, lrs,
                    gamma0s, data, devices, mesh, ens)


def _build(ad, config, dtype, wanted, sampler, ens, strategy):
    names = obs.param_names(ad.abstract_params)
    treedef = jax.tree.structure(ad.abstract_params)
    opt_scales = ad.adam_scales if config.optimizer == "adam" else ad.lr_scales
    sgd_scales = ad.lr_scales or {}
    scale_of = {n: float((opt_scales or {}).get(n, 1.0)) for n in names}
    tx_parts = optax.partition({n: optax.scale(scale_of[n]) for n in names},
                               {n: n for n in names})
    if config.optimizer == "adam":
        tx = optax.chain(optax.scale_by_adam(config.adam_b1, config.adam_b2, config.adam_eps),
                         tx_parts)
    else:
        tx = tx_parts
    power = 2.0 if config.optimizer == "sgd" else 1.0
    centre = ad.model_config is not None and ad.model_config.centre
    online = sampler is not None

    def unflat(flat):
        return jax.tree.unflatten(treedef, [flat[n] for n in names])

    def to_flat(params):
        return dict(zip(names, jax.tree.leaves(params), strict=True))

    def out_fn(flat, p0, xb, g0):
        f = ad.apply(unflat(flat), xb, g0)
        if centre:
            f = f - ad.apply(unflat(p0), xb, g0)
        return f

    def init_member(raw_key):
        key = jax.random.wrap_key_data(raw_key)
        flat = to_flat(ad.init(jax.random.fold_in(key, 0)))
        flat = {n: jnp.asarray(v, dtype) for n, v in flat.items()}
        return {"params": flat, "opt": tx.init(flat), "p0": flat if centre else {},
                "diverged": jnp.zeros((), bool), "diverged_step": -jnp.ones((), jnp.int32)}

    def batch(hyper, t, d):
        key = jax.random.fold_in(jax.random.wrap_key_data(hyper["key"]), 1)
        k = jax.random.fold_in(key, t)
        if online:
            xb, yb = sampler(k, config.batch_size)
            xb = jnp.asarray(xb, dtype)
            yb = yb if config.loss == "cross_entropy" else jnp.asarray(yb, dtype)
            return xb, (yb[:, None] if yb.ndim == 1 and config.loss == "mse" else yb)
        if config.batch_size is None:
            return d["x"], d["y"]
        idx = jax.random.permutation(k, d["x"].shape[0])[: config.batch_size]
        return d["x"][idx], d["y"][idx]

    def step_member(state, hyper, d, t):
        xb, yb = batch(hyper, t, d)
        g0 = hyper["gamma0"]

        def loss_fn(flat):
            return _loss(config.loss, out_fn(flat, state["p0"], xb, g0), yb)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        upd, opt = tx.update(grads, state["opt"], state["params"])
        step = -hyper["lr"] * g0**power
        new = {n: state["params"][n] + (step * upd[n]).astype(dtype) for n in names}
        ok = jnp.isfinite(loss)
        for v in new.values():
            ok = ok & jnp.all(jnp.isfinite(v))
        bad = state["diverged"] | ~ok
        keep = lambda old, nw: jnp.where(bad, old, nw)
        return {"params": jax.tree.map(keep, state["params"], new),
                "opt": jax.tree.map(keep, state["opt"], opt), "p0": state["p0"],
                "diverged": bad,
                "diverged_step": jnp.where(state["diverged"] | ok, state["diverged_step"], t)}

    def observe_member(state, hyper, d, t):
        flat, g0 = state["params"], hyper["gamma0"]
        rec = {}
        if "loss" in wanted:
            if online:
                ek = jax.random.fold_in(jax.random.wrap_key_data(hyper["key"]), 2)
                xb, yb = sampler(jax.random.fold_in(ek, t), config.batch_size)
                yb = yb if config.loss == "cross_entropy" else jnp.asarray(yb, dtype)
                yb = yb[:, None] if (yb.ndim == 1 and config.loss == "mse") else yb
                rec["loss"] = _loss(config.loss, out_fn(flat, state["p0"], xb.astype(dtype),
                                                        g0), yb)
            else:
                rec["loss"] = _loss(config.loss, out_fn(flat, state["p0"], d["x"], g0), d["y"])
        if "test_loss" in wanted:
            rec["test_loss"] = _loss(config.loss, out_fn(flat, state["p0"], d["xt"], g0),
                                     d["yt"])
        if "outputs" in wanted:
            rec["outputs"] = out_fn(flat, state["p0"], d["px"], g0)
        if "param_norms" in wanted:
            rec["param_norms"] = jnp.stack([jnp.sqrt(jnp.sum(jnp.square(flat[n])))
                                            for n in names])
        need = wanted & {"act_rms", "feature_kernels", "grad_kernels", "ntk", "alignment"}
        if need and ad.module is not None:
            want = set(need) | ({"ntk"} if "alignment" in need else set())
            lo = obs.layer_observables(ad.module(unflat(flat)), d["px"], g0, sgd_scales, want)
            rec.update({k: v for k, v in lo.items() if k in wanted})
            kern = lo.get("ntk")
        elif need & {"ntk", "alignment"}:
            sc = obs.scale_tree_like(flat, sgd_scales)
            kern = obs.generic_ntk(lambda p, xx: out_fn(p, state["p0"], xx, g0), flat, d["px"],
                                   sc, g0**2)
            if "ntk" in wanted:
                rec["ntk"] = kern
        if "alignment" in wanted:
            rec["alignment"] = obs.alignment(kern, d["py"])
        nan = lambda r: jnp.where(state["diverged"], jnp.nan, r)
        return jax.tree.map(nan, rec)

    progress = _Progress(config.steps, config.progress)

    if strategy == "vmap":
        v_step = jax.vmap(step_member, in_axes=(0, 0, None, None))
        v_obs = jax.vmap(observe_member, in_axes=(0, 0, None, None))

        def run_chunk(states, hypers, d, starts, lengths):
            def segment(states, xs):
                start, length = xs
                states = jax.lax.fori_loop(start, start + length,
                                           lambda t, s: v_step(s, hypers, d, t), states)
                end = start + length
                if config.progress:
                    jax.debug.callback(progress, end)
                return states, v_obs(states, hypers, d, end)

            return jax.lax.scan(segment, states, (starts, lengths))

        runner = jax.jit(run_chunk)
    else:
        def run_member(state, hyper, d, starts, lengths):
            def segment(state, xs):
                start, length = xs
                state = jax.lax.fori_loop(start, start + length,
                                          lambda t, s: step_member(s, hyper, d, t), state)
                end = start + length
                if config.progress:
                    jax.debug.callback(progress, end, hyper["index"])
                return state, observe_member(state, hyper, d, end)

            return jax.lax.scan(segment, state, (starts, lengths))

        def run_local(states, hypers, d, starts, lengths):
            states, recs = jax.lax.map(
                lambda a: run_member(a[0], a[1], d, starts, lengths), (states, hypers))
            return states, jax.tree.map(lambda r: jnp.moveaxis(r, 0, 1), recs)

        spec, rep = PartitionSpec("ensemble"), PartitionSpec()
        runner = jax.jit(jax.shard_map(
            run_local, mesh=ens.mesh, in_specs=(spec, spec, rep, rep, rep),
            out_specs=(spec, PartitionSpec(None, "ensemble")), check_vma=False))

    init_jit = jax.jit(jax.vmap(init_member), out_shardings=ens)
    return init_jit, runner, progress, names


def _execute(init_jit, runner, names, ad, config, ensemble, dtype, wanted, seeds, lrs, gamma0s,
             data, devices, mesh, ens):
    grid = list(itertools.product(seeds, lrs, gamma0s))
    E = len(grid)
    n_dev = len(devices)
    E_pad = -(-E // n_dev) * n_dev
    grid_pad = grid + [grid[0]] * (E_pad - E)
    raw = np.stack([np.asarray(jax.random.key_data(jax.random.key(s))) for s, _, _ in grid_pad])
    hypers = {"key": raw, "index": np.arange(E_pad, dtype=np.int32),
              "lr": np.array([g[1] for g in grid_pad], dtype),
              "gamma0": np.array([g[2] for g in grid_pad], dtype)}
    rep = NamedSharding(mesh, PartitionSpec())
    hypers = jax.device_put(hypers, ens)
    d = jax.device_put(data, rep)
    states = init_jit(hypers["key"])
    sched = config.schedule()
    starts = np.concatenate([[0], sched[:-1]]).astype(np.int32)
    lengths = np.diff(np.concatenate([[0], sched])).astype(np.int32)
    if config.checkpoint_dir is not None:
        from ._checkpoint import run_with_checkpoints

        states, recs = run_with_checkpoints(runner, states, hypers, d, starts, lengths,
                                            config.checkpoint_dir, config.checkpoint_every)
    else:
        states, recs = runner(states, hypers, d, starts, lengths)
    return _collect(states, recs, E, sched, names, ad, config, ensemble, seeds, lrs, gamma0s,
                    wanted)


def _gather(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


_DIMS = {"loss": (), "test_loss": (), "outputs": ("probe", "out"), "param_norms": ("param",),
         "act_rms": ("layer",), "feature_kernels": ("layer", "probe", "probe2"),
         "grad_kernels": ("layer", "probe", "probe2"), "ntk": ("probe", "probe2"),
         "alignment": ()}


def _collect(states, recs, E, sched, names, ad, config, ensemble, seeds, lrs, gamma0s, wanted):
    recs = _gather(recs)
    div = _gather({"d": states["diverged"], "s": states["diverged_step"]})
    records = {k: np.moveaxis(v, 0, 1)[:E] for k, v in recs.items()}
    coords = {"param": np.array(names)}
    if ad.model_config is not None and ad.module is not None:
        coords["layer"] = np.arange(1, ad.model_config.depth + 1)
    params = None
    if config.return_params:
        params = {k: v[:E] for k, v in _gather(states["params"]).items()}
    attrs = {"train_config": repr(config), "ensemble": repr(ensemble),
             "model_config": repr(ad.model_config)}
    if ad.model_config is not None:
        attrs.update({f"model_{f.name}": str(getattr(ad.model_config, f.name))
                      for f in dataclasses.fields(ad.model_config)})
    dims = {k: _DIMS[k] for k in records}
    used = {dim for k in records for dim in dims[k]}
    coords = {k: v for k, v in coords.items() if k in used}
    return TrainResult(steps=sched, records=records, dims=dims, coords=coords, seeds=seeds,
                       lrs=lrs, gamma0s=gamma0s, diverged=div["d"][:E],
                       diverged_step=div["s"][:E], width=ad.width, params=params, attrs=attrs)
