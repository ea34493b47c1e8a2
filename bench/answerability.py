"""Does teambot know when its docs do not answer? Confidence and abstention on the Django docs.

    python -m bench.answerability_questions --out /tmp/conf/answerability   # question files
    python -m bench.answerability --db /tmp/conf/django.db --fit --only V11 V12  # fit, dev only
    python -m bench.answerability --db /tmp/conf/django.db --fit --fit-modes both --only V11 V12 V13
    python -m bench.answerability --db /tmp/r6/django.db --fit --fit-modes both --refresh \\
        --only V13 V14 V15 V16 V17 V18                                   # round 6
    python -m bench.answerability --db /tmp/conf/django.db                  # dev tables
    python -m bench.answerability --db /tmp/conf/django.db --heldout        # + held-out, ONCE

(``--backend onnx-int8`` is the default: the index must have been built with it.)

Questions (bench/answerability_questions.py): answerable ones are the Django FAQ and
bench.hard_questions' section headings; unanswerable ones are other products' FAQ headings.
Dev = Python and Celery FAQs + 70% of Django pages; held-out = SQLAlchemy, Debian and git
FAQs + the other 30% of pages.

Modes:
- hard: faq/ is left out of every search, and each answerable question's own page too, so
  its answer must come from the pages its answer links to (gold = ``linked_pages``; FAQ
  questions without linked pages are not counted). The target mode.
- known-item: nothing left out; gold = the question's own page.

"Supported by the docs" is approximated by: answerable AND a gold page among the TOP_K (4,
the bot's default) results. Confidence is fitted to ``answerable`` and the calibration table
shows both fractions per confidence bin.

Pre-registered (written before any model was run; the feature definitions are in
knowledge/retrieval/confidence.py, ``features``):
- B  baseline, today's rule: abstain when no result's cosine reaches MIN_RELEVANCE 0.25
     (its AUROC uses the best result cosine as the score).
- V1 logistic(cosine)
- V2 logistic(cosine, cosine_gap)
- V3 logistic(cosine, coverage, unseen)
- V4 logistic(cosine, coverage_all, unseen)
- V5 logistic(cosine, cosine_gap, coverage, unseen, heading, agree)
- V6 logistic(coverage, unseen)                       (lexical evidence only)
- Round 2, added after reading round 1's dev results (V5 best, CV AUROC 0.871; the
  errors: vague or Python-about-itself questions such as "What is a class?" score high,
  heading-like generated questions such as "Enjoy the free API" score low), before any
  held-out run:
- V7 logistic(cosine, cosine_top5, coverage, unseen)
- V8 logistic(cosine, coverage_rare, unseen, specificity)
- V9 logistic(V5's six, cosine_top5, coverage_rare, bm25_share, specificity)   (the ceiling)
- Round 3, after round 2 (V9 0.872, no better than V5): the background level of the dense
  scores, to tell "close to one page" from "close to everything in this field":
- V10 logistic(cosine, cosine_background, coverage, unseen, heading, agree), where
  cosine_background = mean cosine of the pages ranked 6 to 15 by dense retrieval.
- Round 4, after tests/test_confidence.py showed V5 abstaining on "Where does Zephyr write
  its log file?" in an 8-page corpus (cosine 0.72, but "file" is unseen there and carries
  42% of the term weight): in a small corpus everyday words are unseen, so ``unseen`` punishes
  paraphrase. Names are what a corpus about another product lacks (Celery, RabbitMQ,
  Tkinter, Kafka), so:
- V11 logistic(cosine, cosine_gap, coverage, unseen_names, heading, agree)
- V12 logistic(cosine, coverage, unseen_names)
  where unseen_names = the share of term weight in unseen terms that come from name-like
  words (an inner capital, digit, "_" or "."; or a capital not at the start of a sentence).
  From round 4 on, a variant must also pass tests/test_confidence.py's small-corpus tests
  to be chosen (the selection rule above applies among those that pass).
- Round 5, after the merge into the product (bot/core.py): V11 abstains on "How do I restore
  a backup?" in tests/test_core.py's 4-page corpus (cosine 0.39, a lead of 0.37 over the next
  page, confidence 0.22). Its negative cosine_gap coefficient is an artifact of fitting on
  hard mode only, which leaves each question's own page out: it punishes exactly the
  known-item case where one page answers, which a deployed bot sees all the time. So, written
  before running: fit on the dev rows of BOTH modes (``--fit-modes both``; a question's rows
  share its fold), candidates V11, V12 and
- V13 logistic(cosine, coverage, unseen_names, heading, agree)   (V11 without the gap)
  selection as before among those that also pass tests/test_core.py and tests/test_router.py
  (the product's own small-corpus questions); threshold as before (8th percentile of the dev
  hard-mode answerable confidences). Held-out scored once afterwards.
- Round 6, written before any round-6 run, after round 5's held-out result (V13: hard AUROC
  0.888, 91% answered, 67% refused; refusals weakest for SQLAlchemy, git and Python FAQ
  questions, whose words are Django's too, and ``unseen_names`` only fires on name-like
  words, so "sourdough" or "indentation" in lower case count for nothing). New features:
  * unseen_rare: the share of term weight in terms no indexed passage holds AND whose
    question word the embedding model's own WordPiece vocabulary (the installed MiniLM's
    vocab.txt, uncased, 30,522 pieces) does not hold whole, i.e. splits into several pieces.
    The vocabulary is a corpus-independent reference for "everyday English": an unseen
    everyday word ("file" in an 8-page corpus) is a paraphrase, an unseen rare word is a
    topic the docs lack.
  * unseen_specific: the share of term weight in unseen terms that are name-like OR rare by
    that vocabulary (the union; replaces unseen_names rather than adding to it).
  * rarest_held: max IDF of the question's seen terms the top result holds / max IDF of
    the question's seen terms (1: the top passage matches the question's most specific
    indexed word; low: it matches only common words such as "database" or "query").
  * agree_top5: the share of dense retrieval's top 5 pages that are also among BM25's
    top 5 (scattered, disagreeing candidates mean nothing in particular matches).
  Variants (all V13 plus or with one change):
  - V14 logistic(V13's five, unseen_rare)
  - V15 logistic(cosine, coverage, unseen_specific, heading, agree)
  - V16 logistic(V13's five, rarest_held)
  - V17 logistic(V13's five, agree_top5)
  - V18 logistic(V13's five, unseen_rare, rarest_held, agree_top5)   (the ceiling)
  Fitted on the dev rows of both modes as in round 5; selection among V13–V18 by the rule
  below, among those that also pass the product's small-corpus tests (tests/test_confidence.py,
  tests/test_core.py, tests/test_router.py, tests/test_cli.py's answerability ones); V13 is
  kept unless the chosen variant's CV AUROC exceeds V13's by more than 0.005. Threshold as
  before. Held-out scored once, only if the model changes (V13's is already reported).
  Result (added after the run, ``--fit --fit-modes both --refresh --only V13 … V18``; 1,118
  dev rows): 5-fold CV AUROC V13 0.9222, V14 0.9245, V15 0.9246, V16 0.9226, V17 0.9242,
  V18 0.9267 (hard-mode rows alone: 0.861, 0.866, 0.867, 0.861, 0.864, 0.868). All five new
  variants pass the small-corpus tests. The rule picks V15 (V18's features minus three,
  within 0.005 of it), which beats V13 by 0.0024, not by more than 0.005: V13 is kept, its
  constants unchanged, and the held-out part was not scored again. The new features stay in
  ``features`` (measured, not in the model) so the round can be re-run.
- Between rounds 6 and 7, exploratory and NOT pre-registered (dev only, nothing adopted, the
  held-out part untouched): sentence-level dense evidence, i.e. the best cosine between the
  question and any sentence of the top 4 passages, each sentence embedded at query time.
  V13 + that feature: dev CV AUROC 0.9287 against V13's 0.9236 (V18 + it: 0.9314), for 54 ms
  p50 of extra embedding per question, which alone breaks the issue's 30 ms budget. Not a
  path to 0.95 either way.
- Round 7, written before any round-7 run: calibration, not separation. The issue asks that
  among answers with confidence ≈ c about c be supported by the docs. V13 was fitted to
  ``answerable`` with classes weighted to even odds, so its number reads on another scale:
  on the dev rows at THRESHOLD, the answers' mean confidence is 0.60 in hard mode with 52%
  supported, 0.80 in known-item mode with 75% supported, and known-item confidences of
  0.2–0.5 hold 6–12% supported questions. Variants:
  * C0: V13's probability as it is (today).
  * C1: Platt scaling of V13: confidence = σ(a·z + b), z = V13's linear score, a and b fitted
    by an UNWEIGHTED logistic regression (bench/logistic.py, ``balanced=False``) on the dev
    rows of both modes, label = ``supported`` (answerable and a gold page among the TOP_K
    results). The threshold becomes σ(a·logit(0.14) + b) rounded down to 0.01, so decisions
    (and every AUROC, answer_rate and abstain_rate) stay those of V13 up to that rounding;
    rows whose decision changes are counted and reported.
  Measured: expected calibration error (10 equal-width bins, |mean confidence − supported
  share| weighted by the bin's share of rows) and Brier score against ``supported``, per part
  and mode; C1's dev numbers by 5-fold CV over the same folds as the variants; the held-out
  part scored once. C1 is adopted if its dev CV ECE is lower than C0's in both modes.
  Result (added after the run, ``python -m bench.calibration --db /tmp/conf/django.db``):
  C1 = σ(0.8018·z − 0.4059), threshold 0.14 → 0.13 (1 dev decision changes by the
  rounding). Dev ECE hard 0.103 → 0.085 (Brier 0.197 → 0.191) but known-item 0.050 → 0.061
  (Brier 0.064 → 0.063): lower in one mode only, so C1 is not adopted, V13's constants stay,
  and the held-out part was not scored.
All fitted by bench/logistic.py (Newton, L2 1e-2, classes weighted to even odds) on the dev
part's hard-mode rows (rounds 1–4; both modes from round 5), label = answerable. Selection:
the best mean AUROC over 5 folds of the dev rows (fold = SHA-1 of the id); a variant with
fewer features within 0.005 of the best wins. Threshold: the 8th percentile of the chosen
model's dev hard-mode confidences on answerable questions, rounded down to 0.01 (aims at ≥ 90%
answered with 2 points of margin).
The held-out part is scored once, with those constants, and reported as it comes out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from bench import logistic
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.evaluation.run import page_keys
from knowledge.evaluation.scoring import ranked_keys
from knowledge.retrieval import confidence
from knowledge.retrieval.prefilter import Scope
from knowledge.storage.documents import Source

QUESTIONS = Path("/tmp/conf/answerability")
TOP_K = 4
MIN_RELEVANCE = 0.25
FOLDS = 5
SIMPLER_WITHIN = 0.005
ANSWER_PERCENTILE = 8
VARIANTS: dict[str, tuple[str, ...]] = {
    "V1": ("cosine",),
    "V2": ("cosine", "cosine_gap"),
    "V3": ("cosine", "coverage", "unseen"),
    "V4": ("cosine", "coverage_all", "unseen"),
    "V5": ("cosine", "cosine_gap", "coverage", "unseen", "heading", "agree"),
    "V6": ("coverage", "unseen"),
    "V7": ("cosine", "cosine_top5", "coverage", "unseen"),
    "V8": ("cosine", "coverage_rare", "unseen", "specificity"),
    "V10": ("cosine", "cosine_background", "coverage", "unseen", "heading", "agree"),
    "V11": ("cosine", "cosine_gap", "coverage", "unseen_names", "heading", "agree"),
    "V12": ("cosine", "coverage", "unseen_names"),
    "V13": ("cosine", "coverage", "unseen_names", "heading", "agree"),
    "V14": ("cosine", "coverage", "unseen_names", "heading", "agree", "unseen_rare"),
    "V15": ("cosine", "coverage", "unseen_specific", "heading", "agree"),
    "V16": ("cosine", "coverage", "unseen_names", "heading", "agree", "rarest_held"),
    "V17": ("cosine", "coverage", "unseen_names", "heading", "agree", "agree_top5"),
    "V18": (
        *("cosine", "coverage", "unseen_names", "heading", "agree"),
        *("unseen_rare", "rarest_held", "agree_top5"),
    ),
    "V9": (
        *("cosine", "cosine_gap", "coverage", "unseen", "heading", "agree"),
        *("cosine_top5", "coverage_rare", "bm25_share", "specificity"),
    ),
}
MODES = ("hard", "known-item")
BINS = np.linspace(0, 1, 11)


@dataclass(frozen=True)
class Row:
    """One question searched in one mode: its label, features and the baseline's score."""

    id: str
    group: str
    part: str
    mode: str
    answerable: bool
    supported: bool
    result_cosine: float
    features: dict[str, float]

    @property
    def baseline_answers(self) -> bool:
        return self.result_cosine >= MIN_RELEVANCE


