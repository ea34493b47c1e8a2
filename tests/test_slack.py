"""The Slack adapter end to end: the real bolt app served over HTTP (and Socket Mode), a fake
Slack recording every Web API call, and a fake model."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.abstention import NOT_COVERED
from bot.delivery.inbox import MAX_ATTEMPTS
from bot.delivery.replica import ReplicaDuties
from bot.digest import post_digest
from bot.retention import forget_expired
from bot.runtime import Runtime
from bot.serve import asgi_app, health
from bot.settings import Settings
from bot.slack import render
from bot.slack.app import THINKING, build_app, post_notice, redeliver
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage import coordination
from knowledge.storage.conversations import AuditEntry, ChannelSetting, Feedback, Gap
from knowledge.storage.db import utcnow
from knowledge.storage.lease import HOST
from knowledge.storage.processes import Heartbeat, ProcessedEvent
from knowledge.storage.schema import upgrade
from tests.conftest import postgres_schema_url
from tests.corpus import ANSWER
from tests.fakes.openai_server import FakeOpenAI, Reply, Status
from tests.fakes.slack import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    app_mention_event,
    block_action_payload,
    message_event,
    sign,
    slash_command_form,
)
from tests.processes import free_port
from workers import jobs
from workers.scheduler import Worker


def make_runtime(
    db_url: str, data: Path, embedder: Embedder, slack: FakeSlack, model: FakeOpenAI, **extra: Any
) -> Runtime:
    values: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": data,
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "slack_update_seconds": 0.05,
        "local_llm_base_url": model.base_url,
        "local_llm_model": "local-model",
        "llm_route": "local-only",
        "llm_total_timeout_seconds": 3,
        "llm_max_retries": 0,
    }
    settings = Settings(_env_file=None, **(values | extra))  # type: ignore[call-arg]
    runtime = Runtime(settings)
    runtime.__dict__["embedder"] = embedder  # the session's model, loaded once
    return runtime


class Bot:
    """The real Slack app served by uvicorn on 127.0.0.1, as `teambot serve` runs it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.app = build_app(runtime)
        self.port = free_port()
        app = asgi_app(self.app, lambda: health(runtime), runtime.metrics.render)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def post(self, body: bytes, *, content_type: str, headers: dict[str, str] | None = None,
             timestamp: int | None = None) -> httpx.Response:  # fmt: skip
        signed = sign(SIGNING_SECRET, body, timestamp)
        return httpx.post(
            f"http://127.0.0.1:{self.port}/slack/events",
            content=body,
            headers={"content-type": content_type, **signed, **(headers or {})},
            timeout=10,
        )

    def event(self, envelope: dict[str, Any], **options: Any) -> httpx.Response:
        return self.post(json.dumps(envelope).encode(), content_type="application/json", **options)

    def form(self, body: bytes) -> httpx.Response:
        return self.post(body, content_type="application/x-www-form-urlencoded")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def sqlite_db(tmp_path: Path, docs: Path, embedder: Embedder) -> str:
    url = f"sqlite:///{tmp_path / 'teambot.db'}"
    runtime = Runtime(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    ingest_folder(runtime.sessions, embedder, docs, name="zephyr")
    runtime.close()
    return url


@pytest.fixture
def start_bot(
    sqlite_db: str, tmp_path: Path, embedder: Embedder, slack: FakeSlack, model: FakeOpenAI
) -> Iterator[Any]:
    """Starts the app with extra settings; every app started is stopped after the test."""
    started: list[Bot] = []

    def start(**settings: Any) -> Bot:
        started.append(
            Bot(make_runtime(sqlite_db, tmp_path / "data", embedder, slack, model, **settings))
        )
        return started[-1]

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def bot(start_bot: Any) -> Bot:
    return start_bot()


def mention(text: str = "Which port does Zephyr listen on?", **fields: Any) -> dict[str, Any]:
    ts = fields.pop("ts", f"{time.time():.6f}")
    return app_mention_event(f"<@{BOT_USER_ID}> {text}", fields.pop("channel", "C1"),
                             fields.pop("user", "U1"), ts, **fields)  # fmt: skip


def final_answers(slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    """Messages whose blocks carry the feedback buttons: finished answers."""
    return [
        m for m in slack.messages(channel)
        if any(b.get("type") == "actions" for b in m.get("blocks") or [])
    ]  # fmt: skip


def wait_for_answers(slack: FakeSlack, channel: str, count: int = 1) -> list[dict[str, Any]]:
    return slack.wait_for(lambda: (a := final_answers(slack, channel)) and len(a) >= count and a)


def test_a_signed_mention_gets_one_threaded_streamed_answer_with_citations(
    bot: Bot, slack: FakeSlack
) -> None:
    event = mention()
    started = time.monotonic()
    response = bot.event(event)
    ack_seconds = time.monotonic() - started

    assert response.status_code == 200 and ack_seconds < 3
    [answer] = wait_for_answers(slack, "C1")
    assert answer["thread_ts"] == event["event"]["ts"]  # in the mention's thread
    sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert sections == [ANSWER]
    sources = next(b for b in answer["blocks"] if b["type"] == "context")
    assert "[1] Network settings › Listening port" in sources["elements"][0]["text"]
    assert "guide/network.md#listening-port" in sources["elements"][0]["text"]
    note = [b for b in answer["blocks"] if b["type"] == "context"][-1]["elements"][0]["text"]
    assert note.startswith("_Confidence: high (")
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1 and posts[0].params["text"] == "_Thinking…_"  # then edited in place
    assert [c.params["name"] for c in slack.calls_to("reactions.add")] == ["eyes"]
    slack.wait_for(lambda: slack.calls_to("reactions.remove"))


def test_a_question_the_docs_do_not_cover_says_so_with_what_might_help(
    bot: Bot, slack: FakeSlack, model: FakeOpenAI
) -> None:
    bot.event(mention("Does Zephyr support Microsoft Teams?"))

    [answer] = wait_for_answers(slack, "C1")
    sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert sections == [NOT_COVERED]
    notes = [b["elements"][0]["text"] for b in answer["blocks"] if b["type"] == "context"]
    assert notes[0].startswith("*Might help:*\n[1] ")
    assert notes[1].startswith("_Not covered by the indexed docs (confidence 0.")
    assert model.chat_requests() == []  # no model is asked to dress the passages up
    metrics = httpx.get(f"http://127.0.0.1:{bot.port}/metrics").text
    assert 'teambot_answers_abstained_total{platform="slack"} 1.0' in metrics


def test_retries_of_one_event_are_answered_once(bot: Bot, slack: FakeSlack) -> None:
    event = mention()
    responses = [bot.event(event)]
    for retry in (1, 2, 3):
        retried = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        responses.append(bot.event(event, headers=retried))

    assert [r.status_code for r in responses] == [200] * 4
    wait_for_answers(slack, "C1")
    time.sleep(0.5)  # time for a wrongly duplicated answer to show up
    assert len(final_answers(slack, "C1")) == 1
    assert len(slack.calls_to("chat.postMessage")) == 1


def seed_postgres(runtime: Runtime, embedder: Embedder, docs: Path) -> None:
    """Migrate the test's PostgreSQL schema (never automatic there) and index the docs."""
    upgrade(runtime.engine)
    ingest_folder(runtime.sessions, embedder, docs, name="zephyr")


def test_two_instances_on_one_postgres_answer_an_event_once(
    pg_schema: str, tmp_path: Path, docs: Path, embedder: Embedder, slack: FakeSlack,
    model: FakeOpenAI,
) -> None:  # fmt: skip
    url = postgres_schema_url(pg_schema)
    first_runtime = make_runtime(url, tmp_path / "a", embedder, slack, model)
    seed_postgres(first_runtime, embedder, docs)
    first = Bot(first_runtime)
    second = Bot(make_runtime(url, tmp_path / "b", embedder, slack, model))
    try:
        event = mention()
        results = []
        threads = [
            threading.Thread(target=lambda b=b: results.append(b.event(event)))
            for b in (first, second, first, second)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results) == [200] * 4
        wait_for_answers(slack, "C1")
        time.sleep(0.5)
        assert len(final_answers(slack, "C1")) == 1
    finally:
        first.stop()
        second.stop()
        first_runtime.close()


@pytest.mark.parametrize("fault", ["forged signature", "stale timestamp"])
def test_unsigned_or_replayed_requests_get_401_and_no_answer(
    bot: Bot, slack: FakeSlack, fault: str
) -> None:
    body = json.dumps(mention()).encode()
    if fault == "forged signature":
        headers = {**sign("not-the-secret", body), "content-type": "application/json"}
        response = httpx.post(f"http://127.0.0.1:{bot.port}/slack/events", content=body,
                              headers=headers)  # fmt: skip
    else:
        response = bot.post(body, content_type="application/json",
                            timestamp=int(time.time()) - 10 * 60)  # fmt: skip

    assert response.status_code == 401
    time.sleep(0.3)
    assert slack.calls_to("chat.postMessage") == []


def test_a_direct_message_is_answered_in_the_dm(bot: Bot, slack: FakeSlack) -> None:
    bot.event(message_event("Which port does Zephyr listen on?", "D42", "U7", f"{time.time():.6f}"))

    [answer] = wait_for_answers(slack, "D42")
    assert "thread_ts" not in answer or answer["thread_ts"] is None


def test_other_bots_and_our_own_messages_are_ignored(bot: Bot, slack: FakeSlack) -> None:
    now = f"{time.time():.6f}"
    bot.event(message_event("Which port?", "D42", "U9", now, bot_id="BOTHER"))
    bot.event(message_event("Which port?", "D42", "U9", now, subtype="message_changed"))

    time.sleep(0.5)
    assert slack.calls_to("chat.postMessage") == []


def test_a_reply_in_a_thread_teambot_answered_is_answered_without_a_mention(
    bot: Bot, slack: FakeSlack, model: FakeOpenAI
) -> None:
    first = mention()
    bot.event(first)
    wait_for_answers(slack, "C1")
    thread = first["event"]["ts"]
    model.always(Reply("Set ZEPHYR_PORT to change it [1]."))

    bot.event(message_event("and how do I change it?", "C1", "U1", f"{time.time():.6f}",
                            thread_ts=thread))  # fmt: skip
    bot.event(message_event("unrelated chatter", "C1", "U1", f"{time.time():.6f}",
                            thread_ts="1600000000.000100"))  # fmt: skip

    answers = wait_for_answers(slack, "C1", 2)
    assert answers[1]["thread_ts"] == thread
    assert answers[1]["blocks"][0]["text"]["text"] == "Set ZEPHYR_PORT to change it [1]."
    time.sleep(0.3)
    assert len(final_answers(slack, "C1")) == 2  # the unrelated thread got nothing
    history = model.chat_requests()[-1]["messages"]
    assert [m["role"] for m in history[1:3]] == ["user", "assistant"]  # the thread's memory


def test_ask_command_answers_in_the_channel(bot: Bot, slack: FakeSlack) -> None:
    response = bot.form(slash_command_form("/ask", "Which port does Zephyr listen on?", "C5",
                                           "U3", slack.response_url()))  # fmt: skip

    assert response.status_code == 200
    [answer] = wait_for_answers(slack, "C5")
    question = slack.messages("C5")[0]
    assert question["text"] == "<@U3> asked: Which port does Zephyr listen on?"
    assert answer["thread_ts"] == question["ts"]


def test_a_feedback_click_is_stored(bot: Bot, slack: FakeSlack) -> None:
    bot.event(mention())
    [answer] = wait_for_answers(slack, "C1")
    buttons = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"]
    turn = buttons[0]["value"]

    response = bot.form(block_action_payload(render.FEEDBACK_DOWN, turn, "U1", "C1",
                                             answer["ts"]))  # fmt: skip

    assert response.status_code == 200
    slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    with bot.runtime.sessions() as session:
        vote = session.scalars(select(Feedback)).one()
        assert (vote.turn_id, vote.user_id, vote.value) == (int(turn), "U1", -1)


def test_a_failing_model_is_said_plainly_in_the_thread(
    bot: Bot, slack: FakeSlack, model: FakeOpenAI
) -> None:
    model.always(Status(500))
    bot.event(mention())

    [answer] = wait_for_answers(slack, "C1")
    first = answer["blocks"][0]["text"]["text"].splitlines()[0]
    assert first.startswith("The language models are unavailable right now (local: HTTP 500")


def test_an_oversized_question_gets_the_reason_in_the_thread(bot: Bot, slack: FakeSlack) -> None:
    bot.event(mention("x" * 40_000))

    reply = slack.wait_for(
        lambda: [m for m in slack.messages("C1") if "characters long" in m.get("text", "")]
    )
    assert reply[0]["text"].startswith("The question is 40,000 characters long; the limit is")


def test_a_40000_character_answer_is_split_and_every_part_posted(
    start_bot: Any, slack: FakeSlack, model: FakeOpenAI
) -> None:
    bot = start_bot(llm_total_timeout_seconds=60)  # 6,000 streamed pieces take a while
    paragraph = "Zephyr keeps every job in its database and retries failed ones. " * 20
    long_answer = "\n\n".join([paragraph.strip()] * 32)[:40_000] + " [1]"
    model.always(Reply(long_answer))
    bot.event(mention())

    slack.wait_for(lambda: final_answers(slack, "C1"))
    parts = [m for m in slack.messages("C1") if m.get("blocks")]
    assert len(parts) >= 2
    for part in parts:
        assert len(part["text"]) <= 40_000
        assert all(len(b["text"]["text"]) <= 3000 for b in part["blocks"] if b["type"] == "section")
    posted = "".join(
        b["text"]["text"] for p in parts for b in p["blocks"] if b["type"] == "section"
    )
    assert posted.replace("\n", "").replace(" ", "") == long_answer.replace("\n", "").replace(
        " ", ""
    )


def test_a_rate_limited_post_is_retried_after_retry_after(bot: Bot, slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    bot.event(mention())

    wait_for_answers(slack, "C1")
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 2 and posts[1].at - posts[0].at >= 1.0


def test_socket_mode_events_are_answered(
    sqlite_db: str, tmp_path: Path, embedder: Embedder, slack: FakeSlack, model: FakeOpenAI
) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    runtime = make_runtime(sqlite_db, tmp_path / "data", embedder, slack, model)
    handler = SocketModeHandler(build_app(runtime), "xapp-test")
    handler.connect()
    try:
        assert slack.socket_connected()
        envelope = slack.socket_send("events_api", mention(event_id=f"Ev{uuid.uuid4().hex}"))
        slack.wait_for_ack(envelope)
        [answer] = wait_for_answers(slack, "C1")
        assert answer["blocks"][0]["text"]["text"] == ANSWER
    finally:
        slack.stop()
        handler.close()


def test_health_check_reports_the_database_and_the_index(bot: Bot) -> None:
    response = httpx.get(f"http://127.0.0.1:{bot.port}/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": "ok", "chunks": 8}

    bot.runtime.engine.dispose()
    bot.runtime.__dict__["sessions"] = lambda: (_ for _ in ()).throw(RuntimeError("db down"))
    broken = httpx.get(f"http://127.0.0.1:{bot.port}/healthz")
    assert broken.status_code == 503 and broken.json()["ok"] is False


def test_a_channel_can_turn_off_answering_thread_replies_without_a_mention(
    bot: Bot, slack: FakeSlack
) -> None:
    with bot.runtime.sessions.begin() as session:
        session.add(ChannelSetting(platform="slack", channel="C9", follow_threads=False))
    first = mention(channel="C9")
    bot.event(first)
    wait_for_answers(slack, "C9")

    bot.event(message_event("and how do I change it?", "C9", "U1", f"{time.time():.6f}",
                            thread_ts=first["event"]["ts"]))  # fmt: skip

    time.sleep(0.5)
    assert len(final_answers(slack, "C9")) == 1


def test_ask_can_answer_only_the_asker(start_bot: Any, slack: FakeSlack) -> None:
    bot = start_bot(slack_ask_visibility="ephemeral")

    response = bot.form(slash_command_form("/ask", "Which port does Zephyr listen on?", "C6",
                                           "U4", slack.response_url()))  # fmt: skip

    assert response.status_code == 200 and "Thinking" in response.text  # the ack itself
    [reply] = slack.wait_for(lambda: slack.calls_to("response_url"))
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["blocks"][0]["text"]["text"] == ANSWER
    assert slack.messages("C6") == []  # nothing posted for the channel to see


def test_admin_commands_by_mention_and_slash_command_are_checked_and_audited(
    start_bot: Any, slack: FakeSlack
) -> None:
    bot = start_bot(teambot_admins="slack:UADMIN")

    bot.event(mention("admin status", user="UNOBODY"))
    bot.form(slash_command_form("/teambot", "admin channel show slack:C1", "C1", "UADMIN",
                                slack.response_url()))  # fmt: skip

    refused = slack.wait_for(lambda: [m for m in slack.messages("C1") if "Only" in m["text"]])
    assert refused[0]["text"].startswith("```\nOnly teambot admins can run admin commands")
    [shown] = slack.wait_for(lambda: slack.calls_to("response_url"))
    assert shown.params["response_type"] == "ephemeral" and "slack:C1" in shown.params["text"]
    with bot.runtime.sessions() as session:
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert sorted((a.user_id, a.command, a.outcome.split(":")[0]) for a in audit) == [
            ("UADMIN", "channel show", "ok"),
            ("UNOBODY", "status", "refused"),
        ]
    assert slack.calls_to("reactions.add") == []  # no question was answered


def test_metrics_count_questions_latency_model_errors_and_the_knowledge_base(
    bot: Bot, slack: FakeSlack, model: FakeOpenAI
) -> None:
    bot.event(mention())
    wait_for_answers(slack, "C1")
    model.always(Status(500))
    bot.event(mention(channel="C2"))
    wait_for_answers(slack, "C2")

    metrics = httpx.get(f"http://127.0.0.1:{bot.port}/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(metrics.text.splitlines())
    assert 'teambot_questions_total{platform="slack",provider="local"} 1.0' in lines
    assert 'teambot_questions_total{platform="slack",provider="extractive"} 1.0' in lines
    assert 'teambot_llm_errors_total{kind="server",provider="local"} 1.0' in lines
    assert 'teambot_knowledge_base{kind="chunks"} 8.0' in lines
    assert 'teambot_ingestion_runs_total{status="ok"} 1.0' in lines
    assert any(line.startswith("teambot_answer_seconds_bucket{") for line in lines)


# --- claims that outlive their replica (bot.delivery) --------------------------------------

EARLY = timedelta(minutes=1)  # claims older than the grace a silent owner gets


def dead_owner() -> str:
    """The owner id of a process on this machine that has exited."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return f"{HOST}:{finished.pid}:dead0000"


def seed_claim(sessions: sessionmaker[Session], envelope: dict[str, Any], owner: str,
               **fields: Any) -> None:  # fmt: skip
    with sessions.begin() as session:
        session.add(
            ProcessedEvent(platform="slack", event_id=envelope["event_id"], state="claimed",
                           owner=owner, payload=envelope, received_at=utcnow() - EARLY, **fields)
        )  # fmt: skip


def duties(bot: Bot) -> ReplicaDuties:
    """The replica's background duties, run one tick at a time by the test."""
    return ReplicaDuties(
        bot.runtime,
        {"slack": functools.partial(redeliver, bot.app)},
        {"slack": functools.partial(post_notice, bot.app)},
    )


def test_a_dead_replicas_claim_is_answered_once_by_another(bot: Bot, slack: FakeSlack) -> None:
    envelope = mention(channel="C7")
    seed_claim(bot.runtime.sessions, envelope, dead_owner())

    assert duties(bot).tick() == 1
    wait_for_answers(slack, "C7")
    assert duties(bot).tick() == 0  # answered: nothing left to take over

    assert len(final_answers(slack, "C7")) == 1

    def settled() -> ProcessedEvent | None:
        with bot.runtime.sessions() as session:
            row = session.scalars(select(ProcessedEvent)).one()
        return row if row.state == "done" else None

    row = slack.wait_for(settled)
    assert (row.owner, row.attempts) == (bot.runtime.process_id, 1)
    assert row.payload is None  # nothing kept once answered


def test_the_placeholder_a_dead_replica_posted_is_reused_not_duplicated(
    bot: Bot, slack: FakeSlack
) -> None:
    envelope = mention(channel="C8")
    thread = envelope["event"]["ts"]
    # The dead replica posted its placeholder but died before recording it.
    placeholder = slack.seed_message("C8", THINKING, BOT_USER_ID, thread, bot_id=BOT_ID)
    seed_claim(bot.runtime.sessions, envelope, dead_owner())

    duties(bot).tick()
    [answer] = wait_for_answers(slack, "C8")

    assert answer["ts"] == placeholder
    assert [m["ts"] for m in slack.thread("C8", thread)] == [placeholder]
    assert slack.calls_to("chat.postMessage") == []


def test_claims_of_live_or_silent_newcomers_are_left_alone_and_attempts_are_capped(
    bot: Bot,
) -> None:
    sessions, inbox = bot.runtime.sessions, bot.runtime.inbox
    live, gone = mention(), mention()
    seed_claim(sessions, live, "elsewhere:1:live")
    seed_claim(sessions, gone, dead_owner(), attempts=MAX_ATTEMPTS)
    fresh = mention()  # a replica not seen beating yet, whose claim is seconds old
    with sessions.begin() as session:
        session.add(ProcessedEvent(platform="slack", event_id=fresh["event_id"], state="claimed",
                                   owner="newcomer:2:x", payload=fresh))  # fmt: skip

    assert inbox.adopt_orphans({"slack"}, live_owners={"elsewhere:1:live"}) == []
    assert [o.event_id for o in inbox.adopt_orphans({"slack"}, live_owners=set())] == [
        live["event_id"]
    ]  # once its owner stops beating


def test_a_claim_the_database_refuses_is_answered_503_and_the_retry_is_answered(
    pg_schema: str, tmp_path: Path, docs: Path, embedder: Embedder, slack: FakeSlack,
    model: FakeOpenAI,
) -> None:  # fmt: skip
    runtime = make_runtime(postgres_schema_url(pg_schema), tmp_path / "d", embedder, slack, model)
    seed_postgres(runtime, embedder, docs)
    bot = Bot(runtime)
    try:
        envelope = mention(channel="C9")
        with runtime.engine.begin() as connection:  # the claim table is gone for a moment
            connection.execute(text("ALTER TABLE processed_events RENAME TO away"))
        refused = bot.event(envelope)
        with runtime.engine.begin() as connection:
            connection.execute(text("ALTER TABLE away RENAME TO processed_events"))
        retry = bot.event(envelope, headers={"X-Slack-Retry-Num": "1",
                                             "X-Slack-Retry-Reason": "http_error"})  # fmt: skip

        assert (refused.status_code, retry.status_code) == (503, 200)
        wait_for_answers(slack, "C9")
        assert len(final_answers(slack, "C9")) == 1
    finally:
        bot.stop()
        runtime.close()


def test_a_refresh_asked_for_by_mention_is_handed_to_a_worker_and_its_result_posted_there(
    start_bot: Any, slack: FakeSlack
) -> None:
    bot = start_bot(teambot_admins="slack:UADMIN")
    with bot.runtime.sessions.begin() as session:
        session.add(Heartbeat(id="box:1:w", role="worker"))  # a worker is running
    asked = mention("admin sources refresh zephyr", user="UADMIN")
    thread = asked["event"]["ts"]

    bot.event(asked)
    [queued] = slack.wait_for(lambda: slack.thread("C1", thread))
    with bot.runtime.sessions.begin() as session:  # what the worker does when it is done
        [request] = coordination.claim_requests(session)
        coordination.leave_notice(session, request.notify, "Refreshed. Source 'zephyr': …")
    duties(bot).tick()
    duties(bot).tick()

    assert "Queued a refresh of 'zephyr'" in queued["text"]
    assert "I will post its counts here when it is done" in queued["text"]
    assert request.notify == {"platform": "slack", "channel": "C1", "thread": thread}
    done = slack.wait_for(lambda: slack.thread("C1", thread)[1:])
    assert [m["text"] for m in done] == ["```\nRefreshed. Source 'zephyr': …\n```"]


def test_a_teammates_answer_in_a_thread_teambot_answered_is_a_gap(
    start_bot: Any, slack: FakeSlack
) -> None:
    bot = start_bot(slack_follow_threads=False)  # so teambot answers only the mention
    first = mention()
    bot.event(first)
    wait_for_answers(slack, "C1")
    thread = first["event"]["ts"]

    def reply(text: str, user: str) -> None:
        bot.event(message_event(text, "C1", user, f"{time.time():.6f}", thread_ts=thread))

    reply("thanks, that works", "U1")  # the asker: no gap
    reply("anyone know about TLS too?", "U2")  # a question of their own: no gap
    reply("It listens on 7070, set ZEPHYR_PORT to change it.", "U2")  # a teammate's answer
    reply("Also see the runbook.", "U3")  # the same answer again: still one gap

    gaps = slack.wait_for(lambda: len(g := stored_gaps(bot)) == 1 and g, timeout=5)
    time.sleep(0.5)
    assert len(stored_gaps(bot)) == 1
    [(kind, question, channel)] = [(g.kind, g.question, g.channel) for g in gaps]
    assert (kind, question, channel) == ("answered_by_person", "Which port does Zephyr listen on?",
                                         "C1")  # fmt: skip


def test_with_follow_ups_answered_the_askers_thanks_is_not_a_gap(
    bot: Bot, slack: FakeSlack
) -> None:
    first = mention()
    bot.event(first)
    wait_for_answers(slack, "C1")
    thread = first["event"]["ts"]

    teammate = message_event("It is 7070.", "C1", "U2", f"{time.time():.6f}", thread_ts=thread)
    bot.event(teammate)
    wait_for_answers(slack, "C1", 2)  # teambot answers it too, as a follow-up
    bot.event(message_event("thanks both", "C1", "U1", f"{time.time():.6f}", thread_ts=thread))
    wait_for_answers(slack, "C1", 3)

    [gap] = stored_gaps(bot)
    assert (gap.kind, gap.question) == ("answered_by_person", "Which port does Zephyr listen on?")


def stored_gaps(bot: Bot) -> list[Gap]:
    with bot.runtime.sessions() as session:
        return list(session.scalars(select(Gap).order_by(Gap.id)))


def test_the_digest_is_posted_to_the_configured_channel_with_the_expected_groups(
    start_bot: Any, slack: FakeSlack
) -> None:
    bot = start_bot(digest_channel="slack:CDIGEST")
    teams = ["Does Zephyr support Microsoft Teams?", "Is there a Microsoft Teams integration?"]
    for n, asked in enumerate([*teams, "How much does a Zephyr license cost?"]):
        bot.event(mention(asked, channel=f"C{n + 1}"))
    for n in range(3):
        wait_for_answers(slack, f"C{n + 1}")
    scheduler = BackgroundScheduler()
    worker = Worker(bot.runtime, scheduler, forget_expired, post_digest)
    jobs.bind(worker)

    jobs.post_digest()  # what the shared digest job runs, on any worker
    duties(bot).tick()  # a serve replica posts the notice

    [posted] = slack.wait_for(lambda: slack.messages("CDIGEST"))
    lines = posted["text"].strip("`\n").splitlines()
    assert lines[0] == ("teambot gaps, last 7 days: 3 questions the docs did not answer well, "
                        "in 2 topics. Top 2:")  # fmt: skip
    assert lines[1].startswith("• 2× “") and "slack:C1, slack:C2" in lines[1]
    assert any(q in lines[1] for q in teams)
    assert lines[2].startswith("• 1× “How much does a Zephyr license cost?” (slack:C3; last ")
