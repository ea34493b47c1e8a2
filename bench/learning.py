"""The learning loop (issue #19): does teaching teambot a teammate's answer make it answer the
same question, asked again in other words, by citing that answer? And how long from "Teach
teambot" until another replica's search finds it?

    python -m bench.learning --django-db /tmp/learn/django.db --backend onnx-int8

Design, written before the first run.

Doc sets: the bundled user guide (docs/, ingested as folder source ``docs`` into a fresh
SQLite file) and the Django 3.2 docs (the index bench/retrieval.py describes; the file given
with ``--django-db`` is COPIED to a temporary folder and only the copy is written, so each run
starts with no team answers). Both are searched with the bot's settings (hybrid, TOP_K 4,
MIN_RELEVANCE, MIN_CONFIDENCE), through the real ``Assistant`` with no language model
(extractive answers; the run stops if a model is configured).

Question stream per doc set (bench/data/learning.jsonl, and the Django FAQ):
- answerable: questions the docs answer. docs/: 10 written from its section headings;
  Django: every 5th question of ``../shared/eval/django-faq.jsonl`` (11).
- team: 12 realistic team questions the docs cannot cover (internal hosts, on-call, the
  company's deploy process, owners, secrets...), each with a teammate's answer and 2
  paraphrases, written for this bench before any run.

Steps, per doc set, all in the Slack channel ``C0LEARN`` (public), each question in its own
thread, asked by ``U0ASKER``:
1. Before: ask every answerable question, every team question and every paraphrase. A
   question counts as *answered* when the answer did not abstain; it *cites its team
   answer* when a citation is the team answer taught for that question (its permalink).
2. Teach: for each team question teambot abstained on, the teammate ``U0MATE`` replies in
   the thread and the reply is taught exactly as the Slack "Teach teambot" shortcut does it:
   the question is ``bot.teaching.recorded_question`` for the thread, the ``AnswerSpec``
   carries a permalink, message ref and thread, and ``bot.admin.answers.teach`` saves it
   (``platform_admin=True``: the teammate may teach here). ``bot.teaching.should_offer`` is
   recorded too (would teambot have offered the teammate to teach?). Team questions teambot
   did NOT abstain on are not taught (it answered them from the docs, wrongly): their
   paraphrases stay in the stream and count against the after rates.
3. Teach → searchable: from just before ``teach`` is called until a second ``Runtime`` on the
   same database (a second replica: its own engine, vector index and BM25 index; it shares
   the first one's embedding model object, to spare the shared cores a second load) finds
   the new answer among the TOP_K results of ``Retriever.search`` for the taught question,
   polled every 50 ms for at most 60 s. Its search syncs the index with the database on every
   call, so the time includes the replica rebuilding its indexes. Reported: p50 and max over
   the answers taught, and how long ``teach`` itself took (embedding and storing).
   Two arms, each on its own fresh copy of the database: "abstained" teaches only the team
   questions teambot abstained on (the brief's rule); "abstained or 👎" also teaches those
   it answered, after the asker voted 👎 on the answer (``bot.feedback.record_feedback``),
   as teambot's own offer does (bot/teaching.py: "abstained or got 👎"). The second arm was
   added after the first docs/-only run, which showed teambot answering 10 of the 12 docs/
   team questions (so the first arm taught 2); the Django set had not been run yet.
4. After: ask every paraphrase, every team question and every answerable question again in
   new threads (the first replica's assistant, which rebuilds its index on the first one).

Reported per doc set and group (answerable, team questions, paraphrases = the re-asked
questions): answered before and after, cites-its-team-answer before and after, and for the
paraphrases the paired difference after − before with a paired bootstrap 95% interval
(bench/paired.py; per paraphrase). "cites another" counts answers after that cite a team
answer taught for a different question (a wrong team answer, or one hijacking a question the
docs answer). Extractive answers cite every passage they quote (up to TOP_K), so a related
team answer quoted third counts there too.

Two diagnostic columns were added after the first full run (they change no other number):
"quotes it first" (its team answer is citation [1], the longest quote) and "in the top 4"
(``Assistant.explain`` of the same question finds its team answer among the TOP_K passages,
whether or not teambot then abstains): cited < retrieved means the abstention judged the
evidence too weak although the team answer was found.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.paired import paired
from bot.admin.access import Actor
from bot.admin.answers import teach
from bot.feedback import record_feedback
from bot.runtime import Runtime
from bot.settings import Settings
from bot.teaching import recorded_question, should_offer
from bot.types import Answer, Question
from knowledge.ingest.answers import AnswerSpec
from knowledge.ingest.local import ingest_folder
from knowledge.storage.answers import TEAM_ANSWERS

ROOT = Path(__file__).resolve().parents[1]
STREAM = Path(__file__).with_name("data") / "learning.jsonl"
DOCS = ROOT / "docs"
DJANGO_FAQ = Path("/work/shared/eval/django-faq.jsonl")
FAQ_EVERY = 5
PLATFORM, CHANNEL, ASKER, TEAMMATE = "slack", "C0LEARN", "U0ASKER", "U0MATE"
POLL_SECONDS, POLL_LIMIT = 0.05, 60.0
ABSTAINED, DOWNVOTED = "abstained", "abstained or 👎"


@dataclass
class Asked:
    """One question as asked: its group, the team answer it should cite, what came back."""

    group: str  # "answerable", "team" or "paraphrase"
    text: str
    team: int | None  # index of its team question (the question itself or a paraphrase)
    answered: bool = False
    cites: set[str] = field(default_factory=set)  # team answers cited (their urls)
    thread: str = ""
    turn_id: int | None = None
    first: str = ""  # the first citation's url: the passage quoted first and at most length
    retrieved: set[str] = field(default_factory=set)  # team answers among the TOP_K passages


@dataclass
class Taught:
    team: int
    url: str
    offered: bool
    teach_s: float
    searchable_s: float | None  # None: the replica never found it within POLL_LIMIT


class Stream:
    """Asks questions in fresh threads of one channel, numbering the threads."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.threads = 0

    def ask(self, item: Asked) -> Asked:
        self.threads += 1
        thread = f"{1_700_000_000 + self.threads}.000100"
        question = Question(PLATFORM, CHANNEL, thread, ASKER, item.text)
        answer: Answer = self.runtime.assistant.ask(question)
        cites = {c.url for c in answer.citations if c.source == TEAM_ANSWERS}
        first = answer.citations[0].url if answer.citations else ""
        results = self.runtime.assistant.explain(question).results  # stores nothing
        retrieved = {p.document_url for p in results if p.source_kind == TEAM_ANSWERS}
        return Asked(item.group, item.text, item.team, not answer.abstained, cites, thread,
                     answer.turn_id, first, retrieved)  # fmt: skip


