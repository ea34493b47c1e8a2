"""Git sources on a bare repository the test builds: commits, edits, renames, deletions, a second
branch, a hostile tree (a link to /etc/passwd, a huge blob, a submodule), refused transports,
and the `teambot sources add --kind git` command as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin import Actor, AdminResult, run_admin
from bot.core import citation
from bot.settings import Settings
from knowledge.embed.embedder import Embedder
from knowledge.errors import SourceError
from knowledge.ingest.gitrepo import Remote, Repository
from knowledge.ingest.refresh import refresh
from knowledge.ingest.report import RunReport
from knowledge.ingest.sources import FOLDER_NOT_ALLOWED, SourceSpec, add_source
from knowledge.retrieval.passages import load_passages
from knowledge.storage.documents import Chunk, Document, Source
from tests.pdf_maker import plain
from tests.test_admin import Deps
from tests.test_cli import run

INSTALL = "# Install\n\nRun the installer with `zephyr setup` on a fresh host.\n"
NETWORK = (
    "# Network\n\n## Port\n\nThe server listens on port 8731.\n\n## TLS\n\nPut the key in /etc/z.\n"
)
GUIDE_RST = """\
=====
Guide
=====

Backups
=======

Take a snapshot nightly with ``zephyr backup``.

.. include:: /etc/passwd

.. raw:: html

   <script>alert(1)</script>
"""
NOTES_ADOC = "= Release notes\n\n== Version 2\n\nVersion 2 drops the legacy queue.\n"


class Repo:
    """A working repository that pushes to a bare one, the way a team's docs repo changes."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "docs.git"
        self.work = root / "work"
        self._git(root, "init", "--bare", "--quiet", "-b", "main", str(self.bare))
        self._git(root, "clone", "--quiet", str(self.bare), str(self.work))
        self.git("checkout", "--quiet", "-b", "main")

    def _git(self, cwd: Path, *args: str) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def git(self, *args: str) -> str:
        return self._git(self.work, *args)

    def write(self, path: str, content: str | bytes) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    def commit(self, message: str, branch: str = "main", *, add: bool = True) -> str:
        if add:
            self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        self.git("push", "--quiet", "origin", f"HEAD:{branch}")
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path)
    repo.write("docs/install.md", INSTALL)
    repo.write("docs/network.md", NETWORK)
    repo.write("docs/guide.rst", GUIDE_RST)
    repo.write("docs/notes.adoc", NOTES_ADOC)
    repo.write("docs/handbook.pdf", plain(["Badges open the lab.", "Laptops come from IT."]))
    repo.write("src/app.py", "print('not documentation')\n")
    repo.write("docs/.hidden.md", "# Hidden\n\nNot indexed.\n")
    repo.commit("first")
    return repo


def add_git(sessions: sessionmaker[Session], repo: Repo, name: str = "docs", **options: str):
    with sessions.begin() as session:
        add_source(session, SourceSpec(name=name, location=str(repo.bare), kind="git", **options))


def documents(sessions: sessionmaker[Session], name: str = "docs") -> dict[str, Document]:
    with sessions() as session:
        rows = session.scalars(select(Document).join(Source).where(Source.name == name)).all()
        return {d.url: d for d in rows}


def chunk_ids(sessions: sessionmaker[Session], url: str) -> list[int]:
    with sessions() as session:
        return list(
            session.scalars(
                select(Chunk.id).join(Document).where(Document.url == url).order_by(Chunk.id)
            )
        )


