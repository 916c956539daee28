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

    @property
    def n_diverged(self) -> int:
        """Number of members that diverged."""
        return int(np.sum(self.diverged))

    def grid(self, name: str) -> np.ndarray:
        """Record ``name`` reshaped to (seed, lr, gamma0, step, ...)."""
        r = self.records[name]
        return r.reshape(self.grid_shape + r.shape[1:])

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims ``(width, seed, lr, gamma0, step, ...)``.

        Every recorded observable is a variable over the member grid ``seed x lr x gamma0``
        and the record ``step``, then its own trailing dims (``probe``, ``probe2``, ``out``,
        ``layer``, ``param``); every dim has a coordinate (``probe``/``out`` count from 0,
        ``layer`` from 1 for the MLPs). ``width`` (length 1) is present when the model width is
        known, so datasets of several widths concatenate along it (member ``e`` of
        :attr:`records` is the C-order flat index of ``(seed, lr, gamma0)``); ``diverged`` and
        ``diverged_step`` flag the members that hit NaN/inf (their later records are NaN).
        The attrs hold the configs (strings) and ``n_diverged``. This is the form a compare
        experiment's ``simulate`` consumes.

        Example:
            >>> res = TrainResult(steps=np.array([0, 10]), records={"loss": np.ones((2, 2))},
            ...                   dims={"loss": ()}, coords={}, seeds=(0, 1), lrs=(0.1,),
            ...                   gamma0s=(1.0,), diverged=np.zeros(2, bool),
            ...                   diverged_step=-np.ones(2, int), width=64)
            >>> ds = res.to_xarray()
            >>> dict(ds.loss.sizes)
            {'width': 1, 'seed': 2, 'lr': 1, 'gamma0': 1, 'step': 2}
            >>> float(ds.loss.sel(step=10).mean("seed").squeeze()), ds.attrs["n_diverged"]
            (1.0, 0)
        """
        import xarray as xr

        lead = ("seed", "lr", "gamma0")
        coords = {"seed": list(self.seeds), "lr": list(self.lrs), "gamma0": list(self.gamma0s),
                  "step": self.steps}
        data = {}
        for name, rec in self.records.items():
            dims = lead + ("step",) + self.dims[name]
            data[name] = xr.Variable(dims, self.grid(name), attrs={"long_name": _LONG[name]})
            for dim, n in zip(dims[4:], rec.shape[2:], strict=True):
                coords.setdefault(dim, self.coords.get(dim, np.arange(n)))
        data["diverged"] = (lead, self.diverged.reshape(self.grid_shape))
        data["diverged_step"] = (lead, self.diverged_step.reshape(self.grid_shape))
        attrs = dict(self.attrs, n_diverged=self.n_diverged)
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        if self.width is not None:
            ds = ds.expand_dims(width=[self.width])
        return ds


_LONG = {"loss": "training loss (mse: sum_c (f - y)^2 / 2 averaged over samples; or "
                 "cross-entropy)",
         "test_loss": "test loss on (x_test, y_test)",
         "outputs": "network outputs f on the probe set",
         "param_norms": "Frobenius norm of each parameter",
         "act_rms": "RMS of the preactivations h^l on the probe set",
         "feature_kernels": "feature kernels Phi^l = phi(h^l) phi(h^l)^T / N on the probe set",
         "grad_kernels": "gradient kernels G^l on the probe set",
         "ntk": "empirical NTK with the per-layer learning rates, on the probe set",
         "alignment": "kernel-target alignment of the NTK with probe_y"}
