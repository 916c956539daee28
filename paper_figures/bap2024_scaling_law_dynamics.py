"""Bordelon, Atanasov & Pehlevan 2024 (arXiv 2402.01092): a dynamical model of scaling laws.

Random features trained by gradient flow on a power-law task: test loss vs time for several
widths N (theory lines over simulation bands), the compute-optimal frontier C = N t with fitted
vs predicted exponents, and the loss vs N at late time (the paper's Figs. 1-3 in one panel row).

    python paper_figures/bap2024_scaling_law_dynamics.py [--preset quick|full] [--out runs]

quick (default): a few minutes; full: the paper's sizes, longer (not timed here).
"""

from _export import export

if __name__ == "__main__":
    export("scaling-law-dynamics", "bap2024_scaling_law_dynamics",
           description=__doc__.splitlines()[0])
