"""Reports: a markdown file and a plain-text table for the terminal."""

from __future__ import annotations

import math
from typing import Any

from ._experiment import ExperimentConfig, Report, config_to_dict


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.4e}"
        return f"{v:.4g}"
    try:
        return _fmt(v.item())  # numpy scalars
    except (AttributeError, ValueError):
        return str(v)


def _rows(report: Report) -> tuple[list[str], list[list[str]]]:
    if not report.table:
        return [], []
    header = list(report.table[0])
    return header, [[_fmt(row.get(h)) for h in header] for row in report.table]


def render_markdown(report: Report, experiment: str, cfg: ExperimentConfig) -> str:
    """The whole report as markdown: title, verdict, metrics, per-point table, config."""
    lines = [f"# {experiment}: {report.title}", ""]
    if report.passed is not None:
        lines += [f"**Agreement criterion: {'PASSED' if report.passed else 'FAILED'}**", ""]
    if report.metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in report.metrics.items()]
        lines.append("")
    header, rows = _rows(report)
    if header:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    lines += [f"- {n}" for n in report.notes]
    lines += ["", "## Config", "", "```"]
    lines += [f"{k} = {v!r}" for k, v in config_to_dict(cfg).items()]
    lines += ["```", ""]
    return "\n".join(lines)


def render_text(report: Report) -> str:
    """A compact plain-text version for the terminal."""
    out = [report.title]
    if report.passed is not None:
        out.append(f"agreement criterion: {'PASSED' if report.passed else 'FAILED'}")
    for k, v in report.metrics.items():
        out.append(f"  {k}: {_fmt(v)}")
    header, rows = _rows(report)
    if header:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        out.append("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            out.append("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    out += [f"  {n}" for n in report.notes]
    return "\n".join(out)

