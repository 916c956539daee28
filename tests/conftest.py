"""Test configuration: set once, before JAX initialises.

8 fake CPU devices so the sharding tests can build a mesh on any machine. x64 is not switched
on globally: theory code enters ``jax.enable_x64(True)`` itself, and tests that need float64
simulations do the same.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
