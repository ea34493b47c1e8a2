"""How fast each console page renders on the demo database: the first request to each page,
then the median of ROUNDS more, through Starlette's TestClient (no network), signed in, on a
temporary SQLite database holding what `teambot demo` indexes (docs/) and QUESTIONS answered
questions spread over the last 30 days, with votes.

    python -m bench.console [--rounds 15] [--questions 300]

No language model is configured, so the Models page probes nothing; Ask renders the
conversation page (its answers stream afterwards, timed by the core's own benches).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bot import gaps
from bot.cli import BUNDLED_DOCS, DEMO_SOURCE
from bot.runtime import Runtime
from bot.types import Question
from knowledge.ingest.local import ingest_folder
from knowledge.storage.conversations import Conversation, Feedback, LlmUsage, Turn
from knowledge.storage.db import utcnow
from knowledge.storage.documents import Source
from tests.console_setup import console_runtime, signed_in

PAGES = (
    "/console/ask?t=bench",
    "/console/sources",
    "/console/sources/{source}",
    "/console/questions",
    "/console/questions?page=3",
    "/console/questions/gaps",
    "/console/usage",
    "/console/usage?days=90",
    "/console/models",
)


def seed(runtime: Runtime, questions: int) -> None:
    """``questions`` answered questions on three platforms over 30 days, a tenth of them
    abstained or voted down (so the gaps page has topics), and tokens per day."""
    rng = random.Random(7)
    now = utcnow()
    words = ["install", "postgres", "slack", "discord", "sources", "refresh", "schedule",
             "model", "tokens", "backup", "ssl", "proxy"]  # fmt: skip
    with runtime.sessions.begin() as session:
        conversations = []
        for platform in ("slack", "discord", "console"):
            conversation = Conversation(platform=platform, channel="C1", thread="bench")
            session.add(conversation)
            conversations.append(conversation)
        session.flush()
        for n in range(questions):
            when = now - timedelta(minutes=rng.randrange(30 * 24 * 60))
            conversation = rng.choice(conversations)
            text = f"How do I {rng.choice(words)} with {rng.choice(words)}? ({n})"
            session.add(Turn(conversation_id=conversation.id, role="user", text=text,
                             created_at=when))  # fmt: skip
            answer = Turn(conversation_id=conversation.id, role="assistant", text="…" * 80,
                          model="extractive", latency_ms=rng.uniform(80, 900),
                          confidence=rng.random(), abstained=n % 10 == 0,
                          created_at=when)  # fmt: skip
            session.add(answer)
            session.flush()
            if answer.abstained:  # a gap, as the core records one
                gaps.add_gap(session, gaps.ABSTAINED, answer, text, conversation.platform,
                             conversation.channel, [])  # fmt: skip
            if n % 7 == 0:
                session.add(Feedback(turn_id=answer.id, user_id="U1", value=-1 if n % 2 else 1))
        for day in range(30):
            session.add(LlmUsage(day=(now - timedelta(days=day)).date(), provider="local",
                                 requests=20, tokens_in=9000, tokens_out=2000))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--questions", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runtime = console_runtime(Path(folder))
        ingest_folder(runtime.sessions, runtime.embedder, BUNDLED_DOCS, name=DEMO_SOURCE)
        seed(runtime, options.questions)
        for question in ("How do I use PostgreSQL?", "Does teambot support webhooks?"):
            runtime.assistant.ask(_question(question))  # real answers, one of them a gap
        with runtime.sessions() as session:
            source = session.query(Source.id).filter(Source.name == DEMO_SOURCE).scalar()
        client = signed_in(runtime)
        print(f"{options.questions} questions, {options.rounds} rounds; first, median, max ms")
        print("| page | first ms | median ms | max ms |\n|---|---:|---:|---:|")
        for page in PAGES:
            path = page.format(source=source)
            started = time.perf_counter()
            client.get(path)  # first request: imports, and what pages keep (the gap topics)
            first = (time.perf_counter() - started) * 1000
            times = []
            for _ in range(options.rounds):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            median, most = statistics.median(times), max(times)
            print(f"| {path} | {first:.0f} | {median:.0f} | {most:.0f} |")
        runtime.close()


def _question(text: str) -> Question:
    return Question(platform="console", channel="bench", thread="bench", user="bench", text=text)


if __name__ == "__main__":
    main()
