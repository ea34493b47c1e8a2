"""One refresh of a git source: fetch the branch, list its tree, read only the blobs that changed.

Refresh rule (docs/sources.md): a file is stored under its path in the repository, with its
blob id as its entity tag and the commit it was read at as ``last_modified``. A file whose
blob id is the one stored is not read again; a new path whose blob is a stored document's that
left the tree is that document renamed: it moves, with its chunks, and nothing is read or
embedded; a path no longer in the tree is removed at once. The report's ``pages_fetched``
counts the blobs read, so a refresh of an unchanged branch says 0.

The repository is cloned once, bare, into TEAMBOT_DATA_DIR/git/ and fetched after that
(knowledge/ingest/gitrepo.py runs git, guarded). Only documents are read: Markdown,
reStructuredText, AsciiDoc, text, HTML and PDF; hidden paths (``.github/``) are passed over,
and symbolic links and submodules are reported, never followed.
"""

from __future__ import annotations

import os
import string
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from knowledge.errors import SourceError
from knowledge.ingest.extract import SUPPORTED_SUFFIXES
from knowledge.ingest.folder import MAX_FILE_BYTES, file_content, printable_name
from knowledge.ingest.gitrepo import Remote, Repository, TreeEntry, clone_folder, entries_by_kind
from knowledge.ingest.pipeline import DocumentSync, FetchedDocument
from knowledge.ingest.progress import Progress
from knowledge.ingest.report import RunReport
from knowledge.storage.documents import Source
from knowledge.storage.lease import Lease

GIT = "git"
DEFAULT_BRANCH = "main"
TEMPLATE_FIELDS = frozenset({"base", "commit", "path", "anchor"})
_SKIPPED = {
    "link": "a symbolic link; teambot does not follow links in a repository",
    "submodule": "a submodule; add its repository as a source of its own",
}


@dataclass(frozen=True)
class GitOptions:
    """What a git source stores besides its location, checked when it is added."""

    branch: str = DEFAULT_BRANCH
    path: str = ""  # the folder of the repository to read ("" for all of it)
    web_url: str | None = None  # e.g. "{base}/blob/{commit}/{path}#{anchor}"
    local: bool = False  # a path on the server, added from its command line

    @classmethod
    def of(cls, options: dict[str, Any]) -> GitOptions:
        return cls(
            branch=options.get("branch", DEFAULT_BRANCH),
            path=options.get("path", ""),
            web_url=options.get("web_url"),
            local=bool(options.get("local", False)),
        )


def checked_options(branch: str | None, path: str | None, web_url: str | None) -> dict[str, Any]:
    """The options to store for ``--branch``, ``--path`` and ``--web-url``, or a SourceError
    that says what to write instead."""
    options: dict[str, Any] = {}
    if branch is not None:
        if not branch or branch.startswith("-") or any(c in branch for c in " \t\n~^:?*[\\"):
            raise SourceError(f"--branch {branch!r} is not a branch name.")
        options["branch"] = branch
    if path:
        folder = PurePosixPath(path.strip("/"))
        if folder.is_absolute() or ".." in folder.parts or path.startswith("-"):
            raise SourceError(f"--path {path!r} must be a folder in the repository, like docs/.")
        options["path"] = f"{folder.as_posix()}/" if folder.parts else ""
    if web_url is not None:
        _check_template(web_url)
        options["web_url"] = web_url
    return options


def _check_template(template: str) -> None:
    try:
        parsed = [(name, spec, conversion) for _, name, spec, conversion in
                  string.Formatter().parse(template) if name is not None]  # fmt: skip
    except ValueError as exc:
        raise SourceError(f"--web-url {template!r} is not a template: {exc}.") from None
    fields = {name for name, _, _ in parsed}
    if any(spec or conversion for _, spec, conversion in parsed):  # {path:>999999999}
        fields.add("")  # a format spec or conversion: refused like an unknown field
    unknown = fields - TEMPLATE_FIELDS
    if unknown or "{path}" not in template or not template.startswith(("https://", "http://")):
        raise SourceError(
            f"--web-url {template!r}: write an http(s) address with {{path}} and any of "
            "{base}, {commit}, {anchor}, like {base}/blob/{commit}/{path}#{anchor}."
        )
    if "{anchor}" in template and not template.endswith("#{anchor}"):
        raise SourceError("--web-url: {anchor} goes at the end, as #{anchor}.")


