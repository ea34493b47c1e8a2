"""Slack channel history as a source, against the fake Slack (tests.fakes.slack_history):
threads become documents, refreshes read only what changed, rate limits are waited out
within bounds, and a cut-short run resumes where it stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.errors import SourceError
from knowledge.ingest.refresh import refresh
from knowledge.ingest.report import RunReport
from knowledge.ingest.slack_channels import add_channel, forget_channel, queue_thread
from knowledge.ingest.slack_client import SlackAccess, open_reader
from knowledge.ingest.sources import SourceSpec
from knowledge.storage.documents import Chunk, Document, Source
from knowledge.storage.lease import Lease, SourceBusyError
from knowledge.storage.slack_history import SlackChannel, SlackThread
from tests.fakes.slack import BOT_TOKEN
from tests.fakes.slack_history import HistorySlack

CHANNEL = "C0HELP"


@pytest.fixture
def fake() -> Iterator[HistorySlack]:
    with HistorySlack() as slack:
        slack.add_channel(CHANNEL, "help")
        slack.add_user("UALICE", "alice")
        slack.add_user("UBOB", "bob")
        yield slack


def access(fake: HistorySlack, **limits: int) -> SlackAccess:
    return SlackAccess(token=BOT_TOKEN, api_url=fake.api_url, **limits)


def add(sessions: sessionmaker[Session], fake: HistorySlack, where: str = CHANNEL,
        **options: object) -> str:  # fmt: skip
    reader = open_reader(access(fake))
    try:
        spec = SourceSpec(name="", location=where, options=dict(options))
        with sessions.begin() as session:
            return add_channel(session, reader, spec).name
    finally:
        reader.close()


def run(sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack, name: str,
        **limits: int) -> RunReport:  # fmt: skip
    return refresh(sessions, embedder, name, slack=access(fake, **limits))


def thread(fake: HistorySlack, question: str, *answers: str, channel: str = CHANNEL) -> str:
    ts = fake.seed_message(channel, question, user="UALICE")
    for answer in answers:
        fake.seed_message(channel, answer, user="UBOB", thread_ts=ts)
    return ts


def documents(sessions: sessionmaker[Session], name: str) -> dict[str, str]:
    """url → the document's text (its chunks joined) for the source ``name``."""
    with sessions() as session:
        rows = session.execute(
            select(Document.url, Chunk.text)
            .join(Chunk, Chunk.document_id == Document.id)
            .join(Source, Source.id == Document.source_id)
            .where(Source.name == name)
            .order_by(Document.url, Chunk.ordinal)
        ).all()
    found: dict[str, str] = {}
    for url, text in rows:
        found[url] = (found.get(url, "") + "\n" + text).strip()
    return found


def permalink(ts: str, channel: str = CHANNEL) -> str:
    return f"https://teambot-test.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def test_threads_with_replies_become_documents_with_authors_and_permalinks(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    first = thread(fake, "How do I rotate the <https://vault.example.com|vault> key?",
                   "Run `vault rotate` as <@UALICE> showed &amp; restart the agent.")  # fmt: skip
    fake.seed_message(CHANNEL, "good morning, no replies here", user="UBOB")
    second = thread(fake, "Where are the deploy logs?", "In /var/log/deploy", "or in Grafana")
    name = add(sessions, fake)
    assert name == "slack-help"

    report = run(sessions, embedder, fake, name)

    assert (report.pages_new, report.pages_failed) == (2, 0)
    docs = documents(sessions, name)
    assert set(docs) == {permalink(first), permalink(second)}
    text = docs[permalink(first)]
    assert "Question from @alice" in text and "Answer from @bob" in text
    assert "vault (https://vault.example.com)" in text  # a link's address is always shown
    assert "as @alice showed & restart" in text  # mentions and entities decoded
    assert "In /var/log/deploy" in docs[permalink(second)]
    assert "or in Grafana" in docs[permalink(second)]
    with sessions() as session:
        titles = set(session.scalars(select(Document.title)))
    assert "Where are the deploy logs?" in titles
    assert len(fake.calls_to("users.info")) == 2  # each author looked up once


