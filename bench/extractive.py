"""How much of the right answer the extractive answer quotes, before and after issue #18.

    python -m bench.extractive --db /tmp/extr/django.db --backend onnx-int8

The 53 questions of Django's FAQ (../shared/eval/django-faq.jsonl), asked of
the whole Django index (known-item mode: the FAQ pages are indexed, so the
passage that holds the answer can be found). Each question is searched as
the bot searches it (hybrid, TOP_K passages, MIN_RELEVANCE), and each variant
composes its extractive answer from the same passages. The quoted text (the
lines that start with ">", without the "…" marks) is scored against the
FAQ's `answer` text: token recall (how much of the reference is quoted) and
token F1 (recall balanced with how much of the quote is reference), on
lowercase word tokens counted with multiplicity (SQuAD-style, no stopword
removal). A question whose search returned nothing scores 0 for every variant.

Variants, fixed before the first run (no constant was tuned on these questions):
- window (baseline): the quote before issue #18, kept verbatim below: the
  sentences around the best one, grown forwards then backwards, 500
  characters per passage, no bound on the whole answer.
- sentences, 500 each: bot.extractive.quote (whole units, from the earliest
  boundary where the hit fits) with the same 500 characters per passage and
  no bound on the answer: the effect of the selection alone.
- sentences, 2,000, even: bot.extractive.compose with the answer bounded to
  ANSWER_CHARS and the room shared evenly (first_share 0).
- sentences, 2,000, best half: bot.extractive.compose (the best passage may
  take FIRST_SHARE of the room), chosen before measuring because it keeps the
  first quote longest.
Round 2, added after the first run, for a reason outside this data: the
issue's own example ("How do I connect teambot to Slack?") retrieves the last
chunk of a five-step section, so no choice inside the chunk can start at step 1.
- section, 2,000, best half (what the bot does): the same, quoting from the
  cited section: the chunk plus the section's text before it
  (Retriever.section_before, at most 3 earlier chunks), the best unit chosen
  in all of it.

Each variant's difference from the baseline is the mean per-question
difference with a paired bootstrap 95% interval (5,000 rounds, seeded).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.paired import paired
from bot import extractive
from bot.core import citation
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.types import ScoredChunk

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "django-faq.jsonl"
_TOKEN = re.compile(r"\w+")
# query, passages, headings, each passage's section text before it → the answer text
Composer = Callable[[str, list[ScoredChunk], list[str], list[str]], str]

# --- the baseline: bot/extractive.py's quote() before issue #18, verbatim ---------------------
_OLD_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}")


def window_quote(passage: str, query: str, limit: int = 500) -> str:
    """The passage cut to the run of sentences around the one most like the query."""
    if len(passage) <= limit:
        return passage.strip()
    sentences = [s.strip() for s in _OLD_SENTENCE.split(passage) if s.strip()]
    wanted = extractive.keywords(query)
    best = max(range(len(sentences)), key=lambda i: len(extractive.keywords(sentences[i]) & wanted))
    start = end = best
    length = len(sentences[best])
    while True:  # grow the window forwards first (definitions tend to follow), then backwards
        if end + 1 < len(sentences) and length + len(sentences[end + 1]) + 1 <= limit:
            end += 1
            length += len(sentences[end]) + 1
        elif start > 0 and length + len(sentences[start - 1]) + 1 <= limit:
            start -= 1
            length += len(sentences[start]) + 1
        else:
            break
    text = " ".join(sentences[start : end + 1])
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(sentences) - 1 and not text.endswith("…") else ""
    return f"{prefix}{text}{suffix}"


# ---------------------------------------------------------------------------------------------


def per_passage(quote: Callable[[str, str, int], str]) -> Composer:
    """An answer of one quote of at most 500 characters per passage, nothing bounding the whole."""

    def compose(
        query: str, passages: list[ScoredChunk], headings: list[str], before: list[str]
    ) -> str:
        blocks = [
            extractive.quoted_block(n, heading, quote(p.text, query, extractive.MAX_QUOTE_CHARS))
            for n, (p, heading) in enumerate(zip(passages, headings, strict=True), start=1)
        ]
        return "\n\n".join([extractive.LABEL, *blocks])

    return compose


VARIANTS: dict[str, Composer] = {
    "window (baseline)": per_passage(window_quote),
    "sentences, 500 each": per_passage(extractive.quote),
    "sentences, 2,000, even": lambda q, p, h, b: extractive.compose(q, p, h, first_share=0.0),
    "sentences, 2,000, best half": lambda q, p, h, b: extractive.compose(q, p, h),
    "section, 2,000, best half (round 2)": lambda q, p, h, b: extractive.compose(q, p, h, before=b),
}


def quoted_text(answer: str) -> str:
    """The quoted lines of an answer, without quote and omission marks."""
    lines = [line[1:].strip() for line in answer.splitlines() if line.startswith(">")]
    return "\n".join(lines).replace(extractive.ELLIPSIS, " ")


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.lower()))


def recall_f1(quoted: str, reference: str) -> tuple[float, float]:
    got, want = tokens(quoted), tokens(reference)
    overlap = sum((got & want).values())
    if not overlap:
        return 0.0, 0.0
    recall, precision = overlap / sum(want.values()), overlap / sum(got.values())
    return recall, 2 * precision * recall / (precision + recall)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of the Django index")
    parser.add_argument("--backend", default="onnx-int8", help="its EMBEDDING_BACKEND")
    parser.add_argument("--show", type=int, default=0, help="print the first N answers")
    args = parser.parse_args()
    settings = Settings(database_url=f"sqlite:///{args.db}", embedding_backend=args.backend)
    runtime = Runtime(settings)
    records = [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    lengths: dict[str, list[int]] = {name: [] for name in VARIANTS}
    started = time.perf_counter()
    for number, record in enumerate(records):
        query = record["question"]
        found = runtime.retriever.search(query, settings.top_k, method="hybrid")
        passages = [p for p in found if p.similarity >= settings.min_relevance]
        headings = [citation(n, p).label for n, p in enumerate(passages, start=1)]
        before = [runtime.retriever.section_before(p.chunk_id) for p in passages]
        for name, compose in VARIANTS.items():
            answer = compose(query, passages, headings, before) if passages else ""
            scores[name].append(recall_f1(quoted_text(answer), record["answer"]))
            lengths[name].append(len(answer))
            if number < args.show:
                print(f"\n## {name}: {query}\n{answer}")
    seconds = time.perf_counter() - started
    baseline = next(iter(VARIANTS))
    print(f"\n### extractive answers vs Django FAQ answers (known-item, n = {len(records)})\n")
    print("| variant | token recall | token F1 | recall − baseline [95% CI] "
          "| F1 − baseline [95% CI] | mean chars | max chars | over 2,000 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in VARIANTS:
        recall = [r for r, _ in scores[name]]
        f1 = [f for _, f in scores[name]]
        cells = [f"{sum(recall) / len(recall):.3f}", f"{sum(f1) / len(f1):.3f}"]
        for mine, base in ((recall, [r for r, _ in scores[baseline]]),
                           (f1, [f for _, f in scores[baseline]])):  # fmt: skip
            mean, low, high = paired(mine, base)
            cells.append("—" if name == baseline else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        over = sum(n > extractive.ANSWER_CHARS for n in lengths[name])
        longest = max(lengths[name])
        cells += [f"{sum(lengths[name]) / len(lengths[name]):.0f}", f"{longest}", f"{over}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"\nTOP_K {settings.top_k}, MIN_RELEVANCE {settings.min_relevance}, hybrid, "
          f"backend {args.backend}; {seconds:.1f} s; {when}")  # fmt: skip


if __name__ == "__main__":
    main()
