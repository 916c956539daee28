"""Every ``>>>`` example in the four packages and the core runs and passes.

Equivalent to ``pytest --doctest-modules`` over ``core/ kernels/ theory/ sims/ compare/``, but
imports each module under its installed name (``theorysim.kernels._analytic``) rather than its
folder name, so the examples run against the same module objects users import.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import theorysim

PACKAGES = ("theorysim", "theorysim.kernels", "theorysim.theory", "theorysim.sims",
            "theorysim.compare")


def _modules() -> list[str]:
    names = set(PACKAGES)
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            if pkg_name == "theorysim" and info.name.split(".")[1] in {
                    "kernels", "theory", "sims", "compare"}:
                continue
            names.add(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_package_is_walked():
    assert {"theorysim.contract", "theorysim.checks"} <= set(MODULES)
    assert any(m.startswith("theorysim.compare.experiments.") for m in MODULES)
    assert theorysim.__version__


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    for test in tests:
        runner.run(test, out=lambda text: print(text, end=""))
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
