"""The conversation core: validation, extractive answers with citations, memory and follow-ups."""

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import abstention, extractive
from bot.core import Assistant
from bot.errors import QuestionError
from bot.followup import is_follow_up, search_query
from bot.llm.limits import RateLimits, UsageLedger
from bot.llm.router import Router
from bot.memory import ConversationMemory, PastTurn
from bot.types import Question
from bot.why import explanation_text
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval.confidence import THRESHOLD
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.search import Retriever
from knowledge.storage.conversations import ChannelSetting, Conversation, Turn


def make_assistant(sessions: sessionmaker[Session], embedder: Embedder) -> Assistant:
    retriever = Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name, 384))
    router = Router(
        {},
        route="local-first",
        private_route=None,
        ledger=UsageLedger(sessions, RateLimits()),
        max_output_tokens=200,
    )
    return Assistant(
        ConversationMemory(sessions),
        retriever,
        router,
        top_k=3,
        min_relevance=0.25,
        max_question_chars=4000,
    )


@pytest.fixture
def assistant(sessions: sessionmaker[Session], embedder: Embedder, corpus: Path) -> Assistant:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    return make_assistant(sessions, embedder)


def ask(assistant: Assistant, text: str, thread: str = "t1", channel: str = "c1"):
    return assistant.ask(Question("slack", channel, thread, "U1", text))


def turn_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Turn.id))) or 0


def test_an_extractive_answer_is_labelled_quoted_and_cited(assistant: Assistant) -> None:
    answer = ask(assistant, "Which port does the Zephyr server listen on?")

    assert answer.model == "extractive"
    assert answer.text.startswith(extractive.LABEL)
    assert "> The Zephyr server listens on TCP port 8731 by default." in answer.text
    first = answer.citations[0]
    assert (first.n, first.path, first.anchor) == (1, "guide/network.md", "listening-port")
    assert first.title == "Network settings" and first.heading == "Listening port"
    assert first.url.startswith("file://") and first.url.endswith("/guide/network.md")
    assert first.location == "guide/network.md#listening-port"
    assert "[1] Network settings › Listening port" in answer.text
    assert set(answer.timings) == {"memory", "retrieve", "answer", "total"}
    assert answer.timings["total"] >= answer.timings["retrieve"] > 0


def test_the_question_and_answer_are_stored_as_turns(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    answer = ask(assistant, "How do I restore a backup?")
    with sessions() as session:
        turns = session.scalars(select(Turn).order_by(Turn.id)).all()
        conversation = session.get_one(Conversation, answer.conversation_id)
    assert [(t.role, t.text) for t in turns] == [
        ("user", "How do I restore a backup?"),
        ("assistant", answer.text),
    ]
    assert turns[0].user_id == "U1"
    assert turns[1].citations[0]["path"] == "guide/backups.html"
    assert turns[1].model == "extractive" and turns[1].latency_ms == answer.timings["total"]
    assert (conversation.platform, conversation.channel, conversation.thread) == (
        "slack", "c1", "t1",
    )  # fmt: skip


def test_a_follow_up_is_searched_with_the_previous_question(assistant: Assistant) -> None:
    first = ask(assistant, "How do I configure TLS certificates for Zephyr?")
    follow = ask(assistant, "and where do they go?")

    assert follow.conversation_id == first.conversation_id
    expected = "How do I configure TLS certificates for Zephyr?\nand where do they go?"
    assert follow.search_query == expected
    assert follow.citations[0].anchor == "tls-certificates"


def test_a_topic_switch_is_searched_as_asked(assistant: Assistant) -> None:
    ask(assistant, "How do I configure TLS certificates for Zephyr?")
    switch = ask(assistant, "what about the listening port?")

    assert switch.search_query == "what about the listening port?"
    assert switch.rewrite == "heuristic"
    assert switch.citations[0].anchor == "listening-port"


def test_threads_are_separate_conversations(assistant: Assistant) -> None:
    ask(assistant, "How do I configure TLS certificates for Zephyr?", thread="a")
    other = ask(assistant, "and where do they go?", thread="b")
    same_thread_other_channel = ask(assistant, "what about it?", thread="a", channel="c2")

    assert other.search_query == "and where do they go?"
    assert same_thread_other_channel.search_query == "what about it?"
    assert len({other.conversation_id, same_thread_other_channel.conversation_id}) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("   \n\t ", "empty"), ("x" * 40_000, "40,000 characters")],
)
def test_bad_questions_are_refused_and_nothing_is_stored(
    assistant: Assistant, sessions: sessionmaker[Session], text: str, message: str
) -> None:
    with pytest.raises(QuestionError, match=message):
        ask(assistant, text)
    assert turn_count(sessions) == 0


def test_unrelated_questions_get_an_honest_no_answer(assistant: Assistant) -> None:
    answer = ask(assistant, "What is the recipe for banana bread?")
    assert answer.text == extractive.NOTHING_FOUND
    assert answer.citations == []


