"""`teambot tune` on the Django docs: untuned against tuned, paired, one run (issue #22).

    python -m bench.tune --db /tmp/tune/django.db            # ingests first if the file is new
    python -m bench.tune --db /tmp/tune/django.db --budget 20m --threads 2

What runs (the variant is fixed in bench/README.md before the run):
1. The Django 3.2 docs ingested as bench.retrieval ingests them (onnx-int8), unless ``--db``
   exists; the bench works on a copy, so the file stays untuned.
2. `teambot tune --no-switch --json` in a child process (wall time and peak RSS measured), with
   ``--exclude-prefix faq/`` and ``--exclude-questions`` naming every evaluation question's
   section: no evaluation question, and no FAQ page, ever becomes a training pair.
3. The three modes of bench.retrieval (known-item, hard = the FAQ's linked pages, hard on the
   448 generated headings), searched by the bot's Retriever, hybrid, over the base model's
   vectors and over the tuned version's vectors of the same chunks: recall@10, nDCG@10 and MRR
   with tuned − untuned per question and a paired bootstrap 95% interval (bench/paired.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import select

from bench.hard_questions import to_json
from bench.measure import measure
from bench.paired import paired
from bench.refresh_site import DJANGO_DOCS, DJANGO_EXCLUDES, serve
from bench.retrieval import (
    EVAL,
    Mode,
    Result,
    evaluate,
    generated_questions,
    modes,
    teambot_ranker,
)  # fmt: skip
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.evaluation.scoring import load_questions
from knowledge.retrieval.versioned import ModelChoice
from knowledge.storage.documents import Source
from knowledge.storage.models import version_named
from knowledge.tune.run import retriever

REPO = Path(__file__).resolve().parents[1]
TEAMBOT = [sys.executable, "-c", "from bot.cli import main; main()"]
METRICS = (("recall@10", "recall@10"), ("ndcg@10", "nDCG@10"), ("mrr", "MRR"))


def ingest(db: Path, env: dict[str, str], port: int) -> float:
    """The Django docs into ``db``, as bench.retrieval does it; returns seconds."""
    server = serve(DJANGO_DOCS, port)
    try:
        add = [*TEAMBOT, "sources", "add", f"http://127.0.0.1:{port}/", "--name", "django",
               "--allow-private", "--max-pages", "5000"]  # fmt: skip
        for pattern in DJANGO_EXCLUDES:
            add += ["--exclude", pattern]
        subprocess.run(add, env=env, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        print("ingesting the Django docs…", file=sys.stderr)
        return float(measure([*TEAMBOT, "refresh", "django"], REPO, env)["seconds"])
    finally:
        server.terminate()


def mrr_rows(result: Result) -> list[float]:
    return [1 / r["first_relevant_rank"] if r["first_relevant_rank"] else 0.0
            for r in result.per_question]  # fmt: skip


def table(all_modes: list[Mode], before: dict[str, Result], after: dict[str, Result]) -> str:
    lines = ["| mode | n | metric | untuned | tuned | tuned − untuned [95% CI] |",
             "|---|---:|---|---:|---:|---|"]  # fmt: skip
    for mode in all_modes:
        b, a = before[mode.name], after[mode.name]
        for key, label in METRICS:
            if key == "mrr":
                xs, ys = mrr_rows(a), mrr_rows(b)
            else:
                xs, ys = [r[key] for r in a.per_question], [r[key] for r in b.per_question]
            mean, low, high = paired(xs, ys)
            before_mean, after_mean = sum(ys) / len(ys), sum(xs) / len(xs)
            lines.append(f"| {mode.name} | {b.metrics.n} | {label} | {before_mean:.3f} | "
                         f"{after_mean:.3f} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--db", type=Path, required=True, help="the ingested Django docs (kept)")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMBEDDING_BACKEND": "onnx-int8",
           "DATABASE_URL": f"sqlite:///{args.db}",
           "TEAMBOT_DATA_DIR": str(work / "data")}  # fmt: skip
    if not args.db.exists():
        print(f"ingest: {ingest(args.db, env, args.port):.0f} s", file=sys.stderr)
    db = work / "django.db"
    shutil.copyfile(args.db, db)
    env["DATABASE_URL"] = f"sqlite:///{db}"

    faq = load_questions(EVAL)
    generated = generated_questions()
    questions = work / "questions.jsonl"
    questions.write_text("".join(to_json(q) + "\n" for q in generated) +
                         "".join(json.dumps({"question": q.question, "page": q.page,
                                             "anchor": q.anchor}) + "\n" for q in faq))  # fmt: skip
    command = [*TEAMBOT, "tune", "--budget", args.budget, "--threads", str(args.threads),
               "--no-switch", "--json", "--exclude-prefix", "faq/",
               "--exclude-questions", str(questions)]  # fmt: skip
    print("tuning (child process)…", file=sys.stderr)
    out = work / "tune.json"
    run = measure(command, REPO, env, stdout=out)
    report = json.loads(out.read_text())
    print(json.dumps({"command": run, **report}, indent=2))

    runtime = Runtime(Settings(_env_file=None, database_url=f"sqlite:///{db}",  # type: ignore[call-arg]
                               data_dir=work / "data", embedding_backend="onnx-int8"))  # fmt: skip
    with runtime.sessions() as session:
        roots = dict(session.execute(select(Source.name, Source.location)).all())
        version = version_named(session, report["version"])
        assert version is not None and version.path
    base = runtime.settings.embedding_model
    tuned = runtime.load_embedder(ModelChoice(version.name, work / "data" / version.path))
    untuned = runtime.load_embedder(ModelChoice(base))
    all_modes = modes(faq, generated)
    results = {}
    for name, embedder in (("untuned", untuned), ("tuned", tuned)):
        print(f"evaluating {name}…", file=sys.stderr)
        rank = teambot_ranker(retriever(runtime.sessions, embedder), runtime.sessions, roots)
        results[name] = {mode.name: evaluate(mode, rank) for mode in all_modes}
    print(table(all_modes, results["untuned"], results["tuned"]))
    print(f"\ntune: {run['seconds']:.0f} s wall, peak RSS {run['peak_mb']:.0f} MB, exit "
          f"{run['exit']}; stages: {report['seconds']}")  # fmt: skip


if __name__ == "__main__":
    main()
