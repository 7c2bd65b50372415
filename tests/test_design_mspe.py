"""The MSPE-style baseline (design.mspe): fits recover a known law, the score is V-optimal within
a mode, and disagreeing modes add the inter-mode term."""

import numpy as np
import pytest

from bayes_scaling.design import mspe

TRUTH = np.array([np.log(1.8), np.log(480.0), np.log(2000.0), 0.34, 0.37])


def runs(n=30, seed=0):
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(7, 9, n), 10 ** rng.uniform(9, 11, n)
    return N, D, mspe.loss_and_jacobian(TRUTH, N, D)[0] * np.exp(0.002 * rng.standard_normal(n))


def test_fit_recovers_the_law_and_scores_are_v_optimal_within_one_mode():
    N, D, y = runs()
    Nt, Dt = np.array([3e9, 1e10]), np.array([3e11, 1e11])
    modes = mspe.fit_modes(N, D, y, Nt, Dt, seed=1)
    best = modes.p[np.argmax(modes.w)]
    assert np.exp(best[0]) == pytest.approx(1.8, rel=0.05)
    assert modes.predict(Nt, Dt) == pytest.approx(mspe.loss_and_jacobian(TRUTH, Nt, Dt)[0], rel=0.01)
    one = mspe.Modes(modes.p[:1], np.ones(1), modes.cov[:1], modes.s2)
    Nc, Dc = np.array([1e7, 2e9]), np.array([1e9, 2e11])
    _, Jc = mspe.loss_and_jacobian(one.p[0], Nc, Dc)
    _, Jt = mspe.loss_and_jacobian(one.p[0], Nt, Dt)
    S = one.cov[0]
    expected = np.sum((Jt @ S @ Jc.T) ** 2, axis=0) / (one.s2 + np.einsum("ci,ij,cj->c", Jc, S, Jc))
    np.testing.assert_allclose(mspe.scores(one, Nc, Dc, Nt, Dt), expected, rtol=1e-10)


def test_disagreeing_modes_add_the_inter_mode_term():
    N, D, y = runs(30, seed=3)
    Nt, Dt = np.array([3e9]), np.array([3e11])
    modes = mspe.fit_modes(N, D, y, Nt, Dt, seed=0)
    other = modes.p[0] + np.array([0.15, 0.3, -0.3, 0.03, -0.03])  # a mode 0.3 higher at the target
    two = mspe.Modes(np.stack([modes.p[0], other]), np.array([0.5, 0.5]), np.stack([modes.cov[0]] * 2), modes.s2)
    intra_only = sum(0.5 * mspe.scores(mspe.Modes(two.p[[k]], np.ones(1), two.cov[[k]], two.s2), Nt * 0.5, Dt * 0.5,
                                       Nt, Dt) for k in range(2))
    both = mspe.scores(two, Nt * 0.5, Dt * 0.5, Nt, Dt)
    assert both[0] > intra_only[0]  # a run near the target also settles which mode is right
