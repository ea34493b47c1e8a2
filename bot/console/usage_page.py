"""The Usage page: questions per day by platform, answer latency p50 and p95, the share of
abstained and 👎 answers, and tokens per provider, drawn as server-side SVG charts
(bot.console.usage reads the numbers, bot.console.charts draws them)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.console.auth import PREFIX
from bot.console.web import ConsoleDeps, render

DAYS = (7, 30, 90)


def charts(deps: ConsoleDeps, days: int) -> list[tuple[str, str]]:
    """(heading, <svg>) for each chart; the SVG is escaped by bot.console.charts."""
    from bot.console.charts import bar_chart, line_chart
    from bot.console.usage import usage_report

    with deps.sessions() as session:
        report = usage_report(session, days=days)
    shares = [report.abstained_share, report.downvoted_share]
    return [
        ("Questions per day", bar_chart(report.questions_per_day, title="Questions per day")),
        ("Answer latency", line_chart([report.latency_p50, report.latency_p95],
                                      title="Answer latency, p50 and p95", unit="ms")),
        ("Abstained and downvoted answers",
         line_chart(shares, title="Share of abstained and downvoted answers", unit="%")),
        ("Tokens per provider", bar_chart(report.tokens_per_provider,
                                          title="Tokens per provider per day")),
    ]  # fmt: skip


def routes(deps: ConsoleDeps) -> list[Route]:
    async def page(request: Request) -> Response:
        raw = request.query_params.get("days", "30")
        days = int(raw) if raw.isdigit() and int(raw) in DAYS else 30
        drawn = await run_in_threadpool(charts, deps, days)
        return render(request, "usage.html", title="Usage", here="usage", charts=drawn,
                      days=days, choices=DAYS)  # fmt: skip

    return [Route(f"{PREFIX}/usage", page, methods=["GET"])]
