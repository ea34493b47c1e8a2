"""One `teambot tune`: pairs → training → a saved, exported version → re-embed → gate → switch.

Each stage's time is reported. The serving index answers throughout; only a version the gate
passes is switched to, and a refused version's vectors are deleted again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.embed.stored import save_files
from knowledge.evaluation.scoring import EvalQuestion
from knowledge.ingest.progress import NullProgress, Progress
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.search import Method, Retriever
from knowledge.retrieval.versioned import ModelChoice, active_choice
from knowledge.storage.models import EMBEDDING, READY, REFUSED
from knowledge.tune.gate import Verdict, judge
from knowledge.tune.pairs import PairSet, Skip, build_pairs
from knowledge.tune.reembed import reembed
from knowledge.tune.registry import (
    forget_version,
    new_version,
    rollback_target,
    set_status,
    switch,
)
from knowledge.tune.train import TrainConfig, TrainResult, TuningError, finished_model, train

TUNE_FOLDER = "tune"  # run folders (checkpoints) under TEAMBOT_DATA_DIR
MIN_HELD_OUT = 5

Load = Callable[[ModelChoice], TextEmbedder]


@dataclass(frozen=True)
class TuneOptions:
    budget_seconds: float = 20 * 60
    sources: Sequence[str] | None = None
    question_files: Sequence[tuple[str, list[EvalQuestion]]] = ()
    threads: int = max(1, (os.cpu_count() or 2) // 2)  # half the cores: others serve
    config: TrainConfig = field(default_factory=TrainConfig)
    method: Method = "hybrid"
    skip: Skip | None = None  # sections that must give no pair (the bench's questions)
    switch: bool = True  # False: measure only, never switch


@dataclass
class TuneReport:
    version: str
    serving: str
    pairs: dict[str, int]
    training: TrainResult
    verdict: Verdict
    switched: bool
    seconds: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        t = self.training
        return {
            "version": self.version, "serving_before": self.serving, "switched": self.switched,
            "pairs": self.pairs,
            "training": {"steps": t.steps, "planned_steps": t.planned_steps,
                         "resumed_from": t.resumed_from, "loss_before": round(t.loss_before, 4),
                         "loss_after": round(t.loss_after, 4)},
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            **self.verdict.to_json(),
        }  # fmt: skip

    def text(self) -> str:
        t, s = self.training, self.seconds
        pairs = sum(v for k, v in self.pairs.items() if k.startswith("train."))
        held = sum(v for k, v in self.pairs.items() if k.startswith("held_out."))
        outcome = (
            f"Switched to {self.version}; `teambot tune rollback` returns to {self.serving}."
            if self.switched
            else f"Not switched: {self.serving} keeps serving"
            + (" (the tuned model is not better on every set)." if not self.verdict.better
               else " (--no-switch).")
        )  # fmt: skip
        return "\n".join([
            f"Pairs: {pairs} to train on, {held} held out (pages never trained on).",
            f"Training: {t.steps} of {t.planned_steps} steps"
            + (f" (resumed at {t.resumed_from})" if t.resumed_from else "")
            + f", loss {t.loss_before:.3f} → {t.loss_after:.3f}.",
            "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in s.items()) + ".",
            "", self.verdict.table(), "", outcome,
        ])  # fmt: skip


def tune(
    sessions: sessionmaker[Session],
    base: str,
    data_dir: Path,
    load: Load,
    options: TuneOptions,
    progress: Progress | None = None,
) -> TuneReport:
    progress = progress or NullProgress()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with sessions() as session:
        serving = active_choice(session, base, data_dir)
    pairs = build_pairs(sessions, serving.name, sources=options.sources, skip=options.skip)
    _check(pairs)
    version = new_version(sessions, base)
    seconds["pairs"] = _lap(started)
    run_dir = data_dir / TUNE_FOLDER / Path(version.path or version.name).name
    started = time.perf_counter()
    training = train(base, run_dir, pairs.train, budget_seconds=options.budget_seconds,
                     config=options.config, threads=options.threads, progress=progress)  # fmt: skip
    seconds["training"] = _lap(started)
    started = time.perf_counter()
    model_dir = data_dir / (version.path or version.name)
    finished_model(base, run_dir, model_dir)
    target = load(ModelChoice(version.name, model_dir))
    target.embed_query("warm-up")  # exports the ONNX model now, once, into model_dir
    save_files(sessions, version.name, model_dir)  # for replicas with data folders of their own
    seconds["save+export"] = _lap(started)
    set_status(sessions, version.name, EMBEDDING, {})
    started = time.perf_counter()
    reembed(sessions, serving.name, target, progress=progress)
    seconds["re-embed"] = _lap(started)
    started = time.perf_counter()
    verdict = judge(retriever(sessions, load(serving)), retriever(sessions, target), sessions,
                    pairs.held_out, options.question_files, method=options.method)  # fmt: skip
    seconds["gate"] = _lap(started)
    switched = verdict.better and options.switch
    report = TuneReport(version.name, serving.name, pairs.counts(), training, verdict,
                        switched, seconds)  # fmt: skip
    if switched:
        switch(sessions, base, data_dir, target, progress=progress)
        set_status(sessions, version.name, READY, report.to_json())
    elif not options.switch:  # --no-switch: vectors kept for measuring (bench/tune.py)
        set_status(sessions, version.name, READY if verdict.better else REFUSED, report.to_json())
    else:
        set_status(sessions, version.name, REFUSED, report.to_json())
        forget_version(sessions, version.name)
    shutil.rmtree(run_dir, ignore_errors=True)  # the version is decided: its checkpoint goes
    return report


def retriever(sessions: sessionmaker[Session], embedder: TextEmbedder) -> Retriever:
    """A retriever over ``embedder``'s own vectors, built from SQL (no snapshot)."""
    return Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name,
                                                     embedder.dimension))  # fmt: skip


def _check(pairs: PairSet) -> None:
    if len(pairs.train) < 2 or len(pairs.held_out) < MIN_HELD_OUT:
        raise TuningError(
            f"Too little to tune on: {len(pairs.train)} training pairs and "
            f"{len(pairs.held_out)} held out (need {MIN_HELD_OUT}). Index more pages first."
        )


def _lap(started: float) -> float:
    return time.perf_counter() - started


def rollback(
    sessions: sessionmaker[Session],
    base: str,
    data_dir: Path,
    load: Load,
    progress: Progress | None = None,
) -> tuple[str, str]:
    """Switch back to the version that served before the active one: (from, to)."""
    previous = rollback_target(sessions, base)
    path = data_dir / previous.path if previous.path else None
    replaced = switch(sessions, base, data_dir, load(ModelChoice(previous.name, path)),
                      progress=progress)  # fmt: skip
    return replaced, previous.name
