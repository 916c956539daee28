"""Samplers for online SGD: frozen, hashable objects ``sampler(key, batch_size) -> (x, y)``.

:func:`theorysim.sims.train` reuses a compiled training program across calls whose arguments
are equal by value (the model config, the :class:`TrainConfig`, the sampler, the shapes). A
sampler therefore has to be a value: a frozen dataclass whose fields say everything that
changes the samples, with a ``__call__(key, batch_size)``. A plain function or closure cannot
be compared by value (two closures over different teachers look alike), so it is refused.

Example:
    >>> import dataclasses, jax, jax.numpy as jnp
    >>> @dataclasses.dataclass(frozen=True)
    ... class Sine:
    ...     dim: int
    ...     def __call__(self, key, batch_size):
    ...         x = jax.random.normal(key, (batch_size, self.dim))
    ...         return x, jnp.sin(x[:, 0])
    >>> Sine(3) == Sine(3), check_sampler(Sine(3)) is not None
    (True, True)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

__all__ = ["Sampler", "check_sampler"]


@runtime_checkable
class Sampler(Protocol):
    """``sampler(key, batch_size) -> (x, y)``: ``x`` (batch_size, D), ``y`` (batch_size,) or
    (batch_size, C); a frozen dataclass (hashable, compared by value)."""

    def __call__(self, key: Any, batch_size: int) -> tuple[Any, Any]: ...


def check_sampler(sampler) -> Sampler:
    """Check ``sampler`` is a frozen, hashable dataclass instance with ``__call__``; return it.

    Raises ``ValueError`` naming ``sampler`` otherwise (a plain function included).
    """
    params = getattr(type(sampler), "__dataclass_params__", None)
    if (not callable(sampler) or isinstance(sampler, type) or params is None
            or not dataclasses.is_dataclass(sampler) or not params.frozen):
        raise ValueError(
            "sampler must be a frozen dataclass instance with __call__(key, batch_size) -> "
            f"(x, y), so that it compares by value; got {type(sampler).__name__}. Wrap a "
            "function in @dataclasses.dataclass(frozen=True) with its parameters as fields "
            "(see theorysim.sims.Sampler)")
    try:
        hash(sampler)
    except TypeError as err:
        raise ValueError(f"sampler must be hashable (its fields too): {err}") from err
    return sampler
