"""Regenerate tests/data/stax_reference.npz with neural-tangents 0.6.5 (NOT run by the tests).

Runs in the pinned side environment that benchmarks/kernels_vs_neural_tangents.py builds
(Python 3.12, jax==0.4.30, jaxlib==0.4.30, neural-tangents==0.6.5, tensorflow-cpu, numpy<2):

    /work/nt-env/bin/python tests/data/make_stax_reference.py

The networks and inputs come from tests/kernels/_stax_cases.py, the same file the tests build
theorysim's networks from. Every array is float64 (jax_enable_x64). Keys: ``<case>/nngp``,
``<case>/ntk`` (K(A, A)) and ``<case>/nngp_x12``, ``<case>/ntk_x12`` (K(A, A2)); inputs under
``input/<name>``. Cases neural-tangents cannot compute are listed in ``failed`` with the error.
"""

import importlib.util
import json
import pathlib
import sys
import warnings

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

warnings.simplefilter("ignore")
HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("cases", HERE.parent / "kernels" / "_stax_cases.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)

data = mod.inputs()
out = {f"input/{k}": v for k, v in data.items()}
failed = {}
for name, ((_, _, kernel_fn), a, a2) in mod.cases(stax).items():
    try:
        x1, x2 = jnp.asarray(data[a]), jnp.asarray(data[a2])
        k11 = kernel_fn(x1, None, ("nngp", "ntk"))
        k12 = kernel_fn(x1, x2, ("nngp", "ntk"))
        out[f"{name}/nngp"], out[f"{name}/ntk"] = np.asarray(k11.nngp), np.asarray(k11.ntk)
        out[f"{name}/nngp_x12"], out[f"{name}/ntk_x12"] = np.asarray(k12.nngp), np.asarray(k12.ntk)
    except Exception as err:  # noqa: BLE001 - record what neural-tangents cannot do
        failed[name] = f"{type(err).__name__}: {str(err)[:300]}"
out["failed"] = np.array(json.dumps(failed))
out["versions"] = np.array(json.dumps({"neural_tangents": getattr(nt, "__version__", "0.6.5"),
                                       "jax": jax.__version__, "numpy": np.__version__,
                                       "python": sys.version.split()[0]}))
np.savez_compressed(HERE / "stax_reference.npz", **out)
print(f"{len(mod.cases(stax)) - len(failed)} cases written, {len(failed)} failed:")
for k, v in failed.items():
    print(" ", k, v[:150])
