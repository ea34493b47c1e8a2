"""A search's scope is applied before ranking (issue #23): each method ranks only the chunks of
the chosen sources less the skipped sources and pages, and a search returns what the
post-filter path returns when every ranking is filtered to the same eligible chunks first
(ids, order and scores), for exact and HNSW indexes, every method, and both forms a selection
takes (the eligible labels, or the others when they are fewer); the cached selection follows
index changes."""

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval import prefilter
from knowledge.retrieval.index import WINDOW_BIT, VectorIndex, VectorState
from knowledge.retrieval.lexical import LexicalState
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.search import METHODS, Method, Retriever
from knowledge.storage.db import make_engine, make_session_factory
from knowledge.storage.documents import Chunk, Document, Source
from knowledge.storage.schema import upgrade
from tests.conftest import sqlite_url

SOURCES = ("alpha", "beta", "gamma")
VOCABULARY = (
    "backup restore port listen server cluster replica shard index query cache token "
    "config scheduler queue worker job retry timeout latency metric dashboard alert log "
    "certificate encrypt tls proxy route upstream bucket snapshot volume disk memory cpu "
    "thread pool socket stream batch import export schema migrate rollback deploy release "
    "version upgrade plugin module hook event trigger webhook secret vault password user "
    "role group permission audit policy quota limit rate throttle health probe restart"
)
WORDS = VOCABULARY.split()
QUESTIONS = [
    "How do I restore a backup of a replica?",
    "Which port does the proxy listen on?",
    "scheduler queue retry timeout",
    "rotate the vault secret and password",
    "upgrade plugin version rollback",
]
K = 4
BETA = Scope.of({"beta"})


def write_source(folder: Path, seed: int, pages: int = 10) -> Path:
    """Pages of generated prose (distinct per seed), four sections each."""
    rng = random.Random(seed)
    for p in range(pages):
        sections = []
        for s in range(4):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60)))
            sections.append(f"## Part {s} {rng.choice(WORDS)}\n\n{words.capitalize()}.\n")
        path = folder / f"page{p}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Page {p} {rng.choice(WORDS)}\n\n" + "\n".join(sections))
    return folder


def ingest_sources(sessions: sessionmaker[Session], embedder: Embedder, root: Path) -> dict:
    out = {}
    for seed, name in enumerate(SOURCES):
        out[name] = write_source(root / name, seed)
        ingest_folder(sessions, embedder, out[name], name=name)
    return out