def test_a_refresh_with_nothing_new_reads_no_thread_and_embeds_nothing(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    thread(fake, "How do I restart a node?", "systemctl restart node")
    name = add(sessions, fake, lookback_days=0)
    run(sessions, embedder, fake, name)
    replies_before = len(fake.calls_to("conversations.replies"))

    again = run(sessions, embedder, fake, name)

    assert (again.pages_seen, again.pages_new, again.chunks_embedded) == (0, 0, 0)
    assert len(fake.calls_to("conversations.replies")) == replies_before
    last = fake.calls_to("conversations.history")[-1]
    assert float(last.params["oldest"]) > 0  # only what is newer than the last run


def test_history_and_threads_are_paged_with_cursors(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack, monkeypatch
) -> None:
    monkeypatch.setattr("knowledge.ingest.slack_history.PAGE_SIZE", 3)
    for n in range(7):
        thread(fake, f"question {n} about topic {n}?", f"answer {n}")
    long = thread(fake, "a long thread?", *(f"reply number {n}" for n in range(8)))
    name = add(sessions, fake)

    report = run(sessions, embedder, fake, name)

    assert report.pages_new == 8
    history = fake.calls_to("conversations.history")
    assert len(history) == 3 and "cursor" not in history[0].params
    assert all(call.params["cursor"] for call in history[1:])
    assert "reply number 7" in documents(sessions, name)[permalink(long)]
    long_reads = [c for c in fake.calls_to("conversations.replies") if c.params["ts"] == long]
    assert len(long_reads) == 3  # 9 messages, 3 a page


def test_a_new_reply_moves_latest_reply_and_only_that_thread_is_read_again(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    quiet = thread(fake, "Which VPN profile?", "the staff one")
    busy = thread(fake, "Why is CI slow?", "the cache is cold")
    name = add(sessions, fake)
    run(sessions, embedder, fake, name)
    fake.seed_message(CHANNEL, "also the runners were busy", user="UALICE", thread_ts=busy)
    before = len(fake.calls_to("conversations.replies"))

    report = run(sessions, embedder, fake, name)

    read = [c.params["ts"] for c in fake.calls_to("conversations.replies")[before:]]
    assert read == [busy]
    assert (report.pages_changed, report.pages_new) == (1, 0)
    assert "runners were busy" in documents(sessions, name)[permalink(busy)]
    assert permalink(quiet) in documents(sessions, name)


def test_edits_and_deletions_from_events_are_read_again(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    edited = thread(fake, "What port does the API use?", "port 8080")
    emptied = thread(fake, "Who owns billing?", "team payments")
    name = add(sessions, fake, lookback_days=0)
    run(sessions, embedder, fake, name)
    [reply] = [m for m in fake.thread(CHANNEL, edited) if m["ts"] != edited]
    event = fake.edit(CHANNEL, reply["ts"], "port 9090 since March")["event"]
    assert queue_thread(sessions, CHANNEL, event["message"]["thread_ts"]) == 1
    [gone] = [m for m in fake.thread(CHANNEL, emptied) if m["ts"] != emptied]
    fake.remove(CHANNEL, gone["ts"])
    assert queue_thread(sessions, CHANNEL, emptied) == 1

    report = run(sessions, embedder, fake, name)

    docs = documents(sessions, name)
    assert "port 9090 since March" in docs[permalink(edited)]
    assert permalink(emptied) not in docs  # no replies left: no longer a thread
    assert (report.pages_changed, report.pages_removed) == (1, 1)
    with sessions() as session:
        left = set(session.scalars(select(SlackThread.thread_ts)))
    assert left == {edited}


def test_a_deleted_thread_is_removed(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    doomed = thread(fake, "Old question?", "old answer")
    name = add(sessions, fake, lookback_days=0)
    run(sessions, embedder, fake, name)
    for message in reversed(fake.thread(CHANNEL, doomed)):
        fake.remove(CHANNEL, message["ts"])
    queue_thread(sessions, CHANNEL, doomed)

    report = run(sessions, embedder, fake, name)

    assert report.pages_removed == 1 and documents(sessions, name) == {}


def test_rate_limits_are_waited_out_per_retry_after(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    thread(fake, "How do I get a staging account?", "ask in #it")
    name = add(sessions, fake)
    fake.fail_next("conversations.replies", retry_after=1)

    report = run(sessions, embedder, fake, name)

    assert (report.pages_new, report.pages_failed) == (1, 0)
    calls = fake.calls_to("conversations.replies")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.95  # Retry-After: 1 was honoured
    assert report.timings["rate_limit_wait"] == 1


def test_past_the_retry_bound_the_run_is_partial_and_the_next_one_resumes(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    for n in range(4):
        thread(fake, f"question {n}?", f"answer {n}")
    name = add(sessions, fake)
    fake.tier_limits({"conversations.replies": 2}, window=30)

    cut = run(sessions, embedder, fake, name, max_retries=0)

    assert cut.pages_new == 2 and cut.pages_failed == 1
    assert "rate-limited conversations.replies" in cut.issues[0].error
    assert fake.calls_to("conversations.replies")[-1].status == 429
    fake.tier_limits({})
    resumed = run(sessions, embedder, fake, name)
    assert (resumed.pages_new, resumed.pages_failed) == (2, 0)
    assert len(documents(sessions, name)) == 4


def test_a_long_wait_keeps_the_sources_lease(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    thread(fake, "question?", "answer")
    name = add(sessions, fake)
    fake.fail_next("conversations.history", retry_after=2)  # longer than the 1-s lease
    with sessions() as session:
        source_id = session.scalar(select(Source.id))
    assert source_id is not None
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(refresh, sessions, embedder, name, lease_seconds=1,
                              slack=access(fake))  # fmt: skip
        fake.wait_for(lambda: fake.calls_to("conversations.history"))
        time.sleep(1.5)  # the lease would have run out, had the wait not renewed it
        with pytest.raises(SourceBusyError):
            Lease(sessions, source_id, 1).acquire()
        assert running.result(timeout=20).pages_new == 1


def test_a_too_long_retry_after_ends_the_run_without_waiting(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    thread(fake, "question?", "answer")
    name = add(sessions, fake)
    fake.fail_next("conversations.history", retry_after=3600)

    report = run(sessions, embedder, fake, name)

    assert report.pages_failed == 1 and report.timings["total"] < 5
    with sessions() as session:
        assert session.scalar(select(SlackChannel.newest_ts)) == ""


def test_a_listing_cut_short_resumes_from_its_cursor(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack, monkeypatch
) -> None:
    monkeypatch.setattr("knowledge.ingest.slack_history.PAGE_SIZE", 2)
    for n in range(6):
        thread(fake, f"question {n}?", f"answer {n}")
    name = add(sessions, fake, max_pages=1)

    first = run(sessions, embedder, fake, name)
    with sessions() as session:
        state = session.scalar(select(SlackChannel))
        assert state is not None and state.cursor and state.newest_ts == ""
    assert first.pages_new == 2
    second = run(sessions, embedder, fake, name)
    third = run(sessions, embedder, fake, name)

    assert second.pages_new == third.pages_new == 2
    cursors = [c.params.get("cursor") for c in fake.calls_to("conversations.history")]
    assert cursors[0] is None and all(cursors[1:3])
    with sessions() as session:
        state = session.scalar(select(SlackChannel))
        assert state is not None and state.cursor is None and state.newest_ts
    assert len(documents(sessions, name)) == 6


def test_a_hostile_message_is_capped_decoded_and_stripped(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    huge = "spam " * 20_000
    hostile = thread(
        fake,
        "Reset link?\x00\x1b[31m\u202eevil",
        "<https://evil.example/steal|https://docs.example.com/reset> &lt;script&gt;",
        huge,
    )
    name = add(sessions, fake)

    run(sessions, embedder, fake, name)

    text = documents(sessions, name)[permalink(hostile)]
    assert "\x00" not in text and "\x1b" not in text and "\u202e" not in text
    assert "https://docs.example.com/reset (https://evil.example/steal)" in text
    assert "<script>" in text  # decoded once, as text: never read again as a token
    assert text.count("spam") < 2_000  # the huge reply was cut at MAX_MESSAGE_CHARS


def test_hostile_fields_from_slack_are_ignored_not_fatal(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    odd = thread(fake, "Odd parent?", "odd reply")
    fine = thread(fake, "Fine parent?", "fine reply")
    fake.set_fields(CHANNEL, odd, reply_count="lots", edited="yesterday", bot_profile=7)
    junk = fake.seed_message(CHANNEL, "no real ts", user="UALICE")
    fake.set_fields(CHANNEL, junk, ts="9" * 30 + ".1", reply_count=3)
    name = add(sessions, fake)

    report = run(sessions, embedder, fake, name)

    assert (report.pages_new, report.pages_failed) == (1, 0)
    assert set(documents(sessions, name)) == {permalink(fine)}


def test_adding_a_channel_teambot_is_not_in_says_how_to_invite_it(
    sessions: sessionmaker[Session], fake: HistorySlack
) -> None:
    fake.add_channel("C0SECRET", "secret", private=True, member=False)
    with pytest.raises(SourceError, match=r"not a member of #secret.*/invite @teambot"):
        add(sessions, fake, "<#C0SECRET|secret>")
    with pytest.raises(SourceError, match="no channel"):
        add(sessions, fake, "#nowhere")
    with pytest.raises(SourceError, match="not a Slack channel"):
        add(sessions, fake, "#Bad Name!")
    with sessions() as session:
        assert session.scalar(select(Source)) is None
    fake.join("C0SECRET")
    assert add(sessions, fake, "#secret") == "slack-secret"  # by name: conversations.list
    with sessions() as session:
        state = session.scalar(select(SlackChannel))
        assert state is not None and state.is_private and state.channel_id == "C0SECRET"
    with pytest.raises(SourceError, match="already the source"):
        add(sessions, fake, "<#C0SECRET>")


def test_forget_removes_documents_chunks_and_state_at_once(
    sessions: sessionmaker[Session], embedder: Embedder, fake: HistorySlack
) -> None:
    thread(fake, "How do I page on-call?", "use the pager app")
    name = add(sessions, fake)
    run(sessions, embedder, fake, name)

    with sessions.begin() as session:
        forgotten = forget_channel(session, f"<#{CHANNEL}|help>")

    assert (forgotten.source, forgotten.channel, forgotten.threads) == (name, "#help", 1)
    assert forgotten.chunks >= 1
    with sessions() as session:
        for table in (Source, Document, Chunk, SlackChannel, SlackThread):
            assert session.scalar(select(table)) is None, table


def test_queueing_a_thread_twice_keeps_one_row_on_both_databases(
    any_sessions: sessionmaker[Session],
) -> None:
    with any_sessions.begin() as session:
        source = Source(name="slack-help", kind="slack-channel", location="#help", options={})
        session.add(source)
        session.flush()
        session.add(SlackChannel(source_id=source.id, channel_id=CHANNEL, channel_name="help"))

    assert queue_thread(any_sessions, CHANNEL, "1700000000.000100") == 1
    assert queue_thread(any_sessions, CHANNEL, "1700000000.000100", soon=True) == 1
    assert queue_thread(any_sessions, "C0OTHER", "1700000000.000100") == 0
    assert queue_thread(any_sessions, CHANNEL, "not-a-ts'; DROP TABLE sources") == 0

    with any_sessions() as session:
        rows = session.execute(select(SlackThread.thread_ts, SlackThread.stale)).all()
        requested = session.scalar(select(Source.refresh_requested_by))
    assert rows == [("1700000000.000100", True)]
    assert requested == "slack: a message was edited or deleted"
