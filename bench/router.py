"""The LLM router's own cost per question, and time to first token through a fake model.

    python -m bench.router [--questions 100]

Rows, each over the same questions against teambot's bundled guide (SQLite, torch
embedder loaded once):
- extractive answer (no model): the baseline path, retrieval included;
- router stages alone, no HTTP: planning (policy, breaker, budget read), the
  grounding prompt (4 passages + 10 history turns), and ``Router.answer`` with an
  in-process model that answers at once (breaker, usage write to SQL);
- the whole question through the fake OpenAI server answering at once, and with
  a scripted 50 ms first token: time to first token as the adapter sees it
  (from the question to the first piece of text) and total time.
The router's overhead is the in-process row; the HTTP rows add the openai SDK
and a local round trip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bot.llm.breaker import CircuitBreaker
from bot.llm.prompt import build_prompt
from bot.llm.provider import ChatProvider, ProviderConfig, Timeouts, Usage
from bot.memory import PastTurn
from bot.runtime import Runtime
from bot.settings import Settings
from bot.types import Answer, Delta, Question, Restart
from knowledge.ingest.local import ingest_folder
from knowledge.storage.documents import Document
from tests.fakes.openai_server import FakeOpenAI, Reply

DOCS = Path(__file__).resolve().parents[1] / "docs"
QUESTIONS = [
    "How do I use PostgreSQL instead of SQLite?",
    "How do I add a documentation site as a source?",
    "What does LLM_ROUTE do?",
    "How often are sources refreshed?",
    "How do I run the tests?",
]


def guide_runtime(folder: Path, **settings: object) -> Runtime:
    """A runtime on a fresh SQLite database in ``folder`` holding teambot's bundled guide."""
    runtime = Runtime(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{folder / 'teambot.db'}",
            data_dir=folder / "data",
            **settings,  # type: ignore[arg-type]
        )
    )
    with runtime.sessions() as session:
        empty = not session.scalar(select(Document.id).limit(1))
    if empty:
        ingest_folder(runtime.sessions, runtime.embedder, DOCS, name="teambot-guide")
    return runtime


ANSWER = "Set DATABASE_URL to a PostgreSQL URL, then run teambot db upgrade [1]."
HISTORY = [PastTurn("user" if i % 2 == 0 else "assistant", "word " * 60) for i in range(10)]


class InstantModel(ChatProvider):
    """A provider that answers at once in-process: the router's cost without any HTTP."""

    def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, deadline: float
    ) -> Iterator[Delta | Usage]:
        for word in ANSWER.split(" "):
            yield Delta(word + " ")
        yield Usage(100, 20)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    spent = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def streamed(runtime: Runtime, question: Question) -> tuple[float, float, Answer]:
    """(ms to the first Delta, ms to the Answer, the Answer) as a streaming adapter sees them."""
    started = time.perf_counter()
    first = float("nan")
    for event in runtime.assistant.stream(question):
        if isinstance(event, Delta) and first != first:  # nan: no text yet
            first = (time.perf_counter() - started) * 1000
        elif isinstance(event, Restart):
            print(f"(restart: {event.reason})", file=sys.stderr)
        elif isinstance(event, Answer):
            return first, (time.perf_counter() - started) * 1000, event
    raise AssertionError("the stream ended without an Answer")


def row(name: str, values: list[float], note: str = "") -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"| {name} | {p50:.2f} | {p99:.2f} | {len(values)} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=100, help="Questions per row.")
    args = parser.parse_args()
    n = args.questions
    folder = Path(tempfile.mkdtemp())
    unlimited = {"rate_limit_user_per_minute": 0, "rate_limit_channel_per_minute": 0}
    extractive = guide_runtime(folder, llm_route="extractive", **unlimited)

    answerable = [
        q
        for q in QUESTIONS
        if extractive.retriever.search(q, 1)
        and extractive.assistant.ask(Question("bench", "C0", q, "U0", q)).citations
    ]

    def question(i: int) -> Question:
        return Question("bench", "C1", uuid.uuid4().hex, "U1", answerable[i % len(answerable)])

    lines = ["| stage | p50 ms | p99 ms | n | note |", "|---|---|---|---|---|"]
    counter = iter(range(10**9))
    extractive.assistant.ask(question(0))  # warm: index, BM25
    lines.append(row("extractive answer (no model), whole question",
                     timed(lambda: extractive.assistant.ask(question(next(counter))), n),
                     "baseline"))  # fmt: skip

    router = extractive.router
    passages = extractive.retriever.search(QUESTIONS[0], 4)
    config = ProviderConfig("local", "instant", None, "", context_tokens=4096)
    instant = InstantModel(config, Timeouts())
    router.providers = {"local": instant}
    router.breakers = {"local": CircuitBreaker()}
    router.route = "local-only"
    lines.append(row("router: plan (policy, breaker, budget read)",
                     timed(lambda: router.plan(question(0)), n)))  # fmt: skip
    lines.append(
        row(
            "router: grounding prompt, 4 passages + 10 turns",
            timed(
                lambda: build_prompt(
                    QUESTIONS[0], passages, HISTORY, context_tokens=4096, max_output_tokens=600
                ),
                n,
            ),
        )
    )

    def answer_in_process() -> None:
        plan = router.plan(question(0))
        events = list(router.answer(plan, lambda c: build_prompt(
            QUESTIONS[0], passages, HISTORY, context_tokens=c.context_tokens,
            max_output_tokens=600)))  # fmt: skip
        assert events[-1].provider == "local"

    lines.append(row("router: plan + prompt + answer (in-process model, usage write)",
                     timed(answer_in_process, n), "the router's own overhead"))  # fmt: skip

    with FakeOpenAI(models=("fake",)) as fake:
        live = guide_runtime(folder, llm_route="local-only", local_llm_base_url=fake.base_url,
                             local_llm_model="fake", **unlimited)  # fmt: skip
        live.assistant.ask(question(0))  # warm the HTTP client
        for delay in (0.0, 0.05):
            fake.always(Reply(ANSWER, first_token_delay=delay))
            firsts, totals = [], []
            for i in range(n):
                first, total, answer = streamed(live, question(i))
                assert answer.provider == "local", answer.route
                firsts.append(first)
                totals.append(total)
            label = f"fake model, first token after {delay * 1000:.0f} ms"
            lines.append(row(f"{label}: time to first token", firsts, "question → first text"))
            lines.append(row(f"{label}: whole question", totals))
    print("\n".join(lines))
    print(f"\n{n} questions a row; SQLite; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