def load_stream(corpus: str) -> tuple[list[Asked], list[dict]]:
    """The answerable questions and the team questions (with answers and paraphrases)."""
    rows = [json.loads(line) for line in STREAM.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["corpus"] == corpus]
    answerable = [Asked("answerable", r["question"], None) for r in rows
                  if r["kind"] == "answerable"]  # fmt: skip
    if corpus == "django":
        faq = [json.loads(line) for line in DJANGO_FAQ.read_text().splitlines() if line.strip()]
        answerable = [Asked("answerable", q["question"], None) for q in faq[::FAQ_EVERY]]
    return answerable, [r for r in rows if r["kind"] == "team"]


def runtime_on(path: Path, backend: str) -> Runtime:
    runtime = Runtime(Settings(database_url=f"sqlite:///{path}", embedding_backend=backend))
    if runtime.router.providers:
        raise SystemExit("a language model is configured: this bench measures extractive answers")
    return runtime


def permalink(ts: str) -> str:
    return f"https://acme.slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}"


def teach_one(first: Runtime, replica: Runtime, team: dict, index: int, asked: Asked,
              k: int) -> Taught:  # fmt: skip
    """The teammate's reply in ``asked``'s thread, taught as the Slack shortcut does."""
    ts = f"{asked.thread.split('.')[0]}.000200"  # the teammate's reply, after the question
    offered = should_offer(first.sessions, PLATFORM, CHANNEL, asked.thread, TEAMMATE)
    question = recorded_question(first.sessions, PLATFORM, CHANNEL, asked.thread) or asked.text
    url = permalink(ts)
    spec = AnswerSpec(question=question, answer=team["answer"], author=TEAMMATE,
                      platform=PLATFORM, channel=CHANNEL, saved_by=f"{PLATFORM}:{TEAMMATE}",
                      author_name="mate", channel_name="#learn", is_private=False,
                      permalink=url, message_ref=ts, thread=asked.thread)  # fmt: skip
    started = time.perf_counter()
    result = teach(first, Actor(PLATFORM, TEAMMATE), spec, platform_admin=True)
    saved = time.perf_counter()
    if not result.ok:
        raise SystemExit(f"teaching failed: {result.text}")
    found = None
    while time.perf_counter() - started < POLL_LIMIT:
        if any(p.document_url == url for p in replica.retriever.search(question, k)):
            found = time.perf_counter() - started
            break
        time.sleep(POLL_SECONDS)
    return Taught(index, url, offered, saved - started, found)