def searches(record: dict[str, Any], mode: str) -> tuple[tuple[str, ...], set[str]] | None:
    """(page prefixes left out, gold pages) for a question in a mode; None if not scored."""
    page = record.get("page") or ""
    if not record["answerable"]:
        return (("faq/",) if mode == "hard" else ()), set()
    if mode == "known-item":
        return (), {page}
    gold = {p for p in record.get("linked_pages") or [] if not p.startswith("faq/")}
    return (("faq/", page), gold) if gold else None


def collect(runtime: Runtime, records: list[dict[str, Any]], part: str) -> list[Row]:
    """Search every question in both modes, with evidence."""
    with runtime.sessions() as session:
        roots = dict(session.execute(select(Source.name, Source.location)).all())
    keys = page_keys(runtime.sessions, roots)
    rows = []
    for mode in MODES:
        for record in records:
            plan = searches(record, mode)
            if plan is None:
                continue
            excluded, gold = plan
            results, evidence = runtime.retriever.search_with_evidence(
                record["question"], TOP_K, scope=Scope.of(pages_once=keys.under(excluded))
            )
            pages = ranked_keys(results, "page", roots)
            rows.append(
                Row(
                    id=record["id"],
                    group=record["group"],
                    part=part,
                    mode=mode,
                    answerable=record["answerable"],
                    supported=bool(gold & set(pages)),
                    result_cosine=max((r.similarity for r in results), default=0.0),
                    features=confidence.features(results, evidence, record["question"]),
                )
            )
    return rows


