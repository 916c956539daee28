"""Test configuration: set once, before JAX initialises.

8 fake CPU devices so the sharding tests can build a mesh on any machine. x64 is not switched
on globally: theory code enters ``jax.enable_x64(True)`` itself, and tests that need float64
simulations do the same.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

# One persistent compilation cache per test run (compare/_jaxcache.py), shared by the xdist
# workers and the subprocesses the executor tests start: a program that several modules (the
# fixture below drops the in-memory programs after each module) or processes compile is
# compiled once. It is new and empty at the start of every run (so the suite's time is a fresh
# run's) and removed at the end; THEORYSIM_COMPILATION_CACHE=off switches it off.
_CACHE = os.environ.get("THEORYSIM_COMPILATION_CACHE", "").strip()
_OWN_CACHE = None
if _CACHE.lower() not in {"off", "0", "none", "false", "no"}:
    if not _CACHE:
        import tempfile

        _CACHE = _OWN_CACHE = tempfile.mkdtemp(prefix="theorysim-test-xla-")
        os.environ["THEORYSIM_COMPILATION_CACHE"] = _CACHE
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

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


def pytest_unconfigure(config):
    if _OWN_CACHE is not None and not hasattr(config, "workerinput"):  # the xdist controller
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
