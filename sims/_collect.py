"""Collection: gather the records from the devices (and hosts) into a :class:`TrainResult`."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from theorysim.contract import ConvergenceError

from ._result import TrainResult

__all__ = ["DIMS", "check_divergence", "collect"]

#: trailing dims (after ``member, step``) of every observable
DIMS = {"loss": (), "test_loss": (), "outputs": ("probe", "out"), "param_norms": ("param",),
        "act_rms": ("layer",), "feature_kernels": ("layer", "probe", "probe2"),
        "grad_kernels": ("layer", "probe", "probe2"), "ntk": ("probe", "probe2"),
        "alignment": ()}


def gather(tree):
    """Device arrays -> NumPy, gathered from every process on multi-host runs."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def _layer_coords(model_config, n_layers: int) -> np.ndarray:
    layer_names = getattr(model_config, "layer_names", None)  # CNN / transformer
    if layer_names is not None:
        return np.array(layer_names())
    return np.arange(1, n_layers + 1)


def _attrs(request, ad) -> dict:
    attrs = {"train_config": repr(request.config), "ensemble": repr(request.ensemble),
             "model_config": repr(ad.model_config)}
    if dataclasses.is_dataclass(ad.model_config):
        attrs.update({f"model_{f.name}": str(getattr(ad.model_config, f.name))
                      for f in dataclasses.fields(ad.model_config)})
    return attrs


def collect(states, recs, request, prog) -> TrainResult:
    """The :class:`TrainResult` of a run (padding members dropped)."""
    E = request.n_members
    recs = gather(recs)
    div = gather({"d": states["diverged"], "s": states["diverged_step"]})
    records = {k: np.moveaxis(v, 0, 1)[:E] for k, v in recs.items()}
    dims = {k: DIMS[k] for k in records}
    coords = {"param": np.array(prog.names)}
    ad = prog.ad
    if ad.model_config is not None and ad.module is not None:
        n_layers = next((records[k].shape[2] for k in ("act_rms", "feature_kernels",
                                                       "grad_kernels") if k in records), 0)
        coords["layer"] = _layer_coords(ad.model_config, n_layers)
    used = {dim for k in records for dim in dims[k]}
    params = None
    if request.config.return_params:
        params = {k: v[:E] for k, v in gather(states["params"]).items()}
    return TrainResult(steps=request.config.schedule(), records=records, dims=dims,
                       coords={k: v for k, v in coords.items() if k in used},
                       seeds=request.seeds, lrs=request.lrs, gamma0s=request.gamma0s,
                       diverged=div["d"][:E], diverged_step=div["s"][:E], width=ad.width,
                       params=params, attrs=_attrs(request, ad))


def check_divergence(result: TrainResult, throw: bool) -> TrainResult:
    """Raise :class:`theorysim.ConvergenceError` (carrying ``result``) when every member
    diverged and ``throw``; otherwise return ``result`` (diverged members flagged)."""
    if throw and result.diverged.size and result.diverged.all():
        first = int(result.diverged_step.min())
        raise ConvergenceError(
            f"train: all {result.diverged.size} members diverged (non-finite loss or "
            f"parameters from step {first}); lower the learning rate (lrs {list(result.lrs)}) "
            "or pass throw=False to get the flagged result", result)
    return result
