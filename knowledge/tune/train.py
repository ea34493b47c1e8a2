"""Contrastive fine-tuning of the embedding model on CPU, within a time budget, resumable.

The loss is sentence-transformers' MultipleNegativesRankingLoss over (anchor, positive, hard
negative) triplets: each anchor must pick its positive among every passage of its batch. The
loop is a plain torch loop rather than sentence-transformers' Trainer, which would need the
``datasets`` and ``accelerate`` packages for nothing a budgeted CPU run uses.

A run lives in one folder: a checkpoint (model, optimiser, step) is written every
``CHECKPOINT_SECONDS`` and when the budget ends, so a run that is stopped or runs out of
budget goes on from there next time (``train`` called again on the same folder and pairs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowledge.embed.embedder import resolve_model_path
from knowledge.errors import KnowledgeError
from knowledge.ingest.progress import NullProgress, Progress
from knowledge.tune.pairs import Pair

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 120.0
CHECKPOINT = "checkpoint"
STATE_FILE = "state.json"
OPTIMISER_FILE = "optimiser.pt"
WEIGHTS_FILE = "model.safetensors"  # the transformer's, at the root of both folder layouts


class TuningError(KnowledgeError):
    """A tuning run that cannot start or go on as asked."""


@dataclass(frozen=True)
class TrainConfig:
    """The recipe; changing any of it starts a new run instead of resuming."""

    batch_size: int = 32
    learning_rate: float = 3e-5
    epochs: int = 1
    max_seq_length: int = 128  # training reads the first 128 word pieces; serving reads 256
    warmup_steps: int = 20
    seed: int = 0


@dataclass
class TrainResult:
    steps: int  # done so far, this run and earlier ones
    planned_steps: int
    seconds: float  # training time of this call
    loss_before: float  # on a fixed probe batch, with the starting weights of this call
    loss_after: float
    losses: list[float] = field(default_factory=list)  # each step of this call
    resumed_from: int = 0

    @property
    def finished(self) -> bool:
        return self.steps >= self.planned_steps


def train(
    base_model: str,
    run_dir: Path,
    pairs: Sequence[Pair],
    *,
    budget_seconds: float,
    config: TrainConfig | None = None,
    threads: int = 1,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train on ``pairs`` from ``base_model`` (or the checkpoint in ``run_dir``) until the
    planned steps are done or ``budget_seconds`` pass; the latest weights are left in
    ``run_dir/checkpoint`` either way."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    config = config or TrainConfig()
    if len(pairs) < 2:
        raise TuningError("Too few training pairs (need at least 2): index more documents first.")
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(config.seed)
    progress = progress or NullProgress()
    checkpoint = run_dir / CHECKPOINT
    fingerprint = _fingerprint(pairs, config)
    state = _read_state(checkpoint, fingerprint)
    model = _load(str(checkpoint) if state else resolve_model_path(base_model))
    model.max_seq_length = config.max_seq_length
    model.train()
    loss_fn = MultipleNegativesRankingLoss(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    done = 0
    if state:
        optimiser.load_state_dict(torch.load(checkpoint / OPTIMISER_FILE, weights_only=True))
        done = int(state["steps"])
    batches = _batches(len(pairs), config)
    probe = [pairs[i] for i in batches[0]]
    result = TrainResult(done, len(batches), 0.0, _loss(model, loss_fn, probe), 0.0,
                         resumed_from=done)  # fmt: skip
    started = last_saved = clock()
    progress.begin("tuning", len(batches))
    progress.advance(done)
    try:
        for step in range(done, len(batches)):
            if clock() - started >= budget_seconds:
                break
            _set_lr(optimiser, config, step)
            loss = loss_fn(_features(model, [pairs[i] for i in batches[step]]), None)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            result.losses.append(float(loss.detach()))
            result.steps = step + 1
            progress.advance()
            if clock() - last_saved >= CHECKPOINT_SECONDS:
                _save(model, optimiser, checkpoint, fingerprint, result.steps)
                last_saved = clock()
    finally:
        progress.end()
    result.seconds = clock() - started
    _save(model, optimiser, checkpoint, fingerprint, result.steps)
    result.loss_after = _loss(model, loss_fn, probe)
    return result


def finished_model(base_model: str, run_dir: Path, target: Path) -> None:
    """The base model's folder with the checkpoint's weights in ``target``.

    Everything but the weights (tokenizer, pooling, sequence length, config) is the base
    model's own files, so the tuned model loads, serves and exports to ONNX exactly as the
    base model does; the folder appears whole or not at all."""
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(resolve_model_path(base_model), tmp)
    shutil.copyfile(run_dir / CHECKPOINT / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _load(path: str) -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return SentenceTransformer(path, device="cpu")


def _features(model: SentenceTransformer, batch: list[Pair]) -> list[dict[str, Any]]:
    columns = ([p.anchor for p in batch], [p.positive for p in batch], [p.negative for p in batch])
    return [dict(model.preprocess(list(texts))) for texts in columns]


def _loss(model: SentenceTransformer, loss_fn: Any, batch: list[Pair]) -> float:
    """The loss on ``batch`` without dropout, so that two readings compare weights only."""
    import torch

    model.eval()
    try:
        with torch.no_grad():
            return float(loss_fn(_features(model, batch), None))
    finally:
        model.train()


def _batches(count: int, config: TrainConfig) -> list[list[int]]:
    """Every epoch's pairs in a seeded order, cut into full batches (MNRL needs batchmates)."""
    size = min(config.batch_size, count)
    batches: list[list[int]] = []
    for epoch in range(config.epochs):
        order = list(range(count))
        random.Random(config.seed + epoch).shuffle(order)
        batches += [order[i : i + size] for i in range(0, count - size + 1, size)]
    return batches


def _set_lr(optimiser: Any, config: TrainConfig, step: int) -> None:
    """Linear warm-up, then constant: a budget may end the run at any step."""
    scale = min(1.0, (step + 1) / max(1, config.warmup_steps))
    for group in optimiser.param_groups:
        group["lr"] = config.learning_rate * scale


def _fingerprint(pairs: Sequence[Pair], config: TrainConfig) -> str:
    digest = hashlib.sha256(json.dumps(config.__dict__, sort_keys=True).encode())
    for pair in pairs:
        digest.update(json.dumps(pair.to_json(), sort_keys=True).encode())
    return digest.hexdigest()


def _read_state(checkpoint: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint's state if it was written for these pairs and recipe."""
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        return None
    return state


def _save(model: Any, optimiser: Any, checkpoint: Path, fingerprint: str, steps: int) -> None:
    """Write the checkpoint whole: into a sibling folder, then swapped in."""
    import torch

    tmp = checkpoint.with_name(CHECKPOINT + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    torch.save(optimiser.state_dict(), tmp / OPTIMISER_FILE)
    (tmp / STATE_FILE).write_text(json.dumps({"fingerprint": fingerprint, "steps": steps}))
    old = checkpoint.with_name(CHECKPOINT + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if checkpoint.exists():
        os.replace(checkpoint, old)
    os.replace(tmp, checkpoint)
    shutil.rmtree(old, ignore_errors=True)
    log.info("checkpoint at step %d: %s", steps, checkpoint)
