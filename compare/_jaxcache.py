"""A persistent XLA compilation cache for experiment runs.

Most of a quick preset's time is XLA compiling its programs (a ``scaling_law_dynamics`` call
compiles for ~15 s and runs for 0.05 s on 2 CPU cores). The runner and every worker process it
starts switch on JAX's persistent compilation cache, so a program compiled once (by an earlier
run, another sweep worker, or a Slurm array task sharing the directory) is read back instead of
compiled again. Results are unchanged: the cache holds the compiled executables of the same
programs, keyed by the program, the JAX/jaxlib version, the backend and the compile options.

Where the cache lives, from the environment variable ``THEORYSIM_COMPILATION_CACHE``:

- unset or empty: ``$XDG_CACHE_HOME/theorysim/xla`` (``~/.cache/theorysim/xla``);
- ``off`` (or ``0``, ``none``, ``false``): no cache;
- anything else: that directory.

A cache directory set by the user through ``jax.config`` (``jax_compilation_cache_dir``) wins.
A directory that cannot be created or written disables the cache with one warning; it never
fails a run. JAX reads the setting at its first compilation, so call
:func:`enable_compilation_cache` before any JAX work (the CLI, the runner and the workers do).

>>> import os
>>> from theorysim.compare import compilation_cache_dir
>>> before = os.environ.get("THEORYSIM_COMPILATION_CACHE", "")
>>> os.environ["THEORYSIM_COMPILATION_CACHE"] = "off"
>>> compilation_cache_dir() is None
True
>>> os.environ["THEORYSIM_COMPILATION_CACHE"] = before  # "" is the default location
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV = "THEORYSIM_COMPILATION_CACHE"
_OFF = {"off", "0", "none", "false", "no"}
#: programs that compile faster than this are not written (their entries would cost more I/O
#: than they save)
MIN_COMPILE_SECONDS = 0.2


def compilation_cache_dir() -> Path | None:
    """The cache directory the environment asks for, or ``None`` when it is switched off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "theorysim" / "xla"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Switch on JAX's persistent compilation cache; returns the directory in use, or ``None``.

    Args:
        path: the directory; default :func:`compilation_cache_dir` (the environment).
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    where = Path(path).expanduser() if path is not None else compilation_cache_dir()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
        probe = where / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        warnings.warn(f"compilation cache disabled: cannot write {where} ({err}); set {ENV} "
                      "to a writable directory or to 'off'", RuntimeWarning, stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return where
