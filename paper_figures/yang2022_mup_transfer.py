"""Yang et al. 2022 (Tensor Programs V, arXiv 2203.03466), Fig. 1: hyperparameter transfer.

Final training loss vs learning rate for MLPs of increasing width under the standard
parameterisation (the optimum drifts with width) and under muP (it stays put).

    python paper_figures/yang2022_mup_transfer.py [--preset quick|full] [--out runs]

quick (default): a few minutes; full: the paper's sizes, longer (not timed here).
"""

from _export import export

if __name__ == "__main__":
    export("mup-transfer", "yang2022_mup_transfer", description=__doc__.splitlines()[0])
