"""A Slack channel's history end to end: the real bolt app over HTTP adds the channel, the
admin refreshes it, events queue threads to read again, answers use a private channel's
threads only in that channel (not in another channel, a DM or the terminal), and one command
forgets it all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.admin import Actor, run_admin
from bot.types import Question
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage.conversations import AuditEntry
from knowledge.storage.documents import Source
from knowledge.storage.slack_history import SlackThread
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack import BOT_USER_ID, message_event
from tests.fakes.slack_history import HistorySlack
from tests.test_slack import Bot, final_answers, make_runtime, mention, wait_for_answers

PRIVATE = "C0OPS"
SECRET = (
    "How do I unseal the vault of the Quokka cluster?",
    "Quokka's vault is unsealed with the three shards the SRE leads keep in the safe.",
)
ASKED = "How is the Quokka vault unsealed?"


@pytest.fixture
def slack() -> Iterator[HistorySlack]:
    with HistorySlack() as fake:
        fake.add_channel(PRIVATE, "secret-ops", private=True, member=False)
        fake.add_channel("C0GENERAL", "general")
        yield fake


@pytest.fixture
def bot(tmp_path: Path, embedder: Embedder, slack: HistorySlack,
        model: FakeOpenAI) -> Iterator[Bot]:  # fmt: skip
    runtime = make_runtime(f"sqlite:///{tmp_path / 'teambot.db'}", tmp_path / "data", embedder,
                           slack, model, teambot_admins="slack:UADMIN",
                           llm_route="extractive")  # fmt: skip
    running = Bot(runtime)
    yield running
    running.stop()


def admin_in_chat(bot: Bot, slack: HistorySlack, line: str, channel: str = "C0GENERAL") -> str:
    """``@teambot admin LINE`` as Slack sends it; the reply teambot posted in the thread."""
    text = f"<@{BOT_USER_ID}> admin {line}"
    ts = slack.seed_message(channel, text, user="UADMIN")
    bot.event(mention(f"admin {line}", channel=channel, user="UADMIN", ts=ts))
    replies = slack.wait_for(lambda: [m for m in slack.thread(channel, ts)[1:] if m.get("bot_id")])
    return str(replies[-1]["text"])


def answer_in(bot: Bot, slack: HistorySlack, channel: str, text: str) -> str:
    """Ask ``text`` in ``channel``; the whole answer message as JSON text."""
    before = len(final_answers(slack, channel))
    ts = slack.seed_message(channel, f"<@{BOT_USER_ID}> {text}", user="U1")
    bot.event(mention(text, channel=channel, user="U1", ts=ts))
    return json.dumps(wait_for_answers(slack, channel, before + 1)[-1])


def test_a_private_channel_is_added_refreshed_used_only_there_and_forgotten(
    bot: Bot, slack: HistorySlack, docs: Path, embedder: Embedder
) -> None:
    ingest_folder(bot.runtime.sessions, embedder, docs, name="zephyr")  # other docs to find
    root = slack.seed_message(PRIVATE, SECRET[0], user="UALICE")
    slack.seed_message(PRIVATE, SECRET[1], user="UBOB", thread_ts=root)
    link = f"https://teambot-test.slack.com/archives/{PRIVATE}/p{root.replace('.', '')}"

    refused = admin_in_chat(bot, slack, f"sources add <#{PRIVATE}|secret-ops> --kind slack-channel")
    assert "not a member of #secret-ops" in refused and "/invite @teambot" in refused
    slack.join(PRIVATE)
    added = admin_in_chat(bot, slack, f"sources add <#{PRIVATE}|secret-ops>")
    assert "Added Slack channel #secret-ops as source 'slack-secret-ops'" in added
    assert "used only when answering in #secret-ops" in added
    refreshed = admin_in_chat(bot, slack, "sources refresh slack-secret-ops")
    assert "1 new" in refreshed
    listed = admin_in_chat(bot, slack, "sources list")
    assert "slack-secret-ops" in listed and "slack-channel" in listed
    status = admin_in_chat(bot, slack, "status")
    assert "slack-secret-ops (slack-channel" in status
    assert "Slack channel #secret-ops (private: used only there); 0 threads waiting" in status

    assert link in answer_in(bot, slack, PRIVATE, ASKED)
    assert link not in answer_in(bot, slack, "C0GENERAL", ASKED)
    assert link not in answer_in(bot, slack, "D0DIRECT", ASKED)
    assistant = bot.runtime.assistant
    for platform, channel in (("cli", "terminal"), ("discord", PRIVATE)):
        explained = assistant.explain(Question(platform, channel, "t", "ops", ASKED))
        assert all(p.document_url != link for p in explained.results), (platform, channel)
    named = assistant.explain(Question("slack", PRIVATE, "t", "ops", ASKED))  # --channel
    assert named.results[0].document_url == link

    forgot = admin_in_chat(bot, slack, f"sources forget <#{PRIVATE}|secret-ops>")
    assert "Forgot #secret-ops: removed source 'slack-secret-ops' with 1 threads" in forgot
    assert link not in answer_in(bot, slack, PRIVATE, ASKED)
    with bot.runtime.sessions() as session:
        audited = session.scalars(select(AuditEntry.command).where(
            AuditEntry.outcome == "ok")).all()  # fmt: skip
    assert "sources forget" in audited


def test_edit_delete_and_reply_events_queue_their_thread(bot: Bot, slack: HistorySlack) -> None:
    root = slack.seed_message("C0GENERAL", "Where is the runbook?", user="UALICE")
    answer = slack.seed_message("C0GENERAL", "In the wiki", user="UBOB", thread_ts=root)
    terminal = Actor("cli", "ops")
    added = run_admin(
        bot.runtime, terminal, ["sources", "add", "C0GENERAL", "--kind", "slack-channel"]
    )
    assert added.ok, added.text
    assert run_admin(bot.runtime, terminal, ["sources", "refresh", "slack-general"]).ok

    def stale() -> set[str]:
        with bot.runtime.sessions() as session:
            return set(session.scalars(select(SlackThread.thread_ts).where(SlackThread.stale)))

    def queued() -> bool:
        with bot.runtime.sessions() as session:
            return session.scalar(select(Source.refresh_requested_at)) is not None

    assert stale() == set() and not queued()
    bot.event(slack.edit("C0GENERAL", answer, "In the wiki, under Operations"))
    slack.wait_for(lambda: stale() == {root})
    assert queued()  # an edit asks a worker to refresh now
    refreshed = run_admin(bot.runtime, terminal, ["sources", "refresh", "slack-general"])
    assert "1 changed" in refreshed.text and stale() == set()
    bot.event(slack.delete("C0GENERAL", answer))
    slack.wait_for(lambda: stale() == {root})
    refreshed = run_admin(bot.runtime, terminal, ["sources", "refresh", "slack-general"])
    assert "1 removed" in refreshed.text
    again = slack.seed_message("C0GENERAL", "It moved to the handbook", user="UBOB", thread_ts=root)
    bot.event(message_event("It moved to the handbook", "C0GENERAL", "UBOB", again,
                            thread_ts=root))  # fmt: skip
    slack.wait_for(lambda: stale() == {root})
