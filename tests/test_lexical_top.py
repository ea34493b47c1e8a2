"""BM25's top-k: the k best positive scores, best first, equal scores in passage order, also
when they straddle the cut (near-duplicate passages make such ties the usual case)."""

import numpy as np
import pytest

from knowledge.retrieval.lexical import _top


def reference(scores: np.ndarray, k: int) -> list[int]:
    """A full stable sort: best score first, then passage order; zeros never returned."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order if scores[i] > 0][:k]


@pytest.mark.parametrize("seed", range(20))
def test_ties_at_the_cut_are_broken_by_passage_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    # Few distinct values, many zeros: most cuts fall inside a run of equal scores.
    scores = rng.choice([0.0, 0.0, 0.0, 1.5, 2.25, 3.0, 7.5], size=n).astype(np.float32)
    for k in (1, 5, 50, n, n + 10):
        assert _top(scores, k).tolist() == reference(scores, k), (n, k)


def test_distinct_scores_come_best_first() -> None:
    scores = np.array([0.5, 0.0, 2.0, 1.0, 0.0, 3.0], dtype=np.float32)
    assert _top(scores, 3).tolist() == [5, 2, 3]
    assert _top(scores, 10).tolist() == [5, 2, 3, 0]


def test_all_tied_takes_the_first_passages() -> None:
    scores = np.full(100_000, 1.25, dtype=np.float32)
    assert _top(scores, 4).tolist() == [0, 1, 2, 3]


def test_no_positive_score_finds_nothing() -> None:
    assert _top(np.zeros(10, dtype=np.float32), 3).tolist() == []
    assert _top(np.zeros(0, dtype=np.float32), 3).tolist() == []
