"""Team answers in the core and the admin commands: saved, embedded at once, cited with their
credit, private ones used only where they were taught, edits and deletions followed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin import Actor, run_admin
from bot.admin.answers import teach
from bot.admin.commands import REFUSED
from bot.core import Assistant
from bot.render import answer_text
from bot.types import Answer, Citation, Question
from knowledge.embed.embedder import Embedder
from knowledge.ingest.answers import (
    AnswerSpec,
    change_answer_text,
    remove_message_answer,
    save_answer,
)
from knowledge.ingest.local import ingest_folder
from knowledge.storage import store
from knowledge.storage.answers import TeamAnswer, hidden_urls
from knowledge.storage.conversations import AuditEntry, ChannelSetting
from knowledge.storage.documents import Document, Source
from tests.test_admin import Deps, deps
from tests.test_core import make_assistant

TERMINAL = Actor("cli", "ops")
BOB = Actor("slack", "UBOB")  # not an admin
ASKED = "Does Zephyr support Microsoft Teams?"
PARAPHRASE = "Can Zephyr post its answers into Microsoft Teams channels?"
TEAMS = ("No. Zephyr has no Microsoft Teams integration; forward its webhook to a Teams "
         "incoming webhook instead.")  # fmt: skip


@pytest.fixture
def assistant(sessions: sessionmaker[Session], embedder: Embedder, corpus: Path) -> Assistant:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    return make_assistant(sessions, embedder)


def with_embedder(sessions: sessionmaker[Session], embedder: Embedder) -> Deps:
    d = deps(sessions)
    d.embedder = embedder
    return d


def ask(assistant: Assistant, text: str, channel: str = "c1") -> Answer:
    return assistant.ask(Question("slack", channel, f"t-{channel}-{text[:5]}", "U9", text))


def team_cited(answer: Answer) -> list[Citation]:
    return [c for c in answer.citations if c.source == "team-answers"]


def test_an_answer_added_by_an_admin_answers_a_paraphrase_with_its_credit(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    assert ask(assistant, ASKED).abstained
    with sessions() as session:
        before = store.index_revision(session)

    added = run_admin(with_embedder(sessions, embedder), TERMINAL,
                      ["answers", "add", ASKED, TEAMS])  # fmt: skip

    assert added.ok, added.text
    with sessions() as session:
        assert store.index_revision(session) > before  # every replica's index catches up
        source = session.scalar(select(Source).where(Source.name == "team-answers"))
        assert source is not None and not source.enabled  # no worker crawls it
    answer = ask(assistant, PARAPHRASE, channel="c2")
    assert not answer.abstained, answer.text
    [cited] = team_cited(answer)
    assert cited.title == ASKED
    assert cited.heading.startswith("answered by @ops in the terminal, 20")
    assert "incoming webhook" in answer.text
    assert "answered by @ops" in answer_text(answer)
    listed = run_admin(with_embedder(sessions, embedder), TERMINAL, ["answers", "list"])
    assert ASKED[:30] in listed.text and "cli:terminal" in listed.text


def test_a_private_answer_is_used_only_where_it_was_taught(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    spec = AnswerSpec(question=ASKED, answer=TEAMS, author="UCAROL", author_name="carol",
                      platform="slack", channel="GSECRET", channel_name="#secret",
                      is_private=True, permalink="https://x.slack.com/archives/GSECRET/p1",
                      message_ref="1.000", saved_by="slack:UALICE")  # fmt: skip
    taught = teach(with_embedder(sessions, embedder), Actor("slack", "UALICE"), spec)
    assert taught.ok, taught.text

    elsewhere = ask(assistant, PARAPHRASE, channel="CPUBLIC")
    there = ask(assistant, PARAPHRASE, channel="GSECRET")

    assert team_cited(elsewhere) == [] and "incoming webhook" not in elsewhere.text
    assert "incoming webhook" not in str(elsewhere.suggestions)
    [cited] = team_cited(there)
    assert cited.heading.startswith("answered by @carol in #secret, ")
    assert cited.url == spec.permalink and cited.path is None


def test_edits_and_deletions_of_the_message_follow_it(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    spec = AnswerSpec(question=ASKED, answer=TEAMS, author="UCAROL", platform="slack",
                      channel="C1", message_ref="2.000", saved_by="slack:UALICE")  # fmt: skip
    teach(with_embedder(sessions, embedder), Actor("slack", "UALICE"), spec)

    edit = "Yes: the Teams bridge plugin posts every answer to Teams."
    assert change_answer_text(sessions, embedder, "slack", "C1", "2.000", edit)
    edited = ask(assistant, PARAPHRASE)
    assert "Teams bridge plugin" in edited.text and "incoming webhook" not in edited.text

    assert remove_message_answer(sessions, "slack", "C1", "2.000")
    gone = ask(assistant, PARAPHRASE, channel="c3")
    assert team_cited(gone) == [] and "Teams bridge" not in gone.text
    assert not change_answer_text(sessions, embedder, "slack", "C1", "2.000", "again")


def test_who_may_teach_and_remove(sessions: sessionmaker[Session], embedder: Embedder) -> None:
    d = with_embedder(sessions, embedder)
    spec = AnswerSpec(question=ASKED, answer=TEAMS, author="UBOB", platform="slack",
                      channel="C7", message_ref="3.000", saved_by="slack:UBOB")  # fmt: skip

    refused = teach(d, BOB, spec)
    assert not refused.ok and "teach=on" in refused.text
    assert run_admin(d, TERMINAL, ["channel", "set", "slack:C7", "teach=on"]).ok
    allowed = teach(d, BOB, spec)
    assert allowed.ok and allowed.answer_id is not None

    removing = run_admin(d, BOB, ["answers", "remove", str(allowed.answer_id)])
    assert not removing.ok and removing.text == REFUSED
    assert run_admin(d, TERMINAL, ["answers", "remove", str(allowed.answer_id)]).ok
    assert not run_admin(d, TERMINAL, ["answers", "remove", str(allowed.answer_id)]).ok
    assert "teach" in run_admin(d, TERMINAL, ["channel", "show", "slack:C7"]).text
    with sessions() as session:
        audited = session.execute(
            select(AuditEntry.user_id, AuditEntry.command, AuditEntry.outcome)
            .order_by(AuditEntry.id)
        ).all()  # fmt: skip
    assert ("UBOB", "teach", "refused: teaching is off here") in audited
    assert ("UBOB", "teach", f"ok: answer {allowed.answer_id}") in audited
    assert ("UBOB", "answers remove", "refused: not an admin") in audited


def test_the_built_in_source_is_never_refreshed(
    sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    d = with_embedder(sessions, embedder)
    assert run_admin(d, TERMINAL, ["answers", "add", "Q?", "A."]).ok
    refreshed = run_admin(d, TERMINAL, ["sources", "refresh", "team-answers"])
    assert "nothing to refresh" in refreshed.text
    status = run_admin(d, TERMINAL, ["status"]).text
    assert "team-answers (team-answers, built in: indexed as answers are taught): 1 documents" in (
        status
    )


def test_team_answers_are_stored_found_and_removed_on_both_databases(
    any_sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    spec = AnswerSpec(question=ASKED, answer=TEAMS, author="U2", platform="slack",
                      channel="GPRIV", is_private=True, message_ref="5.000",
                      permalink="https://x.slack.com/archives/GPRIV/p5000",
                      saved_by="slack:UALICE")  # fmt: skip
    first = save_answer(any_sessions, embedder, spec)
    again = save_answer(any_sessions, embedder, replace(spec, answer="Use the Teams bridge."))
    assert again == first  # the same message: its answer replaced, not added

    with any_sessions() as session:
        assert hidden_urls(session, "slack", "C1") == {spec.permalink}
        assert hidden_urls(session, "slack", "GPRIV") == set()
        [document] = session.scalars(select(Document).join(Source)
                                     .where(Source.name == "team-answers")).all()  # fmt: skip
        assert document.url == spec.permalink
    assert change_answer_text(any_sessions, embedder, "slack", "GPRIV", "5.000", "Edited.")
    assert remove_message_answer(any_sessions, "slack", "GPRIV", "5.000")
    with any_sessions() as session:
        assert session.scalars(select(Document)).all() == []
        assert session.scalars(select(TeamAnswer)).all() == []


def test_a_channel_with_chosen_sources_still_uses_team_answers(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    with sessions.begin() as session:
        session.add(ChannelSetting(platform="slack", channel="narrow", sources=["zephyr"]))
    assert run_admin(with_embedder(sessions, embedder), TERMINAL,
                     ["answers", "add", ASKED, TEAMS]).ok  # fmt: skip

    assert team_cited(ask(assistant, PARAPHRASE, channel="narrow"))


def test_forget_removes_the_team_answers_a_person_gave(
    sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    d = with_embedder(sessions, embedder)
    for ref, author in (("6.000", "UCAROL"), ("7.000", "UDAVE")):
        spec = AnswerSpec(question=ASKED, answer=TEAMS, author=author, platform="slack",
                          channel="C1", message_ref=ref, saved_by="slack:UALICE")  # fmt: skip
        save_answer(sessions, embedder, spec)

    forgot = run_admin(d, TERMINAL, ["forget", "slack:UCAROL"])

    assert forgot.text.endswith("0 emptied conversations, 1 team answers they gave.")
    with sessions() as session:
        assert session.scalars(select(TeamAnswer.author)).all() == ["UDAVE"]