def test_a_branch_is_indexed_then_refreshed_by_blob(
    sessions: sessionmaker[Session], embedder: Embedder, repo: Repo, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    add_git(sessions, repo, path="docs/")
    first = refresh(sessions, embedder, "docs", data_dir=data)
    stored = documents(sessions)
    assert set(stored) == {
        "docs/install.md", "docs/network.md", "docs/guide.rst", "docs/notes.adoc",
        "docs/handbook.pdf",
    }  # fmt: skip
    assert first.pages_fetched == 5 and first.pages_new == 5 and not first.errors()
    assert (data / "git").is_dir()  # cloned once, bare, under TEAMBOT_DATA_DIR
    assert not any((data / "git").rglob("install.md"))  # never checked out
    # reStructuredText through docutils: no file inclusion, no raw HTML, headings kept.
    guide = " ".join(c.text for c in _chunks(sessions, "docs/guide.rst"))
    assert "zephyr backup" in guide and "root:" not in guide and "alert" not in guide
    assert {c.anchor for c in _chunks(sessions, "docs/handbook.pdf")} == {"page=1", "page=2"}
    assert _chunks(sessions, "docs/notes.adoc")[0].heading_path == ["Release notes", "Version 2"]

    # Nothing changed: no blob read, nothing embedded, nothing written.
    same = refresh(sessions, embedder, "docs", data_dir=data)
    assert (same.pages_fetched, same.chunks_embedded, same.pages_unchanged) == (0, 0, 5)
    assert same.pages_new == same.pages_changed == same.pages_removed == 0

    # An edit, a rename and a deletion in one commit.
    install_chunks = chunk_ids(sessions, "docs/install.md")
    repo.write("docs/network.md", NETWORK.replace("8731", "9000"))
    (repo.work / "docs" / "setup").mkdir()
    repo.git("mv", "docs/install.md", "docs/setup/install.md")
    repo.git("rm", "--quiet", "docs/notes.adoc")
    commit = repo.commit("edit, rename, delete")
    changed = refresh(sessions, embedder, "docs", data_dir=data)
    assert changed.pages_fetched == 1  # only the edited file's blob is read
    assert changed.pages_removed == 1 and changed.pages_changed == 2
    assert changed.chunks_embedded == 1  # the one section whose text changed
    stored = documents(sessions)
    assert "docs/notes.adoc" not in stored and "docs/install.md" not in stored
    # The renamed file kept its chunks (same rows, no re-embedding) under its new path.
    assert chunk_ids(sessions, "docs/setup/install.md") == install_chunks
    assert stored["docs/setup/install.md"].last_modified == commit


def _chunks(sessions: sessionmaker[Session], url: str) -> list[Chunk]:
    with sessions() as session:
        return list(session.scalars(select(Chunk).join(Document).where(Document.url == url)))


def test_a_second_branch_and_citations_through_the_web_template(
    sessions: sessionmaker[Session], embedder: Embedder, repo: Repo, tmp_path: Path
) -> None:
    repo.git("checkout", "--quiet", "-b", "v2")
    repo.write("docs/install.md", INSTALL.replace("fresh host", "v2 host"))
    v2 = repo.commit("v2 docs", branch="v2")
    template = "https://git.example.org/team/docs/blob/{commit}/{path}#{anchor}"
    add_git(sessions, repo, name="v2", branch="v2", web_url=template)
    add_git(sessions, repo, name="main")
    refresh(sessions, embedder, "v2", data_dir=tmp_path / "data")
    refresh(sessions, embedder, "main", data_dir=tmp_path / "data")
    passages = load_passages(sessions, embedder.model_name)
    cited = {}
    for chunk_id in passages.chunks:
        passage = passages.scored(chunk_id, 1.0, 1.0)
        cited[(passage.source_name, passage.document_url, passage.anchor)] = citation(1, passage)
    network = cited[("v2", "docs/network.md", "port")]
    assert network.url == f"https://git.example.org/team/docs/blob/{v2}/docs/network.md"
    assert network.location.endswith("docs/network.md#port") and network.path is None
    # Without a template: the path in the repository and the heading.
    plain_citation = cited[("main", "docs/network.md", "port")]
    assert plain_citation.location == "docs/network.md#port"
    assert plain_citation.heading == "Port"
    texts = {
        " ".join(c.text for c in _chunks_of(sessions, name, "docs/install.md"))
        for name in ("v2", "main")
    }
    assert len(texts) == 2 and any("v2 host" in t for t in texts)


def _chunks_of(sessions: sessionmaker[Session], source: str, url: str) -> list[Chunk]:
    with sessions() as session:
        return list(
            session.scalars(
                select(Chunk).join(Document).join(Source)
                .where(Source.name == source, Document.url == url)
            )
        )  # fmt: skip


def test_a_hostile_tree_is_reported_and_nothing_outside_it_is_read(
    sessions: sessionmaker[Session], embedder: Embedder, repo: Repo, tmp_path: Path
) -> None:
    os.symlink("/etc/passwd", repo.work / "docs" / "passwd.md")
    os.symlink("../../../../etc", repo.work / "docs" / "etc")
    repo.write("docs/huge.md", "# Huge\n\n" + "word " * (2 * 2**20 + 10))
    # A submodule entry, as a hostile tree can carry one without any .gitmodules.
    repo.git("add", "-A")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},docs/vendor")
    repo.commit("hostile", add=False)
    add_git(sessions, repo)
    report = refresh(sessions, embedder, "docs", data_dir=tmp_path / "data")
    issues = {e["url"]: e["error"] for e in report.errors()}
    assert "symbolic link" in issues["docs/passwd.md"] and "symbolic link" in issues["docs/etc"]
    assert "submodule" in issues["docs/vendor"]
    assert "larger than 10 MB" in issues["docs/huge.md"]
    stored = documents(sessions)
    assert "docs/passwd.md" not in stored and "docs/huge.md" not in stored
    everything = " ".join(c.text for url in stored for c in _chunks(sessions, url))
    assert "root:" not in everything
    assert "docs/install.md" in stored  # the rest of the tree is indexed all the same


