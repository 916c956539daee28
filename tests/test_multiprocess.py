"""Multi-process JAX (issue 15): ``sims.train(..., EnsembleSpec(shard=True))`` in 2 CPU
processes joined by ``jax.distributed.initialize`` on localhost equals one process.

The test launches the two processes itself (tests/_multiprocess_worker.py): each has two CPU
devices, so the ensemble (10 members, padded to 12) is sharded over 4 devices in 2 processes,
with CPU collectives (gloo) gathering the records to every process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from theorysim.sims import train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        from _multiprocess_worker import ensemble, problem
    finally:
        sys.path.remove(str(HERE))
    port = str(_free_port())
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, str(HERE / "_multiprocess_worker.py"), str(i),
                               "2", port, str(tmp_path / f"r{i}.npz")],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    cfg, tc, x, y = problem()
    for strategy in ("map", "vmap"):
        ref = train(cfg, tc, x=x, y=y, ensemble=ensemble(strategy, False))
        for i in range(2):
            got = np.load(tmp_path / f"r{i}.npz")
            for k, v in ref.records.items():
                # map: every member runs the same unbatched ops wherever it lives -> bit for
                # bit; vmap: bit for bit on jax 0.10 too (see sims/_engine.py on batch sizes)
                np.testing.assert_array_equal(got[f"{strategy}/{k}"], np.asarray(v),
                                              err_msg=f"{strategy} {k} process {i}")
