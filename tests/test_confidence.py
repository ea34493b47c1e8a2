"""Confidence and abstention: the pure features and model, and the real search + embedder on a
small generated corpus with answerable, similar-but-unanswerable and off-topic questions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bench import logistic
from bench.calibration import ece
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval import confidence
from knowledge.retrieval.confidence import Confidence, assess, features, weighted_share
from knowledge.retrieval.evidence import (
    Evidence,
    PageEvidence,
    ResultTerms,
    TermStat,
    page_evidence,
)
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.search import Retriever
from knowledge.storage.db import make_engine, make_session_factory
from knowledge.storage.schema import upgrade
from knowledge.types import ScoredChunk
from tests.corpus import write_corpus

# More Zephyr pages, so that the corpus has a vocabulary and off-topic words are unseen.
EXTRA_PAGES = {
    "guide/workers.md": (
        "# Workers\n\n## Starting workers\n\nStart a worker with `zephyr work --queue NAME`. "
        "Each worker takes jobs from one queue and runs them one at a time.\n\n"
        "## Concurrency\n\nSet ZEPHYR_CONCURRENCY to run several jobs at once in one worker.\n"
    ),
    "guide/scheduling.md": (
        "# Scheduling jobs\n\n## Delayed jobs\n\nPass `--at 2024-01-01T10:00` to "
        "`zephyr enqueue` to run a job later.\n\n## Recurring jobs\n\nA cron expression in "
        "zephyr.toml makes a job run every hour, day or week.\n"
    ),
    "guide/logging.md": (
        "# Logging\n\nZephyr writes its log to /var/log/zephyr/server.log. Set ZEPHYR_LOG_LEVEL "
        "to debug to see every job as it is claimed and finished.\n"
    ),
    "guide/retries.md": (
        "# Retries\n\nA job that raises an exception is retried three times with exponential "
        "backoff. Set max_retries on the job to change how often.\n"
    ),
}

ANSWERABLE = [
    "Which port does the Zephyr server listen on?",
    "How do I restore a backup?",
    "How can I run several jobs at once in one worker?",
    "How do I make a job run every day?",
    "Where does Zephyr write its log file?",
    "How many times is a failed job retried?",
]
# Zephyr's words, about things its docs never mention.
SIMILAR_UNANSWERABLE = [
    "How do I send Zephyr job results to Kafka?",
    "Can Zephyr workers run inside Kubernetes pods?",
    "Does Zephyr have a Grafana dashboard plugin?",
]
OFF_TOPIC = [
    "What is the best recipe for sourdough bread?",
    "Who painted the ceiling of the Sistine Chapel?",
    "How do I change a flat bicycle tyre?",
]


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Retriever]:
    folder = write_corpus(tmp_path_factory.mktemp("zephyr"))
    for name, text in EXTRA_PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
    engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('db')) / 'teambot.db'}")
    upgrade(engine)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    ingest_folder(sessions, embedder, folder, name="zephyr")
    yield Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name, 384))
    engine.dispose()


def assessed(retriever: Retriever, question: str) -> Confidence:
    results, evidence = retriever.search_with_evidence(question, 4)
    return assess(question, results, evidence)


@pytest.mark.parametrize("question", ANSWERABLE)
def test_answerable_questions_are_answered(retriever: Retriever, question: str) -> None:
    verdict = assessed(retriever, question)
    assert not verdict.abstained, verdict.reasons
    assert verdict.confidence >= confidence.THRESHOLD


@pytest.mark.parametrize("question", SIMILAR_UNANSWERABLE + OFF_TOPIC)
def test_unanswerable_questions_are_refused(retriever: Retriever, question: str) -> None:
    verdict = assessed(retriever, question)
    assert verdict.abstained, verdict.reasons
    assert verdict.reasons[-1].endswith("abstained")


def test_confidence_orders_answerable_above_similar_above_off_topic(retriever: Retriever) -> None:
    def mean(questions: list[str]) -> float:
        return float(np.mean([assessed(retriever, q).confidence for q in questions]))

    answerable, similar, off_topic = mean(ANSWERABLE), mean(SIMILAR_UNANSWERABLE), mean(OFF_TOPIC)
    assert answerable > 0.5 > similar and similar >= off_topic
    every = [assessed(retriever, q).confidence for q in ANSWERABLE + SIMILAR_UNANSWERABLE]
    labels = [True] * len(ANSWERABLE) + [False] * len(SIMILAR_UNANSWERABLE)
    assert logistic.auroc(every, labels) == 1.0


def test_off_topic_words_the_docs_never_use_are_the_reason(retriever: Retriever) -> None:
    verdict = assessed(retriever, "Does Zephyr have a Grafana dashboard plugin?")
    assert verdict.features["unseen"] > 0.3  # grafana, dashboard, plugin: never in the docs
    assert verdict.features["unseen_names"] > 0.1  # Grafana is a name, the others words
    assert any("(grafana)" in reason for reason in verdict.reasons)
    assert assessed(retriever, ANSWERABLE[0]).features["unseen"] == 0.0


def test_search_with_evidence_returns_what_search_returns(retriever: Retriever) -> None:
    question = "How do I encrypt connections?"
    scope = Scope.of(skip_pages=[("zephyr", "guide/network.md")])
    for kwargs in ({}, {"scope": scope}, {"method": "dense"}, {"method": "bm25"}):
        results, evidence = retriever.search_with_evidence(question, 3, **kwargs)  # type: ignore[arg-type]
        plain = retriever.search(question, 3, **kwargs)  # type: ignore[arg-type]
        # The same chunks and scores; cosines agree to float32 rounding (evidence may load
        # more rows, and a bigger matrix product rounds differently).
        assert [(c.chunk_id, c.score) for c in results] == [(c.chunk_id, c.score) for c in plain]
        assert [c.similarity for c in results] == pytest.approx([c.similarity for c in plain])
        assert len(evidence.results) == len(results)
        assert {p.dense_rank for p in evidence.pages} == set(range(1, len(evidence.pages) + 1))
        assert all(p.bm25 > 0 for p in evidence.pages if p.bm25_rank is not None)
    _, filtered = retriever.search_with_evidence(question, 3, scope=scope)
    assert "guide/network.md" not in {p.document_url for p in filtered.pages}
    _, unfiltered = retriever.search_with_evidence(question, 3)
    assert unfiltered.by_dense()[0].document_url == "guide/network.md"
    assert {t.term for t in unfiltered.terms} == {"encrypt", "connect"}


# Pure functions.


def page(url: str, cosine: float, dense: int, bm25: float, bm25_rank: int | None) -> PageEvidence:
    return PageEvidence("docs", url, url, cosine, dense, bm25, bm25_rank)


def chunk(chunk_id: int, url: str, similarity: float) -> ScoredChunk:
    return ScoredChunk(
        chunk_id, 0.5, similarity, "text", ("H",), "", "T", url, "docs", "folder", "/"
    )


def test_page_evidence_ranks_each_method_on_its_own_scores() -> None:
    ranked = page_evidence(
        {("s", "a"): ("A", 0.3, 5.0), ("s", "b"): ("B", 0.6, 0.0), ("s", "c"): ("C", 0.5, 9.0)}
    )
    assert [(p.document_url, p.dense_rank, p.bm25_rank) for p in ranked] == [
        ("b", 1, None),
        ("c", 2, 1),
        ("a", 3, 2),
    ]


def evidence(terms: dict[str, int], held: set[str], headings: set[str] = frozenset()) -> Evidence:
    return Evidence(
        pages=(page("a", 0.62, 1, 7.0, 2), page("b", 0.50, 2, 9.0, 1)),
        terms=tuple(TermStat(t, n) for t, n in terms.items()),
        indexed_passages=1000,
        results=(ResultTerms(1, frozenset(held), frozenset(headings)),),
    )


def test_features_are_scale_free_shares_and_cosines() -> None:
    values = features([chunk(1, "a", 0.62)], evidence({"port": 10, "kafka": 0}, {"port"}))
    assert values["cosine"] == pytest.approx(0.62)
    assert values["cosine_gap"] == pytest.approx(0.12)
    assert values["agree"] == pytest.approx(0.5)  # dense's top page is BM25's second
    # kafka is unseen, so it carries more weight than the common "port".
    assert 0.5 < values["unseen"] < 1 and values["coverage"] == pytest.approx(1 - values["unseen"])
    assert set(values) == set(confidence.FEATURES)


def test_rare_words_are_told_from_everyday_ones_by_the_wordpiece_vocabulary() -> None:
    # Stems, as BM25 indexes them; "file" and "database" are whole pieces, so not rare.
    rare = confidence.rare_terms("Where is the sourdough file? Ask SQLAlchemy's database.")
    assert {"sourdough", "sqlalchemi"} <= rare and not {"file", "databas"} & rare
    e = evidence({"sourdough": 0, "file": 0, "port": 10}, {"port"})
    values = features([chunk(1, "a", 0.62)], e, "Sourdough file port?")
    assert 0 < values["unseen_rare"] < values["unseen"]  # only sourdough counts
    assert values["unseen_specific"] == values["unseen_rare"]  # no name-like word here
    assert values["rarest_held"] == 1.0  # port is the only seen term, and the top holds it
    assert values["agree_top5"] == pytest.approx(2 / 5)  # pages a and b in both top fives
    assert features([chunk(1, "a", 0.62)], e)["unseen_rare"] == 0.0  # no question text


def test_weighted_share_weighs_rare_terms_more() -> None:
    assert weighted_share({"rare": 3.0, "common": 1.0}, frozenset({"rare"})) == 0.75
    assert weighted_share({}, frozenset({"x"})) == 0.0
    e = evidence({"rare": 1, "common": 900}, set())
    assert e.idf(e.terms[0]) > e.idf(e.terms[1]) > 0 and e.idf_of(0) > e.idf(e.terms[0])


def test_more_evidence_means_more_confidence() -> None:
    base = features([chunk(1, "a", 0.62)], evidence({"port": 10, "tls": 5}, {"port"}))
    covered = dict(base, coverage=1.0, heading=1.0)
    unseen = dict(base, unseen=0.8, unseen_names=0.8, coverage=0.2)
    closer = dict(base, cosine=0.8)
    p = confidence.probability
    assert p(covered) > p(base) > p(unseen)
    assert p(closer) > p(base)
    assert 0.0 <= p(dict(base, cosine=-1.0)) < p(dict(base, cosine=1.0)) <= 1.0


def test_no_results_is_a_confident_abstention() -> None:
    verdict = assess("anything", [], evidence({}, set()))
    assert verdict.abstained and verdict.confidence == 0.0 and verdict.reasons


def test_the_verdict_follows_the_threshold() -> None:
    e = evidence({"port": 10}, {"port"}, {"port"})
    results = [chunk(1, "a", 0.62)]
    c = assess("port?", results, e).confidence
    assert not assess("port?", results, e, threshold=c - 0.01).abstained
    high = assess("port?", results, e, threshold=c + 0.01)
    assert high.abstained and "abstained" in high.reasons[-1]


def test_logistic_fit_recovers_a_known_model_and_auroc_counts_pairs() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))).astype(float)
    intercept, coefficients = logistic.fit(x, y, balanced=False)
    assert intercept == pytest.approx(0.5, abs=0.15)
    assert coefficients == pytest.approx([2.0, -1.0], abs=0.15)
    assert logistic.auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == 0.75
    assert logistic.auroc([0.5, 0.5], [True, False]) == 0.5


def test_calibration_error_weighs_each_bins_gap_by_its_share_of_rows() -> None:
    # Bin 0.1–0.2: mean 0.15, 1 of 2 supported → gap 0.35; bin 0.9–1.0: mean 0.95, 2 of 2 →
    # gap 0.05. Each bin holds half the rows: (0.35 + 0.05) / 2.
    scores = np.array([0.1, 0.2 - 1e-9, 0.9, 1.0])
    labels = np.array([1.0, 0.0, 1.0, 1.0])
    assert ece(scores, labels) == pytest.approx(0.2)
    assert ece(np.array([0.25, 0.25]), np.array([1.0, 0.0])) == pytest.approx(0.25)
