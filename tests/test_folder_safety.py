"""Folder sources against a hostile folder: links out, FIFOs, sockets, /dev/zero, odd names.

Each case runs the real refresh (``ingest_folder``, the real embedder, SQLite) and checks
what was stored, that each entry left out is in the run's report by name with its reason,
that the run ended, and that what was indexed before is still there. The last test sends
``admin sources add PATH`` through the real Slack app, as a Slack admin would.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.ingest.folder import OUTSIDE, Folder
from knowledge.ingest.local import ingest_folder
from knowledge.ingest.report import RunReport
from knowledge.ingest.sources import FOLDER_NOT_ALLOWED
from knowledge.storage.documents import Chunk, Document, IngestionRun, Source
from tests.conftest import sqlite_url
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack import FakeSlack
from tests.test_slack import Bot, make_runtime, mention

SECRET = "SECRET-PASSWD-MARKER"
ENV_SECRET = "SECRET-ENV-MARKER"
SETUP = "# Setup\n\nZephyr listens on port 8731 by default.\n"
INSTALL = "# Install\n\nInstall Zephyr with the package manager of your system.\n"
HANG_SECONDS = 120  # far above a refresh of a few files; reached only if a read blocks


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """``project/docs`` with one good file, next to an outside folder and a ``.env`` holding
    secrets that must never be indexed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.md").write_text(f"# Accounts\n\nroot:{SECRET}:0:0\n")
    (tmp_path / ".env").write_text(f"API_KEY={ENV_SECRET}\n")
    folder = tmp_path / "project" / "docs"
    folder.mkdir(parents=True)
    (folder / "setup.md").write_text(SETUP)
    return folder


def ingest(sessions: sessionmaker[Session], embedder: Embedder, docs: Path) -> RunReport:
    return ingest_folder(sessions, embedder, docs, name="docs")


def ingest_within(sessions: sessionmaker[Session], embedder: Embedder, docs: Path) -> RunReport:
    """The refresh, failing the test (not hanging the suite) when it does not return."""
    done: list[RunReport] = []
    worker = threading.Thread(target=lambda: done.append(ingest(sessions, embedder, docs)),
                              daemon=True)  # fmt: skip
    worker.start()
    worker.join(HANG_SECONDS)
    assert done, f"the refresh did not end within {HANG_SECONDS} s: a read blocked"
    return done[0]


