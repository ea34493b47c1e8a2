"""Generate a larger development set for the "hard" retrieval mode from the Django docs.

Why: the official hard set (``../shared/eval/django-faq.links.jsonl``) has only 28 FAQ
questions with ``linked_pages``, so one question moves recall@10 by about 0.036. This
script builds several hundred questions of the same kind from the rest of the Django 3.2
HTML docs, to check that a retrieval change generalises beyond the FAQ.

How: every Sphinx section (``div.section``) of every content page whose heading reads
like a topical query becomes a question; its gold ``linked_pages`` are the distinct
content pages that the section's own text links to. Usage::

    python -m bench.hard_questions --out /tmp/exp/hard_dev.jsonl
    python -m bench.hard_questions --max 300 --seed 1 > sample.jsonl

Each line has the fields of ``django-faq.links.jsonl`` that apply: ``id`` (``page#anchor``),
``question``, ``page``, ``anchor``, ``linked_pages``. The question's own ``page`` stands in
for the FAQ page: in hard mode, leave it out of the candidates along with ``faq/`` and score
``linked_pages`` only: ``teambot eval FILE --level page --exclude-own-page --exclude-prefix
faq/`` does that, as bench.retrieval's "hard, generated" rows do.

Choices:
- Content pages: every ``*.html`` under the root except paths with a segment starting with
  ``_``, ``genindex*``, ``py-modindex*``, ``search.html``, ``contents.html``, ``releases/``
  and ``faq/`` (the FAQ is the official set).
- Only the body (``div#yui-main``) is read, never the sidebar, header or footer.
- A section's links are its OWN links: text directly in it, not in nested subsections
  (those are questions of their own), and not in ``toctree-wrapper`` blocks (navigation).
  Links are resolved against the page URL; fragments and queries are dropped; the page
  itself, external targets and non-content pages are dropped.
- A question is kept with 1 to 5 linked pages; more is a navigation list, not an answer.
- A heading is kept if it has at least 4 words; at least 2 prose words (outside ``<code>``,
  a letter then lowercase only, so no identifiers, camelCase or ACRONYMS), one of them a
  non-stopword of 4+ letters; and is not generic (a short list, "…, part N" titles).
  The permalink "¶" is stripped; the text is the heading's, whitespace collapsed.
- The link rule reproduces ``linked_pages`` of all 53 FAQ questions exactly when applied
  to ``faq/`` sections.
- Questions with the same text (case- and space-insensitive) are kept once, the first by id.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from lxml import html

from bench.refresh_site import DJANGO_DOCS
from knowledge.evaluation.scoring import EvalQuestion

EXCLUDED_PREFIXES = ("genindex", "py-modindex", "search.html", "contents.html", "releases/", "faq/")
HEADINGS = ("h1", "h2", "h3", "h4")
MIN_WORDS = 4
MIN_PROSE_WORDS = 2
MIN_LONG_WORD = 4
MIN_LINKS, MAX_LINKS = 1, 5
GENERIC = {
    "examples", "example", "overview", "usage", "notes", "see also", "introduction",
    "more information", "further reading", "what's next", "where to go from here",
    "getting help", "for more information", "a quick example", "a simple example",
    "what to read next", "overview and a quick example", "this is just the surface",
}  # fmt: skip
# Serial page titles ("Writing your first Django app, part 3") name a page, not a topic.
SERIAL_TITLE = re.compile(r",? part \d+$")
PERMALINK = "\u00b6"
BASE = "http://docs.invalid/"
# An ordinary word: a letter, then lowercase only (no camelCase, no ACRONYM, no digits).
PROSE_WORD = re.compile(r"[A-Za-z][a-z’'-]*")
STOPWORDS = {
    "about", "does", "from", "have", "into", "should", "that", "their", "there", "these",
    "this", "those", "what", "when", "where", "which", "will", "with", "would", "your",
}  # fmt: skip
IDENTIFIER = re.compile(r"[_.()=/<>{}\[\]]|[a-z][A-Z]")


def question_id(question: EvalQuestion) -> str:
    return f"{question.page}#{question.anchor}"


def to_json(question: EvalQuestion) -> str:
    """One line of the question file, in the fields of ``django-faq.links.jsonl``."""
    record = {
        "id": question_id(question),
        "question": question.question,
        "page": question.page,
        "anchor": question.anchor,
        "linked_pages": list(question.linked_pages),
    }
    return json.dumps(record, ensure_ascii=False)


@dataclass
class Stats:
    """Counts for the stderr summary."""

    pages: int = 0
    sections: int = 0
    bad_heading: int = 0
    no_links: int = 0
    too_many_links: int = 0
    duplicates: int = 0


def is_content_page(path: str) -> bool:
    """Whether a root-relative ``*.html`` path is a content page (see the module docstring)."""
    if not path.endswith(".html") or any(part.startswith("_") for part in path.split("/")):
        return False
    return not path.startswith(EXCLUDED_PREFIXES)


def content_pages(root: Path) -> list[str]:
    """The sorted root-relative paths of the content pages under ``root``."""
    paths = (p.relative_to(root).as_posix() for p in root.rglob("*.html"))
    return sorted(p for p in paths if is_content_page(p))


def has_class(element: html.HtmlElement, name: str) -> bool:
    return name in (element.get("class") or "").split()


def is_section(element: html.HtmlElement) -> bool:
    return element.tag == "div" and has_class(element, "section") and bool(element.get("id"))


def own_heading(section: html.HtmlElement) -> html.HtmlElement | None:
    """The section's heading: its first direct child h1–h4, if any."""
    return next((child for child in section if child.tag in HEADINGS), None)


