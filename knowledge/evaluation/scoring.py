"""Scoring retrieval against questions with known answers (the core of ``teambot eval``).

Whether a change to chunking, embedding or ranking helps can only be told by measuring it
on real questions, the same way every time. This module holds the pure part of that: read
the questions, turn each one's gold and each search result into comparable keys (page paths
relative to the source root, optionally ``page#anchor``), and compute recall@1/5/10, MRR and
nDCG@10. Retrieval and the command line live elsewhere.

Keys are plain strings: a page path (``faq/admin.html``) at page level, ``page#anchor`` at
section level. A gold key without ``#`` is page-level even in a section ranking: any section
of that page hits it. Each gold key counts once, at the first result that hits it.
"""

from __future__ import annotations

import functools
import json
import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from knowledge.crawl.urls import relative_path
from knowledge.errors import KnowledgeError
from knowledge.types import ScoredChunk

Level = Literal["section", "page"]

RECALL_CUTOFFS = (1, 5, 10)
NDCG_CUTOFF = 10
FOLDER_KIND = "folder"
DIRECTORY_INDEX = "index.html"
LINE_SHAPE = (
    'Each line must be one JSON object, e.g. {"question": "How do I restore a backup?", '
    '"page": "guide/backups.md", "anchor": "restoring"}.'
)


@dataclass(frozen=True)
class EvalQuestion:
    """A question and where its answer lives.

    ``page`` and ``anchor`` locate the answer itself (``faq/admin.html``, ``i-can-t-log-in``);
    ``linked_pages`` are the other pages the answer links to, the gold of the "hard" mode
    where the answer's own pages are left out of the index.
    """

    question: str
    page: str | None
    anchor: str | None
    linked_pages: tuple[str, ...]
    # Whether the indexed docs answer it (`teambot eval --answerability`); None: not said.
    answerable: bool | None = None


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read one JSON object a line: ``question``, and ``page``/``anchor`` and/or ``linked_pages``.

    Blank lines are skipped; other fields (``answer``, ``url``…) are ignored. A line that is
    not a JSON object, lacks ``question`` or has a field of the wrong type raises
    ``KnowledgeError`` starting ``FILE:LINE:``, as compilers do, and showing a good line.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise KnowledgeError(f"Cannot read the questions file {path}: {error}") from None
    questions = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            questions.append(_parse_question(line, f"{path}:{number}"))
    return questions


def _parse_question(line: str, where: str) -> EvalQuestion:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise KnowledgeError(
            f"{where}: not valid JSON ({error.msg.removesuffix(' at')} at column "
            f"{error.colno}). {LINE_SHAPE}"
        ) from None
    if not isinstance(record, dict):
        raise KnowledgeError(f"{where}: expected a JSON object. {LINE_SHAPE}")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise KnowledgeError(f"{where}: the `question` field is missing or not a text.")
    page, anchor = _optional_text(record, "page", where), _optional_text(record, "anchor", where)
    linked = record.get("linked_pages") or []
    if not isinstance(linked, list) or not all(isinstance(p, str) and p for p in linked):
        raise KnowledgeError(f"{where}: `linked_pages` must be a list of page paths.")
    answerable = record.get("answerable")
    if answerable is not None and not isinstance(answerable, bool):
        raise KnowledgeError(f"{where}: `answerable` must be true or false.")
    return EvalQuestion(question, page, anchor, tuple(linked), answerable)


def _optional_text(record: dict[str, Any], name: str, where: str) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise KnowledgeError(f"{where}: `{name}` must be a text.")
    return value or None


