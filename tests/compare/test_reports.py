"""Reports render as markdown that reads right: escaped pipes, fractions, 0 for rounding
noise, n/a explained, a criterion line in every report."""

from __future__ import annotations

import math
import re

from theorysim.compare import ExperimentConfig, Ratio, Report, render_markdown, render_text


def _cells(md: str) -> dict[str, str]:
    """metric -> value cell of the rendered metrics table, splitting on unescaped pipes."""
    out = {}
    for line in md.splitlines():
        if not line.startswith("| "):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 2:
            out[cells[0]] = cells[1]
    return out


REPORT = Report(
    title="demo",
    table=({"P": 10, "theory": 0.5, "sim": math.nan, "z": -7.0366e-17},),
    metrics={"max |z|": 2.735, "points within 3 SE": Ratio(9, 10), "slope": -7.0366e-17,
             "tiny residual": 1e-14, "gap slope": math.nan},
    notes=("a note with a | pipe",),
    passed=False,
    criterion="every |z| <= 3",
    diagnostics=({"solver": "ridge_risk", "converged": True, "residual": 2e-16,
                  "iterations": 7},),
)


def test_markdown_renders_and_reads_back():
    md = render_markdown(REPORT, "demo", ExperimentConfig())
    cells = _cells(md)
    assert cells["max |z|"] == "2.735"
    assert cells["points within 3 SE"] == "9/10"
    assert cells["slope"] == "0"
    assert cells["tiny residual"] == "1.000e-14"
    assert cells["gap slope"] == "n/a"
    assert "**Criterion:** every \\|z\\| <= 3" in md and "**Result: FAILED**" in md
    assert "n/a: no value at this point" in md
    # every table row has as many cells as its header
    for block in re.findall(r"((?:^\|.*\n)+)", md, flags=re.M):
        widths = {len(re.split(r"(?<!\\)\|", ln)) for ln in block.strip().splitlines()}
        assert len(widths) == 1, block
    assert "| 10 | 0.5 | n/a | 0 |" in md
    assert "ridge_risk" in md


def test_text_report_has_the_criterion_and_the_verdict():
    text = render_text(REPORT)
    assert "criterion: every |z| <= 3" in text and "result: FAILED" in text
    assert "points within 3 SE: 9/10" in text
