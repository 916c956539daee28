"""One process of the 2-process JAX test (tests/test_multiprocess.py); not a test module.

``python tests/_multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz``: joins the
others through ``jax.distributed.initialize`` on localhost (CPU collectives over gloo, two CPU
devices per process), trains the sharded ensemble of ``tests/sims/test_engine.py`` with both
strategies and saves the records.
"""

import sys

import jax
import numpy as np

from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train


def problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6))
    cfg = ModelConfig(width=32, depth=2, parameterization="mean_field")
    tc = TrainConfig(steps=20, lr=0.5, num_records=4, observables=("loss", "outputs", "ntk"))
    return cfg, tc, x, np.tanh(x[:, 0] + 0.5 * x[:, 1])


def ensemble(strategy, shard):
    return EnsembleSpec(seeds=(0, 1, 2, 4, 5), lrs=(0.3, 0.6), strategy=strategy, shard=shard)


def main(process_id: int, num_processes: int, port: str, out: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(coordinator_address=f"localhost:{port}",
                               num_processes=num_processes, process_id=process_id)
    assert jax.process_count() == num_processes and jax.device_count() == 2 * num_processes
    cfg, tc, x, y = problem()
    arrays = {}
    for strategy in ("map", "vmap"):
        res = train(cfg, tc, x=x, y=y, ensemble=ensemble(strategy, True))
        arrays.update({f"{strategy}/{k}": np.asarray(v) for k, v in res.records.items()})
    np.savez(out, **arrays)
    print(f"process {process_id}: done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
