"""Build the answerability question files: questions the Django docs answer, and real questions
they do not, split into a development part and a held-out part.

Why: a confidence score is only worth what it is measured on. Questions the docs answer are
easy to find (the Django FAQ, bench/hard_questions.py's section headings); questions they
do NOT answer must be real questions of the same shape, or the abstention rule learns to
spot artificial text. Other products' FAQs, installed offline from Debian packages, are
exactly that: headings people phrased as questions, about things the Django docs do not
cover.

    apt-get install python3-doc python-celery-doc python-sqlalchemy-doc debian-faq git-doc
    python -m bench.answerability_questions --out /tmp/conf/answerability

writes ``dev.jsonl`` and ``heldout.jsonl`` there: one JSON object a line with ``id``
(``group:page#anchor`` or ``group:page:n``), ``group`` (where it came from), ``part``
(``dev`` / ``heldout``), ``question``, ``answerable`` and, for answerable ones, ``page``,
``anchor``, ``linked_pages`` as in ``django-faq.links.jsonl``.

Answerable (Django 3.2 docs):
- ``django-faq``: the 53 FAQ questions (``../shared/eval/django-faq.links.jsonl``).
- ``django-generated``: bench.hard_questions' 448 section headings.
Both are split by page: SHA-1 of ``page``, first byte < HELDOUT_SHARE * 256 → held-out.

Unanswerable (other products, split by product so the held-out products are never seen):
- dev: ``python-faq`` (python3-doc, /usr/share/doc/python3/html/faq/) and ``celery-faq``
  (python-celery-doc, faq.html).
- held-out: ``sqlalchemy-faq`` (python-sqlalchemy-doc, faq/*.html), ``debian-faq``
  (debian-faq, FAQ/*.en.html) and ``git-faq`` (git-doc, gitfaq.html).

A heading (Sphinx/DocBook h1–h4 of the page body; gitfaq's ``<dt>`` terms) is kept when,
after stripping the permalink sign and "1.2." numbering, it has at least MIN_WORDS words and
reads as a question: it ends with "?" or starts with a question word (QUESTION_STARTS).
Duplicates (case- and space-insensitive) are kept once.

Dropped because the Django docs DO answer them (or answer them for a Django user well enough
that refusing would be wrong): every question in DJANGO_ANSWERS, a manual list made by reading
all kept dev and held-out headings once, BEFORE any confidence model was run on them. The rule
used: drop a question when a Django 3.2 doc page directly answers it as asked, without the
other product's name (sending e-mail, testing, translating messages, time zones and the like).
Questions that merely share words with Django topics (a SQLAlchemy session, a Celery task
queue) stay: the Django docs do not answer them, which is what makes them hard negatives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lxml import html

from bench.hard_questions import Stats
from bench.hard_questions import build as build_generated
from bench.refresh_site import DJANGO_DOCS
from knowledge.evaluation.scoring import EvalQuestion, load_questions

FAQ = Path(__file__).resolve().parents[2] / "shared" / "eval" / "django-faq.links.jsonl"
HELDOUT_SHARE = 0.3
MIN_WORDS = 4
PERMALINK = "\u00b6"
NUMBERING = re.compile(r"^\d+(\.\d+)*\.?\s+")
QUESTION_STARTS = (
    "how ", "what ", "why ", "is ", "are ", "can ", "does ", "do ", "should ", "where ",
    "which ", "when ", "who ", "will ", "i ", "i'm ", "i’m ", "i’ve ", "i've ", "my ",
)  # fmt: skip


@dataclass(frozen=True)
class Product:
    """Another product's FAQ: which files, which elements hold its questions, which part."""

    group: str
    root: str
    pattern: str
    part: str
    elements: tuple[str, ...] = ("h1", "h2", "h3", "h4")
    skip: tuple[str, ...] = ("index.html", "index.en.html")


PRODUCTS = (
    Product("python-faq", "/usr/share/doc/python3/html/faq", "*.html", "dev"),
    Product("celery-faq", "/usr/share/doc/python-celery-doc/html", "faq.html", "dev"),
    Product("sqlalchemy-faq", "/usr/share/doc/python-sqlalchemy-doc/html/faq", "*.html", "heldout"),
    Product("debian-faq", "/usr/share/doc/debian/FAQ", "*.en.html", "heldout"),
    Product("git-faq", "/usr/share/doc/git-doc", "gitfaq.html", "heldout", elements=("dt",)),
)

