r"""The one training engine of theorysim: :func:`train`.

.. math::

    \theta^{(e)}_{t+1} = \theta^{(e)}_t - \eta_e\, \gamma_{0,e}^{k}\, C \odot
    \mathrm{opt}\big(\nabla_\theta \mathcal L(\theta^{(e)}_t; B^{(e)}_t)\big),
    \qquad e = 1..E \text{ ensemble members},

with per-layer scales :math:`C` (optax ``partition`` of ``scale`` transforms; abc table in
:mod:`theorysim.sims._param`), :math:`k = 2` for SGD and 1 for Adam, and the batch
:math:`B_t` the full data set (GD), a random minibatch without replacement (SGD) or fresh samples
``sampler(key_t, batch_size)`` (online SGD).

The engine is four steps, one module each: validation (:mod:`._validate`: every argument
checked on the host, memory and step count estimated up front), program building
(:mod:`._program`: one member's step and observation as pure functions on a flat parameter
dict), execution (:mod:`._execute`: ensemble strategies, sharding, progress) and collection
(:mod:`._collect`: records gathered into a :class:`TrainResult`).

Implementation: every member's state is a pure pytree (``nnx.split`` -> params); all members run
inside one ``jit``; the steps run in a ``lax.scan`` over record segments, each a ``fori_loop``
over its steps, and observables are computed only at the record steps. Members are either
``vmap``-ed (``EnsembleSpec.strategy="vmap"``, default on GPU/TPU) or run one after another by
``lax.map`` (``"map"``, default on CPU where XLA's batched matmuls are slower per FLOP). The
ensemble axis is sharded over ``jax.devices()`` with a 1-D :class:`jax.sharding.Mesh`
(``NamedSharding(mesh, P("ensemble"))``; ``shard_map`` for ``"map"``); members never
communicate, so each device runs its own slice. With ``"map"`` every member runs the same
unbatched operations whatever the sharding, and the numbers equal the unsharded run bit for bit.
With ``"vmap"`` a device's batch of members shrinks when the ensemble is sharded; XLA may block
batched matmuls differently for different batch sizes, so sharded and unsharded runs agree to
float rounding (bit for bit on jax 0.10; 1 ulp, 1.4e-7 relative, measured on jax 0.12); both are
tested on 8 CPU devices. The ensemble is padded with copies of member 0 to a multiple of the
device count (padding members are dropped from the result).

Compiled programs are reused across calls whose arguments are equal by value: the cache key is
built from the frozen model config, :class:`TrainConfig`, sampler (a frozen dataclass, see
:class:`theorysim.sims.Sampler`), observables, devices and strategy. Models given as an
``nnx.Module``, a factory or an ``(apply_fn, params)`` pair are compiled on every call.

Multi-host (TPU pods, GPU clusters): call ``jax.distributed.initialize()`` in every process
before calling :func:`train` with identical arguments; the mesh then spans all processes'
devices and the records are gathered to every host with
``jax.experimental.multihost_utils.process_allgather``. The engine never calls
``initialize`` itself.

Divergence: a member whose loss or parameters become NaN/inf stops updating (its parameters stay
at the last finite values), is flagged in ``TrainResult.diverged`` (with the step in
``diverged_step``) and records NaN from then on; the other members are unaffected bit for bit
(their computations never mix with it). When every member diverged, :func:`train` raises
:class:`theorysim.ConvergenceError` carrying the result (``throw=False`` returns it flagged).
"""

from __future__ import annotations

from theorysim.contract import check_throw

from ._collect import check_divergence, collect
from ._config import EnsembleSpec, TrainConfig
from ._execute import execute
from ._param import ModelConfig  # noqa: F401 - the example's model (same class under any import)
from ._program import program
from ._result import TrainResult
from ._validate import MAX_STEPS, validate

__all__ = ["train"]


def train(model, config: TrainConfig, *, x=None, y=None, sampler=None, x_test=None,
          y_test=None, probe_x=None, probe_y=None, ensemble: EnsembleSpec | None = None,
          max_memory_gb: float | None = None, max_steps: int = MAX_STEPS,
          throw: bool = True) -> TrainResult:
    """Train an ensemble of networks in one compiled program and record observables.

    Args:
        model: a built-in model config (:class:`ModelConfig` for the MLP / residual MLP, or a
            CNN / transformer config; re-initialised per seed), an ``nnx.Module`` (all members
            start from its parameters), a callable ``key -> nnx.Module``, or a pair
            ``(apply_fn, params)`` with ``apply_fn(params, x) -> (P, C)``.
        config: the :class:`TrainConfig`.
        x, y: training set, x of shape (P, D); y of shape (P,) or (P, C) (MSE) or integer
            labels (P,) (cross-entropy). Give either ``x, y`` or ``sampler``.
        sampler: a :class:`Sampler`, a frozen dataclass ``sampler(key, batch_size) -> (x, y)``
            drawing fresh samples (online SGD); requires ``config.batch_size``. The recorded
            ``loss`` is then measured on a fresh batch at each record step.
        x_test, y_test: optional test set (``test_loss`` recorded only when given).
        probe_x, probe_y: probe set for outputs and kernels (default: the test set if given,
            else the training set, else one sampler batch drawn with a fixed key).
        ensemble: the :class:`EnsembleSpec` (seeds x learning rates x gamma0s).
        max_memory_gb: memory the run may use (default: host RAM on CPU, the devices' memory
            on GPU/TPU). A run whose estimated parameters, optimiser state, activations and
            records exceed it is refused before anything is allocated.
        max_steps: largest ``config.steps`` accepted (default 10^8).
        throw: raise :class:`theorysim.ConvergenceError` when every member diverged (the
            result is in ``err.result``); with ``False`` return it flagged.

    Returns:
        :class:`TrainResult` with records of shape (members, record steps, ...); see
        ``TrainResult.to_xarray``.

    Raises:
        ValueError: naming the argument, before anything is compiled.
        theorysim.ConvergenceError: every member diverged (``throw=True``).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal((16, 3)); y = np.tanh(x[:, 0])
        >>> cfg = ModelConfig(width=16, depth=2, parameterization="mean_field")
        >>> res = train(cfg, TrainConfig(steps=20, lr=0.5, num_records=3), x=x, y=y,
        ...             ensemble=EnsembleSpec(seeds=(0, 1)))
        >>> loss = res.to_xarray().loss.isel(step=-1).mean("seed")
        >>> bool(loss < res.to_xarray().loss.isel(step=0).mean("seed"))
        True
    """
    throw = check_throw(throw)
    request = validate(model, config, x=x, y=y, sampler=sampler, x_test=x_test, y_test=y_test,
                       probe_x=probe_x, probe_y=probe_y, ensemble=ensemble,
                       max_memory_gb=max_memory_gb, max_steps=max_steps)
    prog = program(request.spec(), request.ad)
    states, records = execute(prog, request)
    return check_divergence(collect(states, records, request, prog), throw)
