"""Does a confidence of c mean the docs support about c of such answers? Round 7 of #18.

    python -m bench.calibration --db /tmp/conf/django.db             # dev: C0 against C1 (CV)
    python -m bench.calibration --db /tmp/conf/django.db --heldout   # + held-out, ONCE

Uses bench.answerability's cached rows (searched there; ``--refresh`` searches again). The
pre-registration, variants and rule are in bench/answerability.py's docstring, round 7:
C0 is the product's confidence as it is; C1 rescales its linear score by Platt scaling,
fitted without class weights on the dev rows of both modes to the label ``supported``
(answerable and a gold page among the top 4). A logistic model rescaled by σ(a·z + b) is
still a logistic model, so adopting C1 only changes knowledge/retrieval/confidence.py's
INTERCEPT, COEFFICIENTS and THRESHOLD, which this prints.
"""

from __future__ import annotations

import math

import numpy as np

from bench import logistic
from bench.answerability import (
    FOLDS,
    MODES,
    Row,
    fold_of,
    index_parser,
    matrix,
    part_rows,
    scores_of,
)
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.retrieval import confidence

BINS = 10


def linear(rows: list[Row]) -> np.ndarray:
    """The product model's linear score z (its confidence, ``scores_of``, is σ(z))."""
    x = matrix(rows, confidence.MODEL_FEATURES)
    return confidence.INTERCEPT + x @ np.array(confidence.COEFFICIENTS)


def supported(rows: list[Row]) -> np.ndarray:
    return np.array([row.supported for row in rows], dtype=float)


def platt(rows: list[Row]) -> tuple[float, float]:
    """(a, b) of σ(a·z + b) fitted to ``supported`` without class weights."""
    b, a = logistic.fit(linear(rows)[:, None], supported(rows), balanced=False)
    return float(a[0]), b


def rescaled(a: float, b: float, z: np.ndarray) -> np.ndarray:
    """C1's confidence σ(a·z + b) of linear scores ``z``."""
    return logistic.predict(b, np.array([a]), z[:, None])


def bin_of(scores: np.ndarray) -> np.ndarray:
    """Each score's bin among BINS equal-width bins of [0, 1]."""
    return np.clip((scores * BINS).astype(int), 0, BINS - 1)


def cross_validated(rows: list[Row]) -> np.ndarray:
    """C1's confidence of each row, from (a, b) fitted on the other folds."""
    z, folds = linear(rows), np.array([fold_of(row) for row in rows])
    scores = np.zeros(len(rows))
    for fold in range(FOLDS):
        test = folds == fold
        a, b = platt([row for row, t in zip(rows, test, strict=True) if not t])
        scores[test] = rescaled(a, b, z[test])
    return scores


def ece(scores: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error over BINS equal-width bins, weighted by the bins' sizes."""
    which = bin_of(scores)
    return float(
        sum(
            abs(scores[which == b].mean() - labels[which == b].mean()) * (which == b).mean()
            for b in range(BINS)
            if (which == b).any()
        )
    )


def line(name: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> str:
    answers = scores >= threshold
    brier = float(((scores - labels) ** 2).mean())
    return (
        f"| {name} | {ece(scores, labels):.3f} | {brier:.3f} | {scores[answers].mean():.2f} | "
        f"{labels[answers].mean():.2f} |"
    )


def table(rows: list[Row], title: str, c1: np.ndarray, threshold: float) -> None:
    print(f"\n### {title}\n")
    print("| mode | variant | ECE | Brier | answers' mean confidence | answers supported |")
    print("|---|---|---|---|---|---|")
    c0 = scores_of(rows)
    for mode in MODES:
        mask = np.array([row.mode == mode for row in rows])
        labels = supported(rows)[mask]
        print(f"| {mode} " + line("C0", c0[mask], labels, confidence.THRESHOLD))
        print(f"| {mode} " + line("C1", c1[mask], labels, threshold))
    print("\n| C1 confidence | n | mean | supported |\n|---|---|---|---|")
    labels = supported(rows)
    which = bin_of(c1)
    for b in range(BINS):
        mask = which == b
        if mask.any():
            print(f"| {b / BINS:.1f}–{(b + 1) / BINS:.1f} | {int(mask.sum())} | "
                  f"{c1[mask].mean():.2f} | {labels[mask].mean():.2f} |")  # fmt: skip


def main() -> None:
    args = index_parser(__doc__).parse_args()
    runtime = Runtime(Settings(database_url=f"sqlite:///{args.db}", embedding_backend=args.backend))
    dev = part_rows(runtime, args.db, "dev", args.refresh)
    a, b = platt(dev)
    z0 = math.log(confidence.THRESHOLD / (1 - confidence.THRESHOLD))
    threshold = math.floor(rescaled(a, b, np.array([z0]))[0] * 100) / 100
    z = linear(dev)
    changed = int(((z >= z0) != (rescaled(a, b, z) >= threshold)).sum())
    print(f"C1 on all dev rows: a = {a:.4f}, b = {b:.4f}; threshold {confidence.THRESHOLD:.2f} "
          f"→ {threshold:.2f}; dev decisions changed by the rounding: {changed}")  # fmt: skip
    print("\nPaste into knowledge/retrieval/confidence.py if C1 is adopted:\n")
    print(f"INTERCEPT = {a * confidence.INTERCEPT + b:.4f}")
    coefficients = ", ".join(f"{a * c:.4f}" for c in confidence.COEFFICIENTS)
    print(f"COEFFICIENTS: tuple[float, ...] = ({coefficients},)")
    print(f"THRESHOLD = {threshold:.2f}")
    table(dev, "dev (C1 by 5-fold CV)", cross_validated(dev), threshold)
    if args.heldout:
        held = part_rows(runtime, args.db, "heldout", args.refresh)
        c1 = rescaled(a, b, linear(held))
        table(held, "held-out (C1 fitted on all dev rows)", c1, threshold)


if __name__ == "__main__":
    main()