def run(corpus: str, db: Path, backend: str, arm: str) -> tuple[dict, list[Taught], int]:
    first = runtime_on(db, backend)
    replica = runtime_on(db, backend)
    replica.__dict__["embedder"] = first.embedder  # one model in memory; indexes separate
    chunks = first.retriever.indexed_chunks()
    replica.retriever.indexed_chunks()
    answerable, teams = load_stream(corpus)
    originals = [Asked("team", t["question"], i) for i, t in enumerate(teams)]
    paraphrases = [Asked("paraphrase", p, i) for i, t in enumerate(teams)
                   for p in t["paraphrases"]]  # fmt: skip
    stream = Stream(first)
    before = [stream.ask(q) for q in [*answerable, *originals, *paraphrases]]
    taught: list[Taught] = []
    for asked in before:
        if asked.group != "team" or asked.team is None:
            continue
        if asked.answered and arm == ABSTAINED:
            continue
        if asked.answered:  # the asker votes 👎 on an answer the docs cannot have given
            assert asked.turn_id is not None
            record_feedback(first.sessions, asked.turn_id, ASKER, -1)
        top_k = first.settings.top_k
        taught.append(teach_one(first, replica, teams[asked.team], asked.team, asked, top_k))
    after = [stream.ask(q) for q in [*answerable, *originals, *paraphrases]]
    urls = {t.team: t.url for t in taught}
    first.close()
    replica.close()
    return {"before": before, "after": after, "urls": urls}, taught, chunks


def rates(items: list[Asked], urls: dict[int, str]) -> dict[str, list[float]]:
    """Per question: answered; cites its own team answer; quotes it first; its team answer
    among the TOP_K passages searched; cites another team answer."""
    own = [urls.get(a.team, "") if a.team is not None else "" for a in items]
    return {
        "answered": [float(a.answered) for a in items],
        "own": [float(bool(u) and u in a.cites) for a, u in zip(items, own, strict=True)],
        "first": [float(bool(u) and a.first == u) for a, u in zip(items, own, strict=True)],
        "retrieved": [float(bool(u) and u in a.retrieved) for a, u in zip(items, own, strict=True)],
        "other": [float(bool(a.cites - {u})) for a, u in zip(items, own, strict=True)],
    }


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def interval(after: list[float], before: list[float]) -> str:
    diff, low, high = paired(after, before)
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]"


