"""The per-question path (issue #23): no database work that does not depend on the question.

The index revision is read at most once per interval (counted with a fake clock, not timed),
a change committed by this process is searchable at once, and a search reads nothing else
from the database: passages and vectors come from memory.
"""

from pathlib import Path

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.revision import RevisionWatch
from knowledge.retrieval.search import Retriever
from knowledge.storage.documents import IndexState

QUESTION = "Which port does the server listen on?"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Statements:
    """Every SQL statement the engine runs, as text."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.seen: list[str] = []
        event.listen(sessions.kw["bind"], "before_cursor_execute", self._record)

    def _record(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.seen.append(statement)

    def revision_reads(self) -> int:
        selects = [s for s in self.seen if s.lstrip().upper().startswith("SELECT")]
        return sum("index_state" in s for s in selects)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def retriever(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path, clock: Clock
) -> Retriever:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    watch = RevisionWatch(sessions, interval=1.0, clock=clock)
    index = VectorIndex(sessions, embedder.model_name, 384, revisions=watch)
    return Retriever(sessions, embedder, index)


def other_process_bumps_the_revision(sessions: sessionmaker[Session]) -> None:
    """A commit that moves the revision without this process's ORM session noticing."""
    with sessions.kw["bind"].begin() as connection:
        connection.execute(update(IndexState).values(revision=IndexState.revision + 1))


def test_the_revision_is_read_once_per_interval_however_many_questions(
    retriever: Retriever, sessions: sessionmaker[Session], clock: Clock
) -> None:
    retriever.search(QUESTION, k=3)  # builds the indexes
    statements = Statements(sessions)

    for _ in range(50):
        retriever.search(QUESTION, k=3)
        retriever.search_with_evidence(QUESTION, k=3, scope=Scope.of(["zephyr"]))
        clock.now += 0.009  # 100 searches within 0.45 s
    assert statements.revision_reads() == 0

    clock.now += 1.0
    for _ in range(20):
        retriever.search(QUESTION, k=3)
    assert statements.revision_reads() == 1
    assert retriever._revisions.reads == 2  # the build's read, and this one


def test_a_search_reads_nothing_else_from_the_database(
    retriever: Retriever, sessions: sessionmaker[Session], clock: Clock
) -> None:
    retriever.search(QUESTION, k=3)
    statements = Statements(sessions)

    for method in ("hybrid", "dense", "bm25"):
        retriever.search(QUESTION, k=4, method=method, scope=Scope.of(["zephyr"]))  # type: ignore[arg-type]
        retriever.search_with_evidence(QUESTION, k=4, method=method)  # type: ignore[arg-type]

    assert statements.seen == []


def test_another_process_change_is_seen_after_the_interval(
    retriever: Retriever, sessions: sessionmaker[Session], clock: Clock
) -> None:
    retriever.search(QUESTION, k=3)
    stamp = retriever._index.stamp
    other_process_bumps_the_revision(sessions)

    retriever.search(QUESTION, k=3)
    assert retriever._index.stamp == stamp  # within the interval: the cached revision

    clock.now += 1.0
    retriever.search(QUESTION, k=3)
    assert retriever._index.stamp != stamp
    assert retriever._lexical.stamp == retriever._index.stamp


def test_a_change_committed_by_this_process_is_searchable_at_once(
    retriever: Retriever,
    sessions: sessionmaker[Session],
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    retriever.search(QUESTION, k=3)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "metrics.md").write_text(
        "# Metrics\n\n## Prometheus\n\nZephyr exports Prometheus metrics on /metrics.\n"
    )
    ingest_folder(sessions, embedder, extra, name="extra")  # the clock has not moved

    best = retriever.search("Where are the Prometheus metrics exported?", k=1)[0]

    assert (best.source_name, best.document_url) == ("extra", "metrics.md")


def test_a_rolled_back_change_is_not_pushed(sessions: sessionmaker[Session], clock: Clock) -> None:
    from knowledge.storage import store

    before = store.local_revision_bumps()
    with sessions() as session:
        store.bump_revision(session)
        session.rollback()
        session.execute(text("SELECT 1"))
        session.commit()
    assert store.local_revision_bumps() == before
