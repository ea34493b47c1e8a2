"""Running git on a repository someone else controls: fetched, listed and read, never checked out.

A repository is as hostile as its author. So every git command here runs with:

- only the transports we chose: ``protocol.allow=never`` and then https (http with
  ``--allow-private``; ``file`` for a local path given on the server's command line), so
  ``ext::``, ``ssh://``, ``file://`` and friends are refused by git itself;
- the remote's host resolved and checked by the SSRF guard first, and git told to connect to
  that checked address (``http.curloptResolve``), following no redirect;
- no credential prompt (``GIT_TERMINAL_PROMPT=0``, no helper), no system or user config, no
  hooks, no submodules, and a total deadline, after which the command is killed;
- a cap on the size of what a fetch writes (the command is killed past it).

Files are read from the object database by blob id (``ls-tree`` then ``cat-file --batch``),
never from a checkout, so a symbolic link in the tree is only an entry to skip and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from knowledge.crawl.netguard import AddressPolicy, resolve_checked
from knowledge.errors import BlockedURLError, SourceError
from knowledge.ingest.gitwatch import Watcher, folder_size, too_large

GIT_DEADLINE_SECONDS = 600.0
MAX_REPO_BYTES = 2 * 1024**3
MAX_TREE_ENTRIES = 100_000
_CONFIG = (
    "protocol.allow=never",
    "core.hooksPath=/dev/null",
    "credential.helper=",
    "http.followRedirects=false",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "core.fsmonitor=false",
)
LINK_MODE = "120000"
SUBMODULE_MODE = "160000"


class GitError(SourceError):
    """A git command failed, was refused, or took too long; the message says which."""


@dataclass(frozen=True)
class Remote:
    """Where a repository comes from: an https URL (http with ``allow_private``) or, only when
    the server's own command line added it, a local path."""

    location: str
    allow_private: bool = False
    is_local: bool = False


@dataclass(frozen=True)
class TreeEntry:
    """One entry of ``git ls-tree -r -l``: its mode, blob id, size and raw path."""

    mode: str
    blob: str
    size: int
    path: bytes


class Repository:
    """A bare repository under ``path`` that holds one branch of one remote."""

    def __init__(self, path: Path, remote: Remote, deadline: float = GIT_DEADLINE_SECONDS):
        self.path = path
        self.remote = remote
        self.deadline = deadline

    def fetch(self, branch: str, max_bytes: int = MAX_REPO_BYTES) -> str:
        """Clone (the first time) or fetch ``branch``'s tip; returns its commit id."""
        if not (self.path / "HEAD").is_file():
            if self.path.exists():
                shutil.rmtree(self.path)  # a clone that died half-way: start again
            self.path.mkdir(parents=True)
            self._git("init", "--bare", "--quiet")
        ref = f"refs/teambot/{branch}"
        config, url = self._transport()
        try:
            self._git(
                "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth=1",
                "--no-write-fetch-head", "--", url, f"+refs/heads/{branch}:{ref}",
                config=config,
                watch_bytes=max_bytes,
            )  # fmt: skip
        except GitError as exc:
            if "couldn't find remote ref" in str(exc):
                raise GitError(
                    f"The repository has no branch {branch!r}; give the right one with --branch."
                ) from None
            raise
        return self._git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()

    def tree(self, commit: str, under: str = "") -> list[TreeEntry]:
        """Every entry under the folder ``under`` of ``commit``, recursively, with sizes."""
        spec = ["--", under] if under else []
        out = self._git_bytes("ls-tree", "-r", "-l", "-z", "--full-tree", commit, *spec)
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            if len(entries) >= MAX_TREE_ENTRIES:
                raise GitError(f"The tree has more than {MAX_TREE_ENTRIES:,} files; give --path.")
            meta, _, path = record.partition(b"\t")
            mode, _kind, blob, size = meta.decode("ascii").split()
            entries.append(TreeEntry(mode, blob, int(size) if size.isdigit() else 0, path))
        return entries

    @contextlib.contextmanager
    def blobs(self) -> Iterator[BlobReader]:
        """A reader of blobs by id (one ``git cat-file --batch`` for the whole run), stopped
        when the block ends."""
        reader = BlobReader(self)
        try:
            yield reader
        finally:
            reader.close()

    def command(self, *args: str, config: tuple[str, ...] = ()) -> list[str]:
        """git with the fixed safe settings, then ``config`` (``name=value`` each), on the clone."""
        settings = [arg for item in (*_CONFIG, *config) for arg in ("-c", item)]
        return ["git", *settings, f"--git-dir={self.path}", *args]

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
        return {
            **keep,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(self.path),
            "LC_ALL": "C",
        }

    def _transport(self) -> tuple[tuple[str, ...], str]:
        """The extra config and the URL a fetch uses; raises GitError for any other kind."""
        if self.remote.is_local:
            return ("protocol.file.allow=always",), str(Path(self.remote.location).resolve())
        url = self.remote.location
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http") or (scheme == "http" and not self.remote.allow_private):
            raise GitError(f"{url} is not an https:// URL; teambot fetches repositories by https.")
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        policy = AddressPolicy(self.remote.allow_private, frozenset({host.lower()}))
        try:
            address = asyncio.run(resolve_checked(host, port, policy))
        except BlockedURLError as exc:
            raise GitError(str(exc)) from None
        except OSError as exc:
            raise GitError(f"Cannot resolve {host}: {exc}") from None
        pinned = f"[{address}]" if ":" in address else address
        return (
            f"protocol.{scheme}.allow=always",
            f"http.curloptResolve={host}:{port}:{pinned}",
        ), url

    def _git(self, *args: str, **options: Any) -> str:
        return self._git_bytes(*args, **options).decode("utf-8", "replace")

    def _git_bytes(
        self, *args: str, config: tuple[str, ...] = (), watch_bytes: int | None = None
    ) -> bytes:
        """Run git with its deadline (and, for a fetch, the size cap); its stdout."""
        process = subprocess.Popen(
            self.command(*args, config=config),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(),
        )
        watcher = Watcher(process, self.path, self.deadline, watch_bytes)
        watcher.start()
        try:
            out, err = process.communicate(timeout=self.deadline)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            watcher.reason = f"took longer than {self.deadline:g} s and was stopped"
        finally:
            watcher.stop()
        if watch_bytes is not None and not watcher.reason and folder_size(self.path) > watch_bytes:
            watcher.reason = too_large(watch_bytes)  # it grew past the cap between two checks
        if watcher.reason:
            raise GitError(f"git {args[0]} {watcher.reason}")
        if process.returncode != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"git failed: {message[-1] if message else process.returncode}")
        return out


