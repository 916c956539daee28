"""The import graph holds to DESIGN.md's layering.

- ``sims`` imports none of ``theory``, ``kernels``, ``compare``;
- ``theory`` imports neither ``sims`` nor ``compare``;
- ``kernels`` imports none of ``theory``, ``sims``, ``compare``;
- every package may import the root core (``theorysim``, ``theorysim.checks``, ...);
- nothing imports another package's private module (``theorysim.x._y`` from outside ``x``),
  including the scripts in ``paper_figures/`` and ``benchmarks/``.

The graph is read statically (``ast``), so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> the package it installs as (pyproject's package-dir)
PACKAGES = {"core": "", "kernels": "kernels", "theory": "theory", "sims": "sims",
            "compare": "compare"}
SCRIPTS = ("paper_figures", "benchmarks")
ENGINES = {"kernels", "theory", "sims", "compare"}
FORBIDDEN = {
    "sims": {"theory", "kernels", "compare"},
    "theory": {"sims", "compare"},
    "kernels": {"theory", "sims", "compare"},
    "": {"theory", "kernels", "sims", "compare"},  # the core imports no engine
}


def _imports(path: Path, package: str | None) -> list[tuple[int, str]]:
    """Absolute ``theorysim...`` module names imported by ``path`` (relative imports resolved
    against ``package``, the dotted package the file lives in)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            # `from theorysim.kernels import _recursion` imports a private module too
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return [(line, m) for line, m in found if m == "theorysim" or m.startswith("theorysim.")]


def violations(path: Path, owner: str | None) -> list[str]:
    """Layering violations of one file. ``owner`` is the subpackage the file belongs to
    (``""`` for the core, ``None`` for a script outside the packages)."""
    if owner is None:
        package = None
    else:
        rel = path.relative_to(ROOT / next(f for f, p in PACKAGES.items() if p == owner))
        package = ".".join(["theorysim"] + ([owner] if owner else []) + list(rel.parts[:-1]))
    bad = []
    for line, mod in _imports(path, package):
        parts = mod.split(".")
        target = parts[1] if len(parts) > 1 and parts[1] in ENGINES else ""
        if owner is not None and target in FORBIDDEN.get(owner, set()):
            bad.append(f"{path.relative_to(ROOT)}:{line} {owner or 'core'} imports {mod}")
        private = [p for p in parts[1:] if p.startswith("_") and not p.startswith("__")]
        if private and (owner is None or target != owner):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports private module {mod}")
    return bad


def _files():
    for folder, owner in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, owner
    for folder in SCRIPTS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, None


def test_import_graph_holds():
    bad = [v for path, owner in _files() for v in violations(path, owner)]
    assert not bad, "layering violations:\n" + "\n".join(bad)


@pytest.mark.parametrize("owner, source, expect", [
    ("sims", "from theorysim.theory import ridge_risk\n", "sims imports theorysim.theory"),
    ("sims", "import theorysim.compare\n", "sims imports theorysim.compare"),
    ("kernels", "from theorysim import theory\n", None),
    ("theory", "from theorysim.sims._engine import train\n", "sims._engine"),
    ("theory", "from theorysim.kernels import _recursion\n", "private module"),
    ("compare", "from theorysim.kernels._checks import x\n", "private module"),
    ("compare", "from .._experiment import x\n", None),
    ("theory", "from ._kappa import solve_kappa\n", None),
    ("theory", "from theorysim.kernels import mlp_kernel\n", None),
    ("", "from theorysim.sims import train\n", "core imports theorysim.sims"),
])
def test_a_forbidden_import_is_caught(tmp_path, owner, source, expect):
    """A temporary module placed in a package folder is judged like a real one."""
    folder = next(f for f, p in PACKAGES.items() if p == owner)
    fake_root = tmp_path / "repo"
    (fake_root / folder / "sub").mkdir(parents=True)
    path = fake_root / folder / "sub" / "_probe.py"
    path.write_text(source)
    globals()["ROOT"] = fake_root
    try:
        bad = violations(path, owner)
    finally:
        globals()["ROOT"] = ROOT_REAL
    if expect is None:
        assert bad == []
    else:
        assert any(expect in b for b in bad), bad


ROOT_REAL = ROOT


def test_a_forbidden_import_in_a_script_is_caught(tmp_path):
    path = ROOT / "paper_figures" / "_layering_probe_tmp.py"
    path.write_text("from theorysim.compare._plots import theory_vs_sim\n")
    try:
        bad = violations(path, None)
    finally:
        path.unlink()
    assert any("private module theorysim.compare._plots" in b for b in bad)
