r"""``cntk-vs-width``: wide NTK-parameterised CNNs converge to the CNTK of ``kernels.stax``.

A CNN of ``depth`` ReLU conv layers (3 x 3, SAME) of N channels, global average pooling and a
dense readout, in the ``ntk`` preset with neural-tangents' ``W_std``/``b_std`` (``sims.CNN``),
is the finite network whose infinite-width NNGP/NTK ``kernels.stax`` computes (Arora et al.
2019, arXiv 1904.11955; Novak et al. 2020, arXiv 1912.02803). On 8 x 8 digits images:

- the empirical NTK at initialisation :math:`\hat\Theta_0` fluctuates around the CNTK
  :math:`\Theta` with :math:`\|\hat\Theta_0 - \Theta\|_F/\|\Theta\|_F \propto N^{-1/2}` (a sum
  of N independent channels' contributions; its mean over draws is :math:`\Theta` up to
  :math:`O(1/N)`, compared entry-averaged below by Monte Carlo);
- the network trained by full-batch GD on :math:`\frac{1}{2P}\|f - y\|^2` (outputs centred,
  :math:`f - f_0`) predicts on test images what kernel gradient flow with :math:`\Theta` does at
  time :math:`t = \eta\,\text{steps}` (``kernels.gradient_descent_mse``; Jacot et al. 2018,
  arXiv 1806.07572; Lee et al. 2019, arXiv 1902.06720), with a relative deviation that also
  falls like :math:`N^{-1/2}` (kernel fluctuation and the kernel's O(N^-1/2) motion).

The rate is ``lr_frac`` of the stability edge :math:`2P/\lambda_{\max}(\Theta)`; the gap between
discrete GD and the flow on the CNTK itself (linearised, computed exactly) is reported and must
stay below a quarter of the smallest measured prediction deviation, so it cannot bend the fit.

**Full preset** (widths 64..2048, depth 2): chosen to run in ~2,000 CPU-s on 2 cores (the old
one, P = 64, 400 steps at ``lr_frac`` 0.01, 8 seeds, was ~56,000 CPU-s). Measured 2026-12-07
under load 7-11: at width 2048 (conv 2048 -> 2048 x 3 x 3, 37.7M parameters) with 16 training
images a GD step costs ~2 CPU-s, and one ``ntk`` observable (recorded at init and at the end)
on 32 probe images took ~36 CPU-s at 15.8 GB peak in one Jacobian (~3 copies of P x 37.7M
floats), which does not fit beside the other jobs of a shared 23 GB machine; on 24 probes in
chunks of 3 (``sims._observe.generic_ntk``) it took 88 CPU-s at 3.2 GB. So the probe set, not the
steps, sets cost and memory: ``n_train`` 16, ``n_test`` 8 (24 probes in the default 512 MiB
chunks of 3; 1 GiB chunks of 7 peaked near 10 GB), 8 seeds. The flow prediction depends on
:math:`t = \eta\,\text{steps}` only, so ``lr_frac`` 0.2 x 20 steps keeps the old :math:`t`
(0.01 x 400) at 1/20 of the steps. The exact discrete-vs-flow gap on the CNTK (P = 16, 8 test
images, depth 2) is 1.3e-3 there (2.6e-3 at 0.4 x 10; with 16 test images 7.5e-4 at 0.1 x 40,
1.5e-3 at 0.2 x 20). The smallest prediction deviation is expected near 0.03 at width 2048
(0.066 at width 512 in a 4-seed trial); four times 1.3e-3 is 5e-3. The relative kernel
deviation of one network is dominated by one mode (the kernel's overall scale), so its spread
over seeds is ~folded-normal (relative SD ~0.6-0.8, measured): 8 seeds give an estimated
exponent SE near 0.09 over 64..2048. Run once (2026-12-07, commit 986db09, load 4-9): PASSED,
kernel exponent 0.547 +- 0.080, prediction exponent 0.538 +- 0.037, kernel motion 0.82 (the
O(1/N) rate of dNTK/dt of Dyer & Gur-Ari, arXiv 1909.11304, with O(N^-1/2) noise), gap 1.3e-3
against a smallest deviation of 0.052; ~2,000 CPU-s (width 2048: 1,770), 7.6 GB peak.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.kernels import gradient_descent_mse, max_learning_rate, stax
from theorysim.sims import CNNConfig, EnsembleSpec, TrainConfig, train

from .._compare import Check, Prediction, Sweep, power_fit
from .._configio import param
from .._experiment import register
from .._plots import figure, legend, reference_power_law
from .._stats import seed_stats
from .._tasks import DigitsImages, SweepConfig

DEVIATIONS = {"kernel_dev": "NTK at init vs CNTK", "pred_dev": "test prediction vs kernel flow"}


@dataclasses.dataclass(frozen=True)
class CNTKConfig(SweepConfig):
    """Config of ``cntk-vs-width`` (``theorysim show cntk-vs-width``)."""

    widths: tuple[int, ...] = param((16, 32, 64, 128), "CNN channels N (>= 2 for the decay "
                                    "exponents)", lo=1, hi=2**14, min_len=2)
    depth: int = param(1, "conv layers", lo=1, hi=8)
    n_train: int = param(32, "training images (digits)", lo=2, hi=1000)
    n_test: int = param(32, "test images (digits)", lo=1, hi=797)
    steps: int = param(100, "full-batch GD steps", lo=1, hi=10**5)
    lr_frac: float = param(0.01, "GD rate as a fraction of the stability edge 2P/lambda_max",
                           lo=0.0, lo_open=True, hi=1.0)
    seeds: int = param(16, "networks per width", lo=2, hi=1000)
    w_std: float = param(1.5, "W_std of every layer (neural-tangents' convention)", lo=0.0,
                         lo_open=True, hi=10.0)
    b_std: float = param(0.1, "b_std of every layer", lo=0.0, hi=10.0)
    tol: float = param(0.15, "criterion: |fitted decay exponent - 1/2| allowed for each "
                       "deviation", lo=0.0, lo_open=True, hi=0.5)

    def task(self) -> DigitsImages:
        return DigitsImages(self.n_train, self.n_test, self.seed)

    def model(self, width: int) -> CNNConfig:
        return CNNConfig(width=width, input_shape=(8, 8, 1), depth=self.depth, kernel_size=3,
                         parameterization="ntk", activation="relu", w_std=self.w_std,
                         b_std=self.b_std, centre=True)


@functools.cache
def _kernel_theory(cfg: CNTKConfig):
    """CNTK on train + test images, GD rate, flow prediction on the test images and the
    discrete-vs-flow gap of the linearised dynamics on the CNTK (float64)."""
    xtr, ytr, xte, _ = cfg.task().split()
    conv = [stax.Conv(1, (3, 3), (1, 1), "SAME", W_std=cfg.w_std, b_std=cfg.b_std), stax.Relu()]
    _, _, kernel_fn = stax.serial(*conv * cfg.depth, stax.GlobalAvgPool(),
                                  stax.Dense(1, W_std=cfg.w_std, b_std=cfg.b_std))
    with jax.enable_x64(True):
        x = jnp.asarray(np.concatenate([xtr, xte]).reshape(-1, 8, 8, 1), jnp.float64)
        ntk = np.asarray(kernel_fn(x, get="ntk"))
        n = cfg.n_train
        eta = cfg.lr_frac * max_learning_rate(ntk[:n, :n], n)
        flow = np.asarray(gradient_descent_mse(ntk[:n, :n], ytr.astype(np.float64), ntk[n:, :n],
                                               t=float(cfg.steps), learning_rate=eta).test)
    lam, v = np.linalg.eigh(ntk[:n, :n])
    lam = np.maximum(lam, 1e-300)
    disc = ntk[n:, :n] @ v @ ((1 - (1 - eta * lam / n) ** cfg.steps) / lam * (v.T @ ytr))
    return ntk, eta, flow, float(np.linalg.norm(disc - flow) / np.linalg.norm(flow))


def _rel(a, b, axes):
    return np.linalg.norm(a - b, axis=axes) / np.linalg.norm(b)


@register
class CNTKVsWidth(Sweep):
    name = "cntk-vs-width"
    summary = "wide ntk CNNs: empirical NTK and GD predictions converge to kernels.stax's CNTK"
    config_type = CNTKConfig
    presets = {"quick": {}, "full": {"widths": (64, 128, 256, 512, 1024, 2048), "depth": 2,
                                     "seeds": 8, "steps": 20, "lr_frac": 0.2, "n_train": 16,
                                     "n_test": 8}}  # why these values: module doc, "Full preset"
    dims, compared, line = ("width",), ("ntk_mean",), None
    heading = "CNTK vs width: depth-{depth} ntk CNN on digits, P={n_train}, {steps} GD steps"
    notes = ("ntk_mean: the kernel averaged over all train/test pairs, mean over networks vs "
             "the CNTK (Monte Carlo); the deviations are compared to 0 (their limit) only "
             "through their fitted decay exponents",)

    def grid(self, cfg):
        return {"width": list(cfg.widths)}

    def sample(self, cfg, point, key):
        ntk, eta, flow, _ = _kernel_theory(cfg)
        xtr, ytr, xte, _ = cfg.task().split()
        seeds = tuple(int(s) for s in jax.random.randint(key, (cfg.seeds,), 0, 2**31 - 1))
        res = train(cfg.model(point["width"]),
                    TrainConfig(steps=cfg.steps, lr=eta, record_steps=(0, cfg.steps),
                                observables=("outputs", "ntk")),
                    x=xtr, y=ytr, probe_x=np.concatenate([xtr, xte]),
                    ensemble=EnsembleSpec(seeds=seeds))
        k0, f = res.records["ntk"][:, 0], res.records["outputs"][:, -1, cfg.n_train:, 0]
        return {"ntk_mean": k0.mean((1, 2)), "kernel_dev": _rel(k0, ntk, (1, 2)),
                "pred_dev": _rel(f, flow, 1),
                "kernel_motion": _rel(res.records["ntk"][:, -1] - k0 + ntk, ntk, (1, 2))}

    def predict(self, cfg, width):
        ntk = _kernel_theory(cfg)[0]
        return Prediction({"ntk_mean": np.full(len(width), ntk.mean())})

    def _fits(self, ds):
        return {q: power_fit(ds["width"], seed_stats(ds[f"sim_{q}"]).mean) for q in DEVIATIONS}

    def checks(self, cfg, ds):
        return tuple(Check(f"{q} decay exponent", fit.exponent, 0.5, cfg.tol, fit.exponent_stderr)
                     for q, fit in self._fits(ds).items())

    def summarize(self, cfg, ds):
        gap, eta = _kernel_theory(cfg)[3], _kernel_theory(cfg)[1]
        smallest = float(seed_stats(ds["sim_pred_dev"]).mean.min())
        motion = power_fit(ds["width"], seed_stats(ds["sim_kernel_motion"]).mean)
        return ({"GD rate eta": eta, "discrete-vs-flow gap (CNTK, linearised)": gap,
                 "smallest prediction deviation": smallest,
                 "kernel motion decay exponent": motion.exponent},
                (f"discrete GD vs flow on the CNTK: {gap:.2g} relative (must be < 1/4 of "
                 f"{smallest:.2g})",), gap < smallest / 4)

    def plot(self, cfg, ds):
        fig, axes = figure(1, 1, width=4.2)
        ax, w = axes[0, 0], ds["width"].values
        for i, (q, fit) in enumerate(self._fits(ds).items()):
            st = seed_stats(ds[f"sim_{q}"])
            ax.errorbar(w, st.mean, yerr=st.sem, fmt="o", color=f"C{i}", mec="k", mew=0.5,
                        capsize=2, label=f"{DEVIATIONS[q]} (fit $N^{{-{fit.exponent:.2f}}}$)")
            reference_power_law(ax, w, -0.5, (w[0], float(st.mean[0])),
                                label="$N^{-1/2}$" if i == 0 else None)
        ax.set(xscale="log", yscale="log", xlabel="channels $N$",
               ylabel="relative deviation (mean ± SE)", title=self.title(cfg))
        ax.title.set_fontsize(8)
        legend(ax)
        return fig