def heading_parts(heading: html.HtmlElement) -> tuple[str, list[str]]:
    """The heading's text without the permalink, and the text of its ``<code>`` parts."""
    copy = html.fromstring(html.tostring(heading, encoding="unicode"))
    for link in copy.xpath(".//a[contains(concat(' ', @class, ' '), ' headerlink ')]"):
        link.drop_tree()
    text = " ".join(copy.text_content().split()).rstrip(PERMALINK).strip()
    code = [" ".join(c.text_content().split()) for c in copy.iter("code", "tt", "literal")]
    return text, code


def prose_words(text: str, code: list[str]) -> list[str]:
    """The heading's ordinary words: outside ``<code>``, lowercase after the first letter."""
    for fragment in code:
        text = text.replace(fragment, " ")
    words = [w.strip('.,:;!?“”"()') for w in text.split()]
    return [w for w in words if PROSE_WORD.fullmatch(w) and not IDENTIFIER.search(w)]


def usable_heading(text: str, code: list[str]) -> bool:
    """Whether a heading reads like a topical query (see the module docstring)."""
    words = [w for w in text.split() if any(ch.isalnum() for ch in w)]
    if len(words) < MIN_WORDS or normalise(text) in GENERIC or SERIAL_TITLE.search(text):
        return False
    prose = prose_words(text, code)
    long_words = [w for w in prose if len(w) >= MIN_LONG_WORD and w.casefold() not in STOPWORDS]
    return len(prose) >= MIN_PROSE_WORDS and bool(long_words)


def normalise(text: str) -> str:
    return " ".join(text.replace("’", "'").casefold().split()).rstrip(".?:")


def resolve(page: str, href: str, pages: set[str]) -> str | None:
    """The content page an ``href`` on ``page`` points to, or None (external, self, other)."""
    url = urlsplit(urljoin(BASE + page, href))
    if f"{url.scheme}://{url.netloc}/" != BASE:
        return None
    target = unquote(url.path.removeprefix("/"))
    if target == "" or target.endswith("/"):
        target += "index.html"
    return target if target in pages and target != page else None


def owning_section(link: html.HtmlElement) -> html.HtmlElement | None:
    """The innermost section holding ``link``; None if the link is in a toctree or no section."""
    for ancestor in link.iterancestors():
        if has_class(ancestor, "toctree-wrapper"):
            return None
        if is_section(ancestor):
            return ancestor
    return None


