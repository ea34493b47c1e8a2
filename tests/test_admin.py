"""Admin commands on a seeded database: permission, audit, each command's output, forget.

Rows are seeded directly (no embedding) so the file stays fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin import Actor, AdminResult, run_admin
from bot.admin.commands import REFUSED
from bot.settings import Settings
from knowledge.ingest.sources import FOLDER_NOT_ALLOWED
from knowledge.storage.conversations import (
    Admin,
    AuditEntry,
    ChannelSetting,
    Conversation,
    Feedback,
    Turn,
)
from knowledge.storage.db import utcnow
from knowledge.storage.documents import Chunk, Document, IngestionRun, Source
from knowledge.storage.processes import Heartbeat, scheduler_jobs
from tests.conftest import sqlite_url
from tests.test_cli import run

ALICE = Actor("slack", "UALICE")  # in TEAMBOT_ADMINS
TERMINAL = Actor("cli", "ops")
CITATION = {"n": 1, "title": "Setup", "url": "file:///docs/setup.md"}


@dataclass
class Deps:
    """The slice of Runtime the admin commands use (no embedder: nothing here refreshes)."""

    sessions: sessionmaker[Session]
    settings: Settings
    embedder: Any = None
    crawl_limits: Any = None
    router: Any = None


def deps(sessions: sessionmaker[Session], admins: str = "slack:UALICE") -> Deps:
    return Deps(sessions, Settings(_env_file=None, TEAMBOT_ADMINS=admins))  # type: ignore[call-arg]


def admin(sessions: sessionmaker[Session], *words: str) -> AdminResult:
    return run_admin(deps(sessions), TERMINAL, list(words))


def audit_rows(sessions: sessionmaker[Session]) -> list[tuple[str, str, str, str]]:
    with sessions() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(str(Actor(r.platform, r.user_id)), r.command, r.args["argv"], r.outcome)
                for r in rows]  # fmt: skip


def seed_source(session: Session, name: str = "guide", *, with_run: bool = True) -> Source:
    source = Source(name=name, kind="folder", location=f"/srv/{name}", options={})
    document = Document(source=source, url=f"file:///srv/{name}/setup.md", content_hash="d")
    document.chunks = [
        Chunk(ordinal=i, text="t", content_hash=f"{name}{i}", token_count=1, model="m",
              embedding=b"\0" * 16)
        for i in range(3)
    ]  # fmt: skip
    session.add(document)
    session.flush()
    if with_run:
        session.add(
            IngestionRun(
                source_id=source.id,
                status="partial",
                counts={"pages_seen": 2, "pages_new": 1, "pages_failed": 1, "chunks_embedded": 3},
                errors=[
                    {"url": "file:///srv/guide/bad.md", "error": "not UTF-8", "kind": "failed"}
                ],
            )
        )
    return source


def seed_exchange(
    session: Session,
    user: str,
    question: str,
    *,
    platform: str = "slack",
    thread: str = "t1",
    cited: bool = True,
    latency_ms: float = 1000.0,
) -> Turn:
    """A question by ``user`` and teambot's answer; returns the answer turn."""
    key = (Conversation.platform == platform, Conversation.channel == "C1",
           Conversation.thread == thread)  # fmt: skip
    conversation = session.scalar(select(Conversation).where(*key)) or Conversation(
        platform=platform, channel="C1", thread=thread
    )
    session.add(conversation)
    session.flush()
    answer = Turn(
        conversation_id=conversation.id,
        role="assistant",
        text="answer",
        citations=[CITATION] if cited else [],
        latency_ms=latency_ms,
        provider="local" if cited else "extractive",
    )
    asked = Turn(conversation_id=conversation.id, role="user", user_id=user, text=question)
    session.add(asked)
    session.flush()
    session.add(answer)
    session.flush()
    return answer


def test_a_non_admin_is_refused_and_audited(sessions: sessionmaker[Session]) -> None:
    result = run_admin(deps(sessions), Actor("slack", "UBOB"), ["sources", "remove", "guide"])
    assert result == AdminResult(False, REFUSED)
    assert audit_rows(sessions) == [
        ("slack:UBOB", "sources remove", ["sources", "remove", "guide"], "refused: not an admin")
    ]


