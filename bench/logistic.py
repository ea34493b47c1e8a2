"""A small logistic regression in numpy, for fitting knowledge/retrieval/confidence.py (AUROC is
knowledge.evaluation.answerability's, the one `teambot eval --answerability` prints).

Why not scikit-learn: it is not a dependency, and a model of three or four coefficients
needs twenty lines of Newton's method, which anyone can read and re-run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from knowledge.evaluation import answerability

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
    """AUROC as `teambot eval --answerability` computes it; NaN with one class only."""
    value = answerability.auroc([float(s) for s in scores], [bool(y) for y in labels])
    return float("nan") if value is None else value