@pytest.mark.parametrize(
    "location",
    [
        "ssh://git@example.org/team/docs.git",
        "git@example.org:team/docs.git",
        "ext::sh -c touch% /tmp/pwned",
        "file:///etc",
        "git://example.org/docs.git",
        "http://example.org/docs.git",
        "https://169.254.169.254/latest/meta-data.git",
        "https://127.0.0.1/docs.git",
    ],
)
def test_other_transports_and_private_addresses_are_refused(
    sessions: sessionmaker[Session], location: str
) -> None:
    with sessions.begin() as session, pytest.raises(SourceError) as refused:
        add_source(session, SourceSpec(name="x", location=location, kind="git"))
    assert "https" in str(refused.value) or "refused" in str(refused.value)
    assert not Path("/tmp/pwned").exists()


def test_chat_may_add_a_local_repository_only_inside_the_folder_roots(
    sessions: sessionmaker[Session], repo: Repo, tmp_path: Path
) -> None:
    with sessions.begin() as session, pytest.raises(SourceError, match="TEAMBOT_FOLDER_ROOTS"):
        spec = SourceSpec(name="x", location=str(repo.bare), kind="git")
        add_source(session, spec, folder_roots=[tmp_path / "elsewhere"])
    with sessions.begin() as session:
        spec = SourceSpec(name="y", location=str(repo.bare), kind="git")
        assert add_source(session, spec, folder_roots=[tmp_path]).options["local"] is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"branch": "--upload-pack=touch"}, "not a branch name"),
        ({"path": "../outside"}, "a folder in the repository"),
        ({"web_url": "https://x.org/{path}/{secret}"}, "write an http(s) address"),
        ({"web_url": "https://x.org/#{anchor}/{path}"}, "{anchor} goes at the end"),
        ({"web_url": "javascript:{path}"}, "write an http(s) address"),
        ({"web_url": "https://x.org/{path:>999999999}"}, "write an http(s) address"),
        ({"web_url": "https://x.org/{base.__class__}/{path}"}, "write an http(s) address"),
    ],
)
def test_bad_git_options_are_refused_with_what_to_write(
    sessions: sessionmaker[Session], repo: Repo, options: dict[str, str], message: str
) -> None:
    with sessions.begin() as session, pytest.raises(SourceError, match=re.escape(message)):
        add_source(session, SourceSpec(name="x", location=str(repo.bare), kind="git", **options))


