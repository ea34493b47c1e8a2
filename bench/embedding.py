"""Embedding speed and quality: plain sentence-transformers against teambot's three backends.

    python -m bench.embedding                     # 1,000 chunks, 3 rounds, 200 queries
    python -m bench.embedding --chunks 2000 --rounds 5

The chunks are teambot's own user guide (docs/), extracted and chunked as an
ingest would; when there are fewer than --chunks, they are repeated with a
short numbered prefix. Throughput runs are interleaved (baseline, torch,
ONNX fp32, ONNX int8, then again starting one further), because runs minutes
apart drift by ±8% on a shared machine: "×" is the median of each round's
ratio to that round's baseline. Queries (the first ~12 words of a chunk) are
timed one at a time, in blocks per variant. Quality is against the
baseline's vectors: the cosine of each chunk's vector, and the overlap of the
top-10 neighbours among the distinct chunks for 100 of them used as queries
(themselves excluded). "export s" is the first use of an ONNX backend in a
fresh process: torch import, export, quantisation and session.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.measure import measure
from knowledge.embed.embedder import Embedder, resolve_model_path
from knowledge.embed.onnx_embedder import OnnxEmbedder
from knowledge.ingest.chunk import chunk_page
from knowledge.ingest.extract import extract

ROOT = Path(__file__).resolve().parent.parent
MODEL = "all-MiniLM-L6-v2"
BATCH_SIZE = 32
NEIGHBOURS = 10
OVERLAP_QUERIES = 100
QUERY_BLOCKS = 4
QUERY_WORDS = 12
WARM_UP_TEXTS = 64

EXPORT_SCRIPT = """\
import sys
from pathlib import Path
from knowledge.embed.onnx_embedder import OnnxEmbedder
model, variant, cache = sys.argv[1:]
OnnxEmbedder(model, quantized=variant == "int8", cache_dir=Path(cache)).embed_query("x")
"""


@dataclass
class Variant:
    """One way of embedding and what was measured of it."""

    label: str
    embed: Callable[[list[str]], np.ndarray]
    query: Callable[[str], np.ndarray]
    export: dict[str, float] | None = None
    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    query_seconds: list[float] = field(default_factory=list)
    vectors: np.ndarray | None = None
    overlap: float = 0.0


def doc_chunks(embedder: Embedder) -> list[str]:
    """The texts an ingest of docs/ would embed, in order."""
    texts: list[str] = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        page = extract(path.read_text(), suffix=path.suffix, fallback_title=path.stem)
        drafts = chunk_page(page, embedder.count_tokens, embedder.max_tokens)
        texts += [d.embed_text for d in drafts]
    return texts


def repeated(texts: list[str], count: int) -> list[str]:
    """``count`` texts: ``texts``, then again with "(1) ", "(2) "… in front."""
    return [
        texts[i] if i < len(texts) else f"({i // len(texts)}) {texts[i % len(texts)]}"
        for i in range(count)
    ]


def questions(texts: list[str], count: int) -> list[str]:
    """Short query-like texts: the first words of each chunk's body, without Markdown."""
    bodies = [re.sub(r"[#*`>\[\]()|-]+", " ", t.split("\n\n", 1)[-1]) for t in texts]
    firsts = [" ".join(body.split()[:QUERY_WORDS]) for body in bodies]
    return [firsts[i % len(firsts)] for i in range(count)]


