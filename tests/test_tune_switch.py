"""Model versions: the switch and the rollback while a replica searches and a worker ingests, and
the gate refusing a worse model. "Tuned" models here are the base model's weights moved by seeded
noise (small: a different but sound model; large: a broken one), so no test waits for training
except the one that runs `tune` end to end."""

from __future__ import annotations

import functools
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.retention import forget_expired
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embed import stored
from knowledge.embed.embedder import Embedder, TextEmbedder, resolve_model_path
from knowledge.embed.stored import ensure_folder, save_files
from knowledge.errors import EmbeddingModelError
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval.versioned import ModelChoice, active_choice
from knowledge.storage import store
from knowledge.storage.documents import Chunk
from knowledge.storage.models import REFUSED, ModelFile, ModelVersion, active_version, version_named
from knowledge.tune.gate import judge
from knowledge.tune.pairs import build_pairs
from knowledge.tune.reembed import embed_text, reembed, stale_documents
from knowledge.tune.registry import new_version, switch
from knowledge.tune.run import TuneOptions, retriever, rollback, tune
from knowledge.tune.train import TrainConfig
from knowledge.types import ScoredChunk
from tests.conftest import sqlite_url
from tests.tune_corpus import TOPICS, write_tune_corpus
from workers.scheduler import Worker

BASE = "all-MiniLM-L6-v2"
QUESTIONS = [f"How do I configure {first} for {name}?" for name, _, first, _ in TOPICS]


def noisy_model(target: Path, scale: float) -> Path:
    """The base model with every weight matrix moved by ``scale`` × its own spread."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(resolve_model_path(BASE), target)
    weights = load_file(target / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for name, tensor in weights.items():
        if tensor.dim() == 2 and tensor.is_floating_point():
            noise = torch.randn(tensor.shape, generator=generator) * tensor.std() * scale
            weights[name] = (tensor + noise).contiguous()
    save_file(weights, target / "model.safetensors")
    return target


class Loader:
    """Runtime.load_embedder for the tests: the session's base model, each tuned one once."""

    def __init__(self, base: Embedder) -> None:
        self.loaded: dict[str, TextEmbedder] = {BASE: base}

    def __call__(self, choice: ModelChoice) -> TextEmbedder:
        if choice.name not in self.loaded:
            self.loaded[choice.name] = Embedder(choice.name, model_dir=choice.path)
        return self.loaded[choice.name]


def runtime_for(tmp_path: Path, loader: Loader, data_dir: Path | None = None) -> Runtime:
    runtime = Runtime(Settings(_env_file=None, database_url=sqlite_url(tmp_path),  # type: ignore[call-arg]
                               data_dir=data_dir or tmp_path / "data",
                               embedding_backend="torch"))  # fmt: skip
    runtime.load_embedder = loader  # type: ignore[method-assign]
    return runtime


