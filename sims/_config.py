"""Frozen configs of the training engine: :class:`TrainConfig` and :class:`EnsembleSpec`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from theorysim.checks import check_bool, check_scalar

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "cross_entropy")
OBSERVABLES = ("loss", "test_loss", "outputs", "param_norms", "act_rms", "feature_kernels",
               "grad_kernels", "ntk", "alignment")
DEFAULT_OBSERVABLES = ("loss", "test_loss", "outputs", "param_norms", "act_rms")


def _positive(name, v):
    check_scalar(name, v, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)


def _int_at_least(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


def _as_tuple(obj, name, kind):
    """Store a list/array field of a frozen config as a tuple (so the config stays hashable)."""
    value = getattr(obj, name)
    if value is None or isinstance(value, tuple):
        return
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a tuple of {kind}, got {value!r}")
    object.__setattr__(obj, name, tuple(value))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Args:
        steps: number of optimiser steps T (>= 0).
        lr: base learning rate eta (> 0); each layer uses eta times its abc scale.
        optimizer: ``sgd`` (plain gradient steps; full-batch GD when ``batch_size`` is None)
            or ``adam`` (optax ``scale_by_adam``).
        loss: ``mse`` (:math:`\\frac{1}{2P}\\sum_\\mu |f_\\mu-y_\\mu|^2`) or ``cross_entropy``
            (mean softmax cross-entropy, integer labels).
        batch_size: minibatch size (None: full batch). Required with a sampler (online SGD).
        num_records: number of log-spaced record steps (step 0 and step T always included).
        record_steps: explicit record steps (sorted, unique, in [0, T]); overrides num_records.
        observables: names from :data:`OBSERVABLES`.
        adam_b1, adam_b2, adam_eps: Adam constants.
        dtype: ``float32`` (default) or ``float64`` (needs ``jax.enable_x64``).
        progress: print a progress bar to stderr, once per record step.
        return_params: keep the final parameters of every member in the result.
        checkpoint_dir: if set, save the ensemble state with orbax every ``checkpoint_every``
            records and resume from the latest checkpoint there (needs orbax-checkpoint).
        checkpoint_every: records per checkpoint chunk.
    """

    steps: int
    lr: float = 0.1
    optimizer: str = "sgd"
    loss: str = "mse"
    batch_size: int | None = None
    num_records: int = 20
    record_steps: tuple[int, ...] | None = None
    observables: tuple[str, ...] = DEFAULT_OBSERVABLES
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    dtype: str = "float32"
    progress: bool = False
    return_params: bool = False
    checkpoint_dir: str | None = None
    checkpoint_every: int = 10

    def __post_init__(self):
        _as_tuple(self, "record_steps", "integers")
        _as_tuple(self, "observables", "names")
        _int_at_least("steps", self.steps, 0)
        _positive("lr", self.lr)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.batch_size is not None:
            _int_at_least("batch_size", self.batch_size, 1)
        _int_at_least("num_records", self.num_records, 1)
        if self.num_records > max(self.steps + 1, 10**6):
            raise ValueError(f"num_records must be <= steps + 1 = {self.steps + 1} (there are no "
                             f"more distinct record steps), got {self.num_records}")
        if self.record_steps is not None:
            r = list(self.record_steps)
            if (not r or r != sorted(set(r)) or r[0] < 0 or r[-1] > self.steps
                    or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                           for v in r)):
                raise ValueError("record_steps must be sorted unique integers in "
                                 f"[0, steps={self.steps}], got {self.record_steps!r}")
        bad = [o for o in self.observables if o not in OBSERVABLES]
        if bad:
            raise ValueError(f"observables must be among {list(OBSERVABLES)}, got {bad!r}")
        for name in ("adam_b1", "adam_b2"):
            check_scalar(name, getattr(self, name), lo=0.0, hi=1.0, hi_open=True)
        _positive("adam_eps", self.adam_eps)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        check_bool("progress", self.progress)
        check_bool("return_params", self.return_params)
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, str):
            raise ValueError(f"checkpoint_dir must be None or a path string, got "
                             f"{self.checkpoint_dir!r}")
        _int_at_least("checkpoint_every", self.checkpoint_every, 1)

    def schedule(self) -> np.ndarray:
        """The record steps: ``record_steps`` or 0 plus ``num_records - 1`` log-spaced steps.

        >>> TrainConfig(steps=100, num_records=4).schedule().tolist()
        [0, 1, 10, 100]
        """
        if self.record_steps is not None:
            return np.asarray(self.record_steps, dtype=np.int64)
        if self.steps == 0 or self.num_records == 1:
            return np.unique(np.array([0, self.steps], dtype=np.int64))
        logs = np.geomspace(1, self.steps, self.num_records - 1)
        return np.unique(np.concatenate([[0], np.round(logs).astype(np.int64), [self.steps]]))


@dataclasses.dataclass(frozen=True)
class EnsembleSpec:
    """The ensemble: the outer product ``seeds x lrs x gamma0s``, trained in one program.

    Args:
        seeds: integer seeds; a seed fixes the initialisation and the data order / samples, so
            members that share a seed and differ in lr or gamma0 use common random numbers.
        lrs: base learning rates swept (None: ``TrainConfig.lr``).
        gamma0s: richness values swept (None: the model's gamma0). Only for the built-in MLPs.
        shard: shard the ensemble axis over all devices (``jax.devices()``); the ensemble is
            padded with copies of member 0 up to a multiple of the device count.
        strategy: how the members of one device are run inside the one compiled program:
            ``vmap`` (batched; the right choice on GPU/TPU), ``map`` (``lax.map``: one member
            after another, each with unbatched matmuls; on XLA:CPU this is 1.3-3x faster,
            because batched dots are slower per FLOP there, see benchmarks/RESULTS.md) or
            ``auto`` (default: ``map`` when the devices are CPUs, else ``vmap``). Both give the
            same numbers up to float rounding; ``map`` runs under ``shard_map``.
    """

    seeds: tuple[int, ...] = (0,)
    lrs: tuple[float, ...] | None = None
    gamma0s: tuple[float, ...] | None = None
    shard: bool = True
    strategy: str = "auto"

    def __post_init__(self):
        for name in ("seeds", "lrs", "gamma0s"):
            _as_tuple(self, name, "numbers")
        check_bool("shard", self.shard)
        if self.strategy not in ("auto", "vmap", "map"):
            raise ValueError(f"strategy must be 'auto', 'vmap' or 'map', got {self.strategy!r}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer))
                                 or not -(2**63) <= s < 2**63 for s in self.seeds):
            raise ValueError("seeds must be a non-empty tuple of 64-bit integers, got "
                             f"{self.seeds!r}")
        for name, vals in (("lr", self.lrs), ("gamma0", self.gamma0s)):
            if vals is None:
                continue
            if len(vals) == 0:
                raise ValueError(f"{name}s must be None or non-empty")
            for v in vals:
                _positive(f"{name}s entry", v)

    @property
    def size(self) -> int:
        """Number of members E = len(seeds) x len(lrs) x len(gamma0s) (None counts as 1)."""
        return len(self.seeds) * len(self.lrs or (0,)) * len(self.gamma0s or (0,))