def gold_for(
    question: EvalQuestion, level: Level, *, exclude_prefixes: tuple[str, ...] = ()
) -> set[str]:
    """The keys a ranking must contain to answer ``question``; an empty set means unscorable.

    ``exclude_prefixes`` names the page paths left out of the index (``("faq/",)`` for the
    hard mode). The rule, at page level: gold = {page} if the question has a page that is
    not excluded, else ``linked_pages`` minus the excluded ones. At section level the gold
    is {``page#anchor``} (or {page}, matched by any section of it, when there is no anchor)
    and empty when the page is missing or excluded: linked pages name no section.
    """
    page = question.page
    page_indexed = page is not None and not page.startswith(exclude_prefixes)
    if level == "section":
        if not page_indexed:
            return set()
        return {f"{page}#{question.anchor}" if question.anchor else page}
    if page_indexed:
        return {page}
    return {p for p in question.linked_pages if not p.startswith(exclude_prefixes)}


# Page paths computed so far: canonicalising a URL costs ~90 us, and a filtered search checks
# a few dozen candidate pages per question, the same pages again and again.
PAGE_PATH_CACHE = 65_536


@functools.lru_cache(maxsize=PAGE_PATH_CACHE)
def _page_path(kind: str, url: str, root: str | None) -> str:
    if kind == FOLDER_KIND:
        path = url
    else:
        try:
            path = relative_path(url, root or "")
        except ValueError:
            path = urlsplit(url).path.removeprefix("/")
        path = unquote(path)
    if path == "" or path.endswith("/"):
        path += DIRECTORY_INDEX
    return path


def result_key(chunk: ScoredChunk, level: Level, roots: dict[str, str]) -> str:
    """The key of a search result: its page path relative to its source root, plus ``#anchor``.

    A folder source stores that path as the document URL. For a web source, ``roots`` maps
    the source name to its start URL (every web source in the results must be there); a URL
    outside that root falls back to the URL's path. Paths are percent-decoded, to compare
    equal to folder paths and hand-written gold, and a directory URL stands for its
    ``index.html``. Section level appends ``#anchor`` when the chunk has one.
    """
    root = None if chunk.source_kind == FOLDER_KIND else roots[chunk.source_name]
    path = _page_path(chunk.source_kind, chunk.document_url, root)
    if level == "section" and chunk.anchor:
        return f"{path}#{chunk.anchor}"
    return path


class PageKeys:
    """Every indexed page by its key (its path under its source root), to name the pages
    under some prefixes: hard mode leaves them out before a search ranks anything."""

    def __init__(self, pages: Iterable[tuple[str, str, str]], roots: dict[str, str]) -> None:
        """``pages``: (source name, source kind, document url) of each page."""
        keyed = sorted(
            (_page_path(kind, url, None if kind == FOLDER_KIND else roots.get(name)), (name, url))
            for name, kind, url in pages
        )
        self._keys = [key for key, _ in keyed]
        self._pages = [page for _, page in keyed]

    def under(self, prefixes: Iterable[str]) -> frozenset[tuple[str, str]]:
        """The (source name, url) of the pages whose key starts with one of ``prefixes``."""
        found: set[tuple[str, str]] = set()
        for prefix in prefixes:
            at = bisect_left(self._keys, prefix)
            while at < len(self._keys) and self._keys[at].startswith(prefix):
                found.add(self._pages[at])
                at += 1
        return frozenset(found)


def ranked_keys(results: list[ScoredChunk], level: Level, roots: dict[str, str]) -> list[str]:
    """Result keys in rank order, each kept at its first (best) rank only.

    At page level this ranks a page by its best chunk.
    """
    return list(dict.fromkeys(result_key(chunk, level, roots) for chunk in results))


@dataclass(frozen=True)
class Metrics:
    """Mean scores over the ``n`` questions that had a gold in this mode."""

    n: int
    recall_at: dict[int, float]
    mrr: float
    ndcg_at_10: float

    def to_json(self) -> dict[str, float | int]:
        """The metrics under the key names reports and other tools rely on."""
        return {
            **{f"recall@{cutoff}": self.recall_at[cutoff] for cutoff in RECALL_CUTOFFS},
            "mrr": self.mrr,
            "ndcg@10": self.ndcg_at_10,
            "n": self.n,
        }