def variants(cache_dir: Path) -> list[Variant]:
    """The baseline first, then teambot's backends; the ONNX ones exported in a fresh process."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    default_threads = torch.get_num_threads()
    model = SentenceTransformer(resolve_model_path(MODEL), device="cpu")

    def plain(call: Callable[[], np.ndarray]) -> np.ndarray:
        if torch.get_num_threads() != default_threads:  # teambot's Embedder changes them
            torch.set_num_threads(default_threads)
        return call()

    found = [
        Variant(
            "sentence-transformers encode() (baseline)",
            lambda texts: plain(lambda: model.encode(texts, batch_size=BATCH_SIZE)),
            lambda text: plain(lambda: model.encode(text)),
        )
    ]
    teambot = Embedder(MODEL, batch_size=BATCH_SIZE)
    found.append(Variant("teambot torch Embedder", teambot.embed_texts, teambot.embed_query))
    for quantized, label in ((False, "ONNX Runtime fp32"), (True, "ONNX Runtime int8")):
        print(f"exporting: {label}", file=sys.stderr)
        command = [sys.executable, "-c", EXPORT_SCRIPT, MODEL, label[-4:], str(cache_dir)]
        export = measure(command, ROOT, dict(os.environ))
        onnx = OnnxEmbedder(MODEL, quantized=quantized, cache_dir=cache_dir)
        found.append(Variant(label, onnx.embed_texts, onnx.embed_query, export=export))
    return found


def time_batches(variants: list[Variant], texts: list[str], rounds: int) -> None:
    for v in variants:  # warm up: first calls allocate memory and pick kernels
        v.embed(texts[:WARM_UP_TEXTS])
        v.query("warm up")
    for round_ in range(rounds):
        shift = round_ % len(variants)
        rates: dict[str, float] = {}
        for v in variants[shift:] + variants[:shift]:
            print(f"round {round_ + 1}: {v.label}", file=sys.stderr)
            started = time.perf_counter()
            vectors = v.embed(texts)
            rates[v.label] = len(texts) / (time.perf_counter() - started)
            v.rates.append(rates[v.label])
            if v.vectors is None:
                v.vectors = vectors
        for v in variants:
            v.ratios.append(rates[v.label] / rates[variants[0].label])


def time_queries(variants: list[Variant], queries: list[str]) -> None:
    block = -(-len(queries) // QUERY_BLOCKS)
    for start in range(0, len(queries), block):
        for v in variants:
            for text in queries[start : start + block]:
                started = time.perf_counter()
                v.query(text)
                v.query_seconds.append(time.perf_counter() - started)


def neighbour_overlap(variants: list[Variant], distinct: list[str]) -> None:
    """Top-10 neighbours among the distinct chunks, each variant against the baseline's."""
    step = max(1, len(distinct) // OVERLAP_QUERIES)
    rows = list(range(0, len(distinct), step))[:OVERLAP_QUERIES]
    reference: np.ndarray | None = None
    for v in variants:
        assert v.vectors is not None
        scores = np.stack([v.query(distinct[i]) for i in rows]) @ v.vectors[: len(distinct)].T
        scores[np.arange(len(rows)), rows] = -np.inf  # a chunk is not its own neighbour
        found = np.argsort(-scores, axis=1)[:, :NEIGHBOURS]
        reference = found if reference is None else reference
        shared = [len(set(a) & set(b)) for a, b in zip(found, reference, strict=True)]
        v.overlap = float(np.mean(shared)) / NEIGHBOURS


def print_table(variants: list[Variant]) -> None:
    baseline = variants[0].vectors
    print(
        "| variant | chunks/s | × baseline | query ms p50 | cos mean / min | top-10 overlap |",
        end="",
    )
    print(" export s |\n|---|---|---|---|---|---|---|")
    for v in variants:
        assert v.vectors is not None and baseline is not None
        cos = (v.vectors * baseline).sum(axis=1)
        export = f"{v.export['seconds']:.1f}" if v.export else "—"
        print(
            f"| {v.label} | {statistics.median(v.rates):.1f} | {statistics.median(v.ratios):.2f} "
            f"| {statistics.median(v.query_seconds) * 1000:.1f} "
            f"| {cos.mean():.4f} / {cos.min():.4f} | {v.overlap:.3f} | {export} |"
        )


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=1000, help="texts embedded per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--queries", type=int, default=200, help="single queries per variant")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as cache_dir:
        measured = variants(Path(cache_dir))
        counter = Embedder(MODEL)
        distinct = doc_chunks(counter)[: args.chunks]
        texts = repeated(distinct, args.chunks)
        time_batches(measured, texts, args.rounds)
        time_queries(measured, questions(distinct, args.queries))
        neighbour_overlap(measured, distinct)

    print_table(measured)
    import onnxruntime
    import torch

    tokens = statistics.median(min(counter.count_tokens(t) + 2, counter.max_tokens) for t in texts)
    exports = ", ".join(
        f"{v.label[-4:]} {v.export['peak_mb']:.0f} MB" for v in measured if v.export
    )
    print(
        f"\n{len(texts)} chunks of docs/ ({len(distinct)} distinct, median {tokens:.0f} word "
        f"pieces), torch rows in batches of {BATCH_SIZE}, ONNX rows a text per session and "
        f"core, median of {args.rounds} interleaved rounds; "
        f"{args.queries} single queries of {QUERY_WORDS} words; top-10 overlap among the "
        f"{len(distinct)} distinct chunks. Peak RSS of the export process: {exports}."
    )
    spread = "; ".join(
        f"{v.label}: " + ", ".join(f"{r:.2f}" for r in v.ratios) for v in measured[1:]
    )
    print(f"× baseline in each round: {spread}.")
    print(
        f"{os.cpu_count()} CPUs ({cpu_name()}), Python {sys.version.split()[0]}, "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )


if __name__ == "__main__":
    main()
