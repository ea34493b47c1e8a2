"""Training pairs from the docs' own structure, for tuning the embedder without labels.

Each pair is (anchor, positive, hard negative): a short query-like text, the passage it names,
and a passage of the same site that BM25 ranks high for the anchor but that belongs to another
page. The pairs come from what the index already holds:

- heading path ↔ the first passage of its section (``heading``);
- page title ↔ the page's opening passage (``title``);
- a team answer's question ↔ its answer (``answer``, from "Teach teambot").

Link text ↔ the section it points to is not built: extraction keeps each page's link targets
but not their text. Pairs are split by page (a hash of source and URL), so a held-out page
gives no training pair: the gate (knowledge/tune/gate.py) scores the tuned model on pages it
never saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.urls import relative_path
from knowledge.evaluation.scoring import FOLDER_KIND, EvalQuestion
from knowledge.ingest.chunk import context_line
from knowledge.storage.answers import TEAM_ANSWERS
from knowledge.storage.documents import Chunk, Document, Source

# Characters kept of each side: MiniLM reads 256 word pieces, about 1,200 characters of prose.
MAX_ANCHOR_CHARS = 300
MAX_PASSAGE_CHARS = 1500
MIN_PASSAGE_CHARS = 40  # shorter bodies ("See below.") name nothing
MAX_PAIRS = 50_000  # a bound on memory and on one epoch's time, whatever the site's size
HELD_OUT_PERCENT = 15
NEGATIVE_CANDIDATES = 10  # BM25 hits looked at for a negative from another page

# Decides, by page key and section anchor, whether a section must give no pair (the bench
# keeps its evaluation questions' sections out this way).
Skip = Callable[[str, str], bool]


@dataclass(frozen=True)
class Pair:
    kind: str  # "heading", "title" or "answer"
    anchor: str
    positive: str
    negative: str
    page: str  # "source name␟url": what the split and the gate group by

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class PairSet:
    train: list[Pair]
    held_out: list[Pair]

    def counts(self) -> dict[str, int]:
        """How many pairs of each kind each part holds (for the report)."""
        found: dict[str, int] = {}
        for part, pairs in (("train", self.train), ("held_out", self.held_out)):
            for pair in pairs:
                key = f"{part}.{pair.kind}"
                found[key] = found.get(key, 0) + 1
        return found


@dataclass(frozen=True)
class _Section:
    page: str
    title: str
    heading_path: tuple[str, ...]
    anchor: str
    text: str
    ordinal: int
    is_answer: bool


def excluding(
    sessions: sessionmaker[Session],
    prefixes: Sequence[str] = (),
    questions: Iterable[EvalQuestion] = (),
) -> Skip:
    """A ``Skip`` for the pages under ``prefixes`` and the sections the ``questions`` name
    (page#anchor; a whole page when there is no anchor), by page path as `teambot eval`
    writes it: evaluation questions then never become training pairs."""
    with sessions() as session:
        roots = {name: (kind, location) for name, kind, location in session.execute(
            select(Source.name, Source.kind, Source.location))}  # fmt: skip
    pages = {q.page for q in questions if q.page and not q.anchor}
    sections = {(q.page, q.anchor) for q in questions if q.page and q.anchor}
    wanted = tuple(prefixes)

    def skip(page: str, anchor: str) -> bool:
        name, url = page.split("\x1f", 1)
        kind, location = roots.get(name, (FOLDER_KIND, ""))
        path = url if kind == FOLDER_KIND else _relative(url, location)
        under = bool(wanted) and path.startswith(wanted)
        return under or path in pages or (path, anchor) in sections

    return skip


def _relative(url: str, root: str) -> str:
    try:
        return unquote(relative_path(url, root)) or "index.html"
    except ValueError:
        return url


def page_key(source: str, url: str) -> str:
    return f"{source}\x1f{url}"


def is_held_out(page: str, percent: int = HELD_OUT_PERCENT) -> bool:
    """Whether a page belongs to the held-out part: the same answer on every run."""
    return int(hashlib.sha256(page.encode()).hexdigest()[:8], 16) % 100 < percent


def build_pairs(
    sessions: sessionmaker[Session],
    model: str,
    *,
    sources: Sequence[str] | None = None,
    skip: Skip | None = None,
    held_out_percent: int = HELD_OUT_PERCENT,
    max_pairs: int = MAX_PAIRS,
) -> PairSet:
    """Pairs from every section of the chunks embedded by ``model`` (of ``sources`` if
    given), each with a hard negative, split by page."""
    with sessions() as session:
        sections = _first_chunks(session, model, sources)
    if skip is not None:
        sections = [s for s in sections if not skip(s.page, s.anchor)]
    candidates = _dedupe(_raw_pairs(sections))[:max_pairs]
    negatives = _hard_negatives(candidates, sections)
    pairs = [
        Pair(kind, anchor, positive, negative, page)
        for (kind, anchor, positive, page), negative in zip(candidates, negatives, strict=True)
        if negative is not None
    ]
    train = [p for p in pairs if not is_held_out(p.page, held_out_percent)]
    held_out = [p for p in pairs if is_held_out(p.page, held_out_percent)]
    return PairSet(train, held_out)


def _first_chunks(session: Session, model: str, sources: Sequence[str] | None) -> list[_Section]:
    """Each section's first chunk (the one a heading introduces), in page order."""
    query = (
        select(
            Source.name, Source.kind, Document.url, Document.title, Chunk.heading_path,
            Chunk.anchor, Chunk.text, Chunk.ordinal,
        )
        .join(Document, Chunk.document_id == Document.id)
        .join(Source, Document.source_id == Source.id)
        .where(Chunk.model == model)
        .order_by(Document.id, Chunk.ordinal)
    )  # fmt: skip
    if sources:
        query = query.where(Source.name.in_(list(sources)))
    sections: list[_Section] = []
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    for name, kind, url, title, heading_path, anchor, text, ordinal in session.execute(query):
        page, path = page_key(name, url), tuple(heading_path or ())
        if (page, path, anchor) in seen:
            continue
        seen.add((page, path, anchor))
        sections.append(
            _Section(page, title or "", path, anchor, text, ordinal, kind == TEAM_ANSWERS)
        )
    return sections


def _raw_pairs(sections: Iterable[_Section]) -> Iterable[tuple[str, str, str, str]]:
    """(kind, anchor, positive, page) for every section that has both sides."""
    for section in sections:
        body = section.text.strip()[:MAX_PASSAGE_CHARS]
        if len(body) < MIN_PASSAGE_CHARS:
            continue
        if section.is_answer:  # heading path: (question, credit); the title is the question
            yield "answer", section.title[:MAX_ANCHOR_CHARS], body, section.page
            continue
        if section.ordinal == 0 and section.title:
            yield "title", section.title[:MAX_ANCHOR_CHARS], body, section.page
        if section.heading_path:
            heading = context_line(section.title, section.heading_path)[:MAX_ANCHOR_CHARS]
            yield "heading", heading, body, section.page


def _dedupe(pairs: Iterable[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """One pair per anchor text: an anchor that names two passages teaches nothing."""
    by_anchor: dict[str, tuple[str, str, str, str] | None] = {}
    for pair in pairs:
        key = pair[1].casefold()
        if key in by_anchor and by_anchor[key] is not None and by_anchor[key][2] != pair[2]:
            by_anchor[key] = None  # ambiguous: the same words name different passages
        elif key not in by_anchor:
            by_anchor[key] = pair
    return [pair for pair in by_anchor.values() if pair is not None]


def _hard_negatives(
    pairs: Sequence[tuple[str, str, str, str]], sections: Sequence[_Section]
) -> list[str | None]:
    """For each pair, the best BM25 passage for its anchor that is on another page of the
    same source (None when there is none)."""
    import bm25s
    import numpy as np

    bodies = [s.text.strip()[:MAX_PASSAGE_CHARS] for s in sections]
    if not pairs or not bodies:
        return [None] * len(pairs)

    def words(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)

    index = bm25s.BM25()
    index.index(words(bodies), show_progress=False)
    k = min(NEGATIVE_CANDIDATES, len(bodies))
    queries = words([p[1] for p in pairs])
    negatives: list[str | None] = []
    for (kind, anchor, positive, page), terms in zip(pairs, queries, strict=True):
        # Team answers have a source of their own: their negatives may come from any page.
        site = "" if kind == "answer" else page.split("\x1f", 1)[0]
        scores = index.get_scores(terms) if terms else np.zeros(len(bodies))
        best = sorted(np.argpartition(-scores, k - 1)[:k].tolist(), key=lambda j: -scores[j])
        found = next(
            (
                bodies[i]
                for i in best
                if scores[i] > 0 and _usable(i, page, site, positive, sections)
            ),
            None,
        )
        if found is None:  # no word in common with another page: any other page of the site
            start = hash_index(anchor, len(sections))
            for step in range(len(sections)):
                i = (start + step) % len(sections)
                if _usable(i, page, site, positive, sections):
                    found = bodies[i]
                    break
        negatives.append(found)
    return negatives


def _usable(i: int, page: str, site: str, positive: str, sections: Sequence[_Section]) -> bool:
    """Whether section ``i`` may be the negative of a pair: another page, of ``site``."""
    other = sections[i]
    return (
        other.page != page
        and other.page.startswith(site)
        and other.text.strip()[:MAX_PASSAGE_CHARS] != positive
    )


def hash_index(text: str, count: int) -> int:
    """A position in ``count`` chosen by ``text``: the same on every run."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % count