def test_configured_table_and_terminal_admins_are_allowed_and_audited(
    any_sessions: sessionmaker[Session],
) -> None:
    with any_sessions.begin() as session:
        session.add(Admin(platform="discord", user_id="42", added_by="slack:UALICE"))
    for actor in (ALICE, Actor("discord", "42"), TERMINAL):
        assert run_admin(deps(any_sessions), actor, "admins list").ok
    assert not run_admin(deps(any_sessions), Actor("discord", "43"), "status").ok
    assert [(who, outcome) for who, _, _, outcome in audit_rows(any_sessions)] == [
        ("slack:UALICE", "ok"),
        ("discord:42", "ok"),
        ("cli:ops", "ok"),
        ("discord:43", "refused: not an admin"),
    ]


def test_unknown_commands_list_the_commands_and_bad_arguments_show_usage(
    sessions: sessionmaker[Session],
) -> None:
    unknown = admin(sessions, "reboot")
    assert not unknown.ok
    assert unknown.text.startswith("Unknown admin command 'reboot'.\nAdmin commands:\n")
    assert "  forget PLATFORM:USER" in unknown.text
    assert admin(sessions, "sources", "remove") == AdminResult(
        False, "Usage: admin sources remove NAME"
    )
    assert admin(sessions, "stats", "--weeks", "2").text == "Usage: admin stats [--days 7]"
    assert admin(sessions, "forget", "UBOB").text == (
        "'UBOB' is not PLATFORM:USER, e.g. slack:U123 or discord:456."
    )
    assert admin(sessions, "help").ok
    assert audit_rows(sessions)[0][1:] == (
        "reboot",
        ["reboot"],
        "error: Unknown admin command 'reboot'.",
    )


def test_status_shows_the_index_and_each_sources_last_run(
    any_sessions: sessionmaker[Session],
) -> None:
    with any_sessions.begin() as session:
        seed_source(session)
        seed_source(session, "api", with_run=False)
    text = admin(any_sessions, "status").text.splitlines()
    assert text[0].startswith("Index: 2 sources, 2 documents, 6 chunks, revision ")
    assert text[1].startswith("Workers: none running, so nothing refreshes on schedule;")
    assert text[2].startswith("Models: none configured; answers are extractive")
    assert text[3] == "Retention: keep everything; last run: never"
    assert text[4:6] == [
        "api (folder, default schedule): 1 documents, 3 chunks",
        "  last run: never",
    ]
    assert text[6] == "guide (folder, default schedule): 1 documents, 3 chunks"
    assert text[7].endswith(
        " partial — 2 seen, 1 new, 0 changed, 0 removed, 1 failed; 3 chunks embedded"
    )
    assert text[8] == "  error: file:///srv/guide/bad.md: not UTF-8"


def test_status_shows_workers_what_runs_what_is_queued_and_the_next_runs(
    any_sessions: sessionmaker[Session],
) -> None:
    next_run = datetime(2031, 5, 4, 3, 0, tzinfo=UTC)
    with any_sessions.begin() as session:
        seed_source(session).lease_owner = "box:41:aa"
        seed_source(session, "api", with_run=False).schedule = "every 7200"
        session.add_all(
            [
                Heartbeat(id="box:41:aa", role="worker", running="guide"),
                Heartbeat(id="box:42:bb", role="worker"),
                Heartbeat(id="gone:7:cc", role="worker", seen_at=utcnow() - timedelta(minutes=5)),
            ]
        )
        session.execute(
            insert(scheduler_jobs).values(
                id="refresh:api", next_run_time=next_run.timestamp(), job_state=b"-"
            )
        )
    queued = admin(any_sessions, "sources", "refresh", "api")  # a worker is alive: queued

    assert queued.text.startswith("Queued a refresh of 'api': a worker (2 running) starts it")
    text = admin(any_sessions, "status").text
    assert "Workers: 2 running: box:41:aa (refreshing guide); box:42:bb (idle)" in text
    assert re.search(
        r"api \(folder, every 2h\): 1 documents, 3 chunks\n"
        r"  refresh queued at \d\d:\d\d:\d\d UTC\n"
        r"  next run: 2031-05-04 03:00 UTC\n",
        text,
    ), text
    guide = "guide (folder, default schedule): 1 documents, 3 chunks\n  refreshing now: box:41:aa"
    assert guide in text
    assert admin(any_sessions, "sources", "refresh", "nope") == AdminResult(
        False, "No source named 'nope'; see `admin sources list`."
    )


