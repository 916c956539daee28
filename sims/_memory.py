r"""Up-front memory estimates, so that a run too big for the machine is refused before it starts.

A width-:math:`10^9` network or a million-member ensemble would otherwise run until the
allocator aborts the process. The estimates are deliberately simple upper-bound-style sums
(bytes), computed from abstract shapes only (nothing is allocated or compiled):

.. math::

    \text{state} = E\,n_\theta\,b\,(1 + s_{\rm opt} + c), \qquad
    \text{work} = E_{\rm live}\,(3 n_\theta + 3 a)\,b, \qquad
    \text{records} = E\,K\,r\,b,

with :math:`E` members (padded to the device count), :math:`n_\theta` parameters per member,
:math:`b` bytes per number, :math:`s_{\rm opt}` optimiser slots (2 for Adam), :math:`c = 1`
when the output is centred (a copy of the initial parameters), :math:`a` the forward
intermediates of one batch (summed over the traced forward pass), :math:`E_{\rm live}` the
members that compute at the same time (all of them under ``vmap``, one per device under
``map``), :math:`K` record steps and :math:`r` numbers per record.
"""

from __future__ import annotations

import math
import os

import jax

from theorysim.checks import check_scalar

__all__ = ["available_bytes", "check_fits", "check_limit", "estimate_forward", "gb", "host_bytes"]


def gb(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GB"


def host_bytes() -> int:
    """Physical memory of this host (bytes)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def available_bytes(devices) -> int:
    """Memory the run may use: host RAM for CPU devices (they share it), else the sum of the
    devices' ``bytes_limit`` (host RAM where a backend does not say)."""
    if devices[0].platform == "cpu":
        return host_bytes()
    total = 0
    for d in devices:
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        limit = (stats or {}).get("bytes_limit")
        if limit is None:
            return host_bytes()
        total += int(limit)
    return total


def check_limit(max_memory_gb) -> float | None:
    """Validate a ``max_memory_gb`` argument (None or a finite number > 0)."""
    if max_memory_gb is None:
        return None
    return check_scalar("max_memory_gb", max_memory_gb, lo=0.0, lo_open=True, hi=math.inf,
                        hi_open=True)


def estimate_forward(apply, abstract_params, x_struct) -> int:
    """Numbers produced by one forward pass ``apply(params, x)`` (sum over its traced
    intermediates; 0 when it cannot be traced abstractly)."""
    try:
        jaxpr = jax.make_jaxpr(apply)(abstract_params, x_struct)
    except Exception:  # best-effort: a model that cannot be traced here fails later, clearly
        return 0
    return sum(math.prod(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars
               if hasattr(v.aval, "shape"))


def check_fits(parts: dict[str, float], *, limit_gb: float | None, devices=None, blame: str,
               caller: str = "train") -> None:
    """Raise ``ValueError`` when the estimated ``parts`` (bytes) exceed the memory limit.

    ``limit_gb`` overrides the detected memory of ``devices`` (default: ``jax.devices()``);
    ``blame`` names the argument(s) to reduce; ``caller`` the function whose ``max_memory_gb``
    overrides the estimate.
    """
    devices = jax.devices() if devices is None else devices
    need = sum(parts.values())
    limit = available_bytes(devices) if limit_gb is None else limit_gb * 2**30
    if need <= limit:
        return
    detail = ", ".join(f"{k} {gb(v)}" for k, v in parts.items() if v)
    where = "the given max_memory_gb" if limit_gb is not None else "the devices' memory"
    raise ValueError(
        f"{caller} would need about {gb(need)} ({detail}), more than {gb(limit)} ({where}); "
        f"reduce {blame}, or pass max_memory_gb=<GB> to {caller} to override the estimate")
