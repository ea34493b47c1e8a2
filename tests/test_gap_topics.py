"""Gaps clustered by topic, on a generated set with known groups, with the real embedder."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from bot.gap_topics import cluster, topics
from bot.gaps import GapRecord
from knowledge.embed.embedder import Embedder

# Four topics a team asks about, each in several wordings (what people type, not templates of
# one sentence), and openings that vary independently of the topic.
TOPICS = {
    "deploy": [
        "deploy the app to staging",
        "push a new release to the staging environment",
        "ship my branch to staging",
        "get a build onto the staging servers",
        "roll out the service to staging",
    ],
    "password": [
        "reset my password",
        "change my login password after I forgot it",
        "recover my account password",
        "get a new password when I'm locked out",
        "set a new password for my account",
    ],
    "rate-limit": [
        "raise the API rate limit",
        "avoid getting 429 Too Many Requests from the API",
        "increase the number of API requests allowed per minute",
        "get around API throttling",
        "lift the request quota on the API",
    ],
    "backup": [
        "back up the database",
        "take a snapshot of the Postgres database",
        "restore the database from last night's backup",
        "schedule nightly database backups",
        "export a dump of the production database",
    ],
}
# A near miss: another topic in the words of "deploy". MiniLM puts it 0.46 from "deploy" on
# average (within a topic: 0.55–0.77), so no threshold separates the two without splitting
# "backup": at SAME_TOPIC it joins "deploy" whole (measured; documented in bot/gap_topics.py).
NEAR_MISS = {
    "staging-data": [
        "wipe the test data in the staging database",
        "reseed staging with fresh fixture data",
        "clear out the old records in the staging DB",
        "load sample data into staging",
        "truncate the staging tables",
    ],
}
OPENINGS = ["How do I", "What's the way to", "Can someone tell me how to", "Is there a guide to"]


def generated_questions(
    topics: dict[str, list[str]] = TOPICS,
) -> tuple[list[str], list[str]]:
    """The questions and the topic each belongs to: every wording, two openings each."""
    questions, labels = [], []
    for (topic, wordings), shift in zip(topics.items(), itertools.count(), strict=False):
        for n, wording in enumerate(wordings):
            for opening in (OPENINGS[(n + shift) % 4], OPENINGS[(n + shift + 2) % 4]):
                questions.append(f"{opening} {wording}?")
                labels.append(topic)
    return questions, labels


def _groups(labels: list[str]) -> set[frozenset[int]]:
    return {frozenset(i for i, t in enumerate(labels) if t == topic) for topic in set(labels)}


def test_the_generated_topics_are_recovered_exactly(embedder: Embedder) -> None:
    questions, labels = generated_questions()
    vectors = embedder.embed_texts(questions)
    found = {frozenset(group) for group in cluster(vectors)}
    assert found == _groups(labels)


def test_a_near_miss_topic_is_kept_whole_beside_the_topic_it_resembles(
    embedder: Embedder,
) -> None:
    questions, labels = generated_questions({**TOPICS, **NEAR_MISS})
    found = {frozenset(group) for group in cluster(embedder.embed_texts(questions))}
    expected = _groups(labels)
    near, deploy = (next(g for g in expected if labels[min(g)] == t)
                    for t in ("staging-data", "deploy"))  # fmt: skip
    assert found == (expected - {near, deploy}) | {near | deploy}


def test_each_topic_is_labelled_by_a_question_of_its_own_and_sorted_by_size(
    embedder: Embedder,
) -> None:
    questions, labels = generated_questions()
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    keep = [i for i, t in enumerate(labels) if t != "backup" or i % 3 == 0]  # backup: smallest
    gaps = [
        GapRecord(questions[i], "slack", "C1" if labels[i] != "deploy" else "C2", ("abstained",),
                  now - timedelta(hours=i), 0.1, [])
        for i in keep
    ]  # fmt: skip
    grouped = topics(gaps, embedder.embed_texts)
    assert len(grouped) == len(TOPICS)
    by_label = {t.label: t for t in grouped}
    topic_of = dict(zip(questions, labels, strict=True))
    assert {topic_of[label] for label in by_label} == set(TOPICS)
    assert grouped[-1].count == min(t.count for t in grouped)
    assert topic_of[grouped[-1].label] == "backup"
    for t in grouped:
        assert 1 <= len(t.questions) <= 3 and t.questions[0] == t.label
        assert {topic_of[q] for q in t.questions} == {topic_of[t.label]}
        assert t.kinds == {"abstained": t.count}
    deploy = next(t for t in grouped if topic_of[t.label] == "deploy")
    assert deploy.channels == ["slack:C2"] and deploy.last_seen == now  # question 0 is newest


def test_clustering_is_deterministic_and_handles_empty_and_single_inputs() -> None:
    assert cluster(np.zeros((0, 4), dtype=np.float32)) == []
    one = np.array([[1.0, 0.0]], dtype=np.float32)
    assert cluster(one) == [[0]]
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert cluster(vectors) == [[0, 1], [2, 3]] == cluster(vectors.copy())
