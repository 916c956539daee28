"""Optional orbax checkpointing of a long ensemble run (``TrainConfig.checkpoint_dir``).

The record segments are cut into chunks of ``checkpoint_every`` records (the last chunk padded
with empty segments, so one compiled program serves every chunk). After each chunk the ensemble
state and the records so far are saved under ``<dir>/chunk_<k>``; a later call with the same
directory and arguments restores the newest chunk and continues from there. orbax-checkpoint is
an optional dependency (``pip install theorysim[checkpoint]``), imported only here.
"""

from __future__ import annotations

import os

import jax
import numpy as np


def run_with_checkpoints(runner, states, hypers, d, starts, lengths, directory: str,
                         every: int):
    try:
        import orbax.checkpoint as ocp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ValueError("checkpoint_dir needs orbax-checkpoint (theorysim[checkpoint])") from err
    directory = os.path.abspath(directory)
    n = len(starts)
    n_chunks = -(-n // every)
    pad = n_chunks * every - n
    end = int(starts[-1] + lengths[-1])
    starts = np.concatenate([starts, np.full(pad, end, starts.dtype)])
    lengths = np.concatenate([lengths, np.zeros(pad, lengths.dtype)])
    ckpt = ocp.StandardCheckpointer()
    done = [k for k in range(n_chunks) if os.path.isdir(os.path.join(directory, f"chunk_{k}"))]
    recs = []
    first = 0
    if done:
        last = max(done)
        template = {"states": states, "recs": _abstract_recs(runner, states, hypers, d,
                                                              starts, lengths, every, last)}
        restored = ckpt.restore(os.path.join(directory, f"chunk_{last}"), template)
        states, recs, first = restored["states"], [restored["recs"]], last + 1
    for k in range(first, n_chunks):
        sl = slice(k * every, (k + 1) * every)
        states, rec = runner(states, hypers, d, starts[sl], lengths[sl])
        recs.append(rec)
        joined = jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *recs)
        recs = [joined]
        ckpt.save(os.path.join(directory, f"chunk_{k}"), {"states": states, "recs": joined},
                  force=True)
        ckpt.wait_until_finished()
    recs = jax.tree.map(lambda a: a[:n], recs[0])
    return states, recs


def _abstract_recs(runner, states, hypers, d, starts, lengths, every, last):
    shapes = jax.eval_shape(runner, states, hypers, d, starts[:every], lengths[:every])[1]
    return jax.tree.map(lambda s: np.zeros(((last + 1) * every,) + s.shape[1:], s.dtype), shapes)
