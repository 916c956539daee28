"""The persistent compilation cache of experiment runs (compare/_jaxcache.py)."""

import subprocess
import sys
import textwrap

import pytest

from theorysim.compare import compilation_cache_dir, enable_compilation_cache


@pytest.mark.parametrize("value", ["off", "0", "None", " false "])
def test_switched_off(monkeypatch, value):
    monkeypatch.setenv("THEORYSIM_COMPILATION_CACHE", value)
    assert compilation_cache_dir() is None


def test_default_and_explicit_locations(monkeypatch, tmp_path):
    monkeypatch.delenv("THEORYSIM_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache_dir() == tmp_path / "xdg" / "theorysim" / "xla"
    monkeypatch.setenv("THEORYSIM_COMPILATION_CACHE", str(tmp_path / "mine"))
    assert compilation_cache_dir() == tmp_path / "mine"


def _fresh_process(code: str, env_value: str) -> subprocess.CompletedProcess:
    env = {"THEORYSIM_COMPILATION_CACHE": env_value, "JAX_PLATFORMS": "cpu",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_second_process_reads_the_program_back(tmp_path):
    """The first process compiles and writes an entry; the second gets the same numbers from
    the cache (one entry, not two)."""
    code = """
        import jax, jax.numpy as jnp
        from theorysim.compare import enable_compilation_cache
        print(enable_compilation_cache())
        f = jax.jit(lambda x: jnp.linalg.qr(jnp.sin(x) @ x.T)[0].sum())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        print(repr(float(f(jnp.arange(64.0).reshape(8, 8)))))
    """
    first = _fresh_process(code, str(tmp_path))
    assert first.returncode == 0, first.stderr
    entries = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert entries and first.stdout.splitlines()[0] == str(tmp_path)
    second = _fresh_process(code, str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == entries


def test_unwritable_directory_disables_with_a_warning(tmp_path):
    import jax

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    old = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        with pytest.warns(RuntimeWarning, match="THEORYSIM_COMPILATION_CACHE"):
            assert enable_compilation_cache(blocker / "sub") is None
        assert jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
