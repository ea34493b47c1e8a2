"""`teambot tune …`: adapt the embedding model to the docs, switch only if better, roll back.

The tuning modules (torch, sentence-transformers) are imported inside the commands, so that
`teambot --help` does not load them (see bot/cli.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.runtime import Runtime

BUDGET = re.compile(r"^\s*(\d+)\s*([smh])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
MAX_BUDGET_SECONDS = 24 * 3600

tune_app = typer.Typer(
    help="Tune the embedding model on your own docs (opt-in): pairs from their headings, titles "
    "and team answers; every chunk re-embedded while the current model serves; every replica and "
    "worker switched only when retrieval on held-out pages (and --eval files) gets better. "
    "Prints before/after either way; `teambot tune rollback` returns to the previous model.",
    invoke_without_command=True,
    rich_markup_mode=None,  # plain help, as the main app's (bot.cli)
)


def parse_budget(text: str) -> int:
    """``"20m"`` → 1200 seconds; units s, m, h; at most a day."""
    from bot.cli import fail

    match = BUDGET.match(text)
    if not match:
        fail(f"--budget {text!r} is not a duration; write it like 90s, 20m or 1h.")
    seconds = int(match[1]) * UNIT_SECONDS[match[2]]
    if not 0 < seconds <= MAX_BUDGET_SECONDS:
        fail(f"--budget {text!r}: give more than 0 s and at most 24h.")
    return seconds


@tune_app.callback()
def tune(
    ctx: typer.Context,
    source: Annotated[
        list[str] | None,
        typer.Option(help="Build training pairs from this source only (repeatable)."),
    ] = None,
    budget: Annotated[
        str, typer.Option(help="Training time at most (e.g. 20m); stopped runs resume.")
    ] = "20m",
    eval_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help="Also gate on this question file (`teambot eval` format, page level; repeatable).",
        ),
    ] = None,
    exclude_prefix: Annotated[
        list[str] | None,
        typer.Option(help="Pages under this path give no training pair (repeatable)."),
    ] = None,
    exclude_questions: Annotated[
        list[Path] | None,
        typer.Option(
            help="The sections these question files name give no training pair, so "
            "your evaluation questions never train the model (repeatable)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="CPU threads for training (default: half the cores)."),
    ] = None,
    no_switch: Annotated[
        bool,
        typer.Option(
            "--no-switch",
            help="Measure before/after only; never switch (the "
            "version's vectors are kept for measuring, not followed by ingest).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fine-tune the embedding model on pairs built from your docs' own headings, titles and
    team answers, re-embed every chunk in the background, and switch every replica and worker
    to it only if retrieval on held-out pages (and on --eval files) gets better. Prints
    before/after either way. `teambot tune rollback` returns to the previous model."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import replace

    from bot import render
    from bot.cli import err, runtime_of
    from knowledge.evaluation.scoring import load_questions
    from knowledge.tune.pairs import excluding
    from knowledge.tune.run import TuneOptions, tune

    seconds = parse_budget(budget)
    files = [(str(path), load_questions(path)) for path in eval_file or ()]  # bad files fail first
    options = TuneOptions(budget_seconds=seconds, sources=source or None, question_files=files,
                          switch=not no_switch)  # fmt: skip
    if threads:
        options = replace(options, threads=threads)
    kept_out = [q for path in exclude_questions or () for q in load_questions(path)]
    runtime = runtime_of(ctx)
    _check_sources(runtime, source)
    if exclude_prefix or kept_out:
        options = replace(options, skip=excluding(runtime.sessions, exclude_prefix or (), kept_out))
    s = runtime.settings
    report = tune(runtime.sessions, s.embedding_model, s.data_dir, runtime.load_embedder,
                  options, progress=render.ProgressBar(err))  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(report.text())


@tune_app.command("rollback")
def rollback(ctx: typer.Context) -> None:
    """Switch every replica and worker back to the model version that served before."""
    from bot import render
    from bot.cli import err, runtime_of
    from knowledge.tune.run import rollback

    runtime = runtime_of(ctx)
    s = runtime.settings
    replaced, restored = rollback(
        runtime.sessions, s.embedding_model, s.data_dir, runtime.load_embedder,
        progress=render.ProgressBar(err),
    )  # fmt: skip
    typer.echo(
        f"Rolled back: {restored} serves again (was {replaced}). Replicas follow within a second."
    )


def _check_sources(runtime: Runtime, names: list[str] | None) -> None:
    """Unknown source names fail before any work starts."""
    from knowledge.evaluation.run import source_roots

    if names:
        source_roots(runtime.sessions, names)