class BlobReader:
    """Reads blobs by id through one ``git cat-file --batch`` (``Repository.blobs``).

    ``reads`` counts the blobs read, so a refresh can say (and a test check) that an
    unchanged tree cost no reads."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository
        self.reads = 0
        self._process: subprocess.Popen | None = None
        self._watcher: Watcher | None = None

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        if self._watcher is not None:
            self._watcher.stop()

    def read(self, blob: str, max_bytes: int) -> bytes:
        """The blob's bytes; raises GitError if it is larger than ``max_bytes``."""
        process = self._started()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(blob.encode("ascii") + b"\n")
            process.stdin.flush()
            header = process.stdout.readline(200).decode("ascii", "replace").split()
        except (OSError, ValueError):
            header = []
        if len(header) != 3 or header[1] != "blob":
            reason = self._watcher.reason if self._watcher else ""
            raise GitError(f"git cat-file could not read blob {blob} {reason}".strip())
        size = int(header[2])
        if size > max_bytes:
            raise GitError(f"larger than {max_bytes // 2**20} MB")  # ls-tree said otherwise
        data = process.stdout.read(size)
        process.stdout.read(1)  # the newline after the content
        self.reads += 1
        return data

    def _started(self) -> subprocess.Popen:
        if self._process is None:
            repository = self._repository
            self._process = subprocess.Popen(
                repository.command("cat-file", "--batch"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=repository.env(),
            )
            self._watcher = Watcher(self._process, repository.path, repository.deadline, None)
            self._watcher.start()
        return self._process


def clone_folder(data_dir: Path, source_id: int, location: str) -> Path:
    """Where the bare clone of a source lives under TEAMBOT_DATA_DIR: named by its id and
    location, so a source added later under a reused id never shares another's clone."""
    digest = hashlib.sha256(location.encode()).hexdigest()[:12]
    return Path(data_dir).resolve() / "git" / f"source-{source_id}-{digest}"


def entries_by_kind(entries: list[TreeEntry]) -> Iterator[tuple[str, TreeEntry]]:
    """Each entry with what it is: "file", "link" or "submodule"."""
    for entry in entries:
        if entry.mode == LINK_MODE:
            yield "link", entry
        elif entry.mode == SUBMODULE_MODE:
            yield "submodule", entry
        else:
            yield "file", entry
