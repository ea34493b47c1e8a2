"""The Gaps page keeps its topics between views: a repeat view embeds nothing, and a change
to the gaps in the window — a 👎 added or taken back, a gap ageing out of the window — shows
at once. The embedder is the real one, wrapped to count what it is asked to embed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from bot import gaps
from bot.console.kept_topics import KeptTopics
from bot.gap_topics import Topic
from bot.runtime import Runtime
from knowledge.embed.embedder import Embedder
from knowledge.storage.conversations import Conversation, Gap, Turn
from knowledge.storage.db import utcnow
from tests.console_setup import console_runtime, csrf, signed_in

GAPS = "/console/questions/gaps"
ABSTAINED = [
    "How do I back up the Postgres database?",
    "What is the way to back up our Postgres database nightly?",
    "How can I rotate the Slack bot token?",
    "Where do I rotate the Slack signing secret?",
]
VOTED = "Can teambot answer in Klingon?"


class CountingEmbedder:
    """The real embedder, counting the texts it embeds."""

    def __init__(self, real: Embedder) -> None:
        self.real = real
        self.texts = 0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.real.embed_texts(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def counted(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture
def runtime(tmp_path: Path, counted: CountingEmbedder) -> Iterator[Runtime]:
    runtime = console_runtime(tmp_path, counted)  # type: ignore[arg-type]
    yield runtime
    runtime.close()


def seed(runtime: Runtime) -> int:
    """Abstained answers (gaps) and one good answer; the good answer's turn id."""
    with runtime.sessions.begin() as session:
        conversation = Conversation(platform="slack", channel="C1", thread="t")
        session.add(conversation)
        session.flush()
        for text in [*ABSTAINED, VOTED]:
            session.add(Turn(conversation_id=conversation.id, role="user", text=text))
            answer = Turn(conversation_id=conversation.id, role="assistant", text="…",
                          abstained=text != VOTED, confidence=0.2)  # fmt: skip
            session.add(answer)
            session.flush()
            if answer.abstained:
                gaps.add_gap(session, gaps.ABSTAINED, answer, text, "slack", "C1", [])
        return answer.id


def vote(client: TestClient, turn: int, value: int) -> None:
    response = client.post(
        "/console/ask/vote", headers={"x-csrf-token": csrf(client)},
        json={"turn": turn, "value": value},
    )  # fmt: skip
    assert response.json()["stored"] is True


def test_a_repeat_view_embeds_nothing_and_changes_show_at_once(
    runtime: Runtime, counted: CountingEmbedder
) -> None:
    good = seed(runtime)
    client = signed_in(runtime)
    first = client.get(GAPS).text
    assert counted.texts == len(ABSTAINED) and "Postgres" in first and "Slack" in first
    assert client.get(GAPS).text == first and counted.texts == len(ABSTAINED)

    vote(client, good, -1)  # a 👎 is a new gap: embedded again, shown
    assert VOTED in client.get(GAPS).text
    assert counted.texts == 2 * len(ABSTAINED) + 1

    vote(client, good, 1)  # taken back: the gaps are as first seen, and so is the page
    assert client.get(GAPS).text == first and counted.texts == 2 * len(ABSTAINED) + 1

    with runtime.sessions.begin() as session:  # one gap leaves the 30-day window
        session.execute(update(Gap).where(Gap.question == ABSTAINED[0])
                        .values(created_at=utcnow() - timedelta(days=31)))  # fmt: skip
    aged = client.get(GAPS).text
    assert ABSTAINED[0] not in aged and ABSTAINED[1] in aged
    assert counted.texts == 3 * len(ABSTAINED)


def test_only_the_last_few_groupings_are_kept() -> None:
    kept = KeptTopics(size=2)
    made: list[int] = []

    def make(n: int) -> list[Topic]:
        made.append(n)
        return []

    for n in (1, 2, 1, 3, 1, 2):  # 3 pushes out 2 (1 was used since), then 2 pushes out 3
        kept.get(("window", n), lambda n=n: make(n))
    assert made == [1, 2, 3, 2] and len(kept) == 2