def test_sources_list_and_remove(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    assert admin(sessions, "sources", "list").text.startswith("No sources yet.")
    with sessions.begin() as session:
        seed_source(session)
    assert admin(sessions, "sources", "list").text.splitlines() == [
        "Sources:",
        "  name   kind    documents  chunks  last run                  location",
        f"  guide  folder  1          3       {_run_started(sessions)} partial  /srv/guide",
    ]
    added = admin(sessions, "sources", "add", str(tmp_path), "--name", "notes", "--every", "6h")
    assert added.text.startswith(f"Added folder source 'notes' at {tmp_path}.")
    assert admin(sessions, "sources", "remove", "guide").text == (
        "Removed source 'guide' and its 1 documents."
    )
    assert admin(sessions, "sources", "remove", "guide") == AdminResult(
        False, "No source named 'guide'; see `teambot sources list`."
    )
    with sessions() as session:
        assert list(session.scalars(select(Source.name))) == ["notes"]


# How each adapter calls run_admin: Slack with the user (an admin by TEAMBOT_ADMINS), Discord
# with the platform vouching for a Manage Server member.
CHAT_CALLERS = {"slack": (ALICE, False), "discord": (Actor("discord", "42"), True)}


@pytest.mark.parametrize("platform", sorted(CHAT_CALLERS))
def test_chat_admins_add_folders_only_inside_the_folder_roots(
    sessions: sessionmaker[Session], tmp_path: Path, platform: str
) -> None:
    root = tmp_path / "shared"
    (root / "team").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (root / "out").symlink_to(tmp_path / "private")
    settings = Settings(_env_file=None, TEAMBOT_ADMINS="slack:UALICE",  # type: ignore[call-arg]
                        TEAMBOT_FOLDER_ROOTS=f"{root}:{tmp_path / 'other'}")  # fmt: skip
    actor, platform_admin = CHAT_CALLERS[platform]

    def add(location: str, name: str = "n") -> AdminResult:
        words = ["sources", "add", location, "--name", name]
        return run_admin(Deps(sessions, settings), actor, words, platform_admin=platform_admin)

    refused = [
        str(tmp_path / "private"),  # exists
        str(tmp_path / "missing"),  # does not: the same answer, so nothing can be probed
        "~", "~root", "../", "shared/team", f"file://{root}/team", f"{root}/../private",
        str(root / "out"),  # a link inside the root to a folder outside it
        f"{root}x", "/etc", "docs.example.com", f"{root}/team\0",
    ]  # fmt: skip
    assert {location: add(location) for location in refused} == {
        location: AdminResult(False, FOLDER_NOT_ALLOWED) for location in refused
    }
    assert add(str(root / "team"), "team").text.startswith(
        f"Added folder source 'team' at {root / 'team'}."
    )
    assert add(str(root / "nothing")).text.startswith(f"No such folder: {root / 'nothing'}.")
    with sessions() as session:
        assert list(session.scalars(select(Source.name))) == ["team"]


def test_folder_roots_must_be_absolute() -> None:
    with pytest.raises(ValidationError, match="'docs' is not an absolute path"):
        Settings(_env_file=None, TEAMBOT_FOLDER_ROOTS="/srv/docs:docs")  # type: ignore[call-arg]


def _run_started(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        started = session.scalars(select(IngestionRun.started_at)).one()
    return f"{started:%Y-%m-%d %H:%M}"


def test_channel_show_and_set_with_validation(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        seed_source(session)
    assert admin(sessions, "channel", "show", "slack:C1").text == (
        "Channel slack:C1:\n"
        "  sources         all (default)\n"
        "  route           default (LLM_ROUTE)\n"
        "  persona         default\n"
        "  follow_threads  default\n"
        "  min_confidence  default (MIN_CONFIDENCE)\n"
        "  teach           off: admins only (default)"
    )
    for words, error in [
        (["route=fastest"], "route=fastest: use one of local-first, cloud-first, local-only, "
                            "cloud-only, extractive or default."),
        (["sources=guide,wiki"], "sources=guide,wiki: no source named wiki; "
                                 "see `admin sources list`, or use sources=all."),
        (["follow_threads=maybe"], "follow_threads=maybe: use on, off or default."),
        (["colour=red"], "'colour=red' is not KEY=VALUE with KEY one of sources, route, "
                         "persona, follow_threads, min_confidence, teach."),
        (["route=local-only", "persona"], "'persona' is not KEY=VALUE with KEY one of sources, "
                                          "route, persona, follow_threads, min_confidence, "
                                          "teach."),
        (["min_confidence=high"], "min_confidence=high: use a number from 0 to 1 (0 never "
                                  "abstains), or default."),
        (["min_confidence=1.5"], "min_confidence=1.5: use a number from 0 to 1 (0 never "
                                 "abstains), or default."),
    ]:  # fmt: skip
        assert admin(sessions, "channel", "set", "slack:C1", *words) == AdminResult(False, error)
    with sessions() as session:
        assert session.scalar(select(func.count(ChannelSetting.id))) == 0  # all or nothing

    chat_text = 'channel set discord:9 sources=guide route=local-only "persona=Be brief." '
    chat_text += "follow_threads=off min_confidence=0.4 teach=on"
    saved = run_admin(deps(sessions), ALICE, chat_text)
    assert saved.text == (
        "Saved.\nChannel discord:9:\n"
        "  sources         guide\n"
        "  route           local-only\n"
        "  persona         Be brief.\n"
        "  follow_threads  off\n"
        "  min_confidence  0.4\n"
        "  teach           on\n"
        "  updated_by      slack:UALICE"
    )
    reset = admin(sessions, "channel", "set", "discord:9", "sources=all", "route=default")
    assert "  sources         all (default)\n  route           default (LLM_ROUTE)\n" in reset.text
    with sessions() as session:
        row = session.scalars(select(ChannelSetting)).one()
        assert (row.sources, row.llm_route, row.persona, row.follow_threads, row.updated_by) == (
            None, None, "Be brief.", False, "cli:ops",
        )  # fmt: skip
        assert row.min_confidence == 0.4


def test_admins_add_list_remove(sessions: sessionmaker[Session]) -> None:
    assert run_admin(deps(sessions), ALICE, "admins add discord:42").text == (
        "discord:42 is now an admin."
    )
    assert admin(sessions, "admins", "add", "discord:42").text == "discord:42 is already an admin."
    listed = admin(sessions, "admins", "list").text.splitlines()
    assert listed[:2] == ["Admins:", "  slack:UALICE  TEAMBOT_ADMINS"]
    assert listed[2].startswith("  discord:42    added by slack:UALICE on ")
    assert listed[3] == "The terminal (`teambot admin`) is always allowed."
    assert run_admin(deps(sessions), Actor("discord", "42"), "status").ok

    assert admin(sessions, "admins", "remove", "discord:42").text == (
        "discord:42 is no longer an admin."
    )
    assert not run_admin(deps(sessions), Actor("discord", "42"), "status").ok
    assert admin(sessions, "admins", "remove", "discord:42") == AdminResult(
        False, "discord:42 is not an admin; see `admin admins list`."
    )
    assert admin(sessions, "admins", "remove", "slack:UALICE") == AdminResult(
        False, "slack:UALICE is set in TEAMBOT_ADMINS; remove it there and restart teambot."
    )


def test_stats_counts_questions_answers_votes_and_lists_slow_and_unanswered(
    any_sessions: sessionmaker[Session],
) -> None:
    with any_sessions.begin() as session:
        first = seed_exchange(session, "UBOB", "How do I set up the database?", latency_ms=900)
        seed_exchange(session, "UBOB", "And for PostgreSQL?", latency_ms=4200)
        seed_exchange(session, "UCAROL", "What is the moon made of?", thread="t2", cited=False,
                      latency_ms=300)  # fmt: skip
        session.add_all([
            Feedback(turn_id=first.id, user_id="UBOB", value=1),
            Feedback(turn_id=first.id, user_id="UCAROL", value=-1),
        ])  # fmt: skip
    lines = admin(any_sessions, "stats", "--days", "3").text.splitlines()
    assert lines[0].startswith("Last 3 days (UTC, since ")
    assert lines[1] == "Questions: 3"
    assert [line.split()[1] for line in lines[2:5]] == ["0", "0", "3"]  # all asked today
    assert lines[5:] == [
        "Answered: 2 of 3 answers (67%) (cited at least one passage)",
        "Feedback: 👍 1  👎 1",
        "Satisfaction by channel (👍 share of votes):",
        "  slack:C1  50%  👍 1  👎 1",
        "Pages most often cited in 👎 answers:",
        "  1  Setup  file:///docs/setup.md",
        "Slowest questions:",
        "     4.2 s  And for PostgreSQL?",
        "     0.9 s  How do I set up the database?",
        "     0.3 s  What is the moon made of?",
        "Unanswered (1):",
        "  What is the moon made of?",
    ]
    assert admin(any_sessions, "stats", "--days", "100") == AdminResult(
        False, "--days 100: use a whole number of days from 1 to 90."
    )


def test_forget_removes_exactly_that_users_rows(any_sessions: sessionmaker[Session]) -> None:
    with any_sessions.begin() as session:
        bobs = seed_exchange(session, "UBOB", "bob asks")
        carols = seed_exchange(session, "UCAROL", "carol asks")  # same conversation, after Bob
        seed_exchange(session, "UBOB", "bob in his DM", thread="dm")
        seed_exchange(session, "UBOB", "a different Bob", platform="discord")
        session.add_all([
            Feedback(turn_id=carols.id, user_id="UBOB", value=1),  # Bob's vote: goes
            Feedback(turn_id=bobs.id, user_id="UCAROL", value=-1),  # on Bob's answer: goes
            Feedback(turn_id=carols.id, user_id="UCAROL", value=1),  # Carol's own: stays
        ])  # fmt: skip
    assert admin(any_sessions, "forget", "slack:UBOB").text == (
        "Forgot slack:UBOB: 2 questions, 2 answers, 2 feedback votes, 1 emptied conversations."
    )
    with any_sessions() as session:
        left = session.execute(
            select(Conversation.platform, Conversation.thread, Turn.role, Turn.user_id, Turn.text)
            .join(Turn)
            .order_by(Turn.id)
        ).all()
        votes = session.execute(select(Feedback.turn_id, Feedback.user_id)).all()
    assert [tuple(row) for row in left] == [
        ("slack", "t1", "user", "UCAROL", "carol asks"),
        ("slack", "t1", "assistant", None, "answer"),
        ("discord", "t1", "user", "UBOB", "a different Bob"),
        ("discord", "t1", "assistant", None, "answer"),
    ]
    assert votes == [(carols.id, "UCAROL")]


def test_cli_admin_status_and_refusal_free_terminal(tmp_path: Path) -> None:
    db_url = sqlite_url(tmp_path)
    result = run("admin", "status", db_url=db_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Index: 0 sources, 0 documents, 0 chunks, revision ")
    wrong = run("admin", "sources", "add", "https://x.example/", db_url=db_url, cwd=tmp_path)
    assert wrong.returncode == 1
    assert "Give the source a name" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_why_refuses_an_overlong_question_with_the_limit(sessions: sessionmaker[Session]) -> None:
    """`admin why` reads chat text: one over MAX_QUESTION_CHARS is refused before any search
    (these deps have no assistant: reaching one would raise)."""
    result = admin(sessions, "why", "x" * 4001)
    assert not result.ok and "the limit is 4,000" in result.text