@pytest.fixture(scope="module")
def shared(
    embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """The three sources ingested once, for the tests that only search."""
    root = tmp_path_factory.mktemp("prefilter")
    engine = make_engine(sqlite_url(root))
    upgrade(engine)
    sessions = make_session_factory(engine)
    ingest_sources(sessions, embedder, root)
    yield sessions
    engine.dispose()


def retriever(sessions: sessionmaker[Session], embedder: Embedder, hnsw: bool) -> Retriever:
    index = VectorIndex(sessions, embedder.model_name, 384, hnsw_min_chunks=1 if hnsw else 10**9)
    return Retriever(sessions, embedder, index)


def chunks_of(sessions: sessionmaker[Session], scope: Scope) -> set[int]:
    """The eligible chunk ids, read from the database (not from the code under test)."""
    skipped = scope.skip_pages | scope.pages_once
    with sessions() as session:
        rows = session.execute(
            select(Chunk.id, Source.name, Document.url)
            .join(Document, Chunk.document_id == Document.id)
            .join(Source, Document.source_id == Source.id)
        ).all()
    return {
        chunk_id for chunk_id, name, url in rows
        if (scope.sources is None or name in scope.sources)
        and name not in scope.skip_sources and (name, url) not in skipped
    }  # fmt: skip


# Scopes of every shape: sources chosen (a third: the eligible labels are listed; two
# thirds: the others are), a source skipped, pages skipped for the revision or for one search.
SCOPES = {
    "one source": Scope.of({"beta"}),
    "two sources": Scope.of({"alpha", "gamma"}),
    "a source skipped": Scope.of(skip_sources={"alpha"}),
    "pages skipped": Scope.of(skip_pages=[("beta", "page1.md"), ("gamma", "page2.md")]),
    "pages once": Scope.of(pages_once=[("alpha", "page0.md"), ("beta", "page3.md")]),
    "all of it": Scope.of({"gamma", "beta"}, skip_sources={"beta"},
                          skip_pages=[("gamma", "page4.md")], pages_once=[("gamma", "page5.md")]),
}  # fmt: skip


@contextmanager
def post_filtered(search: Retriever, eligible: set[int]) -> Iterator[None]:
    """The post-filter path over ``eligible``: each method ranks every chunk, the others are
    dropped, and the ranking is cut where the method would cut it."""
    dense, lexical = search._index.search, search._lexical.search
    everything = 10**6

    def dense_filtered(
        vector: np.ndarray, k: int, state: VectorState | None = None, only: object = None
    ) -> list[tuple[int, float]]:
        assert only is None
        return [(c, s) for c, s in dense(vector, everything, state) if c in eligible][:k]

    def lexical_filtered(
        query: str, k: int, state: LexicalState | None = None, only: object = None
    ) -> list[tuple[int, float]]:
        assert only is None
        return [(c, s) for c, s in lexical(query, everything, state) if c in eligible][:k]

    search._index.search, search._lexical.search = dense_filtered, lexical_filtered  # type: ignore[method-assign]
    try:
        yield
    finally:
        del search._index.search, search._lexical.search


def ranked(search: Retriever, method: Method, scope: Scope | None) -> list[object]:
    out: list[object] = []
    for question in QUESTIONS:
        for per_page in (True, False):
            found = search.search(question, K, method=method, scope=scope, per_page=per_page)
            out.append([(r.chunk_id, round(r.score, 6), r.source_name) for r in found])
    return out


@pytest.mark.parametrize("hnsw", [False, True], ids=["flat", "hnsw"])
def test_a_scope_ranks_what_the_post_filter_path_ranks_over_the_same_chunks(
    shared: sessionmaker[Session], embedder: Embedder, hnsw: bool
) -> None:
    sessions = shared
    search = retriever(sessions, embedder, hnsw)
    assert search.indexed_chunks() == 120  # 40 a source: more than a ranking takes (50)
    assert search._index.kind == ("hnsw" if hnsw else "flat")
    for name, scope in SCOPES.items():
        assert scope is not None
        eligible = chunks_of(sessions, scope)
        for method in METHODS:
            prefiltered = ranked(search, method, scope)
            with post_filtered(search, eligible):
                expected = ranked(search, method, None)
            assert prefiltered == expected, (method, name)
            assert all(len(r) == K for r in prefiltered)  # enough eligible chunks for every k
            assert {c for r in prefiltered for c, _, _ in r} <= eligible


def test_dense_and_bm25_rank_only_eligible_chunks_below_the_top_of_the_others(
    shared: sessionmaker[Session], embedder: Embedder
) -> None:
    """Every eligible chunk is reachable, however far below the others it ranks."""
    sessions = shared
    search = retriever(sessions, embedder, hnsw=False)
    published = search._sync()
    scope = Scope.of({"gamma"}, pages_once=[("gamma", "page0.md")])
    assert scope is not None
    only = search._eligible.filter(published.stamp, scope, published.lexical, published.vectors)
    eligible = chunks_of(sessions, scope)
    vector = embedder.embed_query(QUESTIONS[0])
    dense = search._index.search(vector, 10**6, published.vectors, only)
    assert {c for c, _ in dense} == eligible
    everything = search._index.search(vector, 10**6, published.vectors)
    assert dense == [(c, s) for c, s in everything if c in eligible]
    lexical = search._lexical.search(QUESTIONS[2], 10**6, published.lexical, only)
    assert lexical and {c for c, _ in lexical} <= eligible
    full = search._lexical.search(QUESTIONS[2], 10**6, published.lexical)
    assert lexical == [(c, s) for c, s in full if c in eligible]


@pytest.mark.parametrize("sources", [set(), {"nobody"}], ids=["empty", "unknown"])
def test_a_source_set_without_chunks_finds_nothing(
    shared: sessionmaker[Session], embedder: Embedder, sources: set[str]
) -> None:
    search = retriever(shared, embedder, hnsw=True)
    for method in METHODS:
        assert search.search(QUESTIONS[0], K, method=method, scope=Scope.of(sources)) == []
        results, evidence = search.search_with_evidence(QUESTIONS[0], K, scope=Scope.of(sources))
        assert results == [] and evidence.pages == ()
    assert search.search(QUESTIONS[0], K)  # the same index finds things unfiltered


def test_one_source_name_given_as_a_string_is_that_source_not_its_letters(
    shared: sessionmaker[Session], embedder: Embedder
) -> None:
    search = retriever(shared, embedder, hnsw=False)
    found = search.search(QUESTIONS[1], K, scope=Scope.of("beta"))
    assert found == search.search(QUESTIONS[1], K, scope=Scope.of({"beta"}))
    assert {r.source_name for r in found} == {"beta"}


def test_an_index_change_moves_the_cached_selection(
    sessions: sessionmaker[Session], embedder: Embedder, tmp_path: Path
) -> None:
    folders = ingest_sources(sessions, embedder, tmp_path)
    search = retriever(sessions, embedder, hnsw=False)
    question = "quokka wombat migration"
    before = ranked(search, "bm25", BETA)
    assert not any("quokka" in r.text for r in search.search(question, K, scope=BETA))

    # A new beta page and a new alpha page with the same rare words; a beta page goes.
    text = "# Quokka\n\n## Wombat\n\nThe quokka wombat migration runs nightly.\n"
    (folders["beta"] / "quokka.md").write_text(text)
    (folders["alpha"] / "quokka.md").write_text(text)
    (folders["beta"] / "page0.md").unlink()
    for name in ("alpha", "beta"):
        ingest_folder(sessions, embedder, folders[name], name=name)

    for method in METHODS:
        found = search.search(question, K, method=method, scope=BETA)
        assert {r.source_name for r in found} == {"beta"}, method
        assert any("quokka" in r.text for r in found), method
        assert not any(r.document_url.endswith("page0.md") for r in found), method
    assert search._published.vectors.delta is not None  # applied as a change, not rebuilt
    assert ranked(search, "bm25", BETA) != before
    fresh = retriever(sessions, embedder, hnsw=False)
    for method in METHODS:
        assert ranked(search, method, BETA) == ranked(fresh, method, BETA), method


def test_a_small_scope_of_an_hnsw_index_searches_an_exact_index_of_its_own(
    shared: sessionmaker[Session], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph walk that may stop at few of its nodes visits most of the graph; a scope of
    few vectors is searched exactly instead, and finds what the filtered walk finds."""
    sessions = shared
    graph = retriever(sessions, embedder, hnsw=True)
    published = graph._sync()
    beta = chunks_of(sessions, Scope(frozenset({"beta"})))
    small = graph._eligible.filter(published.stamp, BETA, published.lexical, published.vectors)
    assert small.exact is not None
    held = set(faiss_labels(small.exact))
    assert {label & ~WINDOW_BIT for label in held} == beta
    assert len(held) == len(beta) * 2 - 10  # each chunk, and a window but on each last one
    wide = Scope.of({"alpha", "gamma"})
    assert wide is not None
    assert graph._eligible.filter(published.stamp, wide, published.lexical,
                                  published.vectors).exact is None  # fmt: skip
    exact = ranked(graph, "dense", BETA)

    monkeypatch.setattr(prefilter, "EXACT_MAX_VECTORS", 10)
    walked = retriever(sessions, embedder, hnsw=True)
    state = walked._sync()
    assert walked._eligible.filter(state.stamp, BETA, state.lexical, state.vectors).exact is None
    assert ranked(walked, "dense", BETA) == exact
    flat = retriever(sessions, embedder, hnsw=False)
    state = flat._sync()
    assert flat._eligible.filter(state.stamp, BETA, state.lexical, state.vectors).exact is None


def faiss_labels(index: faiss.IndexIDMap2) -> list[int]:
    return faiss.vector_to_array(index.id_map).tolist()


def test_a_search_of_an_older_revision_never_gets_a_newer_revisions_selection(
    sessions: sessionmaker[Session], embedder: Embedder, tmp_path: Path
) -> None:
    """Two threads on two revisions: the one still on the older revision must build its own
    selection, not take the one the other cached for the newer revision."""
    folders = ingest_sources(sessions, embedder, tmp_path)
    search = retriever(sessions, embedder, hnsw=False)
    old = search._sync()
    (folders["beta"] / "extra.md").write_text("# Extra\n\n## More\n\nA new page of beta.\n")
    ingest_folder(sessions, embedder, folders["beta"], name="beta")
    search._revisions.stamp = lambda: "moved"  # type: ignore[method-assign]
    new = search._sync()
    assert len(new.lexical.postings) > len(old.lexical.postings)

    cache = prefilter.EligibleCache()
    old_table = cache._page_table(old.stamp, old.lexical)  # thread A, then B overtakes it:
    cache.filter(new.stamp, BETA, new.lexical, new.vectors)
    assert BETA is not None
    found = cache._eligible(old.stamp, BETA, old.lexical, old_table, old.vectors)
    assert len(found.passages) == len(old.lexical.postings)
    assert len(found) == len(chunks_of(sessions, BETA)) - 1  # without the new page's chunk
