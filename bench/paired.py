"""The paired bootstrap every bench uses to say whether a difference is more than noise."""

from __future__ import annotations

import random

BOOTSTRAP_ROUNDS = 5000


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of a − b per question (or pair), with a paired bootstrap 95% interval; seeded, so
    a rerun prints the same interval."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    pick = random.Random(0).choices
    means = sorted(sum(pick(diffs, k=len(diffs))) / len(diffs) for _ in range(BOOTSTRAP_ROUNDS))
    low, high = means[int(0.025 * BOOTSTRAP_ROUNDS)], means[int(0.975 * BOOTSTRAP_ROUNDS) - 1]
    return sum(diffs) / len(diffs), low, high
