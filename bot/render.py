"""How answers, sources and ingestion reports look in a terminal, and the link to a source that
every chat platform shows (each in its own markup: bot.slack.render, bot.discord.render)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar
from rich.table import Table

from bot.types import Answer, Citation
from knowledge.ingest.report import RunReport
from knowledge.storage.store import SourceSummary


def answer_text(answer: Answer) -> str:
    """The answer followed by its numbered sources (title, heading and path#anchor)."""
    return answer.text + sources_text(answer)


def sources_text(answer: Answer) -> str:
    """The numbered sources that follow an answer, or the pages that might help when it
    abstained, and the confidence note ("" when there is nothing to add)."""
    listed = answer.suggestions if answer.abstained else answer.citations
    title = "Might help" if answer.abstained else "Sources"
    block = ""
    if listed:
        lines = "\n".join(f"  [{c.n}] {c.label} — {c.location}" for c in listed)
        block = f"\n\n{title}:\n{lines}"
    note = confidence_note(answer)
    return block + (f"\n\n{note}" if note else "")


def listed_pages(answer: Answer) -> tuple[str, list[Citation]]:
    """The heading and the pages a platform lists under an answer: its sources, or, when it
    abstained, the closest pages as "Might help"."""
    if answer.abstained:
        return "Might help", answer.suggestions
    return "Sources", answer.citations


def confidence_note(answer: Answer) -> str:
    """A quiet footnote: how sure teambot is, in a word and the number ("" when unknown)."""
    if answer.confidence is None:
        return ""
    if answer.abstained:
        return f"Not covered by the indexed docs (confidence {answer.confidence:.2f})"
    level = next(word for floor, word in CONFIDENCE_WORDS if answer.confidence >= floor)
    return f"Confidence: {level} ({answer.confidence:.2f})"


# The word for a confidence: the first whose floor it reaches.
CONFIDENCE_WORDS = ((0.8, "high"), (0.5, "medium"), (0.0, "low"))


def citation_url(citation: Citation) -> str | None:
    """The address a reader can open (``url#anchor``), or None for a file on the bot's machine
    (shown as its path instead)."""
    if citation.path is not None:
        return None
    return f"{citation.url}#{citation.anchor}" if citation.anchor else citation.url


def refresh_json(reports: list[RunReport], *, single: bool) -> dict[str, Any]:
    """One source's report, or the totals of several with each under ``sources``."""
    if single:
        return reports[0].to_json()
    totals: dict[str, Any] = {key: 0 for key in reports[0].counts()} if reports else {}
    for report in reports:
        for key, value in report.counts().items():
            totals[key] += value
    totals["errors"] = [{"source": r.source, **e} for r in reports for e in r.errors()]
    totals["sources"] = {r.source: r.to_json() for r in reports}
    return totals


def sources_table(summaries: list[SourceSummary]) -> Table:
    table = Table("name", "kind", "location", "documents", "chunks", "last run")
    for s in summaries:
        run = s.last_run
        last = "never"
        if run is not None:
            when = run.started_at.strftime("%Y-%m-%d %H:%M")
            failed = run.counts.get("pages_failed", 0)
            last = f"{when} {run.status}" + (f" ({failed} failed)" if failed else "")
        table.add_row(s.name, s.kind, s.location, str(s.documents), str(s.chunks), last)
    return table


class ProgressBar:
    """knowledge.ingest.progress.Progress drawn as a rich progress bar on stderr."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: RichBar | None = None
        self._task: TaskID | None = None

    def begin(self, stage: str, total: int | None) -> None:
        if total == 0:
            return
        self._bar = RichBar(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn() if total else TextColumn("{task.completed} done"),
            TimeRemainingColumn() if total else TimeElapsedColumn(),
            console=self._console,
        )
        self._task = self._bar.add_task(stage, total=total)
        self._bar.start()

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, steps)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._task = None
