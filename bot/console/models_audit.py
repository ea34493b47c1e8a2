"""The Models and audit page: each model's health (probed now) and circuit state, the model
route of every channel an admin configured, and the audit log, filtered and paged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.console.auth import PREFIX
from bot.console.web import PAGE_SIZE, ConsoleDeps, Page, page_number, query_text, render
from bot.llm.health import model_health_lines
from bot.llm.router import CHAINS
from knowledge.crawl.urls import mask_urls_in
from knowledge.storage.conversations import AuditEntry, ChannelSetting
from knowledge.storage.db import as_utc

PROBE_SECONDS = 1.0  # the page waits this long at most for a model that does not answer


def models(deps: ConsoleDeps) -> dict[str, Any]:
    """Health lines, the global routes and each configured channel's route with its chain."""
    settings = deps.settings
    lines = model_health_lines(settings, deps.sessions, deps.router, PROBE_SECONDS)
    with deps.sessions() as session:
        channels = [
            {"where": f"{row.platform}:{row.channel}", "route": row.llm_route or settings.llm_route,
             "own": bool(row.llm_route), "by": row.updated_by or ""}
            for row in session.scalars(select(ChannelSetting)
                                       .order_by(ChannelSetting.platform, ChannelSetting.channel))
        ]  # fmt: skip
    for channel in channels:
        channel["chain"] = " → ".join(CHAINS.get(channel["route"], ()))
    return {
        "health": lines[1:] if len(lines) > 1 else lines,
        "route": settings.llm_route, "chain": " → ".join(CHAINS[settings.llm_route]),
        "private": settings.llm_private_route or "", "channels": channels,
    }  # fmt: skip


def audit_page(deps: ConsoleDeps, number: int, who: str, command: str,
               outcome: str) -> tuple[list[dict[str, Any]], Page]:  # fmt: skip
    """A page of the audit log, newest first; filters match part of the actor
    (``platform:user``), the command and the outcome."""
    where = []
    if who:
        actor = AuditEntry.platform + ":" + AuditEntry.user_id
        where.append(actor.contains(who, autoescape=True))
    if command:
        where.append(AuditEntry.command.contains(command, autoescape=True))
    if outcome == "ok":
        where.append(AuditEntry.outcome == "ok")
    elif outcome == "not ok":
        where.append(or_(AuditEntry.outcome != "ok"))
    with deps.sessions() as session:
        total = session.scalar(select(func.count(AuditEntry.id)).where(*where)) or 0
        page = Page(number, PAGE_SIZE, total)
        rows = [
            {"when": as_utc(e.created_at), "who": f"{e.platform}:{e.user_id}",
             "command": e.command, "args": mask_urls_in(" ".join((e.args or {}).get("argv", []))),
             "outcome": e.outcome}
            for e in session.scalars(select(AuditEntry).where(*where)
                                     .order_by(AuditEntry.id.desc())
                                     .offset(page.offset).limit(page.size))
        ]  # fmt: skip
    return rows, page


def routes(deps: ConsoleDeps) -> list[Route]:
    async def page(request: Request) -> Response:
        who, command = query_text(request, "who"), query_text(request, "command")
        outcome = query_text(request, "outcome")
        found = await run_in_threadpool(models, deps)
        rows, pager = await run_in_threadpool(audit_page, deps, page_number(request), who,
                                              command, outcome)  # fmt: skip
        return render(request, "models.html", title="Models and audit", here="models",
                      models=found, audit=rows, page=pager, who=who, command=command,
                      outcome=outcome)  # fmt: skip

    return [Route(f"{PREFIX}/models", page, methods=["GET"])]
