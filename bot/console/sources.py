"""The Sources page: each source with its pages, chunks, schedule, last run and outcome; add
one (site, sitemap, page or folder, checked and SSRF-guarded as from the terminal), edit its
filters and schedule, refresh it now with live progress, remove it after a confirmation; and
a run's page with its counts, per-stage timings and each error with its URL.

Every change is an admin command (bot.admin), run and audited as the console user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.admin import run_admin
from bot.console.auth import PREFIX
from bot.console.refreshes import Refreshes
from bot.console.web import (
    PAGE_SIZE,
    ConsoleDeps,
    Page,
    actor_of,
    page_number,
    refused,
    render,
)
from knowledge.crawl.urls import mask_url, mask_urls_in
from knowledge.ingest.sources import KINDS
from knowledge.storage import store
from knowledge.storage.answers import TEAM_ANSWERS
from knowledge.storage.db import as_utc, utcnow
from knowledge.storage.documents import Document, IngestionRun, Source

MAX_FIELD_CHARS = 2000
ADD_FIELDS = ("location", "name", "kind", "every", "cron", "include", "exclude", "max_pages")
EDIT_FIELDS = ("every", "cron", "include", "exclude", "max_pages")


def schedule_text(schedule: str | None, kind: str) -> str:
    if kind == TEAM_ANSWERS:
        return "built in"
    if not schedule:
        return "default"
    what, _, value = schedule.partition(" ")
    if what == "every" and value.isdigit():
        seconds = int(value)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"every {seconds // size}{unit}"
    return schedule


def run_view(run: IngestionRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    finished = as_utc(run.finished_at) if run.finished_at else None
    return {
        "id": run.id, "status": run.status, "started": as_utc(run.started_at),
        "finished": finished, "counts": dict(run.counts or {}),
        "timings": {k: round(v, 2) for k, v in (run.timings or {}).items()},
        "errors": [{"url": mask_url(e.get("url") or ""), "error": mask_urls_in(e.get("error", ""))}
                   for e in run.errors or []],
    }  # fmt: skip


def source_rows(deps: ConsoleDeps, number: int) -> tuple[list[dict[str, Any]], Page]:
    with deps.sessions() as session:
        summaries = store.source_summaries(session)
        ids = dict(session.execute(select(Source.name, Source.id)).all())
    page = Page(number, PAGE_SIZE, len(summaries))
    rows = [
        {"id": ids[s.name], "name": s.name, "kind": s.kind, "location": mask_url(s.location),
         "documents": s.documents, "chunks": s.chunks,
         "schedule": schedule_text(s.schedule, s.kind), "run": run_view(s.last_run),
         "refreshing": bool(s.refreshing_by),
         "queued": s.requested_at is not None}
        for s in summaries[page.offset : page.offset + page.size]
    ]  # fmt: skip
    return rows, page


def source_detail(deps: ConsoleDeps, source_id: int, number: int) -> dict[str, Any] | None:
    with deps.sessions() as session:
        source = session.get(Source, source_id)
        if source is None:
            return None
        total = session.scalar(select(func.count()).where(IngestionRun.source_id == source_id))
        page = Page(number, PAGE_SIZE, total or 0)
        runs = session.scalars(select(IngestionRun).where(IngestionRun.source_id == source_id)
                               .order_by(IngestionRun.id.desc())
                               .offset(page.offset).limit(page.size))  # fmt: skip
        options = source.options or {}
        return {
            "id": source.id, "name": source.name, "kind": source.kind,
            "location": mask_url(source.location), "built_in": source.kind == TEAM_ANSWERS,
            "schedule": schedule_text(source.schedule, source.kind),
            "every": _every_field(source.schedule),
            "cron": (source.schedule or "").removeprefix("cron ") if (source.schedule or "")
            .startswith("cron ") else "",
            "include": "\n".join(options.get("include", [])),
            "exclude": "\n".join(options.get("exclude", [])),
            "max_pages": options.get("max_pages", ""),
            "runs": [run_view(r) for r in runs], "page": page,
        }  # fmt: skip


def _every_field(schedule: str | None) -> str:
    if not schedule or not schedule.startswith("every "):
        return ""
    return schedule_text(schedule, "").removeprefix("every ")


def refresh_status(deps: ConsoleDeps, refreshes: Refreshes, source_id: int) -> dict[str, Any]:
    """Where a refresh of the source stands: queued, running (seconds so far, and the pages
    stored: each page is committed as it is indexed, so this moves during a worker's run
    too), done."""
    with deps.sessions() as session:
        source = session.get(Source, source_id)
        if source is None:
            return {"state": "gone"}
        run = session.scalar(select(IngestionRun).where(IngestionRun.source_id == source_id)
                             .order_by(IngestionRun.id.desc()).limit(1))  # fmt: skip
        name, queued = source.name, source.refresh_requested_at is not None
        running = source.lease_owner is not None and run is not None and run.status == "running"
        last = run_view(run)
        pages = session.scalar(select(func.count(Document.id))
                               .where(Document.source_id == source_id))  # fmt: skip
    started = refreshes.state(name)
    if running and last:
        state = "running"
        last["seconds"] = round((utcnow() - last["started"]).total_seconds())
    elif queued:
        state = "queued"
    elif started is not None and started.outcome is None:
        state = "starting"
    else:
        state = "idle"
    outcome = started.outcome if started is not None else None
    if started is not None and started.queued and state == "idle" and last:
        outcome = _run_summary(last)  # the worker's run, not the words that queued it
    return {"state": state, "outcome": outcome, "ok": started.ok if started else None,
            "pages": pages, "run": _jsonable(last)}  # fmt: skip


def _run_summary(run: dict[str, Any]) -> str:
    counts = run["counts"]
    return (f"Done ({run['status']}): {counts.get('pages_seen', 0)} pages seen, "
            f"{counts.get('pages_new', 0)} new, {counts.get('pages_changed', 0)} changed, "
            f"{counts.get('pages_failed', 0)} failed; {len(run['errors'])} errors.")  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value


def add_argv(form: dict[str, str]) -> list[str]:
    """`admin sources add` words for the add form."""
    argv = ["sources", "add", form["location"], "--name", form["name"]]
    for field in ("kind", "every", "cron", "include", "exclude", "max_pages"):
        if form.get(field):
            argv += [f"--{field.replace('_', '-')}", form[field]]
    if form.get("allow_private"):
        argv.append("--allow-private")
    return argv


def edit_argv(name: str, form: dict[str, str]) -> list[str]:
    """`admin sources edit` words for the edit form: blank filters clear, a blank schedule
    restores the default."""
    argv = ["sources", "edit", name]
    argv += ["--include", form.get("include") or "none", "--exclude", form.get("exclude") or "none"]
    if form.get("cron"):
        argv += ["--cron", form["cron"]]
    else:
        argv += ["--every", form.get("every") or "default"]
    if form.get("max_pages"):
        argv += ["--max-pages", form["max_pages"]]
    return argv


async def _form(request: Request, fields: tuple[str, ...]) -> dict[str, str]:
    form = await request.form(max_fields=20)
    values = {f: str(form.get(f, "")).strip()[:MAX_FIELD_CHARS] for f in fields}
    values["allow_private"] = "yes" if form.get("allow_private") else ""
    return values


def routes(deps: ConsoleDeps, refreshes: Refreshes) -> list[Route]:
    async def listing(request: Request, form: dict[str, str] | None = None, result: Any = None,
                      status: int = 200) -> Response:  # fmt: skip
        rows, page = await run_in_threadpool(source_rows, deps, page_number(request))
        return render(request, "sources.html", status=status, title="Sources", here="sources",
                      rows=rows, page=page, kinds=KINDS, form=form or {},
                      result=result)  # fmt: skip

    async def add(request: Request) -> Response:
        form = await _form(request, ADD_FIELDS)
        if not form["location"] or not form["name"]:
            return await listing(request, form, {"ok": False, "text": "Give a URL and a name."},
                                 400)  # fmt: skip
        result = await run_in_threadpool(run_admin, deps, actor_of(request), add_argv(form),
                                         platform_admin=True)  # fmt: skip
        if not result.ok:
            return await listing(request, form, result, 400)
        with deps.sessions() as session:
            source_id = session.scalar(select(Source.id).where(Source.name == form["name"]))
        return RedirectResponse(f"{PREFIX}/sources/{source_id}?added=1", status_code=303)

    async def detail(request: Request, result: Any = None, status: int = 200) -> Response:
        source_id = request.path_params["source_id"]
        found = await run_in_threadpool(source_detail, deps, source_id, page_number(request))
        if found is None:
            return refused(request, 404, "No such source; it may have been removed.")
        return render(request, "source.html", status=status, title=found["name"],
                      here="sources", source=found, result=result,
                      added=request.query_params.get("added") == "1")  # fmt: skip

    async def edit(request: Request) -> Response:
        name = await _name(request)
        if name is None:
            return refused(request, 404, "No such source; it may have been removed.")
        argv = edit_argv(name, await _form(request, EDIT_FIELDS))
        result = await run_in_threadpool(run_admin, deps, actor_of(request), argv,
                                         platform_admin=True)  # fmt: skip
        return await detail(request, result, 200 if result.ok else 400)

    async def refresh(request: Request) -> Response:
        name = await _name(request)
        if name is None:
            return JSONResponse({"error": "No such source."}, status_code=404)
        started = refreshes.start(actor_of(request), name)
        return JSONResponse({"started": started}, status_code=202 if started else 409)

    async def status(request: Request) -> Response:
        found = await run_in_threadpool(refresh_status, deps, refreshes,
                                        request.path_params["source_id"])  # fmt: skip
        return JSONResponse(found, status_code=404 if found["state"] == "gone" else 200)

    async def confirm_remove(request: Request) -> Response:
        name = await _name(request)
        if name is None:
            return refused(request, 404, "No such source; it may have been removed.")
        return render(request, "remove.html", title=f"Remove {name}", here="sources",
                      name=name, source_id=request.path_params["source_id"])  # fmt: skip

    async def remove(request: Request) -> Response:
        name = await _name(request)
        if name is None:
            return refused(request, 404, "No such source; it may have been removed.")
        argv = ["sources", "remove", name]
        result = await run_in_threadpool(run_admin, deps, actor_of(request), argv,
                                         platform_admin=True)  # fmt: skip
        if not result.ok:
            return refused(request, 400, result.text)
        return await listing(request, result=result)

    async def run_page(request: Request) -> Response:
        with deps.sessions() as session:
            run = session.get(IngestionRun, request.path_params["run_id"])
            source = session.get(Source, run.source_id) if run is not None else None
            view = run_view(run)
            name, source_id = (source.name, source.id) if source else ("", None)
        if view is None:
            return refused(request, 404, "No such run.")
        return render(request, "run.html", title=f"Run {view['id']}", here="sources", run=view,
                      name=name, source_id=source_id)  # fmt: skip

    async def _name(request: Request) -> str | None:
        with deps.sessions() as session:
            wanted = Source.id == request.path_params["source_id"]
            return session.scalar(select(Source.name).where(wanted))

    base = f"{PREFIX}/sources"
    return [
        Route(base, listing, methods=["GET"]),
        Route(base, add, methods=["POST"]),
        Route(base + "/{source_id:int}", detail, methods=["GET"]),
        Route(base + "/{source_id:int}/edit", edit, methods=["POST"]),
        Route(base + "/{source_id:int}/refresh", refresh, methods=["POST"]),
        Route(base + "/{source_id:int}/status", status, methods=["GET"]),
        Route(base + "/{source_id:int}/remove", confirm_remove, methods=["GET"]),
        Route(base + "/{source_id:int}/remove", remove, methods=["POST"]),
        Route(f"{PREFIX}/runs/" + "{run_id:int}", run_page, methods=["GET"]),
    ]
