"""theorysim: a JAX toolkit for deep-learning theory.

The root package is the small shared core that every engine may import:

- :mod:`theorysim.checks`: argument checks (``ValueError`` naming the argument and the allowed
  range, raised on the host before any compute);
- :mod:`theorysim.contract`: the solver contract (``converged`` / ``residual`` / ``iterations``
  on every solver result, ``throw=True`` raising :class:`ConvergenceError`).

The engines live in the subpackages :mod:`theorysim.kernels`, :mod:`theorysim.theory`,
:mod:`theorysim.sims` and :mod:`theorysim.compare`.
"""

from importlib.metadata import PackageNotFoundError, version

from .contract import ConvergenceError as ConvergenceError

try:
    __version__ = version("theorysim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"
