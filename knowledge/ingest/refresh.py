"""One refresh of one source, whatever its kind: lease, run record, fetch, sync, settle.

Removal rule (documented in docs/knowledge-base.md): a page that answers 404
or 410 is removed at once; a page that a complete crawl no longer reaches is
removed after ``MISSING_GRACE_RUNS`` complete runs in a row missed it. A
crawl cut short by the page limit or by robots.txt being unavailable, or in
which more than ``MAX_FAILED_SHARE`` of the pages failed, may have missed
links, so it removes nothing by absence. A folder's deleted files go at once, and so do a git
branch's (knowledge/ingest/git.py). A Slack channel follows its own rule
(knowledge/ingest/slack_history.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.crawler import (
    Crawler,
    CrawlLimits,
    CrawlTarget,
    Fetched,
    Validators,
    crawl_in_thread,
)
from knowledge.embed.embedder import TextEmbedder
from knowledge.errors import SourceError
from knowledge.ingest.folder import Folder
from knowledge.ingest.git import GIT, sync_git
from knowledge.ingest.pipeline import DocumentSync, FetchedDocument
from knowledge.ingest.progress import NullProgress, Progress
from knowledge.ingest.report import RunReport
from knowledge.ingest.slack_client import SlackAccess
from knowledge.ingest.slack_history import sync_channel
from knowledge.ingest.sources import source_rules
from knowledge.storage import store
from knowledge.storage.answers import TEAM_ANSWERS
from knowledge.storage.db import utcnow
from knowledge.storage.documents import IngestionRun, Source
from knowledge.storage.lease import LEASE_SECONDS, Lease
from knowledge.storage.slack_history import SLACK_CHANNEL

log = logging.getLogger(__name__)

MISSING_GRACE_RUNS = 2
DEFAULT_DATA_DIR = Path("teambot-data")  # TEAMBOT_DATA_DIR's default (bot/settings.py)
# A crawl with more failed pages than this share may have missed links: it removes nothing.
MAX_FAILED_SHARE = 0.1


def refresh(
    sessions: sessionmaker[Session],
    embedder: TextEmbedder,
    name: str,
    *,
    limits: CrawlLimits | None = None,
    progress: Progress | None = None,
    lease_seconds: int = LEASE_SECONDS,
    data_dir: Path | None = None,
    slack: SlackAccess | None = None,
) -> RunReport:
    """Bring the source called ``name`` in line with where its documents live (``slack``:
    how to reach Slack, for a channel's history).

    ``data_dir``: TEAMBOT_DATA_DIR, where git sources keep their clones (default
    ``teambot-data``). Raises SourceBusyError when another process holds the source's lease."""
    with sessions() as session:
        source = session.scalar(select(Source).where(Source.name == name))
        if source is None:
            raise SourceError(f"No source named {name!r}; see `teambot sources list`.")
        if source.kind == TEAM_ANSWERS:
            raise SourceError(
                f"{name!r} holds the answers people taught teambot; it is indexed as they are "
                "saved, so there is nothing to refresh (see `admin answers list`)."
            )
        session.expunge(source)
    lease = Lease(sessions, source.id, lease_seconds)
    lease.acquire()
    try:
        _close_interrupted_runs(sessions, source.id)
        with sessions.begin() as session:
            run = IngestionRun(source_id=source.id, worker=lease.owner)
            session.add(run)
            session.flush()
            run_id = run.id
        report = RunReport(source=name)
        started = time.perf_counter()
        try:
            if source.kind == SLACK_CHANNEL:
                sync_channel(sessions, embedder, source, report, lease, slack,
                             progress or NullProgress())  # fmt: skip
            else:
                _run(sessions, embedder, source, report, lease, limits,
                     progress or NullProgress(), data_dir or DEFAULT_DATA_DIR)  # fmt: skip
        except BaseException as exc:
            report.timings["total"] = time.perf_counter() - started
            _finish(sessions, run_id, report, "failed", str(exc) or type(exc).__name__)
            raise
        report.timings["total"] = time.perf_counter() - started
        _finish(sessions, run_id, report, "partial" if report.pages_failed else "ok")
        return report
    finally:
        lease.release()


@dataclass(frozen=True)
class SyncJob:
    """What fetching one source's documents needs, whatever its kind."""

    sync: DocumentSync
    source: Source
    report: RunReport
    lease: Lease
    limits: CrawlLimits
    progress: Progress
    data_dir: Path


# How a run removes documents: "absent" removes at once what the source no longer has,
# "settle" counts the runs that missed a page (a complete crawl), "keep" removes nothing.
Removal = Literal["absent", "settle", "keep"]


def _folder_job(job: SyncJob) -> Removal:
    _sync_folder(job.sync, Path(job.source.location), job.report, job.lease, job.progress)
    return "absent"


def _git_job(job: SyncJob) -> Removal:
    sync_git(job.sync, job.source, job.report, job.lease, job.progress, job.data_dir)
    return "absent"


def _web_job(job: SyncJob) -> Removal:
    complete = _sync_web(job.sync, job.source, job.report, job.lease, job.limits, job.progress)
    return "settle" if complete else "keep"


# A source's kind → how its documents are fetched; every other kind is a web crawl.
SYNCS: dict[str, Callable[[SyncJob], Removal]] = {"folder": _folder_job, GIT: _git_job}


def _run(
    sessions: sessionmaker[Session],
    embedder: TextEmbedder,
    source: Source,
    report: RunReport,
    lease: Lease,
    limits: CrawlLimits | None,
    progress: Progress,
    data_dir: Path,
) -> None:
    sync = DocumentSync(sessions, embedder, source.id, report)
    progress.begin("Fetching", None)
    job = SyncJob(sync, source, report, lease, limits or CrawlLimits(), progress, data_dir)
    removal = SYNCS.get(source.kind, _web_job)(job)
    sync.flush()
    progress.end()
    with sessions.begin() as session:
        report.pages_removed += store.delete_documents(
            session, source.id, sync.gone | sync.duplicates
        )
        if removal == "absent":
            absent = set(sync.known) - sync.present - sync.gone
            report.pages_removed += store.delete_documents(session, source.id, absent)
        elif removal == "settle":
            report.pages_removed += store.settle_missing(
                session, source.id, sync.present, MISSING_GRACE_RUNS
            )


def _sync_web(
    sync: DocumentSync,
    source: Source,
    report: RunReport,
    lease: Lease,
    limits: CrawlLimits,
    progress: Progress,
) -> bool:
    """Crawl and index; True when the crawl was complete enough to judge removals."""
    options = source.options or {}
    target = CrawlTarget(
        kind=source.kind,  # type: ignore[arg-type]
        start_url=source.location,
        rules=source_rules(options),
        allow_private=source.allow_private,
        limits=replace(
            limits,
            max_pages=options.get("max_pages", limits.max_pages),
            max_depth=options.get("max_depth", limits.max_depth),
        ),
    )
    known = {
        url: Validators(k.etag, k.last_modified, k.sitemap_lastmod, tuple(k.links or ()))
        for url, k in sync.known.items()
    }
    crawler = Crawler(target, known)
    started = time.perf_counter()
    # Renewed while slow pages are in flight too, not only when one arrives.
    for fetched in crawl_in_thread(crawler, lease.renew_if_due, lease.check_seconds):
        report.pages_seen += 1
        _apply(sync, fetched, report)
        lease.renew_if_due()
        progress.advance()
    report.add_time("fetch", time.perf_counter() - started)
    return crawler.complete and report.pages_failed <= MAX_FAILED_SHARE * report.pages_seen


def _apply(sync: DocumentSync, fetched: Fetched, report: RunReport) -> None:
    if fetched.outcome == "ok":
        report.pages_fetched += 1
        sync.submit(
            FetchedDocument(
                url=fetched.url,
                text=fetched.text if fetched.text is not None else "",
                suffix=fetched.suffix or ".html",
                fallback_title=_fallback_title(fetched.url),
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                sitemap_lastmod=fetched.sitemap_lastmod,
                links=list(fetched.links) if fetched.suffix == ".html" else None,
            )
        )
    elif fetched.outcome == "not_modified":
        sync.unchanged(fetched.url)
    elif fetched.outcome == "gone":
        if fetched.url in sync.known:
            sync.gone.add(fetched.url)
        else:  # a broken link on some page: not a failure of this run
            report.skip(fetched.url, f"a broken link ({fetched.reason})")
    elif fetched.outcome == "skipped":
        report.skip(fetched.url, fetched.reason or "skipped")
    elif fetched.outcome == "disallowed":
        sync.keep(fetched.url)
        report.skip(fetched.url, fetched.reason or "disallowed by robots.txt")
    else:
        sync.keep(fetched.url)
        report.fail(fetched.url, fetched.reason or "failed")


def _fallback_title(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0].replace("-", " ").replace("_", " ") or url


def _sync_folder(
    sync: DocumentSync, folder: Path, report: RunReport, lease: Lease, progress: Progress
) -> None:
    if not folder.is_dir():
        raise SourceError(f"The folder {folder} of this source no longer exists.")
    started = time.perf_counter()
    with Folder(folder) as opened:
        for file in opened.files(report):
            report.pages_seen += 1
            text = opened.read(file, report)
            if text is None:
                sync.keep(file.name)
            else:
                report.pages_fetched += 1
                sync.submit(
                    FetchedDocument(
                        url=file.name, text=text, suffix=file.suffix, fallback_title=file.title
                    )
                )
            lease.renew_if_due()
            progress.advance()
    report.add_time("fetch", time.perf_counter() - started)


def _close_interrupted_runs(sessions: sessionmaker[Session], source_id: int) -> None:
    """Runs left 'running' by a process that died: we hold the lease, so they are over."""
    with sessions.begin() as session:
        session.execute(
            update(IngestionRun)
            .where(IngestionRun.source_id == source_id, IngestionRun.status == "running")
            .values(status="interrupted", finished_at=utcnow())
        )


def _finish(
    sessions: sessionmaker[Session],
    run_id: int,
    report: RunReport,
    status: str,
    error: str | None = None,
) -> None:
    errors = report.errors()
    if error:
        errors.append({"url": "", "error": error, "kind": "failed"})
    with sessions.begin() as session:
        run = session.get_one(IngestionRun, run_id)
        run.status = status
        run.finished_at = utcnow()
        run.counts = report.counts()
        run.timings = {k: round(v, 3) for k, v in report.timings.items()}
        run.errors = errors
