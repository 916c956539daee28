"""``coord-check``: activation sizes vs width over the first Adam steps, SP vs muP.

The coordinate check of Yang et al. (arXiv 2203.03466, Fig. 5; abc table: arXiv 2011.14522).
After a few steps of Adam at a fixed learning rate, the RMS of every hidden preactivation
:math:`h^l` and of the output grows with width under the standard parameterisation (the
update of a hidden layer scales like :math:`\\eta N`) and stays flat under muP. The "theory"
is the asymptotic width exponent of each coordinate after the first step: 0 for muP in every
layer; for SP 0 in the first layer (fixed input dimension) and 1 in deeper layers and the
output. The report fits the exponent at the last step over the widths.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from theorysim.checks import check_int_tuple, check_scalar
from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train

from .._experiment import Experiment, ExperimentConfig, Report, register
from .._plots import figure
from .._stats import seed_stats

PARAMS = ("sp", "mup")


@dataclasses.dataclass(frozen=True)
class CoordCheckConfig(ExperimentConfig):
    """Config of ``coord-check``.

    Attributes:
        widths: network widths N.
        depth: hidden layers L.
        steps: Adam steps recorded (every step 0..steps).
        lr: Adam base learning rate (the same for every width).
        D, P: input dimension and batch size of the (fixed) teacher batch.
        seeds: seeds per width (>= 2).
        flat_tol: muP passes when every fitted |exponent| at the last step is below this.
    """

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    depth: int = 3
    steps: int = 4
    lr: float = 0.01
    D: int = 16
    P: int = 32
    seeds: int = 3
    flat_tol: float = 0.15

    def __post_init__(self):
        check_int_tuple("widths", self.widths)
        check_scalar("depth", self.depth, lo=1, integer=True)
        check_scalar("steps", self.steps, lo=1, integer=True)
        check_scalar("lr", self.lr, lo=0.0, lo_open=True)
        check_scalar("D", self.D, lo=1, integer=True)
        check_scalar("P", self.P, lo=1, integer=True)
        check_scalar("seeds", self.seeds, lo=2, integer=True)
        check_scalar("flat_tol", self.flat_tol, lo=0.0, lo_open=True)


def _slopes(widths, values):
    """Fitted log-log slope over the last axis-0 (width) of ``values`` (width, ...)."""
    lw = np.log(np.asarray(widths, float))
    lv = np.log(np.asarray(values, float))
    lw = lw - lw.mean()
    return np.tensordot(lw, lv - lv.mean(0), axes=(0, 0)) / np.sum(lw**2)


@register
class CoordCheck(Experiment):
    name = "coord-check"
    summary = "activation RMS vs width over the first Adam steps: grows under SP, flat under muP"
    config_type = CoordCheckConfig
    presets = {"quick": {}, "full": {"widths": (64, 128, 256, 512, 1024, 2048, 4096),
                                     "seeds": 5, "steps": 5}}

    def points(self, cfg):
        return [{"param": p, "width": n} for p in PARAMS for n in cfg.widths]

    def simulate(self, cfg, point):
        rng = np.random.default_rng(cfg.seed)
        x = rng.standard_normal((cfg.P, cfg.D))
        y = np.tanh(x @ rng.standard_normal(cfg.D) / np.sqrt(cfg.D))
        model = ModelConfig(width=point["width"], depth=cfg.depth,
                            parameterization=point["param"])
        res = train(model, TrainConfig(steps=cfg.steps, lr=cfg.lr, optimizer="adam",
                                       record_steps=tuple(range(cfg.steps + 1)),
                                       observables=("act_rms", "outputs")),
                    x=x, y=y, ensemble=EnsembleSpec(seeds=tuple(range(cfg.seeds))))
        act = res.grid("act_rms")[:, 0, 0]  # (seed, step, layer)
        out = np.sqrt(np.mean(res.grid("outputs")[:, 0, 0] ** 2, axis=(-2, -1)))  # (seed, step)
        # coordinates: hidden layers 1..L, then the output as layer L+1
        rms = np.concatenate([act, out[..., None]], axis=-1).astype(np.float64)
        return xr.Dataset(
            {"rms": (("param", "width", "seed", "step", "layer"), rms[None, None])},
            coords={"param": [point["param"]], "width": [point["width"]],
                    "seed": np.arange(cfg.seeds), "step": res.steps,
                    "layer": np.arange(1, cfg.depth + 2)})

    def theory(self, cfg):
        layers = np.arange(1, cfg.depth + 2)
        sp = np.where(layers == 1, 0.0, 1.0)
        return xr.Dataset({"expected_exponent": (("param", "layer"),
                                                 np.stack([sp, np.zeros_like(sp)]))},
                          coords={"param": list(PARAMS), "layer": layers})

    def _fitted(self, ds):
        mean = ds["rms"].mean("seed").isel(step=-1)  # (param, width, layer)
        widths = ds["width"].values
        return {p: _slopes(widths, mean.sel(param=p).transpose("width", "layer").values)
                for p in PARAMS}

    def report(self, cfg, ds):
        fits = self._fitted(ds)
        layers = ds["layer"].values
        rows = tuple({"param": p, "layer": int(layer),
                      "expected": float(ds["expected_exponent"].sel(param=p, layer=layer)),
                      "fitted": float(fits[p][i])}
                     for p in PARAMS for i, layer in enumerate(layers))
        mup_flat = bool(np.all(np.abs(fits["mup"]) < cfg.flat_tol))
        sp_grows = bool(np.all(fits["sp"][1:] > 0.2))
        return Report(
            title=f"coord check: Adam lr={cfg.lr}, {cfg.steps} steps, depth {cfg.depth}",
            table=rows,
            metrics={"max |muP exponent|": float(np.max(np.abs(fits["mup"]))),
                     "min SP exponent (layers >= 2)": float(np.min(fits["sp"][1:]))},
            notes=("exponent of RMS(h^l) at the last step vs width; last layer = output f",
                   f"criterion: muP |exponent| < {cfg.flat_tol} everywhere, "
                   "SP exponent > 0.2 in layers >= 2 and the output"),
            passed=mup_flat and sp_grows)

    def plot(self, cfg, ds):
        fig, axes = figure(2, 1, width=3.6)
        widths = ds["width"].values
        for ax, p in zip(axes[0], PARAMS, strict=True):
            for j, layer in enumerate(ds["layer"].values):
                for t in ds["step"].values[1:]:
                    st = seed_stats(ds["rms"].sel(param=p, layer=layer, step=t))
                    lab = (f"h^{layer}" if layer <= cfg.depth else "f") if t == 1 else None
                    ax.plot(widths, st.mean, "o-", color=f"C{j}", ms=3, lw=0.8,
                            alpha=0.35 + 0.65 * t / cfg.steps, label=lab)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("width $N$")
            ax.set_title({"sp": "SP", "mup": "muP"}[p] + f" (Adam, steps 1..{cfg.steps})")
        axes[0, 0].set_ylabel("RMS of coordinate")
        axes[0, 0].legend()
        return fig