def section_links(body: html.HtmlElement, page: str, pages: set[str]) -> dict[str, list[str]]:
    """Per section id, the distinct content pages its own text links to, in document order."""
    links: dict[str, dict[str, None]] = {}
    for link in body.iter("a"):
        href = link.get("href")
        section = owning_section(link) if href else None
        target = resolve(page, href, pages) if section is not None and href else None
        if target:
            links.setdefault(section.get("id", ""), {})[target] = None
    return {key: list(targets) for key, targets in links.items()}


def page_questions(root: Path, page: str, pages: set[str], stats: Stats) -> Iterator[EvalQuestion]:
    """The questions of one content page, in document order."""
    document = html.parse(str(root / page)).getroot()
    body = next(iter(document.xpath("//div[@id='yui-main']")), document)
    links = section_links(body, page, pages)
    for section in body.iter("div"):
        if not is_section(section) or (heading := own_heading(section)) is None:
            continue
        stats.sections += 1
        text, code = heading_parts(heading)
        targets = links.get(section.get("id", ""), [])
        if not usable_heading(text, code):
            stats.bad_heading += 1
        elif len(targets) < MIN_LINKS:
            stats.no_links += 1
        elif len(targets) > MAX_LINKS:
            stats.too_many_links += 1
        else:
            anchor = section.get("id", "").removeprefix("s-")
            yield EvalQuestion(text, page, anchor, tuple(sorted(targets)))


def deduplicate(questions: Iterable[EvalQuestion], stats: Stats) -> list[EvalQuestion]:
    """Sorted by id, keeping the first question of each (normalised) text."""
    seen: set[str] = set()
    kept = []
    for question in sorted(questions, key=question_id):
        key = normalise(question.question)
        if key in seen:
            stats.duplicates += 1
            continue
        seen.add(key)
        kept.append(question)
    return kept


def build(root: Path, stats: Stats) -> list[EvalQuestion]:
    """All questions of the docs under ``root``, deduplicated, sorted by id."""
    pages = content_pages(root)
    stats.pages = len(pages)
    page_set = set(pages)
    found = (q for page in pages for q in page_questions(root, page, page_set, stats))
    return deduplicate(found, stats)


def sample(questions: list[EvalQuestion], limit: int | None, seed: int) -> list[EvalQuestion]:
    """A seeded random sample of at most ``limit`` questions, still sorted by id."""
    if limit is None or limit >= len(questions):
        return questions
    return sorted(random.Random(seed).sample(questions, limit), key=question_id)


def summary(stats: Stats, kept: list[EvalQuestion], written: list[EvalQuestion]) -> str:
    counts = Counter(len(q.linked_pages) for q in written)
    gold = {page for q in written for page in q.linked_pages}
    distribution = ", ".join(f"{n}: {counts[n]}" for n in sorted(counts))
    return (
        f"pages scanned: {stats.pages}\n"
        f"sections seen: {stats.sections} (heading rejected {stats.bad_heading}, "
        f"no links {stats.no_links}, > {MAX_LINKS} links {stats.too_many_links}, "
        f"duplicate text {stats.duplicates})\n"
        f"questions kept: {len(kept)}, written: {len(written)}\n"
        f"linked pages per question: {distribution}\n"
        f"distinct gold pages: {len(gold)}, source pages: {len({q.page for q in written})}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path(DJANGO_DOCS), help="Sphinx HTML root")
    parser.add_argument("--out", type=Path, help="JSONL file to write (default: stdout)")
    parser.add_argument("--max", type=int, help="keep a seeded random sample of N questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max sample")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        raise SystemExit(f"No such folder: {args.root} (apt-get install python-django-doc)")
    stats = Stats()
    kept = build(args.root, stats)
    written = sample(kept, args.max, args.seed)
    lines = "".join(to_json(q) + "\n" for q in written)
    if args.out:
        args.out.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    print(summary(stats, kept, written), file=sys.stderr)


if __name__ == "__main__":
    main()
