"""The ONNX backend against the torch one, on the real model: same vectors, same tokens, no torch.

The model is exported once per session (fp32 and int8) into a temporary cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from knowledge.embed.embedder import Embedder, load_embedder, resolve_model_path
from knowledge.embed.onnx_embedder import OnnxEmbedder
from knowledge.errors import EmbeddingModelError

ROOT = Path(__file__).resolve().parent.parent
MODEL = "all-MiniLM-L6-v2"

VARIED = [
    "How do I reset the Slack bot token?",
    "def embed(texts: list[str]) -> np.ndarray:\n    return model.encode(texts, batch_size=32)",
    "Ünïcödé façade — naïve café, 東京 and Ελληνικά, emoji 🚀 and math ∑x².",
    "SELECT id, url FROM documents WHERE etag IS NULL ORDER BY id LIMIT 10;",
    "C:\\Program Files\\teambot\\config.toml   tabs\tand\u00a0non-breaking spaces",
    "x",
    "",
    "   ",
    "https://docs.example.com/guide/install.html#requirements?q=1&lang=en",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]
TINY = ["x", "ok", "yes", "help"]  # one word piece: int8's worst case


def doc_paragraphs(count: int) -> list[str]:
    """Paragraphs of teambot's own user guide: real prose, lists and code of varied length."""
    paragraphs: list[str] = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        paragraphs += [p.strip() for p in path.read_text().split("\n\n") if len(p.strip()) > 40]
    return paragraphs[:: max(1, len(paragraphs) // count)][:count]


TEXTS = [*doc_paragraphs(30), *VARIED[:5]]


def long_text(words: int) -> str:
    vocabulary = " ".join(doc_paragraphs(200)).split()
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(words))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def onnx_fp32(cache_dir: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(MODEL, quantized=False, cache_dir=cache_dir)
    embedder.embed_texts(["export now"])
    return embedder


@pytest.fixture(scope="session")
def onnx_int8(cache_dir: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(MODEL, quantized=True, cache_dir=cache_dir)
    embedder.embed_texts(["export now"])
    return embedder


@pytest.fixture(scope="session")
def torch_vectors(embedder: Embedder) -> np.ndarray:
    return embedder.embed_texts(TEXTS)


def test_fp32_vectors_equal_the_torch_ones(onnx_fp32: OnnxEmbedder, torch_vectors: np.ndarray):
    vectors = onnx_fp32.embed_texts(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert cosines(vectors, torch_vectors).min() > 0.9999


def test_int8_vectors_are_close_to_the_torch_ones(
    onnx_int8: OnnxEmbedder, torch_vectors: np.ndarray
):
    similarity = cosines(onnx_int8.embed_texts(TEXTS), torch_vectors)
    # Measured: mean 0.995, min 0.990.
    assert similarity.mean() > 0.99, similarity
    assert similarity.min() > 0.98, similarity


def test_int8_is_least_close_on_one_word_texts(onnx_int8: OnnxEmbedder, embedder: Embedder):
    # [CLS] and [SEP] dominate the mean of a 3-token text; measured 0.955 to 0.987.
    similarity = cosines(onnx_int8.embed_texts(TINY), embedder.embed_texts(TINY))
    assert similarity.min() > 0.94, similarity


def test_same_shape_and_window_as_torch(onnx_int8: OnnxEmbedder, embedder: Embedder):
    assert onnx_int8.model_name == embedder.model_name == MODEL
    assert onnx_int8.dimension == embedder.dimension == 384
    assert onnx_int8.max_tokens == embedder.max_tokens == 256
    assert onnx_int8.batch_size == embedder.batch_size == 32


@pytest.mark.parametrize("text", [*VARIED, *TINY, long_text(2_000)])
def test_token_counts_equal_the_torch_tokenizer(
    onnx_fp32: OnnxEmbedder, embedder: Embedder, text: str
):
    assert onnx_fp32.count_tokens(text) == embedder.count_tokens(text)


def test_text_past_the_window_is_cut_at_256_word_pieces(onnx_fp32: OnnxEmbedder):
    text = long_text(2_000)
    words = text.split()
    assert onnx_fp32.count_tokens(text) > 2_000
    assert len(onnx_fp32.tokenizer.encode(text).ids) == 256  # [CLS] + 254 + [SEP]
    head = " ".join(words[:250])
    assert onnx_fp32.count_tokens(head) >= 254  # the window ends inside these 250 words
    shorter = " ".join(words[:50])
    assert onnx_fp32.count_tokens(shorter) < 200  # ends well inside the window
    full, same, short = onnx_fp32.embed_texts([text, head, shorter])
    assert full @ same > 0.99999
    assert full @ short < 0.999


def test_vectors_come_back_in_input_order(onnx_fp32: OnnxEmbedder):
    # Longest first, so that sorting by length reverses the order.
    texts = sorted(TEXTS, key=len, reverse=True)
    vectors = onnx_fp32.embed_texts(texts)
    singles = np.stack([onnx_fp32.embed_texts([text])[0] for text in texts])
    assert cosines(vectors, singles).min() > 0.9999


def test_progress_is_told_after_each_text(onnx_fp32: OnnxEmbedder):
    done: list[int] = []
    onnx_fp32.embed_texts(TEXTS, progress=done.append)
    assert done == [1] * len(TEXTS)
    assert onnx_fp32.embed_texts([]).shape == (0, 384)


@pytest.mark.parametrize("quantized", [False, True])
def test_vectors_are_the_same_however_many_sessions_run_at_once(cache_dir: Path, quantized: bool):
    one = OnnxEmbedder(MODEL, quantized=quantized, cache_dir=cache_dir, threads=1)
    three = OnnxEmbedder(MODEL, quantized=quantized, cache_dir=cache_dir, threads=3)
    expected = one.embed_texts(TEXTS)
    assert np.array_equal(three.embed_texts(TEXTS), expected)
    # Two callers at once (an ingest and a refresh, say) share the sessions safely.
    with ThreadPoolExecutor(2) as callers:
        results = list(callers.map(three.embed_texts, [TEXTS, TEXTS[::-1]]))
    assert np.array_equal(results[0], expected)
    assert np.array_equal(results[1], expected[::-1])


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_a_query_embeds_like_the_same_text_in_a_batch(request: pytest.FixtureRequest, variant: str):
    embedder: OnnxEmbedder = request.getfixturevalue(f"onnx_{variant}")
    questions = VARIED[:5]
    queries = np.stack([embedder.embed_query(q) for q in questions])
    assert queries.shape == (5, 384) and queries.dtype == np.float32
    assert cosines(queries, embedder.embed_texts(questions)).min() > 0.9999


def test_an_int8_vector_does_not_depend_on_the_texts_embedded_with_it(onnx_int8: OnnxEmbedder):
    # Activations are quantised with one scale per run: batched, a short text's vector
    # moved with its longer batchmates, so two ingests stored different vectors.
    together = onnx_int8.embed_texts([*TEXTS, long_text(300)])[: len(TEXTS)]
    alone = np.stack([onnx_int8.embed_texts([text])[0] for text in TEXTS])
    assert np.array_equal(together, alone)


def test_the_export_happens_once_per_cache(
    cache_dir: Path, onnx_int8: OnnxEmbedder, caplog: pytest.LogCaptureFixture
):
    exported = onnx_int8.onnx_path
    assert exported == cache_dir / "onnx" / "all-minilm-l6-v2-int8-v1.onnx"
    assert sorted(p.name for p in exported.parent.iterdir()) == [
        "all-minilm-l6-v2-fp32-v1.onnx",
        "all-minilm-l6-v2-int8-v1.onnx",
    ]  # no temporary files left behind
    modified = exported.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="knowledge.embed.onnx_embedder"):
        again = OnnxEmbedder(MODEL, cache_dir=cache_dir)
        again.embed_query("Is the model exported again?")
    assert not [r for r in caplog.records if "exporting" in r.getMessage()]
    assert exported.stat().st_mtime_ns == modified


def test_queries_need_no_torch_once_exported(cache_dir: Path, onnx_int8: OnnxEmbedder):
    script = (
        "import sys; from pathlib import Path\n"
        "from knowledge.embed.onnx_embedder import OnnxEmbedder\n"
        "e = OnnxEmbedder('all-MiniLM-L6-v2', cache_dir=Path(sys.argv[1]))\n"
        "assert e.embed_query('Where are the docs?').shape == (384,)\n"
        "assert e.embed_texts(['one', 'two']).shape == (2, 384) and e.count_tokens('x') == 1\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(cache_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_load_embedder_picks_the_backend(cache_dir: Path):
    torch_backend = load_embedder(MODEL, backend="torch", batch_size=16, cache_dir=cache_dir)
    assert isinstance(torch_backend, Embedder) and torch_backend.batch_size == 16
    fp32 = load_embedder(MODEL, backend="onnx", batch_size=8, cache_dir=cache_dir)
    assert isinstance(fp32, OnnxEmbedder) and not fp32.quantized and fp32.batch_size == 8
    int8 = load_embedder(MODEL, backend="onnx-int8", batch_size=8, cache_dir=cache_dir)
    assert isinstance(int8, OnnxEmbedder) and int8.quantized and int8.model_name == MODEL


def test_an_unknown_backend_is_refused_with_the_choices(cache_dir: Path):
    with pytest.raises(EmbeddingModelError, match="torch, onnx, onnx-int8"):
        load_embedder(MODEL, backend="tensorrt", batch_size=32, cache_dir=cache_dir)


def test_onnx_needs_a_model_it_can_export(tmp_path: Path):
    with pytest.raises(EmbeddingModelError, match="EMBEDDING_BACKEND=torch"):
        load_embedder("org/some-hub-model", backend="onnx", batch_size=32, cache_dir=tmp_path)
    cls_pooled = copy_model_configs(tmp_path / "cls-model")
    pooling = cls_pooled / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False}))
    with pytest.raises(EmbeddingModelError, match="mean pooling"):
        load_embedder(str(cls_pooled), backend="onnx", batch_size=32, cache_dir=tmp_path)


def test_a_failed_export_says_how_to_go_on(tmp_path: Path):
    broken = copy_model_configs(tmp_path / "broken-model")
    (broken / "model.safetensors").write_bytes(b"not a model")
    embedder = OnnxEmbedder(str(broken), quantized=False, cache_dir=tmp_path / "cache")
    with pytest.raises(EmbeddingModelError, match="EMBEDDING_BACKEND=torch"):
        embedder.embed_query("anything")
    assert not os.listdir(tmp_path / "cache" / "onnx")


def copy_model_configs(target: Path) -> Path:
    """The packaged model's folder without its weights."""
    source = Path(resolve_model_path(MODEL))
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return target
