"""``mup-transfer``: final loss vs learning rate across widths, SP vs muP, on a teacher task.

muTransfer (Yang et al., arXiv 2203.03466, Fig. 1; abc table arXiv 2011.14522): under muP the
loss-vs-learning-rate curves of different widths share their optimum, so a learning rate tuned
on a narrow network transfers to a wide one; under the standard parameterisation the optimum
moves to smaller rates as the width grows (for Adam roughly like 1/N). Task: online Adam on a
fixed random two-layer tanh teacher with Gaussian inputs; the loss is the test MSE after the
last step, averaged over seeds. The whole learning-rate grid of one width is trained as one
vmapped ensemble (``EnsembleSpec.lrs``). The "theory" here is the predicted shift of the
optimum per doubling of width: 0 (muP) and -1 in log2 units (SP with Adam).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from theorysim.checks import check_int_tuple, check_scalar
from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train

from .._experiment import Experiment, ExperimentConfig, Report, register
from .._plots import figure

PARAMS = ("sp", "mup")


@dataclasses.dataclass(frozen=True)
class MupTransferConfig(ExperimentConfig):
    """Config of ``mup-transfer``.

    Attributes:
        widths: student widths N.
        depth: student hidden layers.
        log2_lr_min, log2_lr_max, n_lr: the learning-rate grid (log2 spaced, Adam).
        steps, batch: online Adam steps and batch size.
        D, teacher_width: input dimension and teacher hidden width.
        n_test: test-set size.
        seeds: seeds per (width, lr) (>= 1).
        max_shift: muP passes when its optimum moves by at most this many log2 units over the
            widths (grid resolution is (max - min)/(n_lr - 1)).
    """

    widths: tuple[int, ...] = (64, 128, 256, 512)
    depth: int = 2
    log2_lr_min: float = -14.0
    log2_lr_max: float = -2.0
    n_lr: int = 13
    steps: int = 300
    batch: int = 64
    D: int = 16
    teacher_width: int = 32
    n_test: int = 512
    seeds: int = 2
    max_shift: float = 1.0

    def __post_init__(self):
        check_int_tuple("widths", self.widths)
        check_scalar("depth", self.depth, lo=1, integer=True)
        check_scalar("log2_lr_max", self.log2_lr_max, lo=self.log2_lr_min, lo_open=True)
        check_scalar("n_lr", self.n_lr, lo=2, integer=True)
        check_scalar("steps", self.steps, lo=1, integer=True)
        check_scalar("batch", self.batch, lo=1, integer=True)
        check_scalar("D", self.D, lo=1, integer=True)
        check_scalar("teacher_width", self.teacher_width, lo=1, integer=True)
        check_scalar("n_test", self.n_test, lo=1, integer=True)
        check_scalar("seeds", self.seeds, lo=1, integer=True)
        check_scalar("max_shift", self.max_shift, lo=0.0)

    @property
    def lrs(self) -> np.ndarray:
        return 2.0 ** np.linspace(self.log2_lr_min, self.log2_lr_max, self.n_lr)


def _teacher(cfg):
    rng = np.random.default_rng(cfg.seed + 1000)
    w1 = jnp.asarray(rng.standard_normal((cfg.D, cfg.teacher_width)) / np.sqrt(cfg.D),
                     jnp.float32)
    w2 = jnp.asarray(rng.standard_normal(cfg.teacher_width) / np.sqrt(cfg.teacher_width),
                     jnp.float32)

    def sampler(key, batch):
        x = jax.random.normal(key, (batch, cfg.D))
        return x, jnp.tanh(x @ w1) @ w2

    return sampler


_SAMPLERS: dict = {}


def _sampler_for(cfg):
    # one sampler object per config, so repeated points reuse the compiled training program
    key = (cfg.seed, cfg.D, cfg.teacher_width)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = _teacher(cfg)
    return _SAMPLERS[key]


@register
class MupTransfer(Experiment):
    name = "mup-transfer"
    summary = "final loss vs learning rate for several widths: optimum moves under SP, not muP"
    config_type = MupTransferConfig
    presets = {"quick": {}, "full": {"widths": (64, 128, 256, 512, 1024, 2048), "depth": 3,
                                     "steps": 1000, "seeds": 3, "n_lr": 17,
                                     "log2_lr_min": -16.0, "log2_lr_max": -0.0}}

    def points(self, cfg):
        return [{"param": p, "width": n} for p in PARAMS for n in cfg.widths]

    def simulate(self, cfg, point):
        sampler = _sampler_for(cfg)
        xt, yt = sampler(jax.random.key(cfg.seed + 7), cfg.n_test)
        model = ModelConfig(width=point["width"], depth=cfg.depth,
                            parameterization=point["param"])
        res = train(model, TrainConfig(steps=cfg.steps, lr=1.0, optimizer="adam",
                                       batch_size=cfg.batch, record_steps=(0, cfg.steps),
                                       observables=("test_loss",)),
                    sampler=sampler, x_test=np.asarray(xt), y_test=np.asarray(yt),
                    ensemble=EnsembleSpec(seeds=tuple(range(cfg.seed, cfg.seed + cfg.seeds)),
                                          lrs=tuple(float(v) for v in cfg.lrs)))
        loss = res.grid("test_loss")[:, :, 0, -1].astype(np.float64)  # (seed, lr)
        return xr.Dataset(
            {"final_loss": (("param", "width", "seed", "lr"), loss[None, None])},
            coords={"param": [point["param"]], "width": [point["width"]],
                    "seed": np.arange(cfg.seeds), "lr": cfg.lrs})

    def theory(self, cfg):
        return xr.Dataset({"optimum_shift_per_doubling": ("param", [-1.0, 0.0])},
                          coords={"param": list(PARAMS)})

    def _optima(self, ds):
        mean = ds["final_loss"].where(np.isfinite(ds["final_loss"])).mean("seed")
        mean = mean.fillna(np.inf)
        return np.log2(ds["lr"].values[mean.argmin("lr").values])  # (param, width)

    def report(self, cfg, ds):
        opt = self._optima(ds)
        widths = ds["width"].values
        rows = tuple({"param": p, "width": int(n), "log2 optimal lr": float(opt[i, j])}
                     for i, p in enumerate(ds["param"].values) for j, n in enumerate(widths))
        slopes = {p: float(np.polyfit(np.log2(widths), opt[i], 1)[0]) if len(widths) > 1
                  else 0.0 for i, p in enumerate(ds["param"].values)}
        shift = {p: float(np.ptp(opt[i])) for i, p in enumerate(ds["param"].values)}
        passed = bool(shift["mup"] <= cfg.max_shift and slopes["sp"] < slopes["mup"] - 0.25)
        return Report(
            title=f"muTransfer: Adam, {cfg.steps} online steps, depth {cfg.depth}",
            table=rows,
            metrics={"muP optimum range (log2)": shift["mup"],
                     "SP optimum range (log2)": shift["sp"],
                     "muP optimum slope per doubling": slopes["mup"],
                     "SP optimum slope per doubling": slopes["sp"]},
            notes=(f"criterion: muP optimum moves <= {cfg.max_shift} log2 units and the SP "
                   "optimum moves down faster than muP's by > 0.25 per doubling",),
            passed=passed)

    def plot(self, cfg, ds):
        fig, axes = figure(2, 1, width=3.6)
        mean = ds["final_loss"].where(np.isfinite(ds["final_loss"])).mean("seed")
        for ax, p in zip(axes[0], PARAMS, strict=True):
            for j, n in enumerate(ds["width"].values):
                ax.plot(ds["lr"], mean.sel(param=p, width=n), "o-", ms=3, lw=1,
                        color=f"C{j}", label=f"N={n}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("Adam learning rate")
            ax.set_title({"sp": "SP", "mup": "muP"}[p])
        axes[0, 0].set_ylabel("final test loss")
        axes[0, 0].legend()
        return fig
