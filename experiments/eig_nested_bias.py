"""The nested Monte Carlo EIG estimator's finite-S bias (``design.eig.eig_nested``; docs/design.md).

T independent of the prediction (true I(T; y) = 0) and a binary T whose I(T; y) is known by quadrature:
the estimator's mean over 10 seeds at several draw counts S. At I = 0 the estimate is positive and
falls like bins / S: each outer draw is also one of the about S / bins draws of its own bin's inner sum.
A thirty-third-session review's script. Run: .venv/bin/python experiments/eig_nested_bias.py
"""

import argparse
import warnings

import numpy as np
from scipy import integrate, stats

from bayes_scaling.design import eig

warnings.filterwarnings("ignore")


def mi_binary(sd: float) -> float:
    """I(T; y) for y = x + e, x ~ N(0, 1), e ~ N(0, sd^2), T = 1{x > 0}: H(T) - E H(T | y)."""
    def entropy(p):
        return -(p * np.log(p) + (1 - p) * np.log(1 - p)) if 0 < p < 1 else 0.0

    def integrand(y):
        return stats.norm.pdf(y, 0, np.sqrt(1 + sd**2)) * entropy(stats.norm.cdf(y / (sd * np.sqrt(1 + sd**2))))

    return np.log(2) - integrate.quad(integrand, -30, 30)[0]


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()  # --help: this text, not a run
    for S in (500, 2000, 8000):
        continuous, binary = [], []
        for seed in range(10):
            theta = np.random.default_rng(1000 + seed).normal(size=(S, 2))
            mu = theta[:, 1:2]  # independent of T: I(T; y) = 0
            continuous.append(eig.eig_nested(theta[:, 0], mu, 0.5, likelihood="normal", bins=8, seed=seed)[0])
            binary.append(eig.eig_nested((theta[:, 0] > 0).astype(float), mu, 0.5, likelihood="normal", bins=8,
                                         seed=seed)[0])
        print(f"S={S}: true I 0; mean over 10 seeds: continuous T (8 bins) {np.mean(continuous):.4f}, "
              f"binary T {np.mean(binary):.4f}")
    for S in (500, 4000):
        estimates = []
        for seed in range(10):
            x = np.random.default_rng(1000 + seed).normal(size=S)
            estimates.append(eig.eig_nested((x > 0).astype(float), x, 0.5, likelihood="normal", seed=seed)[0])
        print(f"binary T = 1{{x > 0}}, S={S}: exact I {mi_binary(0.5):.4f}, mean {np.mean(estimates):.4f} "
              f"+- {np.std(estimates) / np.sqrt(10):.4f}")


if __name__ == "__main__":
    main()
