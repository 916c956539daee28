"""``ntk-learning-curve``: NTK regression learning curves on the sphere (digits:
``digits-ntk-curve``).

Inputs uniform on :math:`S^{d-1}` (d = 10), the infinite-width NTK of a depth-2 ReLU network
(``kernels.mlp_kernel``), target :math:`y = \\sqrt{p_1 d}\\,x_1 + \\sqrt{p_2}\\,(x_2^2 -
1/d)/\\sigma_2` (degree-1 plus degree-2 harmonic). Theory: Funk-Hecke eigenvalues
(``sphere_spectrum``) up to ``max_degree`` fed to ``theory.ridge_risk``; the remaining trace
:math:`t_{>L} = K(1) - \\sum_{l\\le L}\\lambda_l N(d,l)` acts on P samples as a ridge
:math:`t_{>L}/P` (its Gram block is ~diagonal; Canatar et al. 2021, arXiv 2006.13198).
Simulation 1: KRR with the analytic NTK on P fresh samples, error on fresh test points.

Simulation 2 (``P <= net_P_max``, the first ``net_seeds`` draws; ``net`` and ``gd`` NaN on
the others): an NTK-parameterised ReLU MLP of width ``width`` (no biases, :math:`h^1 =
W^0x/\\sqrt d`, :math:`W\\sim N(0,1)`: the kernel of ``mlp_kernel(depth, "relu")``, tested),
output centred (:math:`f - f_0`), full-batch GD on :math:`\\frac{1}{2P}\\sum_\\mu(f_\\mu -
y_\\mu)^2`, lr ``net_lr``, ``net_steps`` steps, compared draw by draw (``Sweep.against``) with
the NTK's gradient flow at :math:`\\tau = \\eta T = 2\\cdot10^4` (``gradient_descent_mse``; not
the KRR: modes with :math:`\\lambda\\tau/P \\lesssim 1` are not yet fitted, ``gd`` rel. dev.
0.01% at P = 10 to 1.6% at P = 63); stability :math:`\\eta K(1) = 1.5 < 2`; train loss < 1e-4.

Finite width (measured, d = 10, net minus flow on the same draws, 16-24 draws): two
corrections, both vanishing as N grows: (i) the init NTK's fluctuation (~4.5/sqrt(N)
entry-wise), positive: +1.0, +1.7, +3.3% at P = 10, 25, 63 (N = 256, ``gamma0`` = 1/16), +3.6,
+5.2, +7.5% (N = 128); (ii) feature learning, negative, growing with the richness
:math:`\\gamma_0|y|/\\sqrt{K(1)N}` (output x 1/gamma0, lr x gamma0^2: the same kernel dynamics;
Chizat, Oyallon, Bach 2019, arXiv 1812.07956): P = 63: -9.5 +- 1.7% (N = 256, gamma0 = 1/4),
-18% (N = 1024, gamma0 = 1); -57% at P = 158 (not lazy). Defaults N = 256, gamma0 = 1/8 (at
P = 63 (i) and (ii) partly cancel), ``net_P_max = 70``: +0.9 +- 0.9, +1.1 +- 1.1, -1.0 +- 1.8%
(16 draws), below the resolution of the 12 compared draws (3 SE = 3-6%); ``--set gamma0=1``
fails. A width-1024 net costs ~16x a width-256 one.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from theorysim import kernels as K
from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train
from theorysim.theory import ridge_risk

from .._compare import Prediction, Sweep, solve
from .._configio import param
from .._datasets import SphereHarmonics, sphere_ntk
from .._experiment import register
from .._tasks import PGridConfig


@dataclasses.dataclass(frozen=True)
class NTKCurveConfig(PGridConfig):
    """Config of ``ntk-learning-curve`` (``theorysim show ntk-learning-curve``)."""

    d: int = param(10, "input dimension (inputs on the sphere S^{d-1})", lo=3, hi=10**4)
    depth: int = param(2, "hidden layers of the ReLU network", lo=1, hi=64)
    p1: float = param(1.0, "target power in degree 1", lo=0.0)
    p2: float = param(1.0, "target power in degree 2", lo=0.0)
    ridge: float = param(1e-5, "per-sample ridge (Gram matrix + P ridge)", lo=0.0,
                         lo_open=True)
    P_max: int = param(1000, "largest training set", lo="P_min", hi=20000)
    n_P: int = param(6, "log-spaced training-set sizes", lo=2, hi=1000)
    seeds: int = param(12, "data draws per P", lo=2, hi=10**5)
    n_test: int = param(1000, "fresh test points per draw", lo=10, hi=10**6)
    max_degree: int = param(8, "degrees kept exactly in the theory", lo=2, hi=200)
    width: int = param(256, "hidden width of the trained network", lo=1, hi=2**20)
    net_P_max: int = param(70, "train networks at P <= this (0: none)", lo=0)
    net_seeds: int = param(12, "trained networks per P (the first data draws)", lo=2,
                           hi="seeds")
    net_lr: float = param(20.0, "full-batch GD learning rate", lo=0.0, lo_open=True)
    net_steps: int = param(1000, "GD steps (kernel time tau = net_lr * net_steps)", lo=1,
                           hi=10**6)
    gamma0: float = param(0.125, "richness: output x 1/gamma0, lr x gamma0^2 (same kernel "
                          "dynamics, lazier below 1; 1 = plain NTK network)", lo=0.0,
                          lo_open=True)


@functools.cache
def sphere_theory_spectrum(d: int, depth: int, max_degree: int):
    """Per-degree NTK eigenvalues on the unit sphere, degeneracies, and the trace beyond."""
    f = sphere_ntk(d, depth)
    with jax.enable_x64(True):
        spec = K.sphere_spectrum(f, d, max_degree)
        k1 = float(f(1.0))
    tail = k1 - float(np.sum(spec.eigenvalue * spec.degeneracy))
    return spec, max(tail, 0.0)


def train_wide_net(cfg: NTKCurveConfig, s: int, *data) -> tuple[float, float]:
    r"""Test error :math:`\langle(f-y)^2\rangle` and final train loss of the NTK MLP with init
    seed ``cfg.seed * 10**6 + s`` trained by GD on ``data = (x, y, x_test, y_test)``."""
    model = ModelConfig(width=cfg.width, depth=cfg.depth, parameterization="ntk",
                        activation="relu", centre=True, gamma0=cfg.gamma0)
    tc = TrainConfig(steps=cfg.net_steps, lr=cfg.net_lr, record_steps=(0, cfg.net_steps),
                     observables=("loss", "test_loss"))
    x, y, xt, yt = (np.asarray(a, np.float32) for a in data)
    last = train(model, tc, x=x, y=y, x_test=xt, y_test=yt, ensemble=EnsembleSpec(
        seeds=(cfg.seed * 10**6 + s,), shard=False)).to_xarray().squeeze(drop=True).isel(step=-1)
    return (np.nan, np.nan) if bool(last["diverged"]) else (2.0 * float(last["test_loss"]),
                                                           float(last["loss"]))


@register
class NTKLearningCurve(Sweep):
    name = "ntk-learning-curve"
    summary = "NTK (depth-2 ReLU) regression on the sphere: Funk-Hecke theory vs KRR over seeds"
    config_type = NTKCurveConfig
    presets = {"quick": {}, "full": {"n_P": 10, "seeds": 32, "P_max": 2000, "width": 1024,
                                     "net_seeds": 16}}
    compared, shown, against = ("error", "net"), ("gd",), {"net": "gd", "gd": "error"}
    line_points = 120
    labels = {"P": "training samples $P$", "error": "generalisation error"}
    extra_lines = {"degree1": "degree 1 (theory)", "degree2": "degree 2 (theory)"}
    heading = "NTK learning curve on the sphere in d={d}, depth-{depth} ReLU, ridge={ridge}"
    notes = ("theory: degrees <= {max_degree} exactly, the remaining kernel trace as a ridge "
             "tail/P", "error: KRR with the infinite-width NTK vs the theory; net: width-{width}"
             " NTK MLP (GD lr={net_lr}, {net_steps} steps, gamma0={gamma0}) on the first "
             "{net_seeds} draws at P <= {net_P_max} (n/a above), vs the NTK's gradient flow at "
             "tau = lr * steps on the same draws; gd: that flow vs KRR (modes not yet fitted)")

    def sample(self, cfg, point, key):
        P, task = point["P"], SphereHarmonics(cfg.d, cfg.p1, cfg.p2)
        k, n_net = sphere_ntk(cfg.d, cfg.depth), cfg.net_seeds if P <= cfg.net_P_max else 0
        errs, (gd, net, net_loss) = [], np.full((3, cfg.seeds), np.nan)
        for s in range(cfg.seeds):
            k_tr, k_te = jax.random.split(jax.random.fold_in(key, s))
            (x, y), (xt, yt) = task.sample(k_tr, P), task.sample(k_te, cfg.n_test)
            with jax.enable_x64(True):
                k_xx, k_tx = k(x @ x.T), k(xt @ x.T)
                pred = K.kernel_ridge(k_xx, y, k_tx, cfg.ridge)
                errs.append(float(np.mean((np.asarray(pred) - yt) ** 2)))
                if s < n_net:
                    flow = K.gradient_descent_mse(k_xx, y, k_tx, t=cfg.net_lr * cfg.net_steps)
                    gd[s] = float(np.mean((np.asarray(flow.test) - yt) ** 2))
            if s < n_net:
                net[s], net_loss[s] = train_wide_net(cfg, s, x, y, xt, yt)
            self.tick(s + 1, cfg.seeds, "draws (KRR; a trained net on the first net_seeds)")
        return {"error": errs, "net": net, "net_train_loss": net_loss, "gd": gd}

    def predict(self, cfg, P):
        """E_g (the tail trace as a ridge) and the degree-1/2 mode errors at P."""
        spec, tail = sphere_theory_spectrum(cfg.d, cfg.depth, cfg.max_degree)
        power, P = np.zeros(cfg.max_degree + 1), np.asarray(P, float)
        power[1], power[2] = cfg.p1, cfg.p2
        r = solve(ridge_risk, *spec.per_mode(power), P, cfg.ridge + tail / P)
        kappa, gamma = np.asarray(r.kappa), np.asarray(r.gamma)
        return Prediction({"error": r.error, **{f"degree{l}": power[l] * kappa**2 / (
            (spec.eigenvalue[l] + kappa) ** 2 * (1.0 - gamma)) for l in (1, 2)}},
            {"ridge_risk": r})

    def extras(self, cfg, coords):
        spec, tail = sphere_theory_spectrum(cfg.d, cfg.depth, cfg.max_degree)
        return Prediction({"eigenvalue": ("degree", spec.eigenvalue),
                           "degeneracy": ("degree", spec.degeneracy)},
                          attrs={"tail_trace": tail})

    def summarize(self, cfg, ds):
        loss = ds["sim_net_train_loss"].values
        return ({"net: max final train loss": float(np.nanmax(loss))} if np.isfinite(loss).any()
                else {}), (f"tail trace {float(ds.attrs.get('tail_trace', np.nan)):.3g}",), True

    def decorate(self, fig, axes, cfg, ds):
        self.draw_paired(axes[0], ds, "net", f"trained net N={cfg.width}",
                         rf"NTK GD at $\tau$={cfg.net_lr * cfg.net_steps:g}")
        axes[0].set_title(f"NTK regression on $S^{{{cfg.d - 1}}}$, depth {cfg.depth} ReLU")