def test_switch_and_rollback_while_a_replica_searches_and_a_worker_ingests(
    tmp_path: Path, embedder: Embedder
) -> None:
    loader = Loader(embedder)
    admin, worker_runtime = runtime_for(tmp_path, loader), runtime_for(tmp_path, loader)
    # The replica has a data folder of its own: it rebuilds the tuned model from the database.
    replica = runtime_for(tmp_path, loader, data_dir=tmp_path / "replica-data")
    replica.load_embedder = lambda choice: (  # type: ignore[method-assign]
        embedder if choice.name == BASE else Runtime.load_embedder(replica, choice)
    )
    docs = write_tune_corpus(tmp_path / "docs")
    ingest_folder(admin.sessions, admin.embedder, docs, name="zephyr")
    version = new_version(admin.sessions, BASE)
    tuned_dir = noisy_model(tmp_path / "data" / str(version.path), scale=0.05)
    save_files(admin.sessions, version.name, tuned_dir)
    tuned = loader(ModelChoice(version.name, tuned_dir))
    data_dir = tmp_path / "data"

    seen: list[tuple[str, list[ScoredChunk]]] = []
    stop = threading.Event()

    def replica_searches() -> None:
        while not stop.is_set():
            for question in QUESTIONS:
                found = replica.retriever.search(question, 5)
                seen.append((question, found))

    searching = threading.Thread(target=replica_searches)
    searching.start()
    try:
        reembed(admin.sessions, BASE, tuned)  # in the background: the replica keeps serving
        assert switch(admin.sessions, BASE, data_dir, tuned) == BASE
        assert _wait_for(lambda: replica.embedder.model_name == version.name)
        count = len(seen)
        assert _wait_for(lambda: len(seen) > count + 2 * len(QUESTIONS))  # searches on the new

        # The worker's next refresh embeds a new page with the active (tuned) version.
        (docs / "tracing.md").write_text(
            "# Tracing in Zephyr\n\nSpans follow a job across nodes.\n"
        )
        worker = Worker(worker_runtime, BackgroundScheduler(), forget_expired)
        assert worker.refresh("zephyr", "a test") is not None
        with admin.sessions() as session:
            models = set(session.scalars(select(Chunk.model).where(Chunk.text.contains("Spans"))))
        assert models == {version.name}

        assert rollback(admin.sessions, BASE, data_dir, loader) == (version.name, BASE)
        assert _wait_for(lambda: replica.embedder.model_name == BASE)
        count = len(seen)
        assert _wait_for(lambda: len(seen) > count + 2 * len(QUESTIONS))
    finally:
        stop.set()
        searching.join()

    rebuilt = tmp_path / "replica-data" / str(version.path) / "model.safetensors"
    assert rebuilt.read_bytes() == (tuned_dir / "model.safetensors").read_bytes()
    with admin.sessions() as session:  # rollback brought the base version up to date first
        assert not stale_documents(session, version.name, BASE)
        assert active_version(session).name == BASE  # type: ignore[union-attr]
        # Both versions' rows are kept (rollback is instant); admins see one copy counted.
        total = session.scalar(select(func.count(Chunk.id)))
        assert store.serving_chunks(session) == store.chunk_count(session, BASE) == total // 2
        [summary] = [s for s in store.source_summaries(session) if s.name == "zephyr"]
        assert summary.chunks == store.chunk_count(session, BASE)
    used = set()
    for question, results in seen:
        # Every search saw a whole index (5 pages found) of one model and embedded the question
        # with that same model: one of the two models gives exactly its cosines.
        assert len(results) == 5
        [model] = [
            name for name in (BASE, version.name) if _cosines_of(loader, name, question, results)
        ]
        used.add(model)
    assert used == {BASE, version.name}  # searches ran before, between and after both switches


def _cosines_of(loader: Loader, model: str, question: str, results: list[ScoredChunk]) -> bool:
    embedder = loader.loaded[model]
    query = embedder.embed_query(question)
    for result in results:
        text = embed_text("folder", result.document_title, result.heading_path, result.text)
        if abs(float(query @ _vector(embedder, text)) - result.similarity) > 1e-4:
            return False
    return True


@functools.cache
def _vector(embedder: TextEmbedder, text: str) -> np.ndarray:
    return embedder.embed_texts([text])[0]


