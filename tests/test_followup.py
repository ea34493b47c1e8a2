"""Follow-ups without a language model: a topic switch searches the new topic, a follow-up that
leans on the conversation keeps what it leaves implicit."""

from collections.abc import Sequence

import numpy as np

from bot.followup import content_terms, new_terms, points_back, search_query, substituted
from bot.memory import PastTurn

# Hand-made word vectors: "disable" is closest to "configure", "discord" to "slack".
VECTORS = {
    "configure": [1.0, 0.2, 0.0, 0.0],
    "disable": [0.9, 0.3, 0.0, 0.1],
    "logging": [0.0, 0.0, 1.0, 0.0],
    "slack": [0.0, 1.0, 0.0, 0.2],
    "discord": [0.1, 0.9, 0.0, 0.3],
    "token": [0.0, 0.0, 0.3, 1.0],
    "set": [0.5, 0.0, 0.5, 0.5],
}


def embed(texts: Sequence[str]) -> np.ndarray:
    rows = np.array([VECTORS[t] for t in texts], dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def after(question: str) -> list[PastTurn]:
    return [PastTurn("user", question), PastTurn("assistant", "An answer.")]


def test_a_topic_switch_searches_the_new_topic_alone() -> None:
    history = after("How do I connect teambot to Slack?")
    assert search_query("and how do I do that on Discord?", history) == (
        "and how do I do that on Discord?"
    )
    assert search_query("what about the refresh interval?", history, embed) == (
        "what about the refresh interval?"
    )


def test_a_follow_up_that_names_nothing_new_keeps_the_previous_question() -> None:
    history = after("How do I configure TLS certificates?")
    for text in ("and where do they go?", "what about those?", "and the certificates?"):
        assert search_query(text, history, embed) == f"How do I configure TLS certificates?\n{text}"


def test_a_pronoun_keeps_the_topic_and_drops_the_word_the_follow_up_replaces() -> None:
    assert search_query("how do I disable it?", after("How do I configure logging?"), embed) == (
        "How do I logging?\nhow do I disable it?"
    )
    assert substituted("How do I set the Slack token?", "and its Discord one?", embed) == (
        "How do I set the token?\nand its Discord one?"
    )


def test_without_word_vectors_or_with_one_topic_word_the_previous_question_stays_whole() -> None:
    history = after("How do I configure logging?")
    assert search_query("how do I disable it?", history) == (
        "How do I configure logging?\nhow do I disable it?"
    )
    assert substituted("What is logging?", "how do I disable it?", embed) == (
        "What is logging?\nhow do I disable it?"
    )


def test_questions_that_stand_alone_or_have_no_history_are_searched_as_asked() -> None:
    history = after("How do I configure logging?")
    assert search_query("How do I restore a backup of the database?", history, embed) == (
        "How do I restore a backup of the database?"
    )
    assert search_query("how do I disable it?", [], embed) == "how do I disable it?"


def test_content_terms_ignore_generic_words_pronouns_and_plurals() -> None:
    assert content_terms("What about those pages, and how do they work?") == {"page"}
    assert new_terms("and which pages does it skip?", "Which page is crawled?") == {"skip"}
    assert points_back("how do I disable it?") and not points_back("and on Discord?")
