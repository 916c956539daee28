"""The benchmark protocol shared by every script in ``benchmarks/`` (issue 12).

On a shared machine absolute times move by 2x between runs minutes apart, so every speed claim
here is a *ratio* measured in interleaved rounds:

* :func:`interleaved` times the two sides alternately (A B, B A, A B, ...), one ratio per
  round, so that a change of load hits both sides of a ratio about equally;
* :class:`Comparison` reports the median and the min-max of the per-round ratios (the spread
  is the honest error bar, not the best round);
* :func:`conditions` records the load average, CPU count and thread settings (``XLA_FLAGS``,
  ``OMP/MKL/OPENBLAS_NUM_THREADS``) and :func:`warn_if_busy` prints a loud warning when the
  1-minute load average exceeds :data:`BUSY_LOAD`;
* :func:`record` writes one row per (script, case) into the table at the top of
  ``benchmarks/RESULTS.md`` (result with spread, date, load, threads, command), replacing the
  row of an earlier run of the same case.

A "timer" is a zero-argument callable that runs the measured work once (or a few times) and
returns seconds; :func:`timer` builds one from a function (JAX results are blocked on), and a
timer may also ask another process to time its own side (``kernels_vs_neural_tangents.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: 1-minute load average above which results are flagged as taken on a busy machine.
BUSY_LOAD = 3.0
#: environment variables that set thread counts of the numerical libraries.
THREAD_VARS = ("XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
RESULTS = Path(__file__).with_name("RESULTS.md")
_BEGIN = "<!-- protocol-table:begin (rows written by benchmarks/_protocol.py::record) -->"
_END = "<!-- protocol-table:end -->"
_HEADER = ("| script | case | result (median, min-max over rounds) | rounds | target | met "
           "| date (UTC) | load 1-min: start / median / max during run | CPUs, threads "
           "| command |")


def load1() -> float:
    """The 1-minute load average (``nan`` where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def conditions() -> dict:
    """Date, load averages, CPU count and thread settings of this process."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {"date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M"),
            "load": tuple(round(v, 2) for v in load), "cpus": os.cpu_count(),
            "usable_cpus": usable, "python": sys.version.split()[0]}
    info.update({v: os.environ.get(v) for v in THREAD_VARS})
    if "jax" in sys.modules:
        info["jax"] = sys.modules["jax"].__version__
    return info


def threads_text(info: dict) -> str:
    """``"2 CPUs; XLA_FLAGS, OMP/MKL/OPENBLAS threads unset"`` or the values that are set."""
    cpus = f"{info['usable_cpus']} CPUs" + (
        f" (of {info['cpus']})" if info["usable_cpus"] != info["cpus"] else "")
    set_vars = [f"{v}={info[v]}" for v in THREAD_VARS if info.get(v)]
    unset = [v for v in THREAD_VARS if not info.get(v)]
    parts = set_vars + ([", ".join(unset) + " unset"] if unset else [])
    return cpus + "; " + "; ".join(parts)


def conditions_text(info: dict | None = None) -> str:
    """One line with everything :func:`conditions` recorded."""
    info = conditions() if info is None else info
    jax = f", jax {info['jax']}" if "jax" in info else ""
    la = info["load"]
    return (f"{info['date']} UTC; load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} "
            f"(1/5/15 min); {threads_text(info)}; Python {info['python']}{jax}")


def warn_if_busy(threshold: float = BUSY_LOAD, load: float | None = None) -> bool:
    """Print a loud warning when the 1-minute load average exceeds ``threshold``."""
    load = load1() if load is None else load
    if not load > threshold:
        return False
    msg = (f"\n{'!' * 78}\n!! WARNING: load average {load:.1f} > {threshold:g} on "
           f"{os.cpu_count()} CPUs: this machine is busy. Absolute times are inflated and\n"
           f"!! noisy; only the interleaved ratios are comparable, and even they may be "
           f"biased.\n{'!' * 78}\n")
    print(msg, flush=True)
    return True


def print_conditions(title: str = "") -> dict:
    """Print the conditions line (and the busy warning); return the conditions."""
    info = conditions()
    print(f"{title + ': ' if title else ''}conditions: {conditions_text(info)}", flush=True)
    warn_if_busy(load=info["load"][0])
    return info


def block(x):
    """Wait for JAX arrays in ``x`` (if JAX is loaded) and return ``x``."""
    if "jax" in sys.modules:
        return sys.modules["jax"].block_until_ready(x)
    return x


def timer(fn: Callable[[], object], repeats: int = 1) -> Callable[[], float]:
    """A timer: best (minimum) wall time of ``repeats`` calls of ``fn`` (results blocked on)."""
    def run() -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            block(fn())
            best = min(best, time.perf_counter() - t0)
        return best
    return run


@dataclasses.dataclass
class Comparison:
    """Per-round times of two sides and the per-round ratio ``base / ours`` (speed-up)."""

    name: str
    ours: list[float]
    base: list[float]
    loads: list[float]
    load_start: float

    @property
    def ratios(self) -> list[float]:
        return [b / o for o, b in zip(self.ours, self.base, strict=True)]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def lo(self) -> float:
        return min(self.ratios)

    @property
    def hi(self) -> float:
        return max(self.ratios)

    def ratio_text(self, digits: int = 2) -> str:
        """``"2.31x (2.05-2.60)"``."""
        f = f"{{:.{digits}f}}"
        return (f"{f.format(self.median)}x ({f.format(self.lo)}-{f.format(self.hi)})")

    def load_text(self) -> str:
        return load_summary(self.load_start, self.loads)

    def line(self) -> str:
        o, b = statistics.median(self.ours), statistics.median(self.base)
        return (f"{self.name}: ratio {self.ratio_text()} over {len(self.ours)} rounds; "
                f"median times {_fmt_s(o)} vs baseline {_fmt_s(b)}; load {self.load_text()}")


def load_summary(start: float, loads: Sequence[float]) -> str:
    """``"start 1.2 / median 1.5 / max 2.0"`` of 1-minute load averages."""
    if not loads:
        return f"{start:.1f}"
    return f"{start:.1f} / {statistics.median(loads):.1f} / {max(loads):.1f}"


def _fmt_s(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 10 else f"{t:.1f} s"


def interleaved(name: str, ours: Callable[[], float], base: Callable[[], float], rounds: int,
                *, warmup: bool = True, verbose: bool = True) -> Comparison:
    """Time ``ours`` and ``base`` (timers) alternately for ``rounds`` rounds.

    Round ``r`` runs ``ours`` then ``base`` for even ``r`` and the reverse for odd ``r``, so a
    load change within a round and any first/second-position effect cancel over rounds. One
    warm-up call of each side precedes the rounds (compilation, caches).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if warmup:
        ours()
        base()
    c = Comparison(name, [], [], [], load1())
    for r in range(rounds):
        if r % 2 == 0:
            t_o = ours()
            t_b = base()
        else:
            t_b = base()
            t_o = ours()
        c.ours.append(t_o)
        c.base.append(t_b)
        c.loads.append(load1())
        if verbose:
            print(f"  {name} round {r + 1}/{rounds}: ours {_fmt_s(t_o)}, baseline "
                  f"{_fmt_s(t_b)}, ratio {t_b / t_o:.2f}x, load {c.loads[-1]:.1f}", flush=True)
    if verbose:
        print("  " + c.line(), flush=True)
    return c


def interleaved_many(name: str, timers: dict[str, Callable[[], float]], ref: str, rounds: int,
                     *, warmup: bool = True, verbose: bool = True) -> dict[str, Comparison]:
    """Several timers in interleaved rounds; one :class:`Comparison` per timer against ``ref``.

    Each round runs every timer once, in an order rotated (and reversed every other round)
    from round to round; each ratio is ``timer / ref`` of the same round.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(timers)
    if warmup:
        for nm in names:
            timers[nm]()
    times: dict[str, list[float]] = {nm: [] for nm in names}
    loads, start = [], load1()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for nm in (order if r % 2 == 0 else order[::-1]):
            times[nm].append(timers[nm]())
        loads.append(load1())
        if verbose:
            print(f"  {name} round {r + 1}/{rounds}: " + ", ".join(
                f"{nm} {_fmt_s(times[nm][-1])}" for nm in names) + f"; load {loads[-1]:.1f}",
                flush=True)
    out = {nm: Comparison(f"{name}: {nm} vs {ref}", times[ref], times[nm], loads, start)
           for nm in names if nm != ref}
    if verbose:
        for c in out.values():
            print("  " + c.line(), flush=True)
    return out


def command_line() -> str:
    """The command that is running (``python benchmarks/x.py --flags``), for RESULTS.md."""
    script = sys.argv[0]
    try:
        script = os.path.relpath(script, Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(script), *map(shlex.quote, sys.argv[1:])])


def record(script: str, case: str, result: str, *, rounds: int | str = "", target: str = "",
           met: str = "", load: str = "", info: dict | None = None, command: str | None = None,
           path: Path | str = RESULTS) -> None:
    """Write (or replace) the row ``(script, case)`` of the protocol table in RESULTS.md.

    ``result`` is e.g. ``Comparison.ratio_text()``; ``load`` e.g. ``Comparison.load_text()``.
    Rows of other cases are kept; a missing table is created at the top of the file.
    """
    info = conditions() if info is None else info
    command = command_line() if command is None else command
    if not load:
        load = f"{info['load'][0]:.1f}"
    if _busy(load):
        load += " **(busy)**"
    cells = [f"`{script}`", case, result, str(rounds), target, met, info["date"], load,
             threads_text(info), f"`{command}`"]
    row = "| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells) + " |"
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if _BEGIN in text and _END in text:
        head, rest = text.split(_BEGIN, 1)
        table, tail = rest.split(_END, 1)
        rows = [ln for ln in table.strip().splitlines() if ln.startswith("| `")]
    else:
        lines = text.split("\n", 1)
        head, tail, rows = lines[0] + "\n\n", "\n" + (lines[1] if len(lines) > 1 else ""), []
    key = _row_key(row)
    rows = [r for r in rows if _row_key(r) != key]
    rows.append(row)
    rows.sort(key=_row_key)
    table = "\n".join([_HEADER, "|" + "---|" * _HEADER.count(" | ") + "---|", *rows])
    path.write_text(f"{head}{_BEGIN}\n{table}\n{_END}{tail}")


def _row_key(row: str) -> tuple[str, str]:
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    return cells[0], cells[1]


def _busy(load_text: str) -> bool:
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", load_text)]
    return bool(nums) and max(nums) > BUSY_LOAD


def add_arguments(parser, rounds: int) -> None:
    """The protocol's command-line options: ``--rounds`` and ``--no-record``."""
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"interleaved A/B rounds (default {rounds})")
    parser.add_argument("--no-record", action="store_true",
                        help="do not write the result rows into benchmarks/RESULTS.md")