def load_rows(runtime: Runtime, part: str, cache: Path, refresh: bool) -> list[Row]:
    if cache.exists() and not refresh:
        return [Row(**json.loads(line)) for line in cache.read_text().splitlines()]
    records = [json.loads(line) for line in (QUESTIONS / f"{part}.jsonl").read_text().splitlines()]
    print(f"searching {len(records)} {part} questions in {len(MODES)} modes…", file=sys.stderr)
    rows = collect(runtime, records, part)
    cache.write_text("".join(json.dumps(row.__dict__) + "\n" for row in rows))
    return rows


def matrix(rows: list[Row], names: Iterable[str]) -> np.ndarray:
    names = list(names)
    return np.array([[row.features[n] for n in names] for row in rows], dtype=float)


def fold_of(row: Row) -> int:
    return hashlib.sha1(row.id.encode()).digest()[0] % FOLDS


def cross_validated_auroc(rows: list[Row], names: tuple[str, ...]) -> float:
    scores = np.zeros(len(rows))
    labels = np.array([row.answerable for row in rows], dtype=float)
    folds = np.array([fold_of(row) for row in rows])
    x = matrix(rows, names)
    for fold in range(FOLDS):
        test = folds == fold
        intercept, coefficients = logistic.fit(x[~test], labels[~test])
        scores[test] = logistic.predict(intercept, coefficients, x[test])
    return logistic.auroc(scores, labels.astype(bool))


