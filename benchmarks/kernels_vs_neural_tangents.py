"""Benchmark theorysim.kernels against neural-tangents 0.6.5, timed in the same run.

neural-tangents does not import on current JAX, so it runs in a pinned side environment OUTSIDE
the repository (default /work/nt-env: Python 3.12, ``jax==0.4.30 jaxlib==0.4.30
neural-tangents==0.6.5 tensorflow-cpu numpy<2``), built on first use, called as a subprocess
with the same data (inputs, parameters and Gram matrices are passed through an .npz file). The
side environment is never a dependency of theorysim and never used by the tests.

Cases (issue 3): depth-3 ReLU and Erf analytic NNGP+NTK on X (2000, 100) in float32 and
float64; empirical NTK of a width-512 depth-3 ReLU MLP on X (256, 100) with 1 and 10 outputs
(theorysim's per-layer path vs every neural-tangents implementation that runs); and
gradient_descent_mse at 4 times with 2,000 training points (500 test points, float64).
Both sides are jitted; each number is the best of ``--repeats`` calls after a warm-up call,
over ``--rounds`` alternating rounds (the machine is shared: ratios, not absolute times).

    /work/venv311/bin/python benchmarks/kernels_vs_neural_tangents.py [--quick]
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
import time

import numpy as np

PINS = ["jax[cpu]==0.4.30", "jaxlib==0.4.30", "neural-tangents==0.6.5", "tensorflow-cpu",
        "numpy<2"]

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
out = {}


def best(fn, repeats):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


X = jnp.asarray(data["X_analytic"], dtype)
for act_name, act in (("relu", stax.Relu()), ("erf", stax.Erf())):
    layers = []
    for _ in range(3):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.1), act]
    _, _, kfn = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.1))
    kfn = jax.jit(kfn, static_argnames="get")
    f = lambda: kfn(X, None, ("nngp", "ntk"))
    out[f"analytic_{act_name}"] = best(f, cfg["repeats"])
    k = f()
    np.save(cfg["prefix"] + f"analytic_{act_name}_ntk.npy", np.asarray(k.ntk))

if cfg["empirical"]:
    Xe = jnp.asarray(data["X_emp"], dtype)
    for n_out in (1, 10):
        width = int(data["width"])
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
            name = f"emp{n_out}_impl{impl}"
            try:
                fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                                 implementation=impl))
                f = lambda: fn(Xe, None, params)
                out[name] = best(f, cfg["repeats"])
                np.save(cfg["prefix"] + name + ".npy", np.asarray(f()))
            except Exception as err:  # noqa: BLE001
                out[name] = "failed: " + type(err).__name__ + ": " + str(err)[:200]

if cfg["predict"]:
    kdd = jnp.asarray(data["k_dd"], dtype)
    ktd = jnp.asarray(data["k_td"], dtype)
    y = jnp.asarray(data["y"], dtype)
    ts = jnp.asarray(data["t"], dtype)

    @jax.jit
    def run(kdd, y, ktd):
        pfn = nt.predict.gradient_descent_mse(kdd, y, diag_reg=1e-4)
        return pfn(t=ts, fx_train_0=0.0, fx_test_0=0.0, k_test_train=ktd)

    f = lambda: run(kdd, y, ktd)
    out["predict"] = best(f, cfg["repeats"])
    np.save(cfg["prefix"] + "predict.npy", np.asarray(f()[1]))
print("RESULT " + json.dumps(out))
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


def best(fn, repeats):
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


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
    path = os.path.join(tmp, "data.npz")
    np.savez(path, **data)
    return path, data


def run_side(py, data_path, tmp, x64, repeats, empirical, predict, quick):
    # Full size on a shared 2-core machine: NT's jacobian implementation with 10 outputs needs
    # ~6 GB of per-example Jacobians (256 x 10 x 580k floats) and its NTK-vector-product one
    # ~0.5-5 TFlop per call, so only the cheaper ones run there (see RESULTS_kernels.md).
    impls = {"1": [1, 2, 3], "10": [1, 2, 3]} if quick else {"1": [1, 3], "10": [3]}
    cfg = dict(data=data_path, x64=x64, repeats=repeats, empirical=empirical, predict=predict,
               prefix=os.path.join(tmp, f"nt{'64' if x64 else '32'}_"), nt_impls=impls)
    script = os.path.join(tmp, "nt_side.py")
    with open(script, "w") as f:
        f.write(SIDE_SCRIPT)
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run([py, script, json.dumps(cfg)], capture_output=True, text=True, env=env)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode or not line:
        raise RuntimeError(f"side script failed: {r.stderr[-2000:]}")
    return json.loads(line[0][7:])


def run_ours(data, repeats, x64, empirical, predict, quick):
    import jax
    import jax.numpy as jnp

    from theorysim import kernels as K

    out, arrays = {}, {}
    ctx = jax.enable_x64(x64)
    with ctx:
        dtype = jnp.float64 if x64 else jnp.float32
        x = jnp.asarray(data["X_analytic"], dtype)
        for act in ("relu", "erf"):
            k = K.mlp_kernel(3, act, 1.5, 0.1)
            out[f"analytic_{act}"] = best(lambda k=k: k(x), repeats)
            arrays[f"analytic_{act}"] = np.asarray(k(x).ntk)
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
                    f = lambda impl=impl, mlp=mlp, params=params: K.empirical_ntk(
                        mlp, params, xe, implementation=impl)
                    out[f"emp{n_out}_{impl}"] = best(f, repeats)
                    arrays[f"emp{n_out}_{impl}"] = np.asarray(f())
        if predict:
            kdd = jnp.asarray(data["k_dd"], dtype)
            ktd = jnp.asarray(data["k_td"], dtype)
            y = jnp.asarray(data["y"], dtype)
            f = lambda: K.gradient_descent_mse(kdd, y, ktd, t=data["t"], diag_reg=1e-4).test
            out["predict"] = best(f, repeats)
            arrays["predict"] = np.asarray(f())
    return out, arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one round")
    ap.add_argument("--nt-env", default="/work/nt-env", help="side environment path")
    ap.add_argument("--no-nt", action="store_true", help="time theorysim alone")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    rounds = args.rounds or 1

    py, msg = (None, "--no-nt given") if args.no_nt else ensure_env(args.nt_env)
    print(f"side environment: {msg}")
    tmp = tempfile.mkdtemp(prefix="ts_bench_")
    data_path, data = make_data(args.quick, tmp)

    ours = {}
    nt = {}
    arrays = {}
    for _ in range(rounds):
        for x64 in (False, True):
            tag = "f64" if x64 else "f32"
            o, a = run_ours(data, repeats, x64, empirical=not x64, predict=x64,
                            quick=args.quick)
            for k, v in o.items():
                ours[f"{k}_{tag}"] = min(v, ours.get(f"{k}_{tag}", np.inf))
            arrays.update({f"{k}_{tag}": v for k, v in a.items()})
            if py is not None:
                n = run_side(py, data_path, tmp, x64, repeats, empirical=not x64, predict=x64,
                             quick=args.quick)
                for k, v in n.items():
                    key = f"{k}_{tag}"
                    nt[key] = v if isinstance(v, str) else min(v, nt.get(key, np.inf))

    rows = []

    def row(case, ours_t, nt_t, note=""):
        ratio = "" if not isinstance(nt_t, float) else f"{nt_t / ours_t:.2f}x"
        nt_s = nt_t if isinstance(nt_t, str) else (f"{nt_t * 1e3:.1f}" if nt_t else "n/a")
        rows.append(f"| {case} | {ours_t * 1e3:.1f} | {nt_s} | {ratio} | {note} |")

    def agree(ours_arr, nt_file):
        p = os.path.join(tmp, nt_file)
        if not os.path.exists(p):
            return ""
        ref = np.load(p)
        rel = np.abs(ours_arr - ref) / np.max(np.abs(ref))
        if rel.ndim == 2 and rel.shape[0] == rel.shape[1]:
            diag = np.diag(rel).max()
            off = (rel - np.diag(np.diag(rel))).max()
            return f"max rel diff: diagonal {diag:.1e}, off-diagonal {off:.1e}"
        return f"max rel diff {rel.max():.1e}"

    for tag, prefix in (("f32", "nt32_"), ("f64", "nt64_")):
        for act in ("relu", "erf"):
            key = f"analytic_{act}_{tag}"
            row(f"analytic depth-3 {act} nngp+ntk {tag}", ours[key], nt.get(key),
                agree(arrays[key], f"{prefix}analytic_{act}_ntk.npy"))
    for n_out in (1, 10):
        ntk = {k: v for k, v in nt.items() if k.startswith(f"emp{n_out}_impl")}
        working = {k: v for k, v in ntk.items() if isinstance(v, float)}
        fastest = min(working, key=working.get) if working else None
        for impl in ("per_layer", "jacobian", "ntvp"):
            key = f"emp{n_out}_{impl}_f32"
            if key not in ours:
                continue
            nt_t = working[fastest] if fastest else None
            note = (f"vs NT {fastest.split('_')[1]} (fastest that runs); "
                    + agree(arrays[key], f"nt32_{fastest.replace('_f32', '')}.npy")
                    if fastest else "")
            row(f"empirical NTK O={n_out} theorysim {impl}", ours[key], nt_t, note)
        for k, v in ntk.items():
            if isinstance(v, str):
                rows.append(f"| NT empirical NTK O={n_out} {k.split('_')[1]} | | {v[:80]} | | |")
            else:
                rows.append(f"| NT empirical NTK O={n_out} {k.split('_')[1]} | | "
                            f"{v * 1e3:.1f} | | |")
    row("gradient_descent_mse 4 times, f64", ours["predict_f64"], nt.get("predict_f64"),
        agree(arrays["predict_f64"], "nt64_predict.npy"))

    import jax
    header = ["| case | theorysim (ms) | neural-tangents (ms) | NT / theorysim | note |",
              "|---|---|---|---|---|"]
    print(f"\njax {jax.__version__}, {os.cpu_count()} CPUs, best of {repeats} x {rounds} rounds"
          f"{' (quick sizes)' if args.quick else ''}")
    print("\n".join(header + rows))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
