"""Executors: where the simulation points of a sweep are computed.

The runner hands an executor a list of :class:`PointTask` (experiment, config, run store,
point) that are not yet stored; every executor ends in :func:`compute_point`, which takes the
point's lease in the store, simulates, and writes the point atomically (or its traceback, if
it raised). Nothing is sent back to the runner: the store is the only channel, so a point
computed by any process on any node counts, and the runner's progress is read from the store.

- ``sequential`` (the default): in this process, one point after the other.
- ``local``: ``jobs`` worker processes on this machine, each its own JAX process, started once
  and fed many points (start-up and compilation are paid once per worker, not per point). Each
  worker walks the whole task list from its own offset and skips points whose lease another
  worker holds, so the workers balance themselves and a dead worker's remaining points are
  picked up by the others.
- ``slurm``: one Slurm job array per sweep through submitit (``pip install
  'theorysim[cluster]'``), one array task per point, at most ``jobs`` running at once
  (``slurm_array_parallelism``); partition, time, CPUs, GPUs, memory and any other
  ``sbatch`` parameter that submitit knows from ``options``.
- ``submitit-local``: the same submitit path on this machine (``submitit.LocalExecutor``: real
  subprocesses), ``jobs`` workers; for testing a Slurm setup without a cluster.

Worker processes get settings that let several JAX processes share one host or one GPU
(:func:`worker_environment`, :class:`LocalExecutor`): each local worker is pinned to its own
CPU(s) before it imports JAX, so XLA:CPU sizes its thread pools to that share and N workers use
N cores instead of all fighting over every core; BLAS/OpenMP run one thread per worker; on
GPUs there is no preallocation (``XLA_PYTHON_CLIENT_PREALLOCATE=false``) and each worker's
memory is capped at ``0.9 / jobs`` of the device (``XLA_PYTHON_CLIENT_MEM_FRACTION``) unless
you set them yourself. Pinning rather than ``--xla_cpu_multi_thread_eigen=false`` because the
latter switches XLA:CPU to another matmul kernel whose float32 rounding differs from the
default one (measured: up to 2e-5 on ``random-feature-grid``), while a pinned worker computes
bit for bit what a sequential run computes.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._jaxcache import enable_compilation_cache
from ._store import RunStore, point_key

EXECUTORS = ("sequential", "local", "slurm", "submitit-local")
CLUSTER_EXTRA = "pip install 'theorysim[cluster]'"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class PointTask:
    """One simulation point of one run: what a worker needs to compute and store it."""

    experiment: Any
    cfg: Any
    store: RunStore
    point: Mapping[str, Any]

    @property
    def key(self) -> str:
        return point_key(self.point)


def compute_point(task: PointTask) -> str:
    """Compute and store one point under its lease.

    Returns:
        ``"computed"``, ``"failed"`` (its traceback is in ``points/<key>.failed``),
        ``"busy"`` (another process holds the lease) or ``"present"`` (already stored).
    """
    enable_compilation_cache()  # in a worker process: before its first compilation
    store, point, key = task.store, dict(task.point), task.key
    with store.lease(key) as held:
        if not held:
            return "busy"
        if store.has_point(point):
            return "present"
        if store.has_failed(point):  # failed in this sweep already (the runner clears
            return "failed"          # the records of earlier sweeps before dispatching)
        store.clean_debris(key)
        beat = Heartbeat(store.heartbeat_path(point))
        exp = task.experiment
        old = exp.__dict__.get("progress", _UNSET)
        try:
            exp.progress = beat
            ds = exp.simulate(task.cfg, point)
            store.save_point(point, ds)
        except Exception:
            header = (f"point {key} of {store.experiment} ({store.root}) failed on "
                      f"{socket.gethostname()} pid {os.getpid()} at "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            store.record_failure(point, header + traceback.format_exc())
            return "failed"
        finally:
            beat.clear()
            if old is _UNSET:
                exp.__dict__.pop("progress", None)
            else:
                exp.progress = old
        return "computed"


_UNSET = object()


class Heartbeat:
    """``experiment.progress`` while a worker computes a point: writes ``done total what`` to
    the point's heartbeat file (atomically, at most once a second), which the runner reads to
    show progress within long points, whichever process computes them."""

    def __init__(self, path: Path, every: float = 1.0):
        self.path, self.every, self.last = Path(path), every, 0.0

    def __call__(self, done: int, total: int, what: str = "") -> None:
        now = time.monotonic()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        tmp = self.path.with_name(f".tmp-{self.path.name}-{os.getpid()}")
        with contextlib.suppress(OSError):
            tmp.write_text(f"{int(done)} {int(total)} {what}".strip())
            os.replace(tmp, self.path)

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_heartbeat(path: Path) -> tuple[int, int, str] | None:
    """``(done, total, what)`` from a heartbeat file, or None."""
    try:
        done, total, *what = Path(path).read_text().split(" ", 2)
        return int(done), int(total), " ".join(what)
    except (OSError, ValueError):
        return None


def run_tasks(tasks: Sequence[PointTask], start: int = 0,
              after_each: Callable[[PointTask, str], None] | None = None) -> dict[str, int]:
    """Walk ``tasks`` once from index ``start`` (wrapping around); what every worker runs."""
    counts = {"computed": 0, "failed": 0, "busy": 0, "present": 0}
    n = len(tasks)
    for j in range(n):
        task = tasks[(start + j) % n]
        outcome = compute_point(task)
        counts[outcome] += 1
        if after_each is not None:
            after_each(task, outcome)
    return counts


def worker_environment(jobs: int, base: Mapping[str, str] | None = None, *,
                       threads: int = 1) -> dict[str, str]:
    """The environment of a worker process when ``jobs`` of them share this host.

    Keeps ``base`` (default ``os.environ``), sets the BLAS/OpenMP thread counts to
    ``threads``, turns GPU memory
    preallocation off and caps each worker's GPU memory at ``0.9 / jobs`` (unless those two
    are set already), and puts this process's import path on ``PYTHONPATH``.
    """
    env = dict(os.environ if base is None else base)
    for var in _THREAD_VARS:
        env[var] = str(threads)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / max(jobs, 1):.3f}")
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = [p for p in sys.path if p and os.path.isdir(p)
             and not any(os.path.realpath(p).startswith(q) for q in prefixes)]
    if extra:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([*extra, *([old] if old else [])])
    return env


class Executor(abc.ABC):
    """Computes a list of point tasks; results reach the runner through the store only."""

    name: str = ""
    jobs: int = 1

    @abc.abstractmethod
    def execute(self, tasks: Sequence[PointTask], *, poll: Callable[[], None],
                log_dir: Path) -> list[str]:
        """Compute ``tasks``; call ``poll()`` now and then; return one-line notes (dead
        workers, failed array tasks) for the user."""

    def describe(self) -> str:
        return self.name if self.jobs == 1 else f"{self.name} x{self.jobs}"


class SequentialExecutor(Executor):
    """Every point in this process, one after the other."""

    name = "sequential"

    def execute(self, tasks, *, poll, log_dir):
        import threading

        stop = threading.Event()

        def ticker():  # progress within long points (heartbeats) while this thread computes
            while not stop.wait(0.5):
                poll()

        thread = threading.Thread(target=ticker, daemon=True)
        thread.start()
        try:
            run_tasks(tasks)
        finally:
            stop.set()
            thread.join()
        return []


class LocalExecutor(Executor):
    """``jobs`` worker processes on this machine, many points each.

    Args:
        jobs: number of worker processes (>= 1).
        threads: CPUs per worker: the worker is pinned to that many CPUs (round robin over
            the CPUs this process may use) and BLAS/OpenMP get that many threads.
        pin_cpus: pin workers to CPUs (Linux). Without pinning, every worker's XLA thread
            pool spans all cores and N workers slow each other down.
    """

    name = "local"

    def __init__(self, jobs: int = 2, *, threads: int = 1, pin_cpus: bool = True):
        self.jobs = _check_jobs(jobs)
        self.threads = _check_jobs(threads, "threads")
        self.pin_cpus = bool(pin_cpus)

    def execute(self, tasks, *, poll, log_dir):
        n = min(self.jobs, len(tasks))
        if n == 0:
            return []
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        env = worker_environment(n, threads=self.threads)
        cpus = sorted(_cpus()) if hasattr(os, "sched_setaffinity") else []
        pin = self.pin_cpus and bool(cpus)
        tmp = Path(tempfile.mkdtemp(prefix="theorysim-workers-"))
        procs: list[tuple[int, subprocess.Popen, Path]] = []
        notes: list[str] = []
        try:
            payload = tmp / "tasks.pkl"
            payload.write_bytes(pickle.dumps(list(tasks)))
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for i in range(n):
                log = log_dir / f"worker-{stamp}-{os.getpid()}-{i}.log"
                mine = ([cpus[(i * self.threads + k) % len(cpus)] for k in range(self.threads)]
                        if pin else [])
                argv = [sys.executable, "-m", "theorysim.compare._worker", str(payload),
                        str(i * len(tasks) // n), ",".join(map(str, mine)) or "-"]
                with open(log, "wb") as fh:
                    procs.append((i, subprocess.Popen(argv, env=env, stdout=fh,
                                                      stderr=subprocess.STDOUT,
                                                      stdin=subprocess.DEVNULL), log))
            last = 0.0
            while any(p.poll() is None for _, p, _ in procs):
                if time.monotonic() - last > 0.5:
                    poll()
                    last = time.monotonic()
                time.sleep(0.05)
        except BaseException:
            _stop(p for _, p, _ in procs)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for i, p, log in procs:
            if p.returncode != 0:
                notes.append(f"worker {i} (pid {p.pid}) {_exit_text(p.returncode)}; "
                             f"its log: {log}")
        return notes


def _stop(procs) -> None:
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        if p.poll() is None:
            p.kill()
            p.wait()


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _submitit_worker(tasks: list[PointTask], start: int) -> dict[str, int]:
    return run_tasks(tasks, start)


class SubmititExecutor(Executor):
    """Points as a submitit job array: on Slurm (``cluster="slurm"``) or locally.

    Args:
        cluster: ``"slurm"`` (``sbatch``; one array task per point) or ``"local"``
            (``submitit.LocalExecutor``; ``jobs`` worker subprocesses).
        jobs: the most array tasks running at once (Slurm's ``array_parallelism``), or the
            number of local workers.
        options: submitit Slurm parameters (``partition``, ``time`` in minutes,
            ``cpus_per_task``, ``gpus_per_node``, ``mem``, ``account``, ``qos``, ``constraint``,
            ``additional_parameters``, ...; a ``slurm_`` prefix is accepted). Unknown names
            raise ``ValueError``.
    """

    def __init__(self, cluster: str = "slurm", jobs: int | None = None,
                 options: Mapping[str, Any] | None = None):
        if cluster not in ("slurm", "local"):
            raise ValueError(f"cluster must be 'slurm' or 'local', got {cluster!r}")
        self.cluster = cluster
        self.name = "slurm" if cluster == "slurm" else "submitit-local"
        self.jobs = _check_jobs(64 if jobs is None and cluster == "slurm" else jobs or 2)
        self.options = check_slurm_options(options or {})
        _require_submitit(self.name)

    def _env_lines(self, n: int) -> list[str]:
        import shlex

        env = worker_environment(n)
        keys = ("XLA_FLAGS", *_THREAD_VARS, "XLA_PYTHON_CLIENT_PREALLOCATE",
                "XLA_PYTHON_CLIENT_MEM_FRACTION", "PYTHONPATH")
        return [f"export {k}={shlex.quote(env[k])}" for k in keys if k in env]

    def execute(self, tasks, *, poll, log_dir):
        import submitit

        if not tasks:
            return []
        folder = Path(log_dir) / "submitit"
        if self.cluster == "slurm":
            ex = submitit.SlurmExecutor(folder=folder, python=sys.executable)
            params = {"time": 60, "cpus_per_task": 1, "job_name": "theorysim",
                      "array_parallelism": self.jobs, **self.options}
            params["setup"] = [*self._env_lines(self.jobs), *params.get("setup", [])]
            ex.update_parameters(**params)
            chunks, starts = [[t] for t in tasks], [0] * len(tasks)
        else:
            n = min(self.jobs, len(tasks))
            ex = submitit.LocalExecutor(folder=folder)
            ex.update_parameters(timeout_min=int(self.options.get("time", 60 * 24)),
                                 setup=self._env_lines(n))
            chunks = [list(tasks)] * n
            starts = [i * len(tasks) // n for i in range(n)]
        jobs = ex.map_array(_submitit_worker, chunks, starts)
        slurm = self.cluster == "slurm"
        # On Slurm a job is followed by its result file and squeue, not sacct (which needs an
        # accounting database that small clusters and the single-node test setup lack).
        finished = ((lambda j: j.paths.result_pickle.exists()) if slurm
                    else (lambda j: j.done()))
        try:
            last, last_queue = 0.0, time.monotonic()
            while not all(finished(j) for j in jobs):
                if time.monotonic() - last > 0.5:
                    poll()
                    last = time.monotonic()
                if slurm and time.monotonic() - last_queue > 5:
                    last_queue = time.monotonic()
                    if _left_queue(jobs):
                        time.sleep(2)  # result files of the last tasks
                        break
                time.sleep(0.2 if not slurm else 1.0)
        except BaseException:
            for j in jobs:
                with contextlib.suppress(Exception):
                    j.cancel(check=False)
            raise
        notes = []
        for j in jobs:
            if not j.paths.result_pickle.exists():
                notes.append(f"submitit job {j.job_id} ended without a result; its log: "
                             f"{j.paths.stderr}")
                continue
            err = j.exception()
            if err is not None:
                first = str(err).strip().splitlines()[:1] or [type(err).__name__]
                notes.append(f"submitit job {j.job_id} failed ({first[0][:160]}); "
                             f"its log: {j.paths.stderr}")
        return notes


def _left_queue(jobs) -> bool:
    """Whether no task of these Slurm jobs is pending or running any more (squeue)."""
    ids = sorted({str(j.job_id).split("_")[0] for j in jobs})
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if out.returncode != 0:
        return "invalid job id" in out.stderr.lower()
    return not out.stdout.strip()


def _require_submitit(name: str) -> None:
    try:
        import submitit  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"executor {name!r} needs submitit, which is not installed: {CLUSTER_EXTRA}"
        ) from err


def check_slurm_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise Slurm options (strip a ``slurm_`` prefix) and refuse names submitit lacks."""
    if not options:
        return {}
    _require_submitit("slurm")
    import submitit

    valid = set(submitit.SlurmExecutor._valid_parameters())
    out = {}
    for key, value in options.items():
        name = str(key).removeprefix("slurm_").replace("-", "_")
        if name not in valid:
            raise ValueError(
                f"slurm option {key!r} is not a Slurm parameter submitit knows; known: "
                f"{', '.join(sorted(valid))}"
            )
        out[name] = value
    return out


def _check_jobs(jobs: Any, what: str = "jobs") -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {jobs!r}")
    return jobs


def make_executor(executor: str | Executor | None = None, *, jobs: int | None = None,
                  slurm_options: Mapping[str, Any] | None = None) -> Executor:
    """An :class:`Executor` from its name (``sequential``, ``local``, ``slurm``,
    ``submitit-local``) or an instance; ``ValueError`` naming the argument on bad input."""
    if isinstance(executor, Executor):
        if jobs is not None or slurm_options:
            raise ValueError("jobs and slurm_options go to the executor's constructor when "
                             "executor is an Executor instance")
        return executor
    if executor is None:
        executor = "sequential"
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if jobs is not None:
        _check_jobs(jobs)
    if slurm_options and executor not in ("slurm", "submitit-local"):
        raise ValueError(f"slurm options apply to executor 'slurm' only, not {executor!r}")
    if executor == "sequential":
        if jobs not in (None, 1):
            raise ValueError(f"jobs must be 1 for executor 'sequential', got {jobs!r}; "
                             "use executor 'local' for parallel workers")
        return SequentialExecutor()
    if executor == "local":
        return LocalExecutor(jobs if jobs is not None else max(1, len(_cpus())))
    _require_submitit(executor)
    slurm_options = check_slurm_options(slurm_options or {})
    if executor == "slurm":
        if shutil.which("sbatch") is None:
            raise ValueError("executor 'slurm' needs sbatch on PATH (run on a Slurm login "
                             "node, or use executor 'local')")
        return SubmititExecutor("slurm", jobs, slurm_options)
    return SubmititExecutor("local", jobs, slurm_options)


def _cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))
