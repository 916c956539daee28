"""``coord-check``: activation sizes vs width over the first Adam steps, SP vs muP.

The coordinate check of Yang et al. (arXiv 2203.03466, Fig. 5; abc table: arXiv 2011.14522):
after a few Adam steps at a fixed rate every coordinate stays flat in width under muP and grows
under SP (a hidden update is :math:`\\eta N`). The "theory" is each coordinate's asymptotic
width exponent: muP 0; SP 0 in the first layer, 1 deeper. The report fits the last step.
``--set model=cnn`` (synthetic images) and ``model=transformer`` (in-context regression, W^Q = 0
at init; width via ``vary=heads|d_head``) fit the update h_T - h_0 of every layer, logits
included (``sims.activation_updates``); their SP exponents under Adam and why W^Q starts at 0:
``sims/_transformer.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from theorysim.sims import EnsembleSpec, TrainConfig, activation_updates, train

from .._compare import agreement_report, power_fits, table_rows, theory_dataset
from .._configio import ExperimentConfig, param
from .._experiment import Experiment, register
from .._plots import figure, legend, reference_power_law, seed_curve
from .._tasks import MODELS, InContextRegression, SyntheticImages, TanhTeacher, model_for

PARAMS = ("sp", "mup")


@dataclasses.dataclass(frozen=True)
class CoordCheckConfig(ExperimentConfig):
    """Config of ``coord-check`` (``theorysim show coord-check``)."""

    widths: tuple[int, ...] = param((64, 128, 256, 512, 1024), "network widths N (>= 2 for "
                                    "the width exponent)", lo=1, hi=2**16, min_len=2)
    depth: int = param(3, "hidden layers L", lo=1, hi=64)
    steps: int = param(4, "Adam steps recorded (every step 0..steps)", lo=1, hi=1000)
    lr: float = param(0.01, "Adam learning rate (the same for every width)", lo=0.0,
                      lo_open=True, hi=10.0)
    D: int = param(16, "input dimension of the fixed teacher batch", lo=1, hi=10**4)
    P: int = param(32, "batch size of the fixed teacher batch", lo=1, hi=10**5)
    seeds: int = param(3, "seeds per width", lo=2, hi=1000)
    flat_tol: float = param(0.15, "muP passes when every |width exponent| at the last step is "
                            "below this", lo=0.0, lo_open=True)
    model: str = param("mlp", "network: mlp, cnn (8x8 images) or transformer", choices=MODELS)
    vary: str = param("heads", "transformer: widths through heads (at d_head) or d_head (at "
                      "heads)", choices=("heads", "d_head"))
    d_head: int = param(16, "transformer head size when vary=heads", lo=1, hi=2**14)
    heads: int = param(4, "transformer heads when vary=d_head", lo=1, hi=2**14)

    def check(self):
        name, per = ("d_head", self.d_head) if self.vary == "heads" else ("heads", self.heads)
        if self.model == "transformer" and any(n % per for n in self.widths):
            raise ValueError(f"widths must be multiples of {name} = {per}, got {self.widths}")

    def network(self, width: int, parameterization: str):
        """The task and the model config at one width."""
        task = {"mlp": TanhTeacher(self.D, 32, self.seed), "cnn": SyntheticImages(seed=self.seed),
                "transformer": InContextRegression(D=3, n_context=3)}[self.model]
        kw = {"heads": width // self.d_head if self.vary == "heads" else self.heads,
              "mlp_ratio": 1, "zero_query": True} if self.model == "transformer" else {}
        return task, model_for(self.model, task, width, self.depth, parameterization, **kw)

    def expected(self) -> dict[str, float]:
        """SP's asymptotic width exponent per recorded layer (muP: 0 everywhere)."""
        _, model = self.network(self.widths[0], "sp")
        names = (model.layer_names() if self.model != "mlp" else
                 tuple(f"h{i}" for i in range(1, self.depth + 1)))
        logit, out = 1.5 if self.vary == "d_head" else 1.0, 1.5 if self.model == "cnn" else 1.0
        return {n: 0.0 if i == 0 else logit if "logits" in n else out if n == "output" else 1.0
                for i, n in enumerate((*names, "output"))}


def _quick(widths, **kw):
    return {"quick": {"widths": widths, "steps": 3, "seeds": 2, "depth": 2, "P": 8, **kw},
            "full": {"widths": (64, 128, 256, 512, 1024), "steps": 5, "seeds": 3, "depth": 2, **kw}}