def test_the_gate_refuses_a_worse_model_and_tune_does_not_switch_to_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    loader = Loader(embedder)
    runtime = runtime_for(tmp_path, loader)
    ingest_folder(runtime.sessions, runtime.embedder, write_tune_corpus(tmp_path / "docs"),
                  name="zephyr")  # fmt: skip
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(
        f'{{"question": "{q}", "page": "{topic[0]}.md"}}\n'
        for q, topic in zip(QUESTIONS, TOPICS, strict=True)
    ))  # fmt: skip
    from knowledge.evaluation.scoring import load_questions

    asked = [("questions.jsonl", load_questions(questions))]
    broken = Embedder("broken", model_dir=noisy_model(tmp_path / "broken", scale=3.0))
    reembed(runtime.sessions, BASE, broken)
    pairs = build_pairs(runtime.sessions, BASE, held_out_percent=30)
    # Dense alone: on a dozen pages BM25 finds every page whatever the embedder says.
    verdict = judge(retriever(runtime.sessions, embedder), retriever(runtime.sessions, broken),
                    runtime.sessions, pairs.held_out, asked, method="dense")  # fmt: skip
    assert not verdict.better
    assert all(s.after.ndcg_at_10 < s.before.ndcg_at_10 for s in verdict.sets)

    # End to end: a learning rate that wrecks the model in one step is refused, and nothing moves.
    wreck = TrainConfig(batch_size=8, learning_rate=0.05, epochs=1, max_seq_length=32,
                        warmup_steps=1)  # fmt: skip
    options = TuneOptions(budget_seconds=1, question_files=asked, config=wreck, threads=2,
                          method="dense")  # fmt: skip
    report = tune(runtime.sessions, BASE, tmp_path / "data", loader, options)
    assert not report.switched and not report.verdict.better
    assert "Not switched" in report.text() and "→" in report.text()
    with runtime.sessions() as session:
        assert active_version(session) is None  # the base model still serves
        assert version_named(session, report.version).status == REFUSED  # type: ignore[union-attr]
        assert not session.scalar(select(Chunk.id).where(Chunk.model == report.version))
        assert not session.scalar(select(ModelFile.id).where(ModelFile.version == report.version))
    assert runtime.embedder.model_name == BASE


def test_a_version_row_pointing_outside_the_data_folder_is_never_loaded(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        session.add_all([
            ModelVersion(name="evil", base="all-MiniLM-L6-v2", path="../../etc", status="ready",
                         is_active=True, report={}),
        ])  # fmt: skip
    with sessions() as session:
        assert active_choice(session, "all-MiniLM-L6-v2", tmp_path / "data") == ModelChoice(
            "all-MiniLM-L6-v2"
        )
        # A version tuned from another base model than EMBEDDING_MODEL is not used either.
        assert active_choice(session, "other-model", tmp_path / "data").name == "other-model"


def test_a_rebuilt_model_folder_holds_only_the_files_it_may(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    weights = (Path(resolve_model_path(BASE)) / "model.safetensors").read_bytes()
    with sessions.begin() as session:
        session.add_all([ModelFile(version="v", name="model.safetensors", data=weights),
                         ModelFile(version="v", name="../../escaped.py", data=b"import os"),
                         ModelFile(version="v", name="onnx/../../x.onnx", data=b"")])  # fmt: skip
    ensure_folder(sessions, "v", BASE, tmp_path / "data" / "models" / "v")
    assert (tmp_path / "data" / "models" / "v" / "model.safetensors").read_bytes() == weights
    assert not list(tmp_path.rglob("escaped.py")) and not list(tmp_path.rglob("x.onnx"))
    with pytest.raises(EmbeddingModelError, match="no stored weights"):
        ensure_folder(sessions, "gone", BASE, tmp_path / "data" / "models" / "gone")


def test_a_stored_file_over_the_cap_is_refused_before_it_is_read(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "MAX_FILE_BYTES", 1000)
    with sessions.begin() as session:
        session.add(ModelFile(version="big", name="model.safetensors", data=b"\0" * 1001))
    folder = tmp_path / "data" / "models" / "big"
    statements: list[str] = []
    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", lambda _c, _u, sql, *_: statements.append(sql))
    with pytest.raises(EmbeddingModelError, match=r"model\.safetensors is unusable"):
        ensure_folder(sessions, "big", BASE, folder)
    assert not folder.exists() and not list((tmp_path / "data" / "models").iterdir())
    # Its length was asked, its bytes never fetched.
    assert not [s for s in statements if "SELECT model_files.data" in s], statements


def _wait_for(condition, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
