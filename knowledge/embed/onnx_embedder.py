"""The same sentence-transformers model run by ONNX Runtime: faster on CPU, and no torch to import.

The model is exported once, from the installed weights, to
``cache_dir/onnx/<model>-<fp32|int8>-v1.onnx``; only that export needs torch
and transformers. Afterwards a process imports onnxruntime and tokenizers
only (about 0.2 s), so a one-shot ``teambot ask`` skips the seconds torch
takes to import.

Vectors are stored under the same model name as the torch ``Embedder``'s and
are meant to be interchangeable with them: fp32 agrees with torch to a cosine
of 0.9999+. int8 (dynamic, per-channel, MatMul weights only) differs slightly:
a cosine of about 0.995 on average, 0.98+ at worst.

Texts are embedded one at a time, on one single-threaded session per core side
by side: no padding, and a vector that depends on its text alone (int8
quantises activations with one scale per run, so in a batch a vector moved,
by up to 0.024 per component, with its batchmates, and two ingests of the
same page stored different vectors). On 2 cores, bench/embedding.py went
from 1.91× plain sentence-transformers (batches of 32 on two threads) to
2.88× for int8, and from 1.08× to 1.31× for fp32; the second session costs
about 70 MB. Tokenising, mean pooling and normalising happen here, in numpy,
as sentence-transformers does them. The export file is keyed by model name: if
the weights in a local model folder change, delete ``cache_dir/onnx``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from knowledge.embed.embedder import ProgressCallback, resolve_model_path
from knowledge.errors import EmbeddingModelError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # in the file name: bump it when the export changes
OPSET_VERSION = 17
EXPORT_SECONDS = 15  # first use in a fresh process on 2 busy cores, torch import included
# Quantising the first layer's FFN output projection (activations with
# outliers) causes most of int8's error, so that MatMul stays fp32.
KEEP_FP32_MATMUL = re.compile(r"layer\.0/output/dense/MatMul$")
SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}
USE_TORCH = "Set EMBEDDING_BACKEND=torch to run the model without ONNX."
DUMMY_TEXTS = ("A short text.", "A longer text, so that the short one is padded.")

_UNSAFE_NAME_CHARS = re.compile(r"[^a-z0-9.]+")


@dataclass(frozen=True)
class ModelConfig:
    """What a sentence-transformers folder says about its output and its input."""

    dimension: int
    max_tokens: int
    lowercase: bool
    pad_id: int


class OnnxEmbedder:
    """Embeds passages and questions with ONNX Runtime; the model is exported on first use.

    Same members as ``Embedder``. ``threads`` texts are embedded at once, each
    on a one-thread session (default: one per core); ``batch_size`` is
    accepted for ``Embedder``'s sake and unused. A query runs on a one-thread
    session of its own, so it never waits behind an ingest.
    """

    def __init__(
        self,
        model_name: str,
        *,
        batch_size: int = 32,
        quantized: bool = True,
        cache_dir: Path,
        threads: int | None = None,
        model_dir: Path | None = None,
    ) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self.quantized = quantized
        self.threads = threads or os.cpu_count() or 1
        self.model_dir = model_dir or Path(resolve_model_path(model_name))
        self.config = read_model_config(model_name, self.model_dir)
        self.variant = "int8" if quantized else "fp32"
        safe_name = _UNSAFE_NAME_CHARS.sub("-", model_name.lower()).strip("-")
        file_name = f"{safe_name}-{self.variant}-v{EXPORT_VERSION}.onnx"
        self.onnx_path = Path(cache_dir) / "onnx" / file_name
        self._text_sessions: queue.SimpleQueue[onnxruntime.InferenceSession] = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._query_session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._counter: Tokenizer | None = None
        # Sessions and tokenizers are made on first use, once: without the lock, 32 answer
        # threads asking their first questions together each opened a session (+2 GB).
        self._init_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self.config.dimension

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads per text, special tokens included; the rest is cut."""
        return self.config.max_tokens

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the special tokens the model adds."""
        if self._counter is None:
            with self._init_lock:
                if self._counter is None:
                    self._counter = self._load_tokenizer(truncate=False)
        return len(self._counter.encode(self._prepare(text), add_special_tokens=False).ids)

    def embed_texts(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Passages → (n, dim) float32, unit length, in input order; ``progress`` is
        told after each text.

        Longest first, so that the sessions run out of work at about the same time.
        """
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return vectors
        pool = self._text_pool()
        encodings = self.tokenizer.encode_batch([self._prepare(t) for t in texts])
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        embedded = pool.map(self._embed_alone, [encodings[i].ids for i in order])
        for i, vector in zip(order, embedded, strict=True):
            vectors[i] = vector
            if progress is not None:
                progress(1)
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        """A question → (dim,) float32, unit length."""
        ids = self.tokenizer.encode(self._prepare(text)).ids
        if self._query_session is None:
            with self._init_lock:
                if self._query_session is None:
                    self._query_session = self._open_session()
        return self._run(self._query_session, ids)

    @property
    def tokenizer(self) -> Tokenizer:
        """Adds the special tokens, truncates at ``max_tokens``, does not pad."""
        if self._tokenizer is None:
            with self._init_lock:
                if self._tokenizer is None:
                    self._tokenizer = self._load_tokenizer(truncate=True)
        return self._tokenizer

    def _load_tokenizer(self, *, truncate: bool) -> Tokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        if truncate:
            tokenizer.enable_truncation(max_length=self.max_tokens)
        else:
            tokenizer.no_truncation()
        return tokenizer

    def _text_pool(self) -> ThreadPoolExecutor:
        """``threads`` worker threads and as many sessions, made on first use."""
        if self._pool is None:
            with self._init_lock:
                if self._pool is None:
                    for _ in range(self.threads):
                        self._text_sessions.put(self._open_session())
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="embed")
        return self._pool

    def _embed_alone(self, ids: list[int]) -> np.ndarray:
        session = self._text_sessions.get()  # one is free: as many sessions as workers
        try:
            return self._run(session, ids)
        finally:
            self._text_sessions.put(session)

    def _open_session(self) -> onnxruntime.InferenceSession:
        """A one-thread session: texts run side by side, one per session, not split."""
        import onnxruntime

        if not self.onnx_path.is_file():
            self._export()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise
        return onnxruntime.InferenceSession(
            str(self.onnx_path), options, providers=["CPUExecutionProvider"]
        )

    def _export(self) -> None:
        log.info(
            "exporting embedding model %s to ONNX (%s) once, ~%d s: %s",
            self.model_name,
            self.variant,
            EXPORT_SECONDS,
            self.onnx_path,
        )
        started = time.perf_counter()
        try:
            self.onnx_path.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(
                self.model_dir, self.onnx_path, quantized=self.quantized, pad_id=self.config.pad_id
            )
        except Exception as exc:
            raise EmbeddingModelError(
                f"Cannot export embedding model {self.model_name!r} to ONNX "
                f"({exc.__class__.__name__}: {exc}). {USE_TORCH}"
            ) from exc
        log.info("exported %s in %.1f s", self.onnx_path.name, time.perf_counter() - started)

    def _prepare(self, text: str) -> str:
        return text.lower() if self.config.lowercase else text

    def _run(self, session: onnxruntime.InferenceSession, ids: list[int]) -> np.ndarray:
        """One text's token ids → its mean-pooled unit vector."""
        input_ids = np.array([ids], dtype=np.int64)
        (hidden,) = session.run(
            None, {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
        )
        pooled = hidden[0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32, copy=False)


def read_model_config(model_name: str, model_dir: Path) -> ModelConfig:
    """Checks that ``model_dir`` is a mean-pooled sentence-transformers model ONNX can run."""

    def refuse(reason: str) -> EmbeddingModelError:
        return EmbeddingModelError(
            f"Embedding model {model_name!r} cannot run on ONNX: {reason}. {USE_TORCH}"
        )

    if not model_dir.is_dir():
        raise refuse("only the packaged all-MiniLM-L6-v2 or a local model folder can be exported")
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = {m["type"].rsplit(".", 1)[-1]: m.get("path", "") for m in modules}
        pooling = json.loads((model_dir / kinds.get("Pooling", "") / "config.json").read_text())
        transformer = json.loads((model_dir / "config.json").read_text())
        st_path = model_dir / "sentence_bert_config.json"
        st_config = json.loads(st_path.read_text()) if st_path.is_file() else {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise refuse(f"not a sentence-transformers model folder ({exc})") from exc
    if set(kinds) - SUPPORTED_MODULES or "Pooling" not in kinds:
        raise refuse(f"only Transformer + Pooling + Normalize can be exported, not {sorted(kinds)}")
    if not pooling.get("pooling_mode_mean_tokens"):
        raise refuse("only mean pooling is supported")
    if not (model_dir / "tokenizer.json").is_file():
        raise refuse("its folder has no tokenizer.json")
    max_tokens = st_config.get("max_seq_length") or min(
        transformer.get("max_position_embeddings", 512), 512
    )
    return ModelConfig(
        dimension=int(pooling["word_embedding_dimension"]),
        max_tokens=int(max_tokens),
        lowercase=bool(st_config.get("do_lower_case", False)),
        # Padded positions are masked out, so any id would do; the model's own is tidiest.
        pad_id=int(transformer.get("pad_token_id") or 0),
    )


def export_onnx(model_dir: Path, target: Path, *, quantized: bool, pad_id: int = 0) -> None:
    """Writes the transformer in ``model_dir`` (→ ``last_hidden_state``) as ONNX to ``target``.

    Needs torch and transformers. The file appears whole or not at all: it is
    written into a temporary folder beside ``target`` and renamed.
    """
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        _export_fp32(model_dir, fp32, pad_id)
        if quantized:
            int8 = Path(tmp) / "model-int8.onnx"
            _quantize(fp32, int8)
            os.replace(int8, target)
        else:
            os.replace(fp32, target)


def _export_fp32(model_dir: Path, target: Path, pad_id: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # Eager attention traces into plain ops; SDPA would not export as cleanly.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    # The dummy batch must contain padding: traced with a mask of all ones, the
    # exporter leaves the attention mask out of the graph.
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    short, long = (tokenizer.encode(text).ids for text in DUMMY_TEXTS)
    input_ids = torch.full((2, len(long)), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((2, len(long)), dtype=torch.int64)
    for row, ids in enumerate((short, long)):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about constants that are constant here
        torch.onnx.export(
            LastHiddenState(model),
            (input_ids, attention_mask),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=OPSET_VERSION,
            dynamo=False,
        )


class _QuietQuantizer(logging.Filter):
    """Drops the quantizer's chatter, which it logs on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "quantization" not in record.pathname


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8, per channel, MatMul weights only, the first FFN output projection kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type == "MatMul" and KEEP_FP32_MATMUL.search(n.name)]
    if not keep:
        log.warning("no layer-0 FFN output MatMul in %s: every MatMul is quantised", source)
    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=keep,
        )
    finally:
        logging.getLogger().removeFilter(quiet)
