"""How much does averaging the last steps' test losses sharpen the SGD transformer's optimum?

``mup-transfer``'s SGD transformer presets take as final loss the mean test loss over the last
``loss_tail`` of the steps (11 records), not the last step's: at batch 16 one member's loss jumps
from step to step. This trains one muP point of the full preset (depth 2) with more seeds and prints
the optimum's bootstrap SE when the curves are averaged over ``--resample`` seeds, from the window's
mean and from the last step alone (2026-12-07: 8 seeds, 4 resampled; width 64: last step 0.59,
window 0.15; width 256: 0.32, 0.08).

    python scripts/sgd_iterate_noise.py --width 64 --seeds 8     # 67 CPU-s
"""

from __future__ import annotations

import argparse

import numpy as np

from theorysim.compare import curve_minima, get_experiment


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--resample", type=int, default=4, help="seeds per bootstrap draw")
    ap.add_argument("--draws", type=int, default=300)
    a = ap.parse_args(argv)
    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("full", {"model": "transformer", "optimizer": "sgd",
                                   "seeds": str(a.seeds)})
    ds = exp.simulate(cfg, {"param": "mup", "width": a.width, "depth": cfg.depths[0]})
    rng = np.random.default_rng(0)
    for name in ("last_step_loss", "final_loss"):
        v = ds[name].squeeze(["param", "width", "depth"])
        draws = [float(curve_minima(v, "lr", rng.integers(0, a.seeds, a.resample)))
                 for _ in range(a.draws)]
        print(f"{name:>15}: log2 optimum {float(curve_minima(v, 'lr')):+.2f} ({a.seeds} seeds), "
              f"SE with {a.resample} seeds {np.nanstd(draws):.2f}")


if __name__ == "__main__":
    main()