def stored(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Document url → the text of its chunks."""
    with sessions() as session:
        rows = session.execute(
            select(Document.url, Chunk.text).join(Chunk).order_by(Document.url, Chunk.ordinal)
        ).all()
    texts: dict[str, str] = {}
    for url, text in rows:
        texts[url] = texts.get(url, "") + text
    return texts


def issues(report: RunReport) -> dict[str, tuple[str, str]]:
    return {i.url: (i.kind, i.error) for i in report.issues}


def assert_run_ended_with_setup_kept(sessions: sessionmaker[Session]) -> None:
    """The last run is over (not left "running") and the first run's document is intact."""
    with sessions() as session:
        run = session.scalars(select(IngestionRun).order_by(IngestionRun.id.desc())).first()
        assert run is not None and run.status in ("ok", "partial") and run.finished_at
    assert "8731" in stored(sessions)["setup.md"]


def assert_no_secret(sessions: sessionmaker[Session]) -> None:
    text = "\n".join(stored(sessions).values())
    assert SECRET not in text and ENV_SECRET not in text


def test_links_to_files_outside_the_folder_are_reported_and_never_read(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    ingest(sessions, embedder, docs)
    (docs / "passwd.md").symlink_to(docs.parent.parent / "outside" / "passwd.md")
    (docs / "notes.md").symlink_to("../../.env")  # relative, as `ln -s ../../.env` makes it

    report = ingest(sessions, embedder, docs)

    assert issues(report) == {
        "notes.md": ("skipped", OUTSIDE),
        "passwd.md": ("skipped", OUTSIDE),
    }
    assert_no_secret(sessions)
    assert_run_ended_with_setup_kept(sessions)


def test_a_link_to_dev_zero_is_reported_and_never_opened(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    ingest(sessions, embedder, docs)
    (docs / "zero.md").symlink_to("/dev/zero")

    report = ingest_within(sessions, embedder, docs)

    assert issues(report) == {"zero.md": ("skipped", OUTSIDE)}
    assert_run_ended_with_setup_kept(sessions)


def test_fifos_and_sockets_are_reported_without_blocking_the_run(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    ingest(sessions, embedder, docs)
    os.mkfifo(docs / "pipe.md")
    os.mknod(docs / "socket.md", stat.S_IFSOCK | 0o600)
    (docs / "alias.md").symlink_to("pipe.md")  # inside the folder, but not a regular file

    report = ingest_within(sessions, embedder, docs)

    assert issues(report) == {
        "alias.md": ("skipped", "not a regular file (a FIFO)"),
        "pipe.md": ("skipped", "not a regular file (a FIFO)"),
        "socket.md": ("skipped", "not a regular file (a socket)"),
    }
    assert_run_ended_with_setup_kept(sessions)


def test_folder_links_are_not_followed_and_are_reported(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    (docs / "guides").mkdir()
    (docs / "guides" / "install.md").write_text(INSTALL)
    (docs / "more").symlink_to("guides")
    (docs / "elsewhere").symlink_to(docs.parent.parent / "outside")

    report = ingest(sessions, embedder, docs)

    assert issues(report) == {
        "elsewhere": ("skipped", OUTSIDE),
        "more": ("skipped", "a link to a folder; teambot reads that folder's files where they are"),
    }
    assert set(stored(sessions)) == {"setup.md", "guides/install.md"}
    assert_no_secret(sessions)


def test_a_link_to_a_file_inside_is_read_under_its_name_but_not_to_a_hidden_one(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    (docs / "guides").mkdir()
    (docs / "guides" / "install.md").write_text(INSTALL)
    (docs / "install.md").symlink_to("guides/install.md")
    (docs / ".env").write_text(f"API_KEY={ENV_SECRET}\n")  # hidden: never read by the walk
    (docs / "settings.md").symlink_to(".env")

    report = ingest(sessions, embedder, docs)

    assert issues(report) == {
        "guides/install.md": ("skipped", "the same content as install.md"),  # the link won
        "settings.md": ("skipped", "a link to a hidden file"),
    }
    assert "package manager" in stored(sessions)["install.md"]
    assert_no_secret(sessions)


def test_odd_file_names_are_stored_under_printable_names(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    ingest(sessions, embedder, docs)
    for raw, body in ((b"caf\xe9.md", "The cafe serves espresso."),  # Latin-1, not UTF-8
                      (b"bell\x07.md", "The bell rings at noon."),
                      (b"two\nlines.md", "Two lines make a pair.")):  # fmt: skip
        fd = os.open(os.fsencode(docs) + b"/" + raw, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, f"# Note\n\n{body}\n".encode())
        os.close(fd)

    report = ingest(sessions, embedder, docs)

    assert report.issues == []
    texts = stored(sessions)
    assert set(texts) == {"setup.md", "caf\\xe9.md", "bell\\x07.md", "two\\nlines.md"}
    assert "espresso" in texts["caf\\xe9.md"]
    assert_run_ended_with_setup_kept(sessions)


def test_two_names_that_print_the_same_keep_one_and_report_the_other(
    sessions: sessionmaker[Session], embedder: Embedder, docs: Path
) -> None:
    os.close(os.open(os.fsencode(docs) + b"/caf\xe9.md", os.O_WRONLY | os.O_CREAT, 0o644))
    (docs / "caf\\xe9.md").write_text("# Menu\n\nCoffee and tea.\n")  # a real backslash

    report = ingest(sessions, embedder, docs)

    assert issues(report) == {
        "caf\\xe9.md": ("skipped", "its name, made printable, is another file's")
    }
    assert set(stored(sessions)) == {"setup.md", "caf\\xe9.md"}


def test_a_file_or_folder_swapped_for_a_link_after_the_walk_is_not_followed(
    docs: Path,
) -> None:
    outside = docs.parent.parent / "outside"
    (docs / "guides").mkdir()
    (docs / "guides" / "passwd.md").write_text(INSTALL)
    report = RunReport(source="docs")
    with Folder(docs) as folder:
        walked = {file.name: file for file in folder.files(report)}
        (docs / "setup.md").unlink()
        (docs / "setup.md").symlink_to(outside / "passwd.md")
        (docs / "guides").rename(docs / "old-guides")
        (docs / "guides").symlink_to(outside)

        texts = [folder.read(walked[name], report) for name in ("setup.md", "guides/passwd.md")]

    assert texts == [None, None]
    replaced = ("skipped", "replaced while teambot read the folder; not followed")
    assert issues(report) == {"setup.md": replaced, "guides/passwd.md": replaced}


def test_a_slack_admin_cannot_add_a_folder_of_the_server(
    tmp_path: Path, embedder: Embedder, docs: Path
) -> None:
    with FakeSlack() as slack, FakeOpenAI(models=("local-model",)) as model:
        runtime = make_runtime(sqlite_url(tmp_path), tmp_path / "data", embedder, slack, model,
                               teambot_admins="slack:UADMIN")  # fmt: skip
        bot = Bot(runtime)
        try:
            bot.event(mention(f"admin sources add {docs} --name disk", user="UADMIN"))
            [reply] = slack.wait_for(lambda: slack.messages("C1"))
            with runtime.sessions() as session:
                added = session.scalars(select(Source.name)).all()
        finally:
            bot.stop()
            runtime.close()

    assert reply["text"] == f"```\n{FOLDER_NOT_ALLOWED}\n```"
    assert added == []
