"""A change applied to a running process's indexes (issue #23 item 2) gives what a full build
gives: the same dense and BM25 rankings, ids and order; and a search racing a writer sees the
old page or the new one, whole, never both or neither."""

import threading
from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval import index as index_module
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.lexical import STOPWORDS
from knowledge.retrieval.postings import Postings, Vocabulary, bm25_index
from knowledge.retrieval.search import Retriever
from knowledge.storage.documents import Chunk
from tests.corpus import write_corpus

QUESTIONS = [
    "Which port does the server listen on?",
    "How do I restore a backup?",
    "What Python version is required?",
    "My job never runs, it stays queued",
    "How do I encrypt connections?",
    "ZEPHYR_PORT TLS certificate",
    "Prometheus metrics exported",
    "lock file E4512",
]


def fresh(sessions: sessionmaker[Session], embedder: Embedder) -> Retriever:
    return Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name, 384))


def rankings(retriever: Retriever, embedder: Embedder) -> list[object]:
    """Every chunk ranked by each method, for every question: ids and scores, in order."""
    published = retriever._sync()
    n = published.vectors.chunks
    out: list[object] = []
    for question in QUESTIONS:
        vector = embedder.embed_query(question)
        dense = retriever._index.search(vector, n, published.vectors)
        lexical = retriever._lexical.search(question, n, published.lexical)
        out.append(([c for c, _ in dense], np.round([s for _, s in dense], 5).tolist()))
        out.append(lexical)
        hybrid = retriever.search(question, 6, per_page=False)
        out.append([(r.chunk_id, round(r.score, 6), r.text, r.document_title) for r in hybrid])
    return out


def applied(retriever: Retriever) -> bool:
    """Whether the last change was applied as a delta (not a rebuild of the vector index)."""
    return retriever._published.vectors.delta is not None


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "zephyr-docs")


def test_add_change_and_delete_give_what_a_full_build_gives(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    ingest_folder(sessions, embedder, docs, name="zephyr")
    running = fresh(sessions, embedder)
    rankings(running, embedder)
    main = running._published.vectors.main

    steps = [
        lambda: (docs / "metrics.md").write_text(
            "# Metrics\n\n## Prometheus\n\nZephyr exports Prometheus metrics on /metrics.\n\n"
            "## Grafana\n\nImport the dashboard from /etc/zephyr/grafana.json.\n"
        ),  # a new page: it gets the highest chunk ids
        lambda: (docs / "metrics.md").write_text(
            "# Metrics\n\n## Prometheus\n\nMetrics are on port 9100 at /metrics, as text.\n"
        ),  # the page with the highest ids changes: SQLite gives its new chunks the same ids
        lambda: (docs / "install.md").write_text(
            "# Installing Zephyr\n\n## Requirements\n\nZephyr needs Python 3.12 now.\n"
        ),  # a page in the middle changes
        lambda: (docs / "faq.txt").unlink(),  # a page goes
    ]
    for step in steps:
        step()
        ingest_folder(sessions, embedder, docs, name="zephyr")

        assert rankings(running, embedder) == rankings(fresh(sessions, embedder), embedder)
        assert applied(running) and running._published.vectors.main is main
        with sessions() as session:
            assert running.indexed_chunks() == session.scalar(select(func.count(Chunk.id)))


def test_a_full_delta_is_merged_by_a_rebuild_with_the_same_results(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "DELTA_MIN_LABELS", 0)
    monkeypatch.setattr(index_module, "DELTA_MAX_SHARE", 0.0)
    ingest_folder(sessions, embedder, docs, name="zephyr")
    running = fresh(sessions, embedder)
    rankings(running, embedder)
    main = running._published.vectors.main

    (docs / "faq.txt").write_text("Zephyr FAQ\n\nMy job never runs: restart the scheduler.\n")
    ingest_folder(sessions, embedder, docs, name="zephyr")

    assert rankings(running, embedder) == rankings(fresh(sessions, embedder), embedder)
    assert running._published.vectors.main is not main  # rebuilt, not applied


def test_the_bm25_index_built_from_postings_is_the_one_bm25s_builds(docs: Path) -> None:
    texts = [p.read_text() for p in sorted(docs.rglob("*")) if p.is_file()] * 3
    texts += [t[: len(t) // 2] for t in texts]
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25()
    reference.index(bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=stemmer,
                                   show_progress=False), show_progress=False)  # fmt: skip
    vocabulary = Vocabulary()
    tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=stemmer, return_ids=False,
                            show_progress=False)  # fmt: skip
    ids = list(range(len(texts)))
    postings = Postings.of(ids, [vocabulary.encode(t) for t in tokens])
    # built whole, and built by removing and adding half of the chunks
    half = np.asarray(ids[::2], dtype=np.int64)
    rebuilt = postings.without(half).adding(
        Postings.of(half.tolist(), [vocabulary.encode(tokens[i]) for i in half])
    )
    for built in (bm25_index(postings, vocabulary), bm25_index(rebuilt, vocabulary)):
        assert built is not None
        for term, column in reference.vocab_dict.items():
            if term == "":
                continue
            a, b = reference.scores["indptr"][column : column + 2]
            c, d = built.scores["indptr"][built.vocab_dict[term] : built.vocab_dict[term] + 2]
            assert np.array_equal(reference.scores["indices"][a:b], built.scores["indices"][c:d])
            assert np.array_equal(reference.scores["data"][a:b], built.scores["data"][c:d])


FLIP_SECTIONS = 4


def flip_page(version: str) -> str:
    sections = [
        f"## Part {i}\n\nfliptoken {version}token paragraph {i} about the queue, the workers "
        f"and how version {version} of this page describes them in some detail.\n"
        for i in range(FLIP_SECTIONS)
    ]
    return "# Flip\n\n" + "\n".join(sections)


def test_a_search_racing_a_writer_sees_one_version_of_a_page_whole(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    (docs / "flip.md").write_text(flip_page("alpha"))
    ingest_folder(sessions, embedder, docs, name="zephyr")
    retriever = fresh(sessions, embedder)
    expected = {
        v: len(retriever.search(f"{v}token", 50, method="bm25", per_page=False)) for v in ("alpha",)
    }
    assert expected["alpha"] >= 2
    stop = threading.Event()
    seen: list[tuple[int, frozenset[str]]] = []
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            found = retriever.search("fliptoken", 50, method="bm25", per_page=False)
            ids = [r.chunk_id for r in found]
            if len(ids) != len(set(ids)):
                problems.append(f"duplicated chunk: {ids}")
            versions = frozenset(
                v for r in found for v in ("alpha", "beta") if f"{v}token" in r.text
            )
            seen.append((len(found), versions))
            dense = retriever.search("fliptoken paragraph about the queue", 50, per_page=False)
            flip = [r for r in dense if r.document_url == "flip.md"]
            if len({r.chunk_id for r in flip}) != len(flip):
                problems.append("duplicated chunk in hybrid results")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for round_ in range(6):
            (docs / "flip.md").write_text(flip_page("beta" if round_ % 2 == 0 else "alpha"))
            ingest_folder(sessions, embedder, docs, name="zephyr")
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert problems == []
    assert seen and {versions for _, versions in seen} <= {
        frozenset({"alpha"}),
        frozenset({"beta"}),
    }
    assert {count for count, _ in seen} == {expected["alpha"]}