@register
class CoordCheck(Experiment):
    name = "coord-check"
    summary = "activation RMS vs width over the first Adam steps: grows under SP, flat under muP"
    config_type = CoordCheckConfig
    presets = {"quick": {}, "full": {"widths": tuple(64 * 2**k for k in range(7)), "seeds": 5,
                                     "steps": 5}}
    variants = {("model", "cnn"): _quick((64, 128, 256)),
                ("model", "transformer"): _quick((128, 256, 512), P=4)}

    def points(self, cfg):
        return [{"param": p, "width": n} for p in PARAMS for n in cfg.widths]

    def simulate(self, cfg, point):
        task, model = cfg.network(point["width"], point["param"])
        x, y = task.sample(cfg.P, cfg.seed)
        ens = EnsembleSpec(seeds=tuple(range(cfg.seed, cfg.seed + cfg.seeds)))
        res = [train(model, TrainConfig(steps=t, lr=cfg.lr, optimizer="adam",
                                        record_steps=tuple(range(t + 1)), return_params=True,
                                        observables=("act_rms", "outputs")), x=x, y=y,
                     ensemble=ens) for t in (0, cfg.steps)[cfg.model == "mlp":]]  # mlp: T only
        if cfg.model != "mlp":  # the update h_T - h_0 of every layer at the last step
            names, upd = activation_updates(model, res[0].params, res[-1].params, x)
            rms = xr.DataArray(upd[None, :, None], dims=("width", "seed", "step", "layer"),
                               coords={"width": [point["width"]], "step": [cfg.steps],
                                       "layer": list(names)})
        else:
            ds = res[-1].to_xarray().isel(lr=0, gamma0=0, drop=True)
            out = np.sqrt((ds["outputs"] ** 2).mean(("probe", "out")))  # the output: L+1
            out = out.expand_dims(layer=["output"]).transpose(*ds["act_rms"].dims)
            act = ds["act_rms"].assign_coords(layer=list(cfg.expected())[:-1])
            rms = xr.concat([act, out], "layer")
        rms = rms.assign_coords(seed=np.arange(cfg.seeds)).expand_dims(param=[point["param"]])
        return xr.Dataset({"rms": rms.astype(np.float64)})

    def theory(self, cfg):
        sp = np.array(list(cfg.expected().values()))
        return theory_dataset({"expected_exponent": (("param", "layer"),
                                                     np.stack([sp, np.zeros_like(sp)]))},
                              {"param": list(PARAMS), "layer": list(cfg.expected())})

    def report(self, cfg, ds):
        """Width exponents of the seed-mean RMS at the last step, per parameterisation and
        layer, against the asymptotic ones."""
        fitted = -power_fits(ds["rms"].mean("seed").isel(step=-1), "width").sel(param=list(PARAMS))
        expected = ds["expected_exponent"].sel(param=list(PARAMS))
        mup, sp = fitted.sel(param="mup"), fitted.sel(param="sp")[expected.sel(param="sp") > 0]
        via = f", width via {cfg.vary}" if cfg.model == "transformer" else ""
        return agreement_report(
            ds, title=f"coord check ({cfg.model}): Adam lr={cfg.lr}, {cfg.steps} steps, depth "
                      f"{cfg.depth}{via}", table=table_rows(expected=expected, fitted=fitted),
            metrics={"max |muP exponent|": float(np.abs(mup).max()),
                     "min SP exponent (layers >= 2)": float(sp.min())},
            notes=("exponent of RMS(h^l) at the last step vs width; last layer = output f",),
            criterion=f"muP |exponent| < {cfg.flat_tol:g} everywhere, SP exponent > 0.2 in "
                      "layers >= 2 and the output",
            passed=bool((np.abs(mup) < cfg.flat_tol).all() and (sp > 0.2).all()))

    def plot(self, cfg, ds):
        fig, axes = figure(2, 1, width=3.6)
        widths = ds["width"].values
        for ax, p in zip(axes[0], PARAMS, strict=True):
            for j, layer in enumerate(ds["layer"].values):
                name = f"$h^{{{layer[1:]}}}$" if layer[0] == "h" else str(layer)
                for t in ds["step"].values[ds["step"].values > 0]:  # mlp: 1..steps
                    seed_curve(ax, widths, ds["rms"].sel(param=p, layer=layer, step=t),
                               color=f"C{j}", lw=0.8, alpha=0.35 + 0.65 * t / cfg.steps,
                               label=name if t == cfg.steps else None)
            top = float(ds["rms"].sel(param=p).mean("seed").isel(step=-1).max())
            reference_power_law(ax, widths, 1.0 if p == "sp" else 0.0, (widths[-1], top),
                                label="$N^1$ (SP prediction)" if p == "sp" else
                                "$N^0$ (muP prediction)")
            ax.set_xscale("log", base=2)
            ax.set(yscale="log", xlabel="width $N$", title={"sp": "SP", "mup": "muP"}[p]
                   + f": Adam steps 1..{cfg.steps} (darker = later)")
            legend(ax)
        axes[0, 0].set_ylabel("RMS of coordinate")
        return fig
