"""A question asked in a DM or a private channel stays there: `admin stats`, `admin gaps`,
`admin answers list` and the digest count it everywhere but show its words, its 👎 reason and
its channel only where it was asked and in the operator's terminal (bot.audience)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin import run_admin
from bot.audience import OPERATOR, PRIVATE_TEXT, Audience
from bot.core import Assistant
from bot.digest import post_digest
from bot.feedback import record_feedback, record_reason
from bot.settings import Settings
from bot.types import Question
from knowledge.embed.embedder import Embedder
from knowledge.ingest.answers import AnswerSpec, save_answer
from knowledge.ingest.local import ingest_folder
from knowledge.storage.conversations import Conversation
from tests.test_core import make_assistant
from tests.test_gaps import TEAMS, TERMINAL, Deps

SECRET = "Does Zephyr support Microsoft Teams for the merger with Initech?"
REASON = "Wrong: the Initech deal is still secret"
PUBLIC_QUESTION = TEAMS[1]


@pytest.fixture
def zephyr(sessions: sessionmaker[Session], embedder: Embedder, corpus: Path) -> Assistant:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    return make_assistant(sessions, embedder)


def ask_privately_and_publicly(assistant: Assistant, sessions: sessionmaker[Session]) -> None:
    """One abstained question in a DM (👎 with a reason), one in a public channel."""
    dm = assistant.ask(Question("slack", "D42", "t1", "U1", SECRET, is_private=True))
    assistant.ask(Question("slack", "C1", "t2", "U2", PUBLIC_QUESTION))
    assert dm.abstained and record_feedback(sessions, dm.turn_id, "U1", -1)
    assert record_reason(sessions, dm.turn_id, "U1", REASON)


def listing(deps: Deps, words: list[str], audience: Audience) -> str:
    result = run_admin(deps, TERMINAL, words, audience=audience)
    assert result.ok, result.text
    return result.text


def test_stats_and_gaps_hide_private_words_outside_their_channel(
    zephyr: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    ask_privately_and_publicly(zephyr, sessions)
    deps = Deps(sessions, Settings(_env_file=None), embedder)  # type: ignore[call-arg]
    elsewhere = Audience("slack", "C1")
    in_the_dm = Audience("slack", "D42")

    for words in (["stats"], ["gaps"], ["gaps", "--json"]):
        public = listing(deps, words, elsewhere)
        assert "Initech" not in public and "D42" not in public, (words, public)
        assert "Initech" in listing(deps, words, in_the_dm)
        assert "Initech" in listing(deps, words, OPERATOR)
    stats = listing(deps, ["stats"], elsewhere)
    assert "Questions: 2" in stats and "👎 1" in stats  # counted, not shown
    assert PRIVATE_TEXT in stats and "slack:private" in stats
    assert REASON not in stats and REASON in listing(deps, ["stats"], in_the_dm)
    # Unknown audience (a caller that says nothing): nothing private either.
    assert "Initech" not in run_admin(deps, TERMINAL, ["gaps"]).text
    groups = json.loads(listing(deps, ["gaps", "--json"], elsewhere))["groups"]
    shown = [q for g in groups for q in g["questions"]]
    assert PUBLIC_QUESTION in shown and SECRET not in shown
    assert sum(g["count"] for g in groups) == 2  # the private one is still counted
    with sessions() as session:
        rows = session.execute(select(Conversation.channel, Conversation.is_private))
        marked = {channel: private for channel, private in rows}
    assert marked == {"D42": True, "C1": False}


def test_the_digest_names_private_questions_only_in_their_own_channel(
    zephyr: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    ask_privately_and_publicly(zephyr, sessions)
    to_public = post_digest(sessions, embedder, "slack:C1")
    to_the_dm = post_digest(sessions, embedder, "slack:D42")
    assert "Initech" not in to_public and "D42" not in to_public and "2 questions" in to_public
    assert "Initech" in to_the_dm


def test_answers_taught_in_private_are_listed_without_their_words_elsewhere(
    sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    save_answer(sessions, embedder, AnswerSpec(
        question="What is the Initech merger code name?", answer="Bluebird", author="U1",
        platform="slack", channel="G7", saved_by="slack:U1", is_private=True))  # fmt: skip
    deps = Deps(sessions, Settings(_env_file=None), embedder)  # type: ignore[call-arg]
    public = listing(deps, ["answers", "list"], Audience("discord", "9"))
    assert "Initech" not in public and "G7" not in public and PRIVATE_TEXT in public
    assert "Initech" in listing(deps, ["answers", "list"], Audience("slack", "G7"))