def test_an_empty_knowledge_base_says_how_to_fill_it(
    sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    answer = ask(make_assistant(sessions, embedder), "How do I install it?")
    assert answer.text == extractive.EMPTY_KNOWLEDGE_BASE
    assert "teambot ingest" in answer.text


def test_memory_returns_the_latest_turns_oldest_first(sessions: sessionmaker[Session]) -> None:
    memory = ConversationMemory(sessions)
    conversation = memory.conversation_id("discord", "chan", "thread")
    assert memory.conversation_id("discord", "chan", "thread") == conversation
    with sessions.begin() as session:
        session.add_all(
            Turn(conversation_id=conversation, role="user", text=f"q{i}") for i in range(12)
        )
    assert [t.text for t in memory.history(conversation, limit=3)] == ["q9", "q10", "q11"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("and its default?", True),
        ("What about TLS?", True),
        ("Does it support IPv6 connections on Linux?", True),
        ("How do I restore a backup of the database?", False),
        ("Which port does the Zephyr server listen on?", False),
    ],
)
def test_follow_up_rule(text: str, expected: bool) -> None:
    assert is_follow_up(text) is expected


def test_search_query_uses_the_last_user_turn_only_for_follow_ups() -> None:
    history = [PastTurn("user", "How do I set the port?"), PastTurn("assistant", "Set PORT.")]
    assert search_query("and its default?", history) == "How do I set the port?\nand its default?"
    assert search_query("How do I restore a backup today?", history) == (
        "How do I restore a backup today?"
    )
    assert search_query("and its default?", []) == "and its default?"


def test_quote_keeps_the_sentences_that_match_the_question() -> None:
    filler = " ".join(f"Filler sentence number {i} talks about nothing." for i in range(30))
    passage = f"{filler} The retry limit defaults to five attempts. {filler}"
    quoted = extractive.quote(passage, "What is the retry limit?", limit=200)
    assert "The retry limit defaults to five attempts." in quoted
    assert len(quoted) <= 204 and quoted.startswith("… ") and quoted.endswith(" …")
    assert extractive.quote("Short passage.", "anything") == "Short passage."


# --- confidence and abstention (issue #18) ---------------------------------------------------


def test_an_answer_carries_its_confidence_and_both_are_stored(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    answer = ask(assistant, "Which TCP port does Zephyr listen on?")

    assert not answer.abstained and answer.confidence is not None and answer.confidence >= 0.8
    assert answer.to_json()["confidence"] == answer.confidence
    assert answer.to_json()["abstained"] is False and answer.to_json()["might_help"] == []
    with sessions() as session:
        stored = session.get_one(Turn, answer.turn_id)
        assert (stored.confidence, stored.abstained) == (answer.confidence, False)


def test_a_question_about_another_product_abstains_and_offers_the_closest_pages(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    answer = ask(assistant, "Does Zephyr support Microsoft Teams?")

    assert answer.abstained and answer.citations == []
    assert answer.confidence is not None and answer.confidence < THRESHOLD
    assert answer.text == abstention.NOT_COVERED
    assert 1 <= len(answer.suggestions) <= abstention.MAX_SUGGESTIONS
    assert "> " not in answer.text  # no passage is quoted as if it answered
    assert answer.to_json()["might_help"][0]["title"] == answer.suggestions[0].title
    with sessions() as session:
        assert session.get_one(Turn, answer.turn_id).abstained is True


def test_a_channel_threshold_overrides_min_confidence(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    question = "Which TCP port does Zephyr listen on?"
    with sessions.begin() as session:
        session.add(ChannelSetting(platform="slack", channel="strict", min_confidence=0.999))

    strict, default = ask(assistant, question, channel="strict"), ask(assistant, question)

    assert strict.abstained and not default.abstained
    assert strict.confidence == default.confidence  # the evidence is the same; the bar is not


def test_why_explains_without_answering_or_storing(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    covered = assistant.explain(Question("slack", "c1", "t", "U1", "Which port does Zephyr use?"))
    other = assistant.explain(Question("slack", "c1", "t", "U1", "Is Kafka supported by Zephyr?"))

    assert covered.would_answer and not other.would_answer
    text = explanation_text(covered)
    assert "guide/network.md#listening-port" in text and "would answer" in text
    assert "Kafka".lower() in explanation_text(other) and "do not cover" in explanation_text(other)
    assert covered.to_json()["passages"][0]["url"] == "guide/network.md"
    assert set(covered.to_json()) >= {"confidence", "threshold", "abstained", "reasons", "pages"}
    with sessions() as session:
        assert session.scalar(select(func.count(Turn.id))) == 0


@pytest.mark.parametrize(
    ("written", "cited", "declined"),
    [
        ("Zephyr listens on port 8731 [1].", [1], False),
        ("Zephyr listens on port 8731.", [], True),  # cites nothing
        ("The documentation I have does not cover this.", [], True),
        ("The passages don't mention Kafka [2].", [2], True),
        ("These docs do not explain retries; see the FAQ [1].", [1], True),
        ("The worker does not restart by itself; run `zephyr work` again [1].", [1], False),
    ],
)
def test_a_model_answer_is_an_abstention_when_it_is_not_grounded(
    written: str, cited: list[int], declined: bool
) -> None:
    assert abstention.model_declined(written, cited) is declined


def test_a_link_in_the_question_is_not_taken_for_another_product(assistant: Assistant) -> None:
    """Slack shows links whole; their pieces (docs, example, com) are in no passage and look
    like names, but they say where the asker looked, not what the question is about."""
    plain = ask(assistant, "Which port does Zephyr listen on?")
    linked = ask(assistant, "Which port does Zephyr listen on, as https://docs.example.com/a says?")

    assert not linked.abstained
    assert linked.confidence == pytest.approx(plain.confidence, abs=0.1)
