"""Reports: a markdown file and a plain-text table for the terminal.

Numbers are written so that they read right: a count of points as ``9/10``, rounding noise
(``|v| < 1e-12``) as ``0``, a missing value as ``n/a`` with a note saying why, and ``|`` inside a
markdown cell escaped so the table keeps its columns:

>>> _fmt(Ratio(9, 10)), _fmt(-7.0366e-17), _fmt(0.0123456), _cell("max |z|")
('9/10', '0', '0.01235', 'max \\\\|z\\\\|')
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ._experiment import ExperimentConfig, Report, config_to_dict

#: shown for a missing (NaN) value; every report with one explains it in a note.
MISSING = "n/a"
_NOISE = 1e-12


class Ratio(NamedTuple):
    """``k`` out of ``n`` (a count of points, printed as ``k/n``); ``float()`` gives k/n."""

    k: int
    n: int

    def __float__(self) -> float:
        return self.k / self.n if self.n else math.nan


def _fmt(v: Any, key: str = "") -> str:
    if isinstance(v, Ratio):
        return f"{v.k}/{v.n}"
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return MISSING
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if abs(v) < _NOISE and "residual" not in key:
            return "0"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    try:
        return _fmt(v.item(), key)  # numpy scalars
    except (AttributeError, ValueError):
        return str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(table) -> tuple[list[str], list[list[str]]]:
    if not table:
        return [], []
    header = list(table[0])
    return header, [[_fmt(row.get(h), h) for h in header] for row in table]


def _has_missing(report: Report) -> bool:
    values = [*report.metrics.values(), *(v for row in report.table for v in row.values())]
    return any(isinstance(v, float) and math.isnan(v) for v in values)


def verdict(report: Report) -> str:
    """``PASSED``/``FAILED``/``no criterion``."""
    return {True: "PASSED", False: "FAILED", None: "no criterion"}[report.passed]


def _md_table(header, rows) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out + [""]


def render_markdown(report: Report, experiment: str, cfg: ExperimentConfig) -> str:
    """The whole report as markdown: title, criterion and verdict, metrics, theory-solver
    diagnostics, per-point table, notes, config."""
    lines = [f"# {experiment}: {report.title}", ""]
    crit = report.criterion or "none stated"
    lines += [f"**Criterion:** {_cell(crit)}", "", f"**Result: {verdict(report)}**", ""]
    if report.metrics:
        lines += _md_table(["metric", "value"],
                           [[k, _fmt(v, k)] for k, v in report.metrics.items()])
    header, rows = _rows(report.diagnostics)
    if header:
        lines += ["Theory solvers:", ""] + _md_table(header, rows)
    header, rows = _rows(report.table)
    if header:
        lines += _md_table(header, rows)
    notes = list(report.notes)
    if _has_missing(report):
        notes.append(f"{MISSING}: no value at this point (not simulated there, or not "
                     "resolved; see the notes above)")
    lines += [f"- {_cell(n)}" for n in notes]
    lines += ["", "## Config", "", "```"]
    lines += [f"{k} = {v!r}" for k, v in config_to_dict(cfg).items()]
    lines += ["```", ""]
    return "\n".join(lines)


def render_text(report: Report) -> str:
    """A compact plain-text version for the terminal."""
    out = [report.title, f"criterion: {report.criterion or 'none stated'}",
           f"result: {verdict(report)}"]
    for k, v in report.metrics.items():
        out.append(f"  {k}: {_fmt(v, k)}")
    for row in report.diagnostics:
        out.append("  theory " + ", ".join(f"{k} {_fmt(v, k)}" for k, v in row.items()))
    header, rows = _rows(report.table)
    if header:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        out.append("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            out.append("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    out += [f"  {n}" for n in report.notes]
    if _has_missing(report):
        out.append(f"  {MISSING}: no value at this point (not simulated there, or not resolved)")
    return "\n".join(out)
