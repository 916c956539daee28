"""The result of :func:`theorysim.sims.train`: named arrays ready for ``xarray``."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Recorded observables of an ensemble run.

    Attributes:
        steps: (K,) the record steps (state after that many updates).
        records: name -> array of shape (E, K, ...) over ensemble members E.
        dims: name -> names of the trailing dims (after ``member, step``).
        coords: coordinate values of trailing dims (e.g. ``layer``, ``param``).
        seeds, lrs, gamma0s: the ensemble grid; member ``e`` is the C-order flat index of
            ``(seed, lr, gamma0)``.
        diverged: (E,) whether the member hit a NaN/inf (its updates stopped at
            ``diverged_step`` and its later records are NaN).
        diverged_step: (E,) the first step whose update was non-finite, -1 if none.
        width: the model width when known (becomes a length-1 ``width`` dim).
        params: final parameters ``{path: (E, ...)}`` when ``return_params`` was set.
        attrs: configs as plain values (for the dataset attrs).
    """

    steps: np.ndarray
    records: dict[str, np.ndarray]
    dims: dict[str, tuple[str, ...]]
    coords: dict[str, np.ndarray]
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    gamma0s: tuple[float, ...]
    diverged: np.ndarray
    diverged_step: np.ndarray
    width: int | None = None
    params: dict[str, np.ndarray] | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return (len(self.seeds), len(self.lrs), len(self.gamma0s))

    def grid(self, name: str) -> np.ndarray:
        """Record ``name`` reshaped to (seed, lr, gamma0, step, ...)."""
        r = self.records[name]
        return r.reshape(self.grid_shape + r.shape[1:])

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims (width?, seed, lr, gamma0, step, ...)."""
        import xarray as xr

        lead = ("seed", "lr", "gamma0")
        coords = {"seed": list(self.seeds), "lr": list(self.lrs), "gamma0": list(self.gamma0s),
                  "step": self.steps}
        data = {}
        for name in self.records:
            data[name] = (lead + ("step",) + self.dims[name], self.grid(name))
        data["diverged"] = (lead, self.diverged.reshape(self.grid_shape))
        data["diverged_step"] = (lead, self.diverged_step.reshape(self.grid_shape))
        for k, v in self.coords.items():
            coords[k] = v
        ds = xr.Dataset(data, coords=coords, attrs=dict(self.attrs))
        if self.width is not None:
            ds = ds.expand_dims(width=[self.width])
        return ds