def report(corpus: str, result: dict) -> list[str]:
    urls = result["urls"]
    lines = []
    for group in ("answerable", "team", "paraphrase"):
        before = [a for a in result["before"] if a.group == group]
        after = [a for a in result["after"] if a.group == group]
        b, a = rates(before, urls), rates(after, urls)
        ci_ans = interval(a["answered"], b["answered"]) if group == "paraphrase" else "—"
        ci_own = interval(a["own"], b["own"]) if group == "paraphrase" else "—"
        name = {"answerable": "answerable", "team": "team questions (not in the docs)",
                "paraphrase": "paraphrases of team questions (re-asked)"}[group]  # fmt: skip
        lines.append(
            f"| {corpus} | {name} | {len(after)} | {mean(b['answered']):.2f} | "
            f"{mean(a['answered']):.2f} | {ci_ans} | {mean(b['own']):.2f} | {mean(a['own']):.2f} | "
            f"{ci_own} | {mean(a['first']):.2f} | {mean(a['retrieved']):.2f} | "
            f"{mean(a['other']):.2f} |"
        )
    return lines


def timing(corpus: str, teams: int, taught: list[Taught], chunks: int) -> str:
    found = [t.searchable_s for t in taught if t.searchable_s is not None]
    calls = [t.teach_s for t in taught]

    def p50_max(values: list[float]) -> str:
        if not values:
            return "— / —"
        return f"{statistics.median(values):.2f} / {max(values):.2f}"

    return (
        f"| {corpus} | {chunks} | {teams} | {len(taught)} | {sum(t.offered for t in taught)} | "
        f"{len(found)} | {p50_max(calls)} | {p50_max(found)} |"
    )


def mark(asked: Asked, own: str) -> str:
    """A: answered (else .); T: cites its team answer, t: another one (else -); after the
    arrow, R: its team answer is among the passages searched (else -)."""
    cited = "T" if own and own in asked.cites else "t" if asked.cites else "-"
    return ("A" if asked.answered else ".") + cited


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=False)  # fmt: skip
    return out.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--django-db", type=Path, help="the Django index (SQLite; copied, "
                        "never written)")  # fmt: skip
    parser.add_argument("--backend", default="onnx-int8", help="EMBEDDING_BACKEND of both")
    parser.add_argument("--only", choices=("docs", "django"), help="one doc set")
    parser.add_argument("--verbose", action="store_true", help="print each question's outcome")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="learning-"))
    started = time.perf_counter()
    corpora = [args.only] if args.only else ["docs", "django"]
    rows, timings = [], []
    for corpus in corpora:
        clean = work / f"{corpus}-clean.db"
        if corpus == "django":
            if args.django_db is None:
                raise SystemExit("--django-db is needed for the Django doc set")
            shutil.copyfile(args.django_db, clean)
        else:
            setup = runtime_on(clean, args.backend)
            ingest_folder(setup.sessions, setup.embedder, DOCS, name="docs")
            setup.close()
        for n, arm in enumerate((ABSTAINED, DOWNVOTED)):
            db = work / f"{corpus}-{n}.db"
            shutil.copyfile(clean, db)
            result, taught, chunks = run(corpus, db, args.backend, arm)
            rows += report(f"{corpus} | {arm}", result)
            teams = sum(1 for a in result["before"] if a.group == "team")
            timings.append(timing(f"{corpus} | {arm}", teams, taught, chunks))
            if args.verbose:
                for b, a in zip(result["before"], result["after"], strict=True):
                    own = result["urls"].get(a.team, "")
                    found = "R" if own and own in a.retrieved else "-"
                    print(f"{corpus:6} {arm:15} {a.group:10} {mark(b, own)} → {mark(a, own)}"
                          f"{found}  {a.text}")  # fmt: skip
    print("\n| doc set | taught when | questions | n | answered before | after | "
          "after − before [95% CI] | cites its team answer before | after | "
          "after − before [95% CI] | quotes it first after | it is in the top 4 after | "
          "cites another team answer after |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---:|")
    print("\n".join(rows))
    print(
        "\n| doc set | taught when | chunks | team questions | taught | offered to teach | "
        "found by the replica | teach s p50 / max | teach → searchable s p50 / max |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    print("\n".join(timings))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\nbackend {args.backend}, extractive (no model); commit {commit()}; "
          f"{time.perf_counter() - started:.0f} s; {when}")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
