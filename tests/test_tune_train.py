"""A tiny tuning run moves the loss, stops at its budget and resumes from its checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

from knowledge.embed.embedder import Embedder
from knowledge.tune.pairs import Pair
from knowledge.tune.train import TrainConfig, finished_model, train
from tests.tune_corpus import TOPICS

CONFIG = TrainConfig(batch_size=4, learning_rate=1e-4, epochs=2, max_seq_length=48, warmup_steps=1)


def pairs() -> list[Pair]:
    made = []
    for (name, summary, first, _), (_, other_summary, _, _) in zip(
        TOPICS, TOPICS[1:] + TOPICS[:1], strict=True
    ):
        made.append(Pair("heading", f"{first} of {name}", f"{summary}; set {first}.",
                         f"{other_summary}.", f"docs\x1f{name}.md"))  # fmt: skip
    return made[:8]


def test_a_tiny_run_lowers_the_loss_and_a_stopped_run_resumes(
    tmp_path: Path, embedder: Embedder
) -> None:
    clock = itertools.count()  # one "second" per reading: the budget counts steps here
    first = train("all-MiniLM-L6-v2", tmp_path / "run", pairs(), budget_seconds=2,
                  config=CONFIG, clock=lambda: float(next(clock)))  # fmt: skip
    assert 0 < first.steps < first.planned_steps == 4 and not first.finished

    second = train("all-MiniLM-L6-v2", tmp_path / "run", pairs(), budget_seconds=60, config=CONFIG)
    assert second.resumed_from == first.steps and second.finished
    assert len(second.losses) == 4 - first.steps
    assert second.loss_after < first.loss_before - 0.05, (first.loss_before, second.loss_after)

    finished_model("all-MiniLM-L6-v2", tmp_path / "run", tmp_path / "model")
    tuned = Embedder(str(tmp_path / "model"))
    assert tuned.max_tokens == 256  # serves as the base model does, with the new weights
    anchor = pairs()[0].anchor
    assert float(embedder.embed_query(anchor) @ tuned.embed_query(anchor)) < 0.999