def fit(rows: list[Row], only: list[str] | None, modes: tuple[str, ...]) -> None:
    """Compare the pre-registered variants on dev rows of ``modes``; print the chosen constants.

    ``only`` restricts the choice to those variants (the ones that passed the small-corpus
    tests, from round 4 on); the table still shows all."""
    hard = [row for row in rows if row.mode in modes]
    labels = np.array([row.answerable for row in hard], dtype=float)
    print(f"dev rows of {', '.join(modes)}: {len(hard)} ({int(labels.sum())} answerable)\n")
    print("| variant | features | 5-fold CV AUROC | in-sample AUROC |")
    print("|---|---|---|---|")
    baseline = logistic.auroc([row.result_cosine for row in hard], labels.astype(bool))
    print(f"| B | result cosine ≥ {MIN_RELEVANCE} | – | {baseline:.3f} |")
    results = {}
    for name, features in VARIANTS.items():
        cv = cross_validated_auroc(hard, features)
        intercept, coefficients = logistic.fit(matrix(hard, features), labels)
        full = logistic.auroc(
            logistic.predict(intercept, coefficients, matrix(hard, features)), labels.astype(bool)
        )
        results[name] = cv
        print(f"| {name} | {', '.join(features)} | {cv:.3f} | {full:.3f} |")
    allowed = set(only or VARIANTS)
    best = max(cv for name, cv in results.items() if name in allowed)
    chosen = min(
        (name for name, cv in results.items() if cv >= best - SIMPLER_WITHIN and name in allowed),
        key=lambda name: (len(VARIANTS[name]), -results[name]),
    )
    model = fitted(chosen, hard, modes)
    print(f"\nchosen: {chosen}. Paste into knowledge/retrieval/confidence.py:\n")
    print(f"MODEL_FEATURES: tuple[str, ...] = {model.features!r}")
    print(f"INTERCEPT = {model.intercept:.4f}")
    print(
        f"COEFFICIENTS: tuple[float, ...] = ({', '.join(f'{c:.4f}' for c in model.coefficients)},)"
    )
    print(f"THRESHOLD = {model.threshold:.2f}")