def test_a_missing_branch_says_which(
    sessions: sessionmaker[Session], embedder: Embedder, repo: Repo, tmp_path: Path
) -> None:
    add_git(sessions, repo, branch="nope")
    with pytest.raises(SourceError, match="no branch 'nope'"):
        refresh(sessions, embedder, "docs", data_dir=tmp_path / "data")


def test_the_command_adds_refreshes_and_lists_a_git_source(repo: Repo, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"TEAMBOT_DATA_DIR": str(tmp_path / "cli-data")}
    added = run(
        "sources", "add", str(repo.bare), "--name", "repo", "--kind", "git", "--path", "docs",
        db_url=db_url, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Added git source 'repo'" in added.stdout
    refreshed = run("refresh", "repo", "--json", db_url=db_url, cwd=tmp_path, env=env)
    first = json.loads(refreshed.stdout)
    assert first.keys() == RunReport("any").to_json().keys()  # the keys of every kind
    assert first["pages_new"] == 5 and first["pages_fetched"] == 5
    assert (tmp_path / "cli-data" / "git").is_dir()  # TEAMBOT_DATA_DIR is where it clones
    listed = run("sources", "list", db_url=db_url, cwd=tmp_path, env=env).stdout
    assert "repo" in listed and "git" in listed
    wrong = run(
        "sources", "add", str(repo.bare), "--name", "r2", "--branch", "main",
        db_url=db_url, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert wrong.returncode == 1 and "--kind git" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_git_commands_stop_at_their_deadline_and_fetches_at_the_size_cap(
    repo: Repo, tmp_path: Path
) -> None:
    remote = Remote(str(repo.bare), is_local=True)
    with pytest.raises(SourceError, match="took longer than"):
        Repository(tmp_path / "slow", remote, deadline=1e-6).fetch("main")
    repo.write("docs/big.txt", os.urandom(3 * 2**20).hex())
    repo.commit("big")
    with pytest.raises(SourceError, match="larger than 1,000,000 bytes"):
        Repository(tmp_path / "capped", remote).fetch("main", max_bytes=1_000_000)
    fetched = Repository(tmp_path / "ok", remote)
    commit = fetched.fetch("main")
    assert commit == repo.git("rev-parse", "HEAD").strip()
    with fetched.blobs() as blobs:
        entry = next(e for e in fetched.tree(commit, "docs/") if e.path == b"docs/install.md")
        assert blobs.read(entry.blob, 1000) == INSTALL.encode() and blobs.reads == 1
        with pytest.raises(SourceError, match="larger than"):
            big = next(e for e in fetched.tree(commit) if e.path == b"docs/big.txt")
            blobs.read(big.blob, 1000)


def test_chat_adds_git_sources_with_the_same_checks_and_status_shows_them(
    sessions: sessionmaker[Session], embedder: Embedder, repo: Repo, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, TEAMBOT_ADMINS="slack:UALICE",  # type: ignore[call-arg]
                        TEAMBOT_FOLDER_ROOTS=str(tmp_path / "shared"))  # fmt: skip
    chat = Deps(sessions, settings, embedder=embedder, crawl_limits=None)
    alice = Actor("slack", "UALICE")

    def add(*words: str) -> AdminResult:
        return run_admin(chat, alice, ["sources", "add", *words])

    # A repository on the server's disk outside the roots: the folders' refusal, word for word.
    local = add(str(repo.bare), "--name", "local", "--kind", "git")
    assert not local.ok and local.text == FOLDER_NOT_ALLOWED
    loopback = add("https://127.0.0.1/docs.git", "--name", "lo", "--kind", "git")
    assert not loopback.ok and "loopback" in loopback.text
    assert not add("ssh://example.org/docs.git", "--name", "s", "--kind", "git").ok
    # From the terminal, the same repository is added, refreshed and shown with its kind.
    add_git(sessions, repo, path="docs/")
    refresh(sessions, embedder, "docs", data_dir=tmp_path / "data")
    status = run_admin(chat, alice, ["status"]).text
    assert "docs (git," in status and "5 documents" in status