# Other products' questions that the Django docs answer (see the module docstring's rule).
DJANGO_ANSWERS = {
    # python-faq
    "how do i send mail from a python script?",  # topics/email
    "how do i test a python program or component?",  # topics/testing
    "how do i create documentation from doc strings?",  # ref/contrib/admin/admindocs
    "are there coding standards or a style guide for python programs?",  # coding-style
    "what module should i use to help with generating html?",  # the template language
    "are there any interfaces to database packages in python?",  # the ORM, ref/databases
    "how do you implement persistent objects in python?",  # models
    "how do i cache method calls?",  # cached_property, the cache framework
    "what does 'unicodedecodeerror' or 'unicodeencodeerror' error mean?",  # ref/unicode
    # celery-faq
    "can i use celery with django?",  # (not in this version of the FAQ; kept for the rule)
    # sqlalchemy-faq
    "how do i configure logging?",  # topics/logging
    "how do i pool database connections? are my connections pooled?",  # CONN_MAX_AGE
    "how do i pass custom connect arguments to my database api?",  # DATABASES OPTIONS
    "how do i use textual sql with orm queries?",  # topics/db/sql
    "i'm inserting 400,000 rows with the orm and it's really slow!",  # bulk_create
    "how do i make a query that always adds a certain filter to every query?",  # managers
    "how can i get the create table/ drop table output as a string?",  # sqlmigrate
    # debian-faq, git-faq: none found that the Django docs answer as asked.
}


def normalise(text: str) -> str:
    return " ".join(text.replace("’", "'").casefold().split())


def clean(text: str) -> str:
    text = " ".join(text.split()).rstrip(PERMALINK).strip()
    return NUMBERING.sub("", text)


def is_question(text: str) -> bool:
    words = text.split()
    lowered = text.casefold()
    return len(words) >= MIN_WORDS and (text.endswith("?") or lowered.startswith(QUESTION_STARTS))


def body_of(document: html.HtmlElement) -> html.HtmlElement:
    """The page's main text: Sphinx's div.body / role=main, else the whole page."""
    found = document.xpath(
        "//div[@role='main'] | //div[contains(concat(' ', @class, ' '), ' body ')]"
    )
    return found[0] if found else document


def product_questions(product: Product) -> Iterator[dict[str, object]]:
    root = Path(product.root)
    if not root.is_dir():
        raise SystemExit(f"No such folder: {root} (install its Debian package, see --help)")
    for path in sorted(root.glob(product.pattern)):
        if path.name in product.skip:
            continue
        body = body_of(html.parse(str(path)).getroot())
        for n, element in enumerate(body.iter(*product.elements)):
            text = clean(element.text_content())
            if is_question(text):
                yield {
                    "id": f"{product.group}:{path.name}:{n}",
                    "group": product.group,
                    "part": product.part,
                    "question": text,
                    "answerable": False,
                }


def page_part(page: str) -> str:
    """``heldout`` for about HELDOUT_SHARE of pages, by a hash that does not change."""
    first_byte = hashlib.sha1(page.encode("utf-8")).digest()[0]
    return "heldout" if first_byte < HELDOUT_SHARE * 256 else "dev"


def answerable(group: str, questions: list[EvalQuestion]) -> Iterator[dict[str, object]]:
    for question in questions:
        page = question.page or ""
        yield {
            "id": f"{group}:{page}#{question.anchor}",
            "group": group,
            "part": page_part(page),
            "question": question.question,
            "answerable": True,
            "page": page,
            "anchor": question.anchor,
            "linked_pages": list(question.linked_pages),
        }


def build() -> tuple[list[dict[str, object]], Counter[str]]:
    """Every question, deduplicated by text, and how many each rule dropped."""
    dropped: Counter[str] = Counter()
    records = [
        *answerable("django-faq", load_questions(FAQ)),
        *answerable("django-generated", build_generated(Path(DJANGO_DOCS), Stats())),
    ]
    seen = {normalise(str(r["question"])) for r in records}
    for product in PRODUCTS:
        for record in product_questions(product):
            key = normalise(str(record["question"]))
            if key in seen:
                dropped["duplicate"] += 1
            elif key in DJANGO_ANSWERS:
                dropped["django answers it"] += 1
            else:
                seen.add(key)
                records.append(record)
    return records, dropped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for dev/heldout.jsonl")
    args = parser.parse_args(argv)
    records, dropped = build()
    args.out.mkdir(parents=True, exist_ok=True)
    for part in ("dev", "heldout"):
        lines = [json.dumps(r, ensure_ascii=False) for r in records if r["part"] == part]
        (args.out / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = Counter((r["part"], r["group"]) for r in records)
    for (part, group), n in sorted(counts.items()):
        print(f"{part:8} {group:18} {n}", file=sys.stderr)
    print(f"dropped: {dict(dropped)}", file=sys.stderr)


if __name__ == "__main__":
    main()
