"""Training pairs from the docs' own structure: kinds, hard negatives, the split by page."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.ingest.answers import AnswerSpec, save_answer
from knowledge.ingest.local import ingest_folder
from knowledge.tune.pairs import build_pairs, is_held_out
from tests.tune_corpus import write_tune_corpus


def test_pairs_come_from_headings_titles_and_team_answers_with_negatives_from_other_pages(
    sessions: sessionmaker[Session], embedder: Embedder, tmp_path: Path
) -> None:
    ingest_folder(sessions, embedder, write_tune_corpus(tmp_path / "docs"), name="zephyr")
    save_answer(sessions, embedder, AnswerSpec(
        question="Who restarts the staging cluster on Fridays?",
        answer="The platform on-call restarts staging every Friday at noon, after the deploy.",
        author="U1", platform="slack", channel="C1", saved_by="U1",
    ))  # fmt: skip

    pairs = build_pairs(sessions, embedder.model_name, held_out_percent=25)
    everything = pairs.train + pairs.held_out
    by_anchor = {p.anchor: p for p in everything}

    heading = by_anchor["Retries in Zephyr > Configuring attempts for retries"]
    assert heading.kind == "heading"
    assert heading.positive.startswith("Set the attempts option")
    title = by_anchor["Retries in Zephyr"]
    assert title.kind == "title" and "exponential backoff" in title.positive
    answer = by_anchor["Who restarts the staging cluster on Fridays?"]
    assert answer.kind == "answer" and "platform on-call" in answer.positive
    for pair in everything:  # a hard negative is another page's passage, never the positive
        assert pair.negative != pair.positive
        assert pair.negative not in {p.positive for p in everything if p.page == pair.page}
    # A BM25 neighbour: it shares a word of the anchor ("attempts" is on the retries page only).
    assert "zephyr" in heading.negative and "attempts" not in heading.negative

    held_pages = {p.page for p in pairs.held_out}
    assert held_pages and {p.page for p in pairs.train}.isdisjoint(held_pages)
    assert all(is_held_out(page, 25) for page in held_pages)
    assert pairs.counts()["train.heading"] + pairs.counts().get("held_out.heading", 0) == 24


def test_sources_and_skip_narrow_the_pairs(
    sessions: sessionmaker[Session], embedder: Embedder, tmp_path: Path
) -> None:
    ingest_folder(sessions, embedder, write_tune_corpus(tmp_path / "a", pages=4), name="a")
    ingest_folder(sessions, embedder, write_tune_corpus(tmp_path / "b", pages=4), name="b")

    only_a = build_pairs(sessions, embedder.model_name, sources=["a"], held_out_percent=0)
    assert {p.page.split("\x1f")[0] for p in only_a.train} == {"a"}
    skipped = build_pairs(
        sessions, embedder.model_name, sources=["a"], held_out_percent=0,
        skip=lambda page, anchor: page.endswith("queues.md"),
    )  # fmt: skip
    assert not any(p.page.endswith("queues.md") for p in skipped.train)
    assert len(skipped.train) < len(only_a.train)
    assert build_pairs(sessions, "no-such-model").train == []