def scores_of(rows: list[Row]) -> np.ndarray:
    return np.array([confidence.probability(row.features) for row in rows])


@dataclass(frozen=True)
class Fitted:
    """A variant fitted on the dev hard rows by the same rules, shown beside the chosen one."""

    name: str
    features: tuple[str, ...]
    intercept: float
    coefficients: np.ndarray
    threshold: float

    def scores(self, rows: list[Row]) -> np.ndarray:
        return logistic.predict(self.intercept, self.coefficients, matrix(rows, self.features))


def fitted(name: str, rows: list[Row], modes: tuple[str, ...] = ("hard",)) -> Fitted:
    """``name`` fitted on the dev rows of ``modes``; its threshold from the dev hard-mode
    answerable questions, whatever it was fitted on."""
    train = [r for r in rows if r.mode in modes and r.part == "dev"]
    features = VARIANTS[name]
    labels = np.array([r.answerable for r in train], dtype=float)
    intercept, coefficients = logistic.fit(matrix(train, features), labels)
    hard_answerable = [r for r in rows if r.mode == "hard" and r.part == "dev" and r.answerable]
    answerable = logistic.predict(intercept, coefficients, matrix(hard_answerable, features))
    threshold = float(np.floor(np.percentile(answerable, ANSWER_PERCENTILE) * 100) / 100)
    return Fitted(name, features, intercept, coefficients, threshold)


def report(rows: list[Row], part: str, mode: str, also: list[Fitted]) -> None:
    rows = [r for r in rows if r.part == part and r.mode == mode]
    if not rows:
        return
    scores = scores_of(rows)
    labels = np.array([r.answerable for r in rows])
    supported = np.array([r.supported for r in rows])
    answers = scores >= confidence.THRESHOLD
    base_answers = np.array([r.baseline_answers for r in rows])
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())

    def rates(answered: np.ndarray) -> str:
        answer_rate = answered[labels].mean() if n_pos else float("nan")
        abstain_rate = (~answered[~labels]).mean() if n_neg else float("nan")
        return f"{answer_rate:.3f} | {abstain_rate:.3f}"

    print(f"\n### {part}, {mode} ({n_pos} answerable, {n_neg} unanswerable)\n")
    print(
        "| rule | AUROC | answer_rate (answerable answered) | abstain_rate (unanswerable refused) |"
    )
    print("|---|---|---|---|")
    base_auroc = logistic.auroc([r.result_cosine for r in rows], labels)
    print(f"| today: best result cosine < {MIN_RELEVANCE} ⇒ abstain | {base_auroc:.3f} | "
          f"{rates(base_answers)} |")  # fmt: skip
    print(f"| confidence < {confidence.THRESHOLD:.2f} ⇒ abstain | "
          f"{logistic.auroc(scores, labels):.3f} | {rates(answers)} |")  # fmt: skip
    for other in also:
        other_scores = other.scores(rows)
        print(f"| not chosen: {other.name} ({', '.join(other.features)}) < "
              f"{other.threshold:.2f} | {logistic.auroc(other_scores, labels):.3f} | "
              f"{rates(other_scores >= other.threshold)} |")  # fmt: skip
    if n_pos and n_neg:  # what these features could do with a threshold set on these rows
        at_90 = np.percentile(scores[labels], 10)
        print(f"| (optimistic: threshold {at_90:.2f} set on these rows for 90% answered) | – | "
              f"{rates(scores >= at_90)} |")  # fmt: skip
    groups = sorted({r.group for r in rows})
    per_group = []
    for group in groups:
        mask = np.array([r.group == group for r in rows])
        per_group.append(f"{group} {answers[mask].mean():.2f} (n={int(mask.sum())})")
    print("\nshare answered per group: " + "; ".join(per_group))
    print("\n| confidence | n | mean confidence | answerable | supported (gold in top 4) |")
    print("|---|---|---|---|---|")
    which = np.clip(np.digitize(scores, BINS) - 1, 0, len(BINS) - 2)
    for b in range(len(BINS) - 1):
        mask = which == b
        if mask.any():
            print(f"| {BINS[b]:.1f}–{BINS[b + 1]:.1f} | {int(mask.sum())} | "
                  f"{scores[mask].mean():.2f} | {labels[mask].mean():.2f} | "
                  f"{supported[mask].mean():.2f} |")  # fmt: skip


