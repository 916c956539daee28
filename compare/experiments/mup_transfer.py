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

from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train

from .._compare import agreement_report, power_fit, theory_dataset
from .._configio import ExperimentConfig, param
from .._experiment import Experiment, register
from .._plots import figure, legend
from .._stats import seed_stats

PARAMS = ("sp", "mup")


@dataclasses.dataclass(frozen=True)
class MupTransferConfig(ExperimentConfig):
    """Config of ``mup-transfer`` (``theorysim show mup-transfer``)."""

    widths: tuple[int, ...] = param((64, 128, 256, 512), "student widths N (>= 2 for the "
                                    "optimum's slope)", lo=1, hi=2**16, min_len=2)
    depth: int = param(2, "student hidden layers", lo=1, hi=64)
    log2_lr_min: float = param(-14.0, "smallest Adam learning rate, log2", lo=-60.0, hi=10.0)
    log2_lr_max: float = param(-2.0, "largest Adam learning rate, log2", lo="log2_lr_min",
                               lo_open=True, hi=10.0)
    n_lr: int = param(13, "learning rates in the log2-spaced grid", lo=2, hi=1000)
    steps: int = param(300, "online Adam steps", lo=1, hi=10**6)
    batch: int = param(64, "batch size", lo=1, hi=10**5)
    D: int = param(16, "input dimension", lo=1, hi=10**4)
    teacher_width: int = param(32, "teacher hidden width", lo=1, hi=10**5)
    n_test: int = param(512, "test-set size", lo=1, hi=10**6)
    seeds: int = param(2, "seeds per (width, lr)", lo=2, hi=1000)
    max_shift: float = param(1.0, "muP passes when its optimum moves by at most this many "
                             "log2 units over the widths", lo=0.0)

    @property
    def lrs(self) -> np.ndarray:
        return 2.0 ** np.linspace(self.log2_lr_min, self.log2_lr_max, self.n_lr)


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A fixed random two-layer tanh teacher with Gaussian inputs (frozen and hashable, so
    repeated points reuse the compiled training program)."""

    D: int
    width: int
    seed: int

    def weights(self):
        rng = np.random.default_rng(self.seed + 1000)
        return (jnp.asarray(rng.standard_normal((self.D, self.width)) / np.sqrt(self.D),
                            jnp.float32),
                jnp.asarray(rng.standard_normal(self.width) / np.sqrt(self.width),
                            jnp.float32))

    def __call__(self, key, batch):
        w1, w2 = self.weights()
        x = jax.random.normal(key, (batch, self.D))
        return x, jnp.tanh(x @ w1) @ w2


def _loss(ds) -> xr.DataArray:
    """Seed-mean final test loss (diverged members excluded)."""
    return ds["final_loss"].where(np.isfinite(ds["final_loss"])).mean("seed")


def _optima(ds) -> np.ndarray:
    """log2 of the loss-minimising learning rate, (param, width)."""
    return np.log2(ds["lr"].values[_loss(ds).fillna(np.inf).argmin("lr").values])


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
        teacher = Teacher(cfg.D, cfg.teacher_width, cfg.seed)
        xt, yt = teacher(jax.random.key(cfg.seed + 7), cfg.n_test)
        model = ModelConfig(width=point["width"], depth=cfg.depth,
                            parameterization=point["param"])
        res = train(model, TrainConfig(steps=cfg.steps, lr=1.0, optimizer="adam",
                                       batch_size=cfg.batch, record_steps=(0, cfg.steps),
                                       observables=("test_loss",)),
                    sampler=teacher, x_test=np.asarray(xt), y_test=np.asarray(yt),
                    ensemble=EnsembleSpec(seeds=tuple(range(cfg.seed, cfg.seed + cfg.seeds)),
                                          lrs=tuple(float(v) for v in cfg.lrs)))
        loss = res.to_xarray()["test_loss"].isel(gamma0=0, step=-1, drop=True)
        loss = loss.assign_coords(seed=np.arange(cfg.seeds), lr=cfg.lrs)
        return xr.Dataset({"final_loss": loss.expand_dims(param=[point["param"]])
                           .transpose("param", "width", "seed", "lr").astype(np.float64)})

    def theory(self, cfg):
        return theory_dataset({"optimum_shift_per_doubling": ("param", [-1.0, 0.0])},
                                  {"param": list(PARAMS)})

    def report(self, cfg, ds):
        opt, widths = _optima(ds), ds["width"].values
        rows = tuple({"param": p, "width": int(n), "log2 optimal lr": float(opt[i, j])}
                     for i, p in enumerate(ds["param"].values) for j, n in enumerate(widths))
        slopes = {p: -power_fit(widths, 2.0 ** opt[i]).exponent
                  for i, p in enumerate(ds["param"].values)}
        shift = {p: float(np.ptp(opt[i])) for i, p in enumerate(ds["param"].values)}
        return agreement_report(
            ds, title=f"muTransfer: Adam, {cfg.steps} online steps, depth {cfg.depth}",
            table=rows,
            metrics={"muP optimum range (log2)": shift["mup"],
                     "SP optimum range (log2)": shift["sp"],
                     "muP optimum slope per doubling": slopes["mup"],
                     "SP optimum slope per doubling": slopes["sp"],
                     "grid resolution (log2)": (cfg.log2_lr_max - cfg.log2_lr_min)
                     / (cfg.n_lr - 1)},
            criterion=f"muP optimum moves <= {cfg.max_shift:g} log2 units over the widths and "
                      "the SP optimum moves down faster than muP's by > 0.25 per doubling "
                      "(predicted: SP -1, muP 0)",
            passed=bool(shift["mup"] <= cfg.max_shift and slopes["sp"] < slopes["mup"] - 0.25))

    def plot(self, cfg, ds):
        fig, axes = figure(2, 1, width=3.6)
        opt = _optima(ds)
        for ax, p in zip(axes[0], PARAMS, strict=True):
            i = list(ds["param"].values).index(p)
            for j, n in enumerate(ds["width"].values):
                st = seed_stats(ds["final_loss"].sel(param=p, width=n))
                ax.errorbar(ds["lr"], st.mean, yerr=st.sem, fmt="o-", ms=3, lw=1, capsize=1.5,
                            color=f"C{j}", label=f"N={n} (±SE)")
                best = 2.0 ** opt[i, j]
                ax.plot(best, float(st.mean.sel(lr=best)), "*", ms=11, color=f"C{j}", mec="k",
                        mew=0.6, zorder=5, label="optimum" if j == 0 else None)
            ax.set_xscale("log", base=2)
            ax.set(yscale="log", xlabel="Adam learning rate",
                   title={"sp": "SP", "mup": "muP"}[p])
        axes[0, 0].set_ylabel("final test loss")
        legend(axes[0, 1])
        return fig
