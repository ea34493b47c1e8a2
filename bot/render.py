"""How answers, sources and ingestion reports look in a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from bot.types import Answer
from knowledge.ingest import IngestReport
from knowledge.store import SourceSummary


def answer_text(answer: Answer) -> str:
    """The answer followed by its numbered sources (title, heading and path#anchor)."""
    if not answer.citations:
        return answer.text
    sources = "\n".join(f"  [{c.n}] {c.label} — {c.location}" for c in answer.citations)
    return f"{answer.text}\n\nSources:\n{sources}"


def ingest_summary(report: IngestReport, seconds: float) -> str:
    lines = [
        f"Source {report.source!r}: {report.files_seen} files — {report.documents_new} new, "
        f"{report.documents_changed} changed, {report.documents_unchanged} unchanged, "
        f"{report.documents_removed} removed; {report.chunks_embedded} chunks embedded, "
        f"{report.chunks_reused} reused, in {seconds:.1f} s."
    ]
    if report.skipped:
        lines.append(f"Skipped {len(report.skipped)} file(s):")
        lines += [f"  {s.path}: {s.reason}" for s in report.skipped]
    return "\n".join(lines)


def sources_table(summaries: list[SourceSummary]) -> Table:
    table = Table("name", "kind", "location", "documents", "chunks", "last run")
    for s in summaries:
        run = s.last_run
        last = "never"
        if run is not None:
            when = run.started_at.strftime("%Y-%m-%d %H:%M")
            skipped = run.counts.get("files_skipped", 0)
            last = f"{when} {run.status}" + (f" ({skipped} skipped)" if skipped else "")
        table.add_row(s.name, s.kind, s.location, str(s.documents), str(s.chunks), last)
    return table


class ProgressBar:
    """knowledge.progress.Progress drawn as a rich progress bar on stderr."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: RichBar | None = None
        self._task: TaskID | None = None

    def begin(self, stage: str, total: int) -> None:
        if total == 0:
            return
        self._bar = RichBar(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
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