def latency(runtime: Runtime, questions: list[str]) -> None:
    """search() alone against search_with_evidence() + assess(), alternating, unfiltered
    (the bot's own path), after a warm-up."""
    retriever = runtime.retriever
    for question in questions[:5]:
        retriever.search_with_evidence(question, TOP_K)
    plain, assessed = [], []
    for question in questions:
        started = time.perf_counter()
        retriever.search(question, TOP_K)
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        results, evidence = retriever.search_with_evidence(question, TOP_K)
        confidence.assess(question, results, evidence)
        assessed.append((time.perf_counter() - started) * 1000)
    print(f"\n### latency ({len(questions)} dev questions, single queries, ms)\n")
    print("| path | p50 | p99 |\n|---|---|---|")
    for name, values in (("search()", plain), ("search_with_evidence() + assess()", assessed)):
        p50, p99 = np.percentile(values, [50, 99])
        print(f"| {name} | {p50:.1f} | {p99:.1f} |")


def index_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every answerability bench takes: the index, its backend, the parts."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of the Django index")
    parser.add_argument("--backend", default="onnx-int8", help="EMBEDDING_BACKEND of the index")
    parser.add_argument("--heldout", action="store_true", help="also score the held-out part")
    parser.add_argument("--refresh", action="store_true", help="search again, ignore caches")
    return parser


def part_rows(runtime: Runtime, db: Path, part: str, refresh: bool) -> list[Row]:
    """One part's rows, searched once and cached beside the database."""
    return load_rows(runtime, part, db.with_name(f"{db.name}.answerability-{part}.jsonl"), refresh)


def main() -> None:
    parser = index_parser(__doc__)
    parser.add_argument("--fit", action="store_true", help="fit the variants on dev; print")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(VARIANTS), help="with --fit: choose among these"
    )
    parser.add_argument(
        "--also", nargs="*", default=["V12"], choices=sorted(VARIANTS),
        help="variants to show beside the chosen model (fitted on dev here)",
    )  # fmt: skip
    parser.add_argument(
        "--fit-modes", choices=["hard", "both"], default="hard",
        help="with --fit: the modes whose dev rows the model is fitted on (round 5: both)",
    )  # fmt: skip
    args = parser.parse_args()
    runtime = Runtime(Settings(database_url=f"sqlite:///{args.db}", embedding_backend=args.backend))
    parts = ["dev", "heldout"] if args.heldout and not args.fit else ["dev"]
    rows = []
    for part in parts:
        rows += part_rows(runtime, args.db, part, args.refresh)
    if args.fit:
        fit(rows, args.only, MODES if args.fit_modes == "both" else ("hard",))
        return
    print(f"model: {confidence.MODEL_FEATURES}, threshold {confidence.THRESHOLD:.2f}")
    also = [fitted(name, rows, MODES) for name in args.also]
    for part in parts:
        for mode in MODES:
            report(rows, part, mode, also)
    dev = [json.loads(line)["question"] for line in (QUESTIONS / "dev.jsonl").open()]
    latency(runtime, dev[::3])


if __name__ == "__main__":
    main()
