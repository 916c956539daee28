"""Re-run every benchmark with the shared protocol; each script rewrites its rows of RESULTS.md.

    python benchmarks/run_all.py                     # everything, ~30-40 min on 2 idle cores
    python benchmarks/run_all.py --only kernels_vs_neural_tangents ridge_curve   # a subset
    python benchmarks/run_all.py --quick             # small sizes (rows are marked --quick)

Scripts run one after another in fresh processes (same interpreter), in the order below, with
their output streamed and also appended to ``$TMPDIR/theorysim_run_all.log``. The machine's load and
thread settings are printed before each script; a loud warning marks a busy machine (load
average > 3), and the rows it writes are flagged "(busy)" in RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _protocol as P

HERE = Path(__file__).resolve().parent
#: (script, extra arguments of a full run): rounds chosen so that the whole run stays ~30 min
SCRIPTS = {
    "kernels_vs_neural_tangents": [],
    "ridge_curve": [],
    "scaling_dynamics": ["--rounds", "2"],
    "ensemble_training": ["--rounds", "2"],
    "dmft": [],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=sorted(SCRIPTS), help="run only these scripts")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every script")
    ap.add_argument("--no-record", action="store_true", help="do not touch RESULTS.md")
    args = ap.parse_args(argv)
    names = [n for n in SCRIPTS if not args.only or n in args.only]
    log = (Path(tempfile.gettempdir()) / "theorysim_run_all.log").open("a")
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py"), *SCRIPTS[name]]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--no-record"] if args.no_record else []
        head = f"\n=== {name}: {' '.join(cmd[1:])}\n    {P.conditions_text()}"
        print(head, flush=True)
        log.write(head + "\n")
        P.warn_if_busy()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=HERE.parent)
        for line in proc.stdout:
            print(line, end="", flush=True)
            log.write(line)
        rc = proc.wait()
        tail = f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s"
        print(tail, flush=True)
        log.write(tail + "\n")
        log.flush()
        if rc:
            failed.append(name)
    print(f"\ndone; failed: {failed or 'none'}; conditions now: {P.conditions_text()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
