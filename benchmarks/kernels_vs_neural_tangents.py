"""Benchmark theorysim.kernels against neural-tangents 0.6.5, interleaved in the same run.

neural-tangents does not import on current JAX, so it runs in a pinned side environment OUTSIDE
the repository (default /work/nt-env: Python 3.12, ``jax==0.4.30 jaxlib==0.4.30
neural-tangents==0.6.5 tensorflow-cpu numpy<2``), built on first use. It is a persistent
worker process (one per dtype) that compiles its functions once and then times one call per
request, so the two libraries are timed in interleaved rounds (``benchmarks/_protocol.py``):
each round times theorysim and neural-tangents back to back, in alternating order, and gives
one ratio. The same inputs, parameters and Gram matrices are passed through an .npz file. The
side environment is never a dependency of theorysim and never used by the tests.

Cases (issue 3/12): depth-3 ReLU and Erf analytic NNGP+NTK on X (2000, 100) in float32 and
float64; empirical NTK of a width-512 depth-3 ReLU MLP on X (256, 100) with 1 and 10 outputs
(theorysim's per-layer path vs the fastest neural-tangents implementation that runs); and
gradient_descent_mse at 4 times with 2,000 training points (500 test points, float64).
Issue 10: the Myrtle-5 CNTK (nngp+ntk) on (64, 16, 16, 3), float32 and float64; a
GlobalSelfAttention network (softmax, linear scaling) on (64, 16, 32), float32 and float64;
``kernels.batch`` vs ``nt.batch`` on a 10,000-point depth-3 ReLU kernel (float32, blocks of
1,000). For Myrtle-5 and the batched kernel the peak memory of one call is measured in a fresh
process per side (high-water mark above the resident set before the call, compilation
included). ``--quick``: (16, 8, 8, 3), (16, 8, 16), 2,000 points.

    python benchmarks/kernels_vs_neural_tangents.py [--quick] [--rounds 7] [--only analytic]
        [--only myrtle|attention|batch] [--dtype f32|f64] [--no-record]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import _protocol as P
import numpy as np

SCRIPT = "kernels_vs_neural_tangents.py"
PINS = ["jax[cpu]==0.4.30", "jaxlib==0.4.30", "neural-tangents==0.6.5", "tensorflow-cpu",
        "numpy<2"]

# The neural-tangents side: a worker that reads one JSON request per line on stdin and answers
# one JSON line on stdout. Requests: {"op": "time", "case": c, "repeats": k} -> seconds (best of
# k calls), {"op": "save", "case": c} -> writes the result array, {"op": "quit"}.
SIDE_SCRIPT = r'''
import json, sys, time
import numpy as np
import jax
cfg = json.loads(sys.argv[1])
jax.config.update("jax_enable_x64", cfg["x64"])
import jax.numpy as jnp
import neural_tangents as nt
from neural_tangents import stax

data = np.load(cfg["data"])
dtype = jnp.float64 if cfg["x64"] else jnp.float32
fns = {}

X = jnp.asarray(data["X_analytic"], dtype)
for act_name, act in (("relu", stax.Relu()), ("erf", stax.Erf())) if cfg["analytic"] else ():
    layers = []
    for _ in range(3):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.1), act]
    _, _, kfn = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.1))
    kfn = jax.jit(kfn, static_argnames="get")
    fns[f"analytic_{act_name}"] = (lambda kfn=kfn: kfn(X, None, ("nngp", "ntk")),
                                   lambda k: k.ntk)

if cfg["empirical"]:
    Xe = jnp.asarray(data["X_emp"], dtype)
    width = int(data["width"])
    for n_out in (1, 10):
        _, apply_fn, _ = stax.serial(stax.Dense(width, 1.5, 0.1), stax.Relu(),
                                     stax.Dense(width, 1.5, 0.1), stax.Relu(),
                                     stax.Dense(width, 1.5, 0.1), stax.Relu(),
                                     stax.Dense(n_out, 1.5, 0.1))
        params = []
        for i in range(4):
            params += [(jnp.asarray(data[f"W{i}_{n_out}"], dtype),
                        jnp.asarray(data[f"b{i}_{n_out}"], dtype)), ()]
        params = params[:-1]
        for impl in cfg["nt_impls"][str(n_out)]:
            fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                             implementation=impl))
            fns[f"emp{n_out}_impl{impl}"] = (lambda fn=fn, params=params: fn(Xe, None, params),
                                             lambda k: k)

def myrtle5(stax):
    def conv():
        return [stax.Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu()]
    pool = stax.AvgPool((2, 2), (2, 2))
    return stax.serial(*conv(), *conv(), pool, *conv(), pool, *conv(), stax.GlobalAvgPool(),
                       stax.Dense(1, 1.4, 0.1))


def attention(stax):
    return stax.serial(stax.Dense(64, 1.0, 0.1),
                       stax.GlobalSelfAttention(64, 64, 64, 4, True, 1.0, 1.0, 1.0, 1.0, 0.1,
                                                "SOFTMAX"),
                       stax.Relu(), stax.Dense(64, 1.0, 0.1), stax.GlobalAvgPool(),
                       stax.Dense(1, 1.0, 0.1))


def mlp3(stax):
    layers = []
    for _ in range(3):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.1), stax.Relu()]
    return stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.1))


for name in ("myrtle", "attention"):
    if cfg.get(name):
        _, _, kfn = (myrtle5 if name == "myrtle" else attention)(stax)
        kfn = jax.jit(kfn, static_argnames="get")
        xs = jnp.asarray(data[f"X_{name}"], dtype)
        fns[name] = (lambda kfn=kfn, xs=xs: kfn(xs, None, ("nngp", "ntk")), lambda k: k.ntk)
if cfg.get("batch"):
    _, _, kfn = mlp3(stax)
    bs = int(data["batch_size"])
    kb = nt.batch(kfn, batch_size=bs, store_on_device=False)
    xb = np.asarray(data["X_batch"], np.float64 if cfg["x64"] else np.float32)
    fns["batch"] = (lambda: kb(xb, None, ("nngp", "ntk")), lambda k: k.ntk)

if cfg["predict"]:
    kdd = jnp.asarray(data["k_dd"], dtype)
    ktd = jnp.asarray(data["k_td"], dtype)
    y = jnp.asarray(data["y"], dtype)
    ts = jnp.asarray(data["t"], dtype)

    @jax.jit
    def run(kdd, y, ktd):
        pfn = nt.predict.gradient_descent_mse(kdd, y, diag_reg=1e-4)
        return pfn(t=ts, fx_train_0=0.0, fx_test_0=0.0, k_test_train=ktd)

    fns["predict"] = (lambda: run(kdd, y, ktd), lambda r: r[1])

if cfg.get("peak_rss"):
    exec(cfg["peak_code"])
    print("PEAK " + json.dumps(peak_call(fns[cfg["peak_rss"]][0])))
    sys.exit(0)
failed = {}
for name, (f, _) in list(fns.items()):
    try:
        jax.block_until_ready(f())           # compile + warm up
    except Exception as err:  # noqa: BLE001
        failed[name] = type(err).__name__ + ": " + str(err)[:200]
        del fns[name]
print("READY " + json.dumps({"cases": sorted(fns), "failed": failed}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "quit":
        break
    f, get = fns[req["case"]]
    if req["op"] == "time":
        best = float("inf")
        for _ in range(req.get("repeats", 1)):
            t = time.perf_counter()
            jax.block_until_ready(f())
            best = min(best, time.perf_counter() - t)
        print(json.dumps(best), flush=True)
    elif req["op"] == "save":
        np.save(req["path"], np.asarray(get(f())))
        print(json.dumps("saved"), flush=True)
'''


# Peak memory of one call, run by both sides in a fresh process: the resident set before the
# call and the high-water mark after it (compilation included), from /proc/self/status.
PEAK_CODE = r'''
def peak_call(f):
    import re
    def kib(field):
        with open("/proc/self/status") as fh:
            return int(re.search(field + r":\s+(\d+)", fh.read()).group(1))
    before = kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:   # reset VmHWM to the current RSS
        fh.write("5")
    jax.block_until_ready(f())
    return [before * 1024, kib("VmHWM") * 1024]
'''


def find_python312() -> str | None:
    cands = [shutil.which("python3.12")]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    for c in cands:
        if c and subprocess.run([c, "--version"], capture_output=True).returncode == 0:
            return c
    return None


def ensure_env(path: str) -> tuple[str | None, str]:
    """Return (python of the side env, message); build the env if it is missing."""
    py = os.path.join(path, "bin", "python")
    check = [py, "-c", "import neural_tangents, jax; print(jax.__version__)"]
    if os.path.exists(py):
        r = subprocess.run(check, capture_output=True, text=True)
        if r.returncode == 0:
            return py, f"reusing {path} (jax {r.stdout.strip()})"
    base = find_python312()
    if base is None:
        return None, "no python3.12 found (tried PATH and ~/.pyenv/versions/3.12*)"
    print(f"building side environment {path} with {base} ...", flush=True)
    r = subprocess.run([base, "-m", "venv", path], capture_output=True, text=True)
    if r.returncode:
        return None, f"venv failed: {r.stderr[-500:]}"
    r = subprocess.run([py, "-m", "pip", "install", *PINS], capture_output=True, text=True)
    if r.returncode:
        return None, f"pip install {' '.join(PINS)} failed: {r.stderr[-1500:]}"
    r = subprocess.run(check, capture_output=True, text=True)
    if r.returncode:
        return None, f"neural_tangents does not import: {r.stderr[-800:]}"
    return py, f"built {path} (jax {r.stdout.strip()})"


class Side:
    """The neural-tangents worker process for one dtype."""

    def __init__(self, py, data_path, tmp, x64, empirical, predict, quick, analytic=True,
                 groups=(), peak_rss=None):
        # Full size on a shared 2-core machine: NT's jacobian implementation with 10 outputs
        # needs ~6 GB of per-example Jacobians (256 x 10 x 580k floats) and its NTK-vector-
        # product one ~0.5-5 TFlop per call, so only the cheaper ones run there.
        impls = {"1": [1, 2, 3], "10": [1, 2, 3]} if quick else {"1": [1, 3], "10": [3]}
        cfg = dict(data=data_path, x64=x64, analytic=analytic, empirical=empirical,
                   predict=predict, nt_impls=impls, **{g: True for g in groups})
        if peak_rss:
            cfg.update(peak_rss=peak_rss, peak_code=PEAK_CODE)
        script = os.path.join(tmp, "nt_side.py")
        with open(script, "w") as f:
            f.write(SIDE_SCRIPT)
        env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
        self.tmp, self.prefix = tmp, "nt64_" if x64 else "nt32_"
        self.proc = subprocess.Popen([py, script, json.dumps(cfg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"side worker failed: {self.proc.stderr.read()[-2000:]}")
            if line.startswith("PEAK "):
                self.peak = json.loads(line[5:])
                self.proc.wait(timeout=60)
                return
            if line.startswith("READY "):
                ready = json.loads(line[6:])
                break
        self.cases, self.failed = ready["cases"], ready["failed"]

    def _ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"side worker died: {self.proc.stderr.read()[-2000:]}")
        return json.loads(line)

    def timer(self, case, repeats):
        return lambda: self._ask({"op": "time", "case": case, "repeats": repeats})

    def result(self, case):
        path = os.path.join(self.tmp, self.prefix + case + ".npy")
        self._ask({"op": "save", "case": case, "path": path})
        return np.load(path)

    def close(self):
        try:
            self._ask({"op": "quit"})
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.proc.wait(timeout=60)


def make_data(quick: bool, tmp: str) -> tuple[str, dict]:
    import jax

    from theorysim import kernels as K

    rng = np.random.default_rng(0)
    n_a, n_e, width, n_tr, n_te = (500, 64, 128, 500, 100) if quick else (2000, 256, 512, 2000,
                                                                          500)
    data = {"X_analytic": rng.standard_normal((n_a, 100)),
            "X_emp": rng.standard_normal((n_e, 100)), "width": np.array(width)}
    for n_out in (1, 10):
        mlp = K.DenseMLP((width,) * 3, K.Relu(), n_out, 1.5, 0.1)
        with jax.enable_x64(True):
            params = mlp.init(jax.random.key(n_out), 100, np.float64)
        for i, layer in enumerate(params):
            data[f"W{i}_{n_out}"] = np.asarray(layer["W"])
            data[f"b{i}_{n_out}"] = np.asarray(layer["b"])
    x_tr = rng.standard_normal((n_tr + n_te, 100))
    with jax.enable_x64(True):
        k = np.asarray(K.mlp_kernel(3, "relu", 1.5, 0.1)(x_tr).ntk)
    data["k_dd"], data["k_td"] = k[:n_tr, :n_tr], k[n_tr:, :n_tr]
    data["y"] = rng.standard_normal((n_tr, 1))
    data["t"] = np.array([0.1, 1.0, 10.0, 100.0])
    # issue 10: Myrtle-5 CNTK, attention network, 10k-point batched fully-connected kernel
    data["X_myrtle"] = rng.standard_normal((16, 8, 8, 3) if quick else (64, 16, 16, 3))
    data["X_attention"] = rng.standard_normal((16, 8, 16) if quick else (64, 16, 32))
    data["X_batch"] = rng.standard_normal((2000, 100) if quick else (10000, 100))
    data["batch_size"] = np.array(500 if quick else 1000)
    path = os.path.join(tmp, "data.npz")
    np.savez(path, **data)
    return path, data


GROUPS = ("myrtle", "attention", "batch")      # issue 10's cases, one network each


def our_networks(stax):
    """The issue-10 networks (same definitions as the side script's), theorysim's stax."""
    def conv():
        return [stax.Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu()]
    pool = stax.AvgPool((2, 2), (2, 2))
    myrtle = stax.serial(*conv(), *conv(), pool, *conv(), pool, *conv(), stax.GlobalAvgPool(),
                         stax.Dense(1, 1.4, 0.1))
    attention = stax.serial(stax.Dense(64, 1.0, 0.1), stax.GlobalSelfAttention(
        64, 64, 64, 4, True, 1.0, 1.0, 1.0, 1.0, 0.1, "SOFTMAX"), stax.Relu(),
        stax.Dense(64, 1.0, 0.1), stax.GlobalAvgPool(), stax.Dense(1, 1.0, 0.1))
    layers = []
    for _ in range(3):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.1), stax.Relu()]
    mlp = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.1))
    return {"myrtle": myrtle, "attention": attention, "batch": mlp}


def our_cases(data, x64, empirical, predict, quick, groups=()):
    """theorysim's functions per case: ``{case: (fn, get_array)}`` (to call under x64)."""
    import jax.numpy as jnp

    from theorysim import kernels as K
    from theorysim.kernels import stax

    dtype = jnp.float64 if x64 else jnp.float32
    cases = {}
    nets = our_networks(stax)
    for g in groups:
        kfn = nets[g][2]
        if g == "batch":
            kfn = K.batch(kfn, int(data["batch_size"]))
        xg = jnp.asarray(data[f"X_{g}"], dtype)
        cases[g] = (lambda kfn=kfn, xg=xg: kfn(xg, get=("nngp", "ntk")), lambda r: r.ntk)
    x = jnp.asarray(data["X_analytic"], dtype)
    for act in ("relu", "erf"):
        k = K.mlp_kernel(3, act, 1.5, 0.1)
        cases[f"analytic_{act}"] = (lambda k=k: k(x), lambda r: r.ntk)
    if empirical:
        xe = jnp.asarray(data["X_emp"], dtype)
        width = int(data["width"])
        for n_out in (1, 10):
            mlp = K.DenseMLP((width,) * 3, K.Relu(), n_out, 1.5, 0.1)
            params = [{"W": jnp.asarray(data[f"W{i}_{n_out}"], dtype),
                       "b": jnp.asarray(data[f"b{i}_{n_out}"], dtype)} for i in range(4)]
            for impl in ("per_layer", "jacobian", "ntvp"):
                if not quick and (impl == "ntvp" or (n_out == 10 and impl != "per_layer")):
                    continue  # ~6 GB of per-example Jacobians / TFlops: skipped at full size
                cases[f"emp{n_out}_{impl}"] = (
                    lambda impl=impl, mlp=mlp, params=params: K.empirical_ntk(
                        mlp, params, xe, implementation=impl), lambda r: r)
    if predict:
        kdd = jnp.asarray(data["k_dd"], dtype)
        ktd = jnp.asarray(data["k_td"], dtype)
        y = jnp.asarray(data["y"], dtype)
        cases["predict"] = (lambda: K.gradient_descent_mse(kdd, y, ktd, t=data["t"],
                                                           diag_reg=1e-4),
                            lambda r: r.test)
    return cases


def agreement(ours: np.ndarray, ref: np.ndarray) -> str:
    rel = np.abs(ours - ref) / np.max(np.abs(ref))
    if rel.ndim == 2 and rel.shape[0] == rel.shape[1]:
        diag = np.diag(rel).max()
        off = (rel - np.diag(np.diag(rel))).max()
        return f"max rel diff: diagonal {diag:.1e}, off-diagonal {off:.1e}"
    return f"max rel diff {rel.max():.1e}"


TARGETS = {"analytic": (">= 2x median, >= 1.5x min",
                        lambda c, m: c.median >= 2 and c.lo >= 1.5),
           "emp": (">= 1x", lambda c, m: c.median >= 1),
           "predict": (">= 1x (par)", lambda c, m: c.median >= 1),
           "myrtle": (">= 2x median, peak memory <= NT's",
                      lambda c, m: c.median >= 2 and m is not None and m[0] <= m[1]),
           "attention": (">= 1x", lambda c, m: c.median >= 1),
           "batch": ("peak memory < 4 GiB", lambda c, m: m is not None and m[0] < 4 * 2**30)}


def group_of(name: str) -> str:
    return "emp" if name.startswith("emp") else name.split("_")[0]


def our_peak(case: str, data_path: str, x64: bool) -> list[int] | None:
    """[RSS before, high-water mark after] of one theorysim call in a fresh process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--peak-case", case, "--peak-data",
           data_path, "--dtype", "f64" if x64 else "f32"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("PEAK ")]
    return json.loads(lines[-1][5:]) if lines else None


def memory_note(ours, theirs) -> str:
    def gib(p):
        return "n/a" if p is None else f"{(p[1] - p[0]) / 2**30:.2f} GiB"
    return f"peak memory of one call (fresh process, above its RSS before): ours {gib(ours)}, " \
           f"NT {gib(theirs)}"


def run_peak_case(args) -> None:
    """``--peak-case``: one theorysim call in this (fresh) process; prints PEAK [before, hwm]."""
    import jax

    x64 = args.dtype == "f64"
    with np.load(args.peak_data) as f:
        data = {k: f[k] for k in f.files}
    with jax.enable_x64(x64):
        fn = our_cases(data, x64, False, False, False, groups=(args.peak_case,))[args.peak_case][0]
        scope = {"jax": jax}
        exec(PEAK_CODE, scope)
        print("PEAK " + json.dumps(scope["peak_call"](fn)), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--nt-env", default="/work/nt-env", help="side environment path")
    ap.add_argument("--repeats", type=int, default=None,
                    help="calls per side per round, best taken (default 3; 1 for the "
                         "empirical NTK at full size)")
    ap.add_argument("--only", choices=("analytic", "emp", "predict") + GROUPS, default=None,
                    help="run only one group of cases")
    ap.add_argument("--dtype", choices=("f32", "f64"), default=None, help="one dtype only")
    ap.add_argument("--peak-case", choices=GROUPS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peak-data", default=None, help=argparse.SUPPRESS)
    P.add_arguments(ap, rounds=7)
    args = ap.parse_args(argv)
    if args.peak_case:
        return run_peak_case(args)
    import jax

    info = P.print_conditions(SCRIPT)
    py, msg = ensure_env(args.nt_env)
    print(f"side environment: {msg}")
    if py is None:
        raise SystemExit("neural-tangents side environment unavailable: " + msg)
    tmp = tempfile.mkdtemp(prefix="ts_bench_")
    data_path, data = make_data(args.quick, tmp)
    size = " (quick sizes)" if args.quick else ""
    rows = []
    try:
        for x64 in (False, True):
            tag = "f64" if x64 else "f32"
            if args.dtype and args.dtype != tag:
                continue
            empirical = not x64 and args.only in (None, "emp")
            predict = x64 and args.only in (None, "predict")
            analytic = args.only in (None, "analytic")
            groups = tuple(g for g in GROUPS if args.only in (None, g)
                           and not (g == "batch" and x64))
            if not (analytic or empirical or predict or groups):
                continue
            side = Side(py, data_path, tmp, x64, empirical, predict, args.quick,
                        analytic=analytic, groups=groups)
            with jax.enable_x64(x64):
                cases = our_cases(data, x64, empirical, predict, args.quick, groups)
                nt_emp = {}
                for name, (fn, get) in cases.items():
                    group = group_of(name)
                    if args.only and group != args.only:
                        continue
                    if group == "emp":
                        # vs the fastest NT implementation that runs (timed once to pick it)
                        n_out = name.split("_")[0]
                        if n_out not in nt_emp:
                            avail = [c for c in side.cases if c.startswith(n_out + "_impl")]
                            nt_emp[n_out] = min(avail, key=lambda c: side.timer(c, 2)()) \
                                if avail else None
                        nt_case = nt_emp[n_out]
                        for c, err in side.failed.items():
                            if c.startswith(n_out + "_impl"):
                                print(f"  NT {c} fails: {err}")
                    else:
                        nt_case = name if name in side.cases else None
                    if nt_case is None:
                        print(f"  {name} {tag}: no neural-tangents counterpart runs; skipped")
                        continue
                    big = group in ("emp", "batch") and not args.quick
                    reps = args.repeats or (1 if big else 3)
                    mem = None
                    if group in ("myrtle", "batch"):        # before timing: fresh processes
                        theirs = Side(py, data_path, tmp, x64, False, False, args.quick,
                                      analytic=False, groups=(group,), peak_rss=group).peak
                        mem = (our_peak(group, data_path, x64), theirs)
                    comp = P.interleaved(f"{name} {tag}", P.timer(fn, reps),
                                         side.timer(nt_case, reps), args.rounds)
                    note = agreement(np.asarray(get(fn())), side.result(nt_case))
                    if group == "emp":
                        note = f"vs NT {nt_case.split('_')[1]} (fastest that runs); " + note
                    if mem is not None:
                        note += "; " + memory_note(*mem)
                        mem = tuple(None if p is None else p[1] - p[0] for p in mem)
                    rows.append((name, tag, comp, note, reps, mem))
            side.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{SCRIPT}{size}: {args.rounds} interleaved rounds, best of --repeats calls per "
          f"side per round; ratio = neural-tangents time / theorysim time")
    print(f"conditions at the end: {P.conditions_text()}")
    print("| case | theorysim (ms, median) | neural-tangents (ms, median) | ratio median "
          "(min-max) | load start/median/max | note |")
    print("|---|---|---|---|---|---|")
    import statistics
    for name, tag, comp, note, _reps, mem in rows:
        print(f"| {name} {tag} | {statistics.median(comp.ours) * 1e3:.1f} | "
              f"{statistics.median(comp.base) * 1e3:.1f} | {comp.ratio_text()} | "
              f"{comp.load_text()} | {note} |")
        if not args.no_record:
            target, ok = TARGETS[group_of(name)]
            P.record(SCRIPT, f"{name} {tag}{size}", comp.ratio_text(), rounds=args.rounds,
                     target=target, met="yes" if ok(comp, mem) else "**no**",
                     load=comp.load_text(), info=info)
    P.warn_if_busy()


if __name__ == "__main__":
    sys.exit(main())
