"""Entry point of a local worker: ``python -m theorysim.compare._worker TASKS START CPUS``.

Pins itself to ``CPUS`` (comma-separated; ``-`` for no pinning) before anything imports JAX,
then walks the pickled task list from ``START`` (see ``_executors.run_tasks``). Results go to
the store only; the exit code says whether the worker itself crashed (a failing point does not).
"""

from __future__ import annotations

import os
import pickle
import sys


def main(argv: list[str]) -> int:
    path, start, cpus = argv[1], int(argv[2]), argv[3]
    if cpus != "-" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    with open(path, "rb") as fh:
        tasks = pickle.load(fh)
    from ._executors import run_tasks

    counts = run_tasks(tasks, start)
    print(f"worker pid {os.getpid()}: {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
