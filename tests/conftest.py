"""Test configuration: set once, before JAX initialises.

8 fake CPU devices so the sharding tests can build a mesh on any machine. x64 is not switched
on globally: theory code enters ``jax.enable_x64(True)`` itself, and tests that need float64
simulations do the same.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    XLA:CPU maps memory for every executable it JIT-compiles; a whole-suite run compiles
    thousands, and without this the process reaches the kernel's ``vm.max_map_count`` (65530)
    and segfaults inside the compiler late in the run.
    """
    yield
    jax.clear_caches()
    gc.collect()
