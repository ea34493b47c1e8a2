"""Gaps: recorded by the real Assistant and feedback paths, listed by `admin gaps`, posted by
the worker's digest job (Slack's thread replies and the posting itself: tests/test_slack.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin import Actor, run_admin
from bot.admin.gaps import parse_since
from bot.core import Assistant
from bot.digest import post_digest
from bot.errors import AdminError
from bot.feedback import record_feedback
from bot.retention import forget_expired
from bot.settings import Settings
from bot.types import Question
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage import coordination
from knowledge.storage.conversations import Gap, Turn
from tests.test_core import make_assistant
from workers import jobs
from workers.scheduler import DIGEST_JOB, SHARED, Worker, build_scheduler, sync_digest_job

TERMINAL = Actor("cli", "ops")
# Two topics the Zephyr docs do not cover, in several wordings; and one they do.
TEAMS = [
    "Does Zephyr support Microsoft Teams?",
    "Can Zephyr post answers into Microsoft Teams channels?",
    "Is there a Microsoft Teams integration for Zephyr?",
]
BILLING = ["How much does a Zephyr enterprise license cost?", "What is the price of Zephyr?"]
COVERED = "Which TCP port does Zephyr listen on?"


@pytest.fixture
def assistant(sessions: sessionmaker[Session], embedder: Embedder, corpus: Path) -> Assistant:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    return make_assistant(sessions, embedder)


@dataclass
class Deps:
    """The slice of Runtime the admin commands use."""

    sessions: sessionmaker[Session]
    settings: Settings
    embedder: Embedder
    crawl_limits: Any = None
    router: Any = None


def ask(assistant: Assistant, text: str, channel: str = "C1", user: str = "U1") -> Any:
    return assistant.ask(Question("slack", channel, f"t-{text}", user, text))


def all_gaps(sessions: sessionmaker[Session]) -> list[Gap]:
    with sessions() as session:
        return list(session.scalars(select(Gap).order_by(Gap.id)))


def test_an_abstained_answer_is_a_gap_with_the_passages_weighed(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    answer = ask(assistant, TEAMS[0])
    ask(assistant, COVERED)

    [gap] = all_gaps(sessions)
    assert answer.abstained
    assert (gap.kind, gap.platform, gap.channel, gap.question, gap.turn_id) == (
        "abstained", "slack", "C1", TEAMS[0], answer.turn_id)  # fmt: skip
    assert gap.confidence == answer.confidence
    assert gap.passages and set(gap.passages[0]) == {"title", "url", "anchor", "cosine"}
    assert [p["title"] for p in gap.passages][: len(answer.suggestions)] == [
        s.title for s in answer.suggestions
    ]
    assert all(isinstance(p["cosine"], float) for p in gap.passages)


def test_a_downvote_is_one_gap_per_answer_and_goes_when_no_downvote_is_left(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    answer = ask(assistant, COVERED)
    assert not answer.abstained and all_gaps(sessions) == []

    assert record_feedback(sessions, answer.turn_id, "U1", -1)
    assert record_feedback(sessions, answer.turn_id, "U2", -1)
    [gap] = all_gaps(sessions)
    assert (gap.kind, gap.question, gap.turn_id) == ("downvoted", COVERED, answer.turn_id)
    assert gap.passages[0]["url"] == answer.citations[0].url and gap.passages[0]["cosine"] is None

    assert record_feedback(sessions, answer.turn_id, "U1", 1)  # U2's 👎 still stands
    assert len(all_gaps(sessions)) == 1
    assert record_feedback(sessions, answer.turn_id, "U2", 1)
    assert all_gaps(sessions) == []


def test_gaps_go_with_their_conversation(
    assistant: Assistant, sessions: sessionmaker[Session]
) -> None:
    ask(assistant, TEAMS[0])
    forget_expired(sessions, None)
    assert len(all_gaps(sessions)) == 1
    with sessions.begin() as session:
        for turn in session.scalars(select(Turn)):
            session.delete(turn)
    assert all_gaps(sessions) == []


def test_admin_gaps_lists_topics_as_text_and_json(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    for text in TEAMS:
        ask(assistant, text, channel="C1")
    for text in BILLING:
        ask(assistant, text, channel="C2")
    billing = ask(assistant, BILLING[0], channel="C2", user="U9")  # asked again, elsewhere
    record_feedback(sessions, billing.turn_id, "U9", -1)  # abstained and 👎: one question
    deps = Deps(sessions, Settings(_env_file=None), embedder)  # type: ignore[call-arg]

    text = run_admin(deps, TERMINAL, ["gaps"])
    as_json = run_admin(deps, TERMINAL, ["gaps", "--since", "2h", "--json"])
    only_c2 = run_admin(deps, TERMINAL, ["gaps", "--channel", "slack:C2", "--json"])

    assert text.ok and as_json.ok and only_c2.ok
    groups = json.loads(as_json.text)["groups"]
    assert [g["count"] for g in groups] == [3, 3]
    teams, prices = sorted(groups, key=lambda g: g["label"] not in TEAMS)
    assert teams["label"] in TEAMS and set(teams["questions"]) == set(TEAMS)
    assert teams["channels"] == ["slack:C1"] and prices["channels"] == ["slack:C2"]
    assert set(prices["questions"]) == set(BILLING)  # the repeat is counted, not shown twice
    assert prices["kinds"] == {"abstained": 3, "downvoted": 1}
    assert set(teams) >= {"label", "count", "questions", "channels", "last_seen"}
    assert [g["label"] for g in json.loads(only_c2.text)["groups"]] == [prices["label"]]
    lines = text.text.splitlines()
    assert lines[0].startswith("Gaps since ") and lines[0].endswith("6 questions in 2 topics.")
    assert lines[1] in {f"1. {teams['label']}", f"1. {prices['label']}"}
    assert "3 abstained, 1 👎" in text.text and "channels: slack:C1" in text.text


@pytest.mark.parametrize("words", [["--since", "7w"], ["--since", "0d"], ["--since", "400d"],
                                   ["--channel", "C1"], ["--json=1", "extra"]])  # fmt: skip
def test_admin_gaps_refuses_what_it_cannot_read(
    sessions: sessionmaker[Session], embedder: Embedder, words: list[str]
) -> None:
    deps = Deps(sessions, Settings(_env_file=None), embedder)  # type: ignore[call-arg]
    result = run_admin(deps, TERMINAL, ["gaps", *words])
    assert not result.ok
    assert "7d or 12h" in result.text or "PLATFORM:CHANNEL" in result.text or (
        result.text.startswith("Usage: admin gaps"))  # fmt: skip


def test_since_reads_days_and_hours() -> None:
    assert parse_since("7d").days == 7 and parse_since("12h").seconds == 12 * 3600
    with pytest.raises(AdminError):
        parse_since("1w")


def test_digest_now_needs_a_channel_and_leaves_the_digest_there(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    ask(assistant, TEAMS[0])
    unset = Deps(sessions, Settings(_env_file=None), embedder)  # type: ignore[call-arg]
    refused = run_admin(unset, TERMINAL, ["digest", "now"])
    settings = Settings(_env_file=None, TEAMBOT_DIGEST_CHANNEL="discord:42")  # type: ignore[call-arg]
    done = run_admin(Deps(sessions, settings, embedder), TERMINAL, ["digest", "now"])

    assert not refused.ok and "TEAMBOT_DIGEST_CHANNEL" in refused.text
    assert done.ok and "Digest left for discord:42" in done.text
    with sessions.begin() as session:
        [notice] = coordination.claim_notices(session, {"discord"})
    assert notice.channel == "42" and f"1× “{TEAMS[0]}”" in notice.text


class Runtime:
    """What the worker uses, with the digest's settings."""

    def __init__(self, sessions: sessionmaker[Session], embedder: Embedder, **env: Any) -> None:
        self.sessions = sessions
        self.engine = sessions.kw["bind"]
        self.embedder = embedder
        self.crawl_limits = None
        self.settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_the_worker_schedules_the_digest_and_its_job_leaves_the_top_topics(
    assistant: Assistant, sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    for text in [*TEAMS, *BILLING]:
        ask(assistant, text)
    runtime = Runtime(sessions, embedder, TEAMBOT_DIGEST_CHANNEL="slack:CDIGEST",
                      TEAMBOT_DIGEST_SCHEDULE="30 8 * * fri")  # fmt: skip
    scheduler = build_scheduler(runtime, BackgroundScheduler)  # type: ignore[arg-type]
    scheduler.start(paused=True)
    worker = Worker(runtime, scheduler, forget_expired, post_digest)  # type: ignore[arg-type]
    jobs.bind(worker)
    try:
        worker.sync_jobs()
        job = scheduler.get_job(DIGEST_JOB, SHARED)
        assert job.name == "cron 30 8 * * fri" and job.next_run_time.weekday() == 4
        runtime.settings = Settings(_env_file=None, TEAMBOT_DIGEST_CHANNEL="slack:CDIGEST")  # type: ignore[call-arg]
        sync_digest_job(scheduler, runtime.settings)
        assert scheduler.get_job(DIGEST_JOB, SHARED).name == "cron 0 9 * * mon"

        job.func()  # what the scheduler runs: workers.jobs.post_digest

        with sessions.begin() as session:
            [notice] = coordination.claim_notices(session, {"slack"})
        assert (notice.channel, notice.thread, notice.user_id) == ("CDIGEST", None, None)
        lines = notice.text.splitlines()
        assert lines[0].startswith("teambot gaps, last 7 days: 5 questions")
        assert lines[1].startswith("• 3× “") and any(q in lines[1] for q in TEAMS)
        assert lines[2].startswith("• 2× “") and any(q in lines[2] for q in BILLING)

        runtime.settings = Settings(_env_file=None)  # type: ignore[call-arg]
        sync_digest_job(scheduler, runtime.settings)
        assert scheduler.get_job(DIGEST_JOB, SHARED) is None
    finally:
        scheduler.shutdown()


@pytest.mark.parametrize(("env", "says"), [
    ({"TEAMBOT_DIGEST_CHANNEL": "C123"}, "slack:CHANNEL_ID"),
    ({"TEAMBOT_DIGEST_CHANNEL": "teams:C1"}, "slack:CHANNEL_ID"),
    ({"TEAMBOT_DIGEST_CHANNEL": "discord:general"}, "is a number"),
    ({"TEAMBOT_DIGEST_SCHEDULE": "weekly"}, "crontab line"),
])  # fmt: skip
def test_digest_settings_are_checked_at_start(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None, **env)  # type: ignore[call-arg]
    assert Settings(_env_file=None).digest_schedule == "0 9 * * mon"  # type: ignore[call-arg]
