"""``dmft-vs-width``: the O(1/N) finite-width corrections of two-layer mean-field networks.

Theory: :func:`theorysim.theory.dmft_two_layer_finite_width` (Bordelon & Pehlevan 2023, arXiv
2304.03408) with ``dynamics="gd", lr=eta``: N times the variance over initialisations of the
NTK (mean over its upper-triangle entries) and N times the mean-loss gap
:math:`E\\mathcal L_N - \\mathcal L_\\infty`, both width-independent at leading order.
Simulation: the engine's ``mean_field`` networks (outputs not centred), full-batch GD with base
step ``eta`` (step ``k`` is DMFT time ``eta k``: the dynamics the theory solves), many seeds per
width. ReLU: the NTK on both sides is the Filippov kernel across the kink
(:func:`theorysim.theory.sliding_ntk` of each seed's parameters), not the instantaneous one.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train
from theorysim.theory import check_finite_width, dmft_two_layer_finite_width, sliding_ntk

from .._compare import Prediction, Sweep, compare, mean_field_states, solve
from .._configio import param
from .._experiment import register
from .._plots import figure, legend
from .._tasks import SweepConfig


@dataclasses.dataclass(frozen=True)
class DMFTVsWidthConfig(SweepConfig):
    """Config of ``dmft-vs-width`` (``theorysim show dmft-vs-width``)."""

    widths: tuple[int, ...] = param((64, 128, 256), "network widths N", lo=8, hi=2**14)
    gamma0s: tuple[float, ...] = param((0.5, 1.5), "richness values gamma0", lo=0.0,
                                       lo_open=True, hi=10.0)
    activation: str = param("tanh", "activation (relu: Filippov NTK, module docstring)",
                            choices=("tanh", "erf", "relu"))
    P: int = param(4, "training points (on the sphere of radius sqrt(D))", lo=1, hi=32)
    D: int = param(5, "input dimension", lo=1, hi=256)
    eta: float = param(0.05, "GD step in DMFT time", lo=0.0, lo_open=True, hi=1.0)
    times: tuple[float, ...] = param((0.5, 1.0), "DMFT times compared (multiples of eta)",
                                     lo=0.0, lo_open=True)
    seeds: int = param(1024, "network seeds per width", lo=16, hi=2**16)
    samples: int = param(2048, "theory particles (a power of 2)", lo=64, hi=2**20)

    def check(self):
        if self.samples & (self.samples - 1):
            raise ValueError(f"samples must be a power of 2 (Sobol points), got {self.samples}")
        steps = [t / self.eta for t in self.times]
        if any(abs(s - round(s)) > 1e-9 * max(s, 1.0) or round(s) < 1 for s in steps):
            raise ValueError(f"times must be positive multiples of eta = {self.eta:g} (whole GD "
                             f"steps), got {self.times}")
        try:  # the theory's own limits (steps, memory) before any simulation
            check_finite_width(*DMFTVsWidth.data(self), self.times, 1.0, **self.theory_kw())
        except ValueError as err:
            raise ValueError(f"times, eta or samples: more than the finite-width theory "
                             f"accepts ({err})") from None

    def theory_kw(self):
        return dict(activation=self.activation, dynamics="gd", lr=self.eta,
                    n_samples=self.samples, n_mean=max(2**16, self.samples))


@register
class DMFTVsWidth(Sweep):
    name = "dmft-vs-width"
    summary = "two-layer mean-field nets: N x NTK variance and N x mean-loss gap vs theory"
    config_type = DMFTVsWidthConfig
    presets = {"quick": {},
               "full": {"widths": (128, 256, 512, 1024), "D": 7, "P": 6,
                        "times": (1.0, 2.0, 3.0), "seeds": 4096, "samples": 8192}}
    dims = ("gamma0", "width")
    trailing = ("t",)
    compared = ("ntk_var", "loss_gap")
    line = "width"
    labels = {"gamma0": r"$\gamma_0$", "width": "width $N$", "t": "$t$",
              "ntk_var": r"$N\,\mathrm{Var}\,K$ (mean entry)",
              "loss_gap": r"$N\,(\mathbb{E}\mathcal{L}_N-\mathcal{L}_\infty)$"}

    @staticmethod
    def data(cfg):
        rng = np.random.default_rng(cfg.seed)
        X = rng.standard_normal((cfg.P, cfg.D))
        return X * np.sqrt(cfg.D) / np.linalg.norm(X, axis=1, keepdims=True), rng.normal(size=cfg.P)

    def grid(self, cfg):
        return {"gamma0": list(cfg.gamma0s), "width": list(cfg.widths), "t": list(cfg.times)}

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def _theory(cfg, g):
        X, y = DMFTVsWidth.data(cfg)
        return solve(dmft_two_layer_finite_width, X, y, list(cfg.times), g,
                     key=jax.random.key(cfg.seed), **cfg.theory_kw())

    def sample(self, cfg, point, key):
        X, y = self.data(cfg)
        steps = tuple(int(round(t / cfg.eta)) for t in cfg.times)
        model = ModelConfig(width=point["width"], depth=1, parameterization="mean_field",
                            activation=cfg.activation, gamma0=point["gamma0"])
        seeds = tuple(int(s) for s in jax.random.randint(key, (cfg.seeds,), 0, 2**30))
        relu = cfg.activation == "relu"
        run = functools.partial(train, model, x=X.astype(np.float32), y=y.astype(np.float32),
                                ensemble=EnsembleSpec(seeds=seeds))
        res = run(TrainConfig(steps=steps[-1], lr=cfg.eta, record_steps=steps,
                              observables=("loss", "outputs" if relu else "ntk")))
        loss = res.grid("loss")[:, 0, 0].astype(np.float64)  # (seed, t)
        if relu:  # the Filippov NTK of each seed's parameters after each recorded step
            ntk = sliding_ntk(*mean_field_states(run, steps, X, lr=cfg.eta), y - res.grid(
                "outputs")[:, 0, 0, ..., 0], X, point["gamma0"], step=cfg.eta)
        else:
            ntk = res.grid("ntk")[:, 0, 0].astype(np.float64)  # (seed, t, P, P)
        dev = (ntk - ntk.mean(0))[(..., *np.triu_indices(cfg.P))] ** 2
        n, N = cfg.seeds, point["width"]
        L_inf = self._theory(cfg, point["gamma0"]).train_loss[1:]
        return {"ntk_var": N * dev.mean(-1) * n / (n - 1), "loss_gap": N * (loss - L_inf)}

    def predict(self, cfg, gamma0, width, t):
        vals, solvers = {"ntk_var": [], "loss_gap": []}, {}
        for g in gamma0:
            r = self._theory(cfg, g)
            solvers[f"dmft_two_layer_finite_width (gamma0={g:g})"] = r
            vals["ntk_var"].append(r.ntk_var[(slice(1, None), *np.triu_indices(cfg.P))].mean(-1))
            vals["loss_gap"].append(r.loss_gap[1:])
        shape = (len(gamma0), len(width), len(t))
        return Prediction({k: np.broadcast_to(np.asarray(v)[:, None, :], shape)
                           for k, v in vals.items()}, solvers)

    def title(self, cfg):
        return (f"finite-width corrections, 2-layer {cfg.activation} mean-field, P={cfg.P}, "
                f"D={cfg.D}, GD eta={cfg.eta}")

    def plot(self, cfg, ds):
        fig, axes = figure(2, 1, width=3.6)
        for ax, q in zip(axes[0], self.compared, strict=True):
            c = compare(ds, q)
            for i, (g, t) in enumerate((g, t) for g in cfg.gamma0s for t in cfg.times):
                st, col, sel = c.stats, f"C{i}", {"gamma0": g, "t": t}
                ax.plot(ds["width_line"], ds[f"theory_{q}_line"].sel(sel), "-", lw=2,
                        color=col, alpha=0.45, label=rf"$\gamma_0={g:g}$, $t={t:g}$ theory")
                ax.errorbar(ds["width"], st.mean.sel(sel), yerr=st.sem.sel(sel), fmt="o",
                            ms=4, color=col, mec="k", mew=0.5, ecolor="k", capsize=2,
                            label=f"sim (n={st.n}, ±SE)")
            ax.set_xscale("log", base=2)
            ax.set(xlabel=self.labels["width"], ylabel=self.labels[q])
            legend(ax)
        axes[0, 0].set_title("NTK fluctuations", fontsize=8)
        axes[0, 1].set_title("mean training-loss gap", fontsize=8)
        return fig
