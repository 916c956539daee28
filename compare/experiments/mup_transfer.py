"""``mup-transfer``: final loss vs learning rate across widths and depths, SP vs muP.

muTransfer (Yang et al., arXiv 2203.03466, Fig. 1, Table 3: SGD and Adam; abc table arXiv
2011.14522): under muP the loss-vs-rate curves of all widths share their optimum; under SP it
moves like 1/N for Adam (:math:`\\Delta W u \\sim \\eta N`) and SGD (the readout's NTK share
:math:`|u|^2 \\sim N`): -1 per doubling in log2 units, muP 0. Tasks: a tanh teacher (mlp) or
in-context regression for pre-LN decoders (transformer), online; loss: test MSE after the last
step. ``depths`` after the first: muP transformers at the first width, 1/L or 1/sqrt(L) branches
(``sims/_transformer.py``). Transformer + SGD (the variant keyed on both ``--set`` values):
SGD leaves the context-free plateau (attention x value weights grown from random) after ~300
steps at D = 2, ~100 at D = 1 (width 32, muP, rate 1/2: log loss -0.89, -1.97, -2.43 at
steps 0, 100, 200): so D = 1, 200 steps; SP's optima lie 4-7 log2 below muP's (32: -4.3,
128: -7.2; muP -0.6, -0.8).

Transformer full presets (widths 64..1024, depths 2, 4, 8, 16). Measured CPU-s per step per
ensemble member (muP, depth 2, load 4-6): width 256 0.015, 512 0.065, 1024 0.206 at batch 32
(0.385 at 64, 0.118 at 16: linear in batch); depth 16 at width 64 0.098; compiling a point 8-12
CPU-s (depth 16: ~32). Width 1024 is ~60 % of the cost, so batch 16; the rate grid is split
into programs of at most ~3 GiB of member state (``_lrs_per_program``). Adam: 100 steps, 2 seeds,
rates 2^-17..2^-1 (SP's width-1024 optimum is 2^-15: the first run's floor 2^-15 failed on it);
(edc0d07, load 3-6, 1,876 CPU-s, 4.4 GB peak): PASSED, muP optimum range 1.00 +- 0.47 log2 over
widths (at the limit; optima -4, -3.22, -4, -3.16, -3) and 1.00 +- 1.15 over depths, SP -1.40
+- 0.13 per doubling (-1.50 with the vertex kept within the fitted points, 2026-12-07).

SGD (transformer): under muP the escape from the context-free plateau takes longer at larger
width. At rate 2^-3 the mean step at which the log test loss falls below -1.5 (4 seeds, batch 16,
D = 1) is 215, 205, 260, 285, 355 at widths 64, 128, 256, 512, 1024; at 2^-1 105, 105, 115, 135,
170: about +20-35 steps per doubling, linear in log N, as expected of a saddle escape seeded by
the O(N^-1/2) fluctuations of a finite width (the muP limit starts with W^Q = 0 and a vanishing
readout; that the limit sits on the saddle is not derived here). A fixed-step loss mixes the
rate's effect with how far each width has escaped: at 300 steps (4 seeds, 3,628 CPU-s) width
1024's log loss at 2^-3 was -1.13 against -2.02 at 64, and the run FAILED (muP range 1.01 +- 0.70
over widths, 1.42 +- 0.46 over depths) although the fitted drifts agreed with the theory (muP
-0.11 +- 0.12, SP -1.08 +- 0.08 per doubling). So the full preset runs 600 steps (every width
has escaped by ~400 at 2^-3), 4 seeds, muP 2^-6..2^3 and SP 7 log2 lower (``sp_lr_shift``: a
shared grid spends half its members on diverged or untrained rates; SP's width-64 optimum lies
near 2^-5.5). Run 2026-12-07 (8caa7da, 2 local workers, 7,248 CPU-s, 76 min wall with an
18-min test suite alongside, 2.0 GB peak): FAILED again, on noise: muP range 1.06 +- 0.85 log2
over widths (optima -2.06, -1.39, -1.47, -1.00, -1.57), 0.54 +- 0.52 over depths (-2.06, -1.63,
-1.51, -2.05 at 2, 4, 8, 16); muP drift +0.14 +- 0.31, SP -0.90 +- 0.11 per doubling. Width
1024 has escaped now (log loss -2.33..-2.43 over 2^-3..2^0), but every muP curve is flat within
~0.3 over those four rates, and with 4 seeds the optimum's bootstrap SE is 0.1-1.0 per point.

Most of that noise is SGD's iterate noise, not the seed's: at batch 16 the test loss of one
member jumps from step to step (8 seeds, muP, 600 steps, rates 2^-6..2^3, records every 10 steps
over the last 100: the variance of the log loss over those records within a member is 0.13-0.18
near the optimum at width 256, against 0.03-0.09 between the members' means). So the full preset
(and the quick one, over its last 40 of 200 steps) takes as its final loss the mean test loss
over the last 100 steps (``loss_tail`` = 1/6; 11 records): the optimum's SE with 4 seeds falls from
0.59 to 0.15 at width 64 and from 0.32 to 0.08 at 256 (optima -2.00 -> -1.79, -1.46 -> -1.64;
``scripts/sgd_iterate_noise.py``). The report keeps the last step's optimum range beside it. Adam's
presets keep the last step (``loss_tail=0``): their full run passed on it. Full SGD run with the
window (f1b4e8a, 2026-12-07, 2 local workers, the niced quick preset alongside for 38 min, 7,831
CPU-s, 73 min wall, 2.1 GB peak): PASSED, muP optimum range 0.42 +- 0.42 log2 over widths (optima
-1.57, -1.72, -1.60, -1.41, -1.30; per-point SE 0.03-0.40) and 0.41 +- 0.43 over depths (-1.57,
-1.81, -1.89, -1.98); muP drift +0.085 +- 0.074 per doubling, SP -0.996 +- 0.058 (theory 0 and -1).
The same run's last-step losses give ranges 2.0 and 1.0 (optima -2.00, 0.00, -1.18, -1.00, -0.91),
which also differ from session 9's identical config on another machine (-2.06, -1.39, -1.47, -1.00,
-1.57), with ``simulate`` unchanged: on one machine the runs are bitwise reproducible (and
independent of the ensemble's size), so this is presumably rounding that differs between CPUs,
amplified by 600 SGD steps near the edge of stability; the last step's optimum is mostly noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from theorysim.sims import EnsembleSpec, TrainConfig, train

from .._compare import agreement_report, power_fit, theory_dataset
from .._configio import ExperimentConfig, param
from .._experiment import Experiment, register
from .._plots import figure, legend
from .._stats import curve_minima, seed_stats
from .._tasks import InContextRegression, TanhTeacher, model_for

PARAMS = ("sp", "mup")


@dataclasses.dataclass(frozen=True)
class MupTransferConfig(ExperimentConfig):
    """Config of ``mup-transfer`` (``theorysim show mup-transfer``)."""

    model: str = param("mlp", "mlp (teacher) / transformer (ICL)", choices=("mlp", "transformer"))
    optimizer: str = param("adam", "adam or sgd (own grid: variants)", choices=("adam", "sgd"))
    widths: tuple[int, ...] = param((64, 128, 256), "widths N (>= 2)", lo=1, hi=2**16, min_len=2)
    depths: tuple[int, ...] = param((2,), "blocks; after the first: muP over depth", lo=1, hi=64)
    heads: int = param(4, "transformer attention heads (width = heads x d_head)", lo=1, hi=2**10)
    branch_scale: str = param("depth", "branches 1/L or 1/sqrt(L)", choices=("depth", "sqrt_depth"))
    mlp_ratio: int = param(1, "transformer MLP-block width / N", lo=1, hi=64)
    log2_lr_min: float = param(-12.0, "smallest learning rate, log2", lo=-60.0, hi=10.0)
    log2_lr_max: float = param(-2.0, "largest, log2", lo="log2_lr_min", lo_open=True, hi=10.0)
    n_lr: int = param(11, "learning rates in the log2-spaced grid", lo=2, hi=1000)
    steps: int = param(200, "online steps", lo=1, hi=10**6)
    batch: int = param(64, "batch size", lo=1, hi=10**5)
    D: int = param(16, "input dimension (transformer: regression dimension)", lo=1, hi=10**4)
    n_context: int = param(8, "transformer: context pairs per sequence", lo=1, hi=4096)
    n_test: int = param(512, "test-set size", lo=1, hi=10**6)
    seeds: int = param(2, "seeds per (width, lr)", lo=2, hi=1000)
    sp_lr_shift: float = param(0.0, "SP's grid: the grid shifted by this (log2)", lo=-60.0,
                               hi=60.0)
    loss_tail: float = param(0.0, "final loss: mean test loss over this last fraction of the "
                             "steps (11 records; 0: the last step's)", lo=0.0, hi=1.0)
    max_shift: float = param(1.0, "muP's largest optimum range (log2) over widths, depths", lo=0.0)

    def check(self):
        if self.model == "mlp" and len(self.depths) > 1:
            raise ValueError(f"depths: a depth sweep needs model=transformer, got {self.depths}")
        if self.model == "transformer" and any(n % self.heads for n in self.widths):
            raise ValueError(f"widths must be multiples of heads = {self.heads}, got {self.widths}")

    @property
    def lrs(self) -> tuple[float, ...]:
        return tuple(map(float, 2.0 ** np.linspace(self.log2_lr_min, self.log2_lr_max, self.n_lr)))

    def grid(self, p: str) -> tuple[float, ...]:
        """Rates of parameterisation ``p``: SP's are ``lrs`` shifted by ``sp_lr_shift`` log2
        units (its optima lie several units below muP's; a shared grid spends half its members
        on diverged or untrained rates).

        >>> MupTransferConfig(log2_lr_min=-2, log2_lr_max=0, n_lr=3, sp_lr_shift=-4).grid("sp")
        (0.015625, 0.03125, 0.0625)
        """
        shift = 2.0 ** self.sp_lr_shift if p == "sp" else 1.0
        return tuple(float(r * shift) for r in self.lrs)

    @property
    def loss_steps(self) -> tuple[int, ...]:
        """Steps whose test losses are averaged into the final loss: the last, or 11 evenly
        spaced over the last fraction ``loss_tail`` of the steps (SGD's iterate noise: module
        doc); a fraction, so that ``--set steps=...`` keeps it meaningful.

        >>> MupTransferConfig(steps=600, loss_tail=1 / 6).loss_steps[:3]
        (500, 510, 520)
        """
        w = np.linspace(self.steps * (1 - self.loss_tail), self.steps, 11)  # 0: the last alone
        return tuple(sorted({int(round(s)) for s in w}))

    def task(self):
        return (TanhTeacher(self.D, 32, self.seed) if self.model == "mlp" else
                InContextRegression(D=self.D, n_context=self.n_context))


def _metrics(cfg, opt) -> dict[str, float]:  # optimum range, slope over widths; muP over depth
    m, w = {}, opt["width"].values
    for p in PARAMS:
        c = opt.sel(depth=cfg.depths[0], param=p).values
        m[f"{p} optimum range (log2)"] = float(np.ptp(c))
        m[f"{p} optimum slope per doubling"] = -power_fit(w, 2.0 ** c).exponent
    if len(cfg.depths) > 1:
        m["mup optimum range over depth (log2)"] = float(np.ptp(opt.loc["mup", w[0]].values))
    return m


def _lrs_per_program(cfg, point, max_bytes: float = 3 * 2**30) -> int:
    """Rates per compiled ensemble, so that one program's member states stay under
    ``max_bytes``: a transformer member holds ~8 float32 copies of its (4 + 2 mlp_ratio) N^2 L
    block weights (parameters, gradients, Adam moments, the map loop's buffers; measured 11.4 GB
    resident for 30 Adam members at N = 1024, L = 2: the OOM kill that set this bound). Members
    are keyed by seed alone, so the chunks give the same numbers as one program.

    >>> cfg = MupTransferConfig(model="transformer", seeds=2, n_lr=15, widths=(64, 1024))
    >>> _lrs_per_program(cfg, {"width": 1024, "depth": 2}), _lrs_per_program(
    ...     cfg, {"width": 64, "depth": 2})
    (4, 15)
    """
    if cfg.model != "transformer":
        return cfg.n_lr
    member = 8 * 4 * (4 + 2 * cfg.mlp_ratio) * point["width"] ** 2 * point["depth"]
    return int(np.clip(max_bytes // (member * cfg.seeds), 1, cfg.n_lr))


@register
class MupTransfer(Experiment):
    name = "mup-transfer"
    summary = "final loss vs learning rate for several widths: optimum moves under SP, not muP"
    config_type = MupTransferConfig
    presets = {"quick": {}, "full": {"widths": tuple(64 * 2**k for k in range(6)), "depths": (3,),
               "steps": 1000, "seeds": 3, "n_lr": 17, "log2_lr_min": -16.0, "log2_lr_max": 0.0}}
    #: transformer full presets (module doc: the measured costs behind them)
    variants = {("model", "transformer"): {
        "quick": {"widths": (32, 128), "depths": (2, 8), "D": 2, "n_context": 4, "steps": 100,
                  "batch": 32, "n_test": 256, "seeds": 6, "log2_lr_max": 0.0, "n_lr": 13},
        "full": {"widths": (64, 128, 256, 512, 1024), "depths": (2, 4, 8, 16), "D": 2,
                 "n_context": 4, "steps": 100, "batch": 16, "n_test": 256, "seeds": 2,
                 "n_lr": 17, "log2_lr_min": -17.0, "log2_lr_max": -1.0}},  # floor: module doc
        ("optimizer", "sgd"): {"quick": {"log2_lr_min": -6.0, "log2_lr_max": 4.0},
                               "full": {"log2_lr_min": -8.0, "log2_lr_max": 4.0, "n_lr": 13}},
        # model=transformer with optimizer=sgd, over both variants (module doc: why)
        (("model", "transformer"), ("optimizer", "sgd")): {
            "quick": {"D": 1, "steps": 200, "seeds": 4, "log2_lr_min": -9.0,
                      "log2_lr_max": 2.0, "n_lr": 12, "loss_tail": 0.2},
            "full": {"D": 1, "steps": 600, "batch": 16, "seeds": 4, "log2_lr_min": -6.0,
                     "log2_lr_max": 3.0, "n_lr": 10, "sp_lr_shift": -7.0, "loss_tail": 1 / 6}}}

    def points(self, cfg):
        return ([{"param": p, "width": n, "depth": cfg.depths[0]} for p in PARAMS
                 for n in cfg.widths]
                + [{"param": "mup", "width": cfg.widths[0], "depth": L} for L in cfg.depths[1:]])

    def simulate(self, cfg, point):
        xt, yt = (task := cfg.task()).sample(cfg.n_test, cfg.seed + 7)
        kw = ({"heads": cfg.heads, "branch_scale": cfg.branch_scale, "mlp_ratio": cfg.mlp_ratio}
              if cfg.model == "transformer" else {})
        model = model_for(cfg.model, task, point["width"], point["depth"], point["param"], **kw)
        tc = TrainConfig(steps=cfg.steps, lr=1.0, optimizer=cfg.optimizer, batch_size=cfg.batch,
                         record_steps=tuple(sorted({0, *cfg.loss_steps})),
                         observables=("test_loss",))
        seeds, k = tuple(range(cfg.seed, cfg.seed + cfg.seeds)), _lrs_per_program(cfg, point)
        lrs = cfg.grid(point["param"])
        loss = xr.concat([train(model, tc, sampler=task, x_test=xt, y_test=yt,
                                ensemble=EnsembleSpec(seeds=seeds, lrs=lrs[i:i + k]))
                          .to_xarray()["test_loss"].isel(gamma0=0, drop=True)
                          for i in range(0, cfg.n_lr, k)], "lr")
        loss = loss.assign_coords(seed=np.arange(cfg.seeds), lr=list(lrs))
        out = {"final_loss": loss.sel(step=list(cfg.loss_steps)).mean("step", skipna=False)}
        if cfg.loss_tail:  # the last step's too: the report says what the mean replaced
            out["last_step_loss"] = loss.isel(step=-1, drop=True)
        return xr.Dataset({name: v.expand_dims(param=[point["param"]], depth=[point["depth"]])
                           .transpose("param", "width", "depth", "seed", "lr").astype(float)
                           for name, v in out.items()})

    def combine(self, cfg, theory, sims):  # width and depth sweeps: no full grid
        return xr.merge([theory, *sims], join="outer", compat="no_conflicts")

    def theory(self, cfg):
        return theory_dataset({"optimum_shift_per_doubling": ("param", [-1.0, 0.0])},
                              {"param": list(PARAMS)})

    def report(self, cfg, ds):
        loss, n, rng = ds["final_loss"], ds.sizes["seed"], np.random.default_rng(cfg.seed)
        opt = curve_minima(loss, "lr")
        boot = [curve_minima(loss, "lr", rng.integers(0, n, n)) for _ in range(100)]  # resamples
        m, mb, se = _metrics(cfg, opt), [_metrics(cfg, o) for o in boot], xr.concat(boot, "b")
        ok = all(v <= cfg.max_shift for k, v in m.items() if k.startswith("mup optimum range"))
        m.update({f"{k}: bootstrap SE": float(np.nanstd([b[k] for b in mb])) for k in list(m)})
        if "last_step_loss" in ds:  # a window's run: what its mean replaced
            last = _metrics(cfg, curve_minima(ds["last_step_loss"], "lr"))
            m.update({f"{k}, last step's loss": v for k, v in last.items() if "range" in k})
        ok &= m["sp optimum slope per doubling"] < m["mup optimum slope per doubling"] - 0.25
        found = opt.to_series().dropna()  # an optimum on the grid's edge is not one
        ends = {p: np.log2(cfg.grid(p))[[0, -1]] for p in PARAMS}  # each one's own grid
        ok &= all(ends[p][0] < v < ends[p][1] for (p, _, _), v in found.items())
        rows = tuple({"param": p, "width": int(w), "depth": int(d), "log2 optimal lr": float(v),
                      "bootstrap SE": float(se.sel(param=p, width=w, depth=d).std("b"))}
                     for (p, w, d), v in found.items())
        return agreement_report(
            ds, title=f"muTransfer ({cfg.model}): {cfg.optimizer}, {cfg.steps} online steps, "
                      f"depth {cfg.depths[0]}", table=rows, metrics=m,
            notes=("optimum: compare.curve_minima; SE: 100 resamples of the seeds",),
            criterion=f"every optimum inside the grid (step {np.log2(cfg.lrs[1] / cfg.lrs[0]):g}), "
                      f"muP's range over widths (and depths) <= {cfg.max_shift:g} log2, SP's "
                      "slope per doubling below muP's by > 0.25 (SP -1, muP 0)", passed=bool(ok))

    def plot(self, cfg, ds):
        panels = [(p, "width") for p in PARAMS] + [("mup", "depth")] * (len(cfg.depths) > 1)
        fig, axes = figure(len(panels), 1, width=3.4)
        opt = curve_minima(ds["final_loss"], "lr")
        for ax, (p, over) in zip(axes[0], panels, strict=True):
            top = 0.0  # the axis stops at 10 x the untrained loss: blow-ups reach 1e10
            for j, v in enumerate(cfg.widths if over == "width" else cfg.depths):
                sel = {"param": p, "width": cfg.widths[0], "depth": cfg.depths[0], over: v}
                st = seed_stats(ds["final_loss"].sel(sel))
                first = st.mean.values[np.isfinite(st.mean.values)]
                top = max(top, 10 * first[0]) if len(first) else top
                ax.errorbar(ds["lr"], st.mean, yerr=st.sem, fmt="o-", ms=3, lw=1, capsize=1.5,
                            color=f"C{j}", label=f"{over} {v}")
                best = 2.0 ** float(opt.sel(sel))
                ax.plot(best, float(st.mean.sel(lr=best, method="nearest")), "*", ms=11,
                        color=f"C{j}", mec="k", mew=0.6, zorder=5)
            ax.set(xscale="log", yscale="log", xlabel=f"{cfg.optimizer} learning rate",
                   ylim=(None, top or None),
                   title=f"{ {'sp': 'SP', 'mup': 'muP'}[p]} over {over} (stars: optima)")
            legend(ax)
        axes[0, 0].set_ylabel("final test loss")
        return fig
