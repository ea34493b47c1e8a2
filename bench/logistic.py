"""A small logistic regression and AUROC, in numpy, for fitting knowledge/retrieval/confidence.py.

Why not scikit-learn: it is not a dependency, and a model of three or four coefficients
needs twenty lines of Newton's method, which anyone can read and re-run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEWTON_STEPS = 50
# A little L2 on the coefficients (not the intercept): keeps them finite when the classes
# separate, and barely moves them otherwise.
L2 = 1e-2


def fit(x: np.ndarray, y: np.ndarray, *, balanced: bool = True) -> tuple[float, np.ndarray]:
    """(intercept, coefficients) of a logistic regression of ``y`` (0/1) on ``x`` (n × d).

    ``balanced`` weighs each class to half the total, so the fitted probability assumes
    even odds of a question being answerable (the dev set's own mix is an accident of how
    many FAQ headings each product has)."""
    n, d = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    weight = np.ones(n)
    if balanced:
        positives = max(int(y.sum()), 1)
        negatives = max(n - int(y.sum()), 1)
        weight = np.where(y == 1, n / (2 * positives), n / (2 * negatives))
    penalty = np.diag([0.0] + [L2] * d)
    beta = np.zeros(d + 1)
    for _ in range(NEWTON_STEPS):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (weight * (p - y)) + penalty @ beta
        hessian = design.T @ (design * (weight * p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(beta[0]), beta[1:]


def predict(intercept: float, coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(intercept + x @ coefficients)))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The probability that a random positive scores above a random negative (ties count
    half): the Mann–Whitney U statistic over both class sizes. NaN with one class only."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    positives, negatives = s[y], s[~y]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    combined = np.concatenate([positives, negatives])
    for value in np.unique(combined):  # average ranks of ties
        tied = combined == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u / (len(positives) * len(negatives)))