def web_link(template: str | None, location: str, commit: str, path: str) -> str | None:
    """The hosted view of ``path`` at ``commit``, without the anchor (citations add it)."""
    if not template:
        return None
    base = location.rstrip("/").removesuffix(".git")
    return template.removesuffix("#{anchor}").format(
        base=base, commit=commit, path=quote(path), anchor=""
    )


def sync_git(
    sync: DocumentSync,
    source: Source,
    report: RunReport,
    lease: Lease,
    progress: Progress,
    data_dir: Path,
) -> None:
    """Bring the source's documents in line with its branch's tip (see the module's rule)."""
    options = GitOptions.of(source.options or {})
    remote = Remote(source.location, source.allow_private, is_local=options.local)
    repository = Repository(clone_folder(data_dir, source.id, source.location), remote)
    started = time.perf_counter()
    commit = repository.fetch(options.branch)
    files = _documents(repository.tree(commit, options.path), report)
    renamed = _renames(sync, files)
    with repository.blobs() as blobs:
        for url, entry in files.items():
            known = sync.known.get(url)
            link = web_link(options.web_url, source.location, commit, url)
            if known is not None and known.etag == entry.blob:
                sync.unchanged(url)
            elif url in renamed:
                sync.rename(renamed[url], url, last_modified=commit, web_url=link)
            elif entry.size > MAX_FILE_BYTES:
                report.fail(url, f"larger than {MAX_FILE_BYTES // 2**20} MB")
                sync.keep(url)
            else:
                data = blobs.read(entry.blob, MAX_FILE_BYTES)
                _submit(sync, report, data, url, entry, commit, link)
            lease.renew_if_due()
            progress.advance()
    report.add_time("fetch", time.perf_counter() - started)


def _submit(
    sync: DocumentSync,
    report: RunReport,
    data: bytes,
    url: str,
    entry: TreeEntry,
    commit: str,
    link: str | None,
) -> None:
    report.pages_fetched += 1
    content = file_content(url, data, report)
    if content is None:
        sync.keep(url)
        return
    sync.submit(
        FetchedDocument(
            url=url,
            text=content,
            suffix=PurePosixPath(url).suffix.lower(),
            fallback_title=PurePosixPath(url).stem.replace("_", " ").replace("-", " "),
            etag=entry.blob,
            last_modified=commit,
            web_url=link,
        )
    )


def _documents(entries: list[TreeEntry], report: RunReport) -> dict[str, TreeEntry]:
    """The entries to index, by printable path; links and submodules reported, the rest
    (code, images, hidden paths) passed over in silence."""
    files: dict[str, TreeEntry] = {}
    for kind, entry in entries_by_kind(entries):
        name = printable_name(os.fsdecode(entry.path))
        path = PurePosixPath(name)
        if any(part.startswith(".") for part in path.parts):
            continue
        if kind != "file":
            report.pages_seen += 1
            report.skip(name, _SKIPPED[kind])
        elif path.suffix.lower() in SUPPORTED_SUFFIXES and name not in files:
            report.pages_seen += 1
            files[name] = entry
    return files


def _renames(sync: DocumentSync, files: dict[str, TreeEntry]) -> dict[str, str]:
    """New path → the stored path it was renamed from: a stored document gone from the tree
    whose blob id a new path has (each stored document moves at most once)."""
    gone = {k.etag: url for url, k in sync.known.items() if url not in files and k.etag}
    renamed: dict[str, str] = {}
    for url, entry in files.items():
        if url not in sync.known and entry.blob in gone:
            renamed[url] = gone.pop(entry.blob)
    return renamed
