"""What one refresh of a source saw and did: the counts `teambot refresh --json` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

IssueKind = Literal["failed", "skipped"]


@dataclass(frozen=True)
class PageIssue:
    """A page (or file) that was not indexed this run, and why."""

    url: str
    error: str
    kind: IssueKind = "failed"


@dataclass
class RunReport:
    """Counts, issues and stage timings (seconds) of one run; stored in ingestion_runs."""

    source: str
    pages_seen: int = 0
    pages_fetched: int = 0
    pages_unchanged: int = 0
    pages_changed: int = 0
    pages_new: int = 0
    pages_removed: int = 0
    pages_failed: int = 0
    pages_skipped: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    issues: list[PageIssue] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def fail(self, url: str, error: str) -> None:
        self.pages_failed += 1
        self.issues.append(PageIssue(url, error, "failed"))

    def skip(self, url: str, reason: str) -> None:
        self.pages_skipped += 1
        self.issues.append(PageIssue(url, reason, "skipped"))

    def unskip(self, url: str) -> None:
        """``url``, skipped earlier in the run, turned out to be indexable after all."""
        kept = [i for i in self.issues if i.url != url or i.kind != "skipped"]
        self.pages_skipped -= len(self.issues) - len(kept)
        self.issues = kept

    def add_time(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def counts(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in (
                "pages_seen", "pages_fetched", "pages_unchanged", "pages_changed", "pages_new",
                "pages_removed", "pages_failed", "pages_skipped", "chunks_embedded",
                "chunks_reused",
            )
        }  # fmt: skip

    def errors(self) -> list[dict[str, str]]:
        return [{"url": i.url, "error": i.error, "kind": i.kind} for i in self.issues]

    def summary(self) -> str:
        """One line of counts, then each failed and skipped page with its reason."""
        seconds = self.timings.get("total", 0.0)
        lines = [
            f"Source {self.source!r}: {self.pages_seen} pages seen — {self.pages_new} new, "
            f"{self.pages_changed} changed, {self.pages_unchanged} unchanged, "
            f"{self.pages_removed} removed, {self.pages_failed} failed, "
            f"{self.pages_skipped} skipped; {self.chunks_embedded} chunks embedded, "
            f"{self.chunks_reused} reused, in {seconds:.1f} s."
        ]
        for kind in ("failed", "skipped"):
            issues = [i for i in self.issues if i.kind == kind]
            if issues:
                lines.append(f"{kind.capitalize()} ({len(issues)}):")
                lines += [f"  {i.url}: {i.error}" for i in issues]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The stable shape scripts rely on (``teambot refresh --json``)."""
        return {
            "source": self.source,
            **self.counts(),
            "errors": self.errors(),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
