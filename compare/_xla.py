"""A workaround for a hang of XLA's CPU runtime, applied by the entry points (CLI, tests, figure
scripts), never at library import.

With jaxlib 0.10 on a 2-core machine, a jitted program whose result is being waited for can
hang forever: every Eigen intra-op worker idles in its pool while the main thread waits on a
result that is never produced (seen here in vmapped ridge solves; also reported by other JAX
users, who found that single-threaded Eigen removes it). ``--xla_cpu_multi_thread_eigen=false``
runs each XLA CPU op's Eigen kernels on one thread; XLA still runs independent ops in
parallel. Set ``THEORYSIM_EIGEN_THREADS=1`` to keep multi-threaded Eigen (e.g. for timing).
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_multi_thread_eigen=false"


def cpu_runtime_workaround() -> None:
    """Add ``FLAG`` to ``XLA_FLAGS`` unless the user opted out or set the flag already.

    Must run before JAX creates its CPU backend (the first computation or ``jax.devices()``).
    """
    if os.environ.get("THEORYSIM_EIGEN_THREADS") == "1":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