def score(rankings: list[list[str]], golds: list[set[str]], *, k: int = 10) -> Metrics:
    """Average the metrics over the questions with a non-empty gold set (the others are skipped).

    ``rankings[i]`` holds the result keys for the question whose gold is ``golds[i]``.
    recall@c = |gold hit in the top c| / |gold| for c in 1, 5, 10; MRR = 1 / rank of the first
    relevant result within the top ``k`` (0 when none); nDCG@10 uses binary relevance,
    DCG = sum of 1/log2(rank + 1) over relevant results in the top 10, divided by the DCG of
    min(|gold|, 10) relevant results at the top. ``k`` only cuts MRR; the other cutoffs are
    fixed so results stay comparable.
    """
    scored = list(_scored(rankings, golds, k))
    if not scored:
        return Metrics(n=0, recall_at=dict.fromkeys(RECALL_CUTOFFS, 0.0), mrr=0.0, ndcg_at_10=0.0)
    n = len(scored)
    return Metrics(
        n=n,
        recall_at={
            cutoff: sum(_recall(hits, gold, cutoff) for _, hits, gold, _ in scored) / n
            for cutoff in RECALL_CUTOFFS
        },
        mrr=sum(1 / first for *_, first in scored if first is not None) / n,
        ndcg_at_10=sum(_ndcg(hits, gold) for _, hits, gold, _ in scored) / n,
    )


def per_question(
    rankings: list[list[str]], golds: list[set[str]], *, k: int = 10
) -> list[dict[str, Any]]:
    """One row per scored question, for ``--json`` output and for reading failures.

    ``index`` is the question's position in the input, ``first_relevant_rank`` the 1-based
    rank of its first relevant result within the top ``k`` (None when none: MRR is the mean
    of 1/rank), ``recall@10`` and ``ndcg@10`` as in ``score`` (for paired comparisons).
    """
    return [
        {
            "index": index,
            "first_relevant_rank": first,
            "recall@10": _recall(hits, gold, 10),
            "ndcg@10": _ndcg(hits, gold),
        }
        for index, hits, gold, first in _scored(rankings, golds, k)
    ]


def format_table(rows: list[tuple[str, Metrics]]) -> str:
    """A Markdown table of named results, three decimals, one row per name."""
    lines = [
        "| name | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, metrics in rows:
        values = [metrics.recall_at[c] for c in RECALL_CUTOFFS] + [metrics.mrr, metrics.ndcg_at_10]
        cells = [name.replace("|", "\\|"), *(f"{value:.3f}" for value in values), str(metrics.n)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _scored(
    rankings: list[list[str]], golds: list[set[str]], k: int
) -> Iterable[tuple[int, list[int], set[str], int | None]]:
    """(index, ranks hitting a new gold key, gold, first relevant rank within k) per question."""
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings for {len(golds)} gold sets")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    for index, (ranking, gold) in enumerate(zip(rankings, golds, strict=True)):
        if gold:
            hits = _hit_ranks(ranking[: max(k, NDCG_CUTOFF)], gold)
            first = hits[0] if hits and hits[0] <= k else None
            yield index, hits, gold, first


def _hit_ranks(ranking: list[str], gold: set[str]) -> list[int]:
    """The 1-based ranks at which a gold key is hit for the first time.

    A result hits a gold key equal to it, or a page-level gold key (no ``#``) for its page.
    """
    found: set[str] = set()
    ranks = []
    for rank, key in enumerate(ranking, start=1):
        page = key.partition("#")[0]
        hit = key if key in gold else page if page in gold else None
        if hit is not None and hit not in found:
            found.add(hit)
            ranks.append(rank)
    return ranks


def _recall(hits: list[int], gold: set[str], cutoff: int) -> float:
    return sum(1 for rank in hits if rank <= cutoff) / len(gold)


def _ndcg(hits: list[int], gold: set[str]) -> float:
    dcg = sum(1 / math.log2(rank + 1) for rank in hits if rank <= NDCG_CUTOFF)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(gold), NDCG_CUTOFF) + 1))
    return dcg / ideal
