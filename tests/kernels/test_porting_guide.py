"""Every code block of kernels/README.md (the neural-tangents porting guide) runs."""

from __future__ import annotations

import pathlib
import re

import pytest

GUIDE = pathlib.Path(__file__).resolve().parents[2] / "kernels" / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_guide_has_the_issue_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_guide_block_runs(i):
    exec(compile(BLOCKS[i], f"{GUIDE}:block{i}", "exec"), {})
