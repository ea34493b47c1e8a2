"""The `teambot` command: ask and chat in a terminal, ingest docs, manage the database.

Every failure a user can cause or fix ends in one clear line and a non-zero exit, never
a traceback: ``Error: …`` on stderr, or ``{"error": "…"}`` on stdout when the command was
asked for ``--json``. URLs in that line have their passwords and secret parameters masked.

It starts at once: this module imports typer and little else, and each command imports
what it needs (SQLAlchemy, the embedder, FAISS, the admin module) when it runs. Settings
are read by the first command that needs them, so every ``--help`` skips them too.
tests/test_cli_imports.py keeps it so.
"""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from bot.cli_console import console_cli
from bot.cli_llm import llm_app
from bot.cli_tune import tune_app
from bot.runtime import Runtime
from knowledge.crawl.urls import mask_url, mask_urls_in
from knowledge.errors import TeambotError

if TYPE_CHECKING:
    from bot.admin import Actor
    from bot.types import Question
    from knowledge.evaluation.scoring import EvalQuestion

CLI_PLATFORM = "cli"
CLI_CHANNEL = "terminal"
DEMO_SOURCE = "teambot-guide"
DEMO_QUESTION = "How do I use PostgreSQL instead of SQLite?"
BUNDLED_DOCS = Path(__file__).resolve().parent.parent / "docs"

JSON_OUTPUT = "teambot.json_output"  # ctx.meta key: the command line asked for --json
VERBOSE = "teambot.verbose"  # ctx.meta key: -v, for the logging set up with the settings
# typer's UsageError (typer carries its own copy of click): public only as BadParameter's base.
USAGE_ERROR: type[Exception] = typer.BadParameter.__base__

err = Console(stderr=True)


class CommandFailed(TeambotError):
    """A failure the user can fix, raised by ``fail`` and reported by the command group."""


def fail(message: str) -> NoReturn:
    """End the command with one clear line and exit code 1 (see ``_UserErrors``)."""
    raise CommandFailed(message)


def warn(message: str) -> None:
    """One ``Error: …`` line on stderr, its URLs masked, for a failure the command survives."""
    typer.echo(f"Error: {mask_urls_in(message)}", err=True)


class _UserErrors(typer.core.TyperGroup):
    """Turns the errors a user can fix into one line and a non-zero exit: ``{"error": …}``
    on stdout when the command line asks for --json, else ``Error: …`` on stderr."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        # Noted before anything can fail, so that every failure of a --json command line
        # (a usage error, a bad setting) is JSON.
        ctx.meta[JSON_OUTPUT] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except Exception as exc:
            failure = _user_failure(exc, ctx)
            if failure is None:
                raise
            message, exit_code = mask_urls_in(failure[0]), failure[1]
            if ctx.meta.get(JSON_OUTPUT):
                typer.echo(json.dumps({"error": message}, ensure_ascii=False))
            else:
                warn(message)
            raise typer.Exit(exit_code) from None


def _user_failure(exc: Exception, ctx: typer.Context) -> tuple[str, int] | None:
    """The message and exit code for an error the user can fix; None for anything else.

    Usage errors are left to click (which prints them with the usage) unless JSON is wanted."""
    if isinstance(exc, TeambotError):  # written to be read: CommandFailed and every domain error
        return str(exc), 1
    if _is_database_error(exc):
        runtime = ctx.find_object(Runtime)
        url = mask_url(runtime.settings.database_url) if runtime else "(unknown)"
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
        return f"Cannot use the database {url}: {reason}. Check DATABASE_URL.", 1
    if isinstance(exc, USAGE_ERROR) and ctx.meta.get(JSON_OUTPUT):
        return exc.format_message(), exc.exit_code  # type: ignore[attr-defined]
    return None


def _is_database_error(exc: Exception) -> bool:
    """An OperationalError (the database is unreachable or refuses us); only a command that
    loaded SQLAlchemy can raise one, and importing it here to ask would cost half a second."""
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy_errors is not None and isinstance(exc, sqlalchemy_errors.OperationalError)


app = typer.Typer(
    cls=_UserErrors,
    help="teambot answers questions from your team's docs, with citations.\n\n"
    'Start with `teambot demo`, then `teambot ingest PATH` and `teambot ask "..."`.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich panels import rich.markdown and markdown-it, and cost --help
    # about 100 ms (bench/cli_start.py); the plain text says the same.
    rich_markup_mode=None,
)
sources_app = typer.Typer(
    help="Add, remove and list the sources teambot ingests (doc sites, sitemaps, pages, folders).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
db_app = typer.Typer(
    help="Manage the database schema (Alembic migrations).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(sources_app, name="sources")
app.add_typer(db_app, name="db")
app.add_typer(llm_app, name="llm")
app.add_typer(console_cli, name="console")
app.add_typer(tune_app, name="tune")


@app.callback()
def _setup(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False,
) -> None:
    ctx.meta[VERBOSE] = verbose  # the settings wait for runtime_of: `teambot X --help` skips them


def runtime_of(ctx: typer.Context) -> Runtime:
    """The command's Runtime, made on first use: settings read, logging set up, closed with
    the command line."""
    root = ctx.find_root()
    if not isinstance(root.obj, Runtime):
        root.obj = _load_runtime(verbose=bool(root.meta.get(VERBOSE)))
        root.call_on_close(root.obj.close)
    return root.obj


def _load_runtime(*, verbose: bool) -> Runtime:
    from pydantic import ValidationError

    from bot.logs import configure_logging
    from bot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"Invalid setting — {problems}")
    configure_logging("DEBUG" if verbose else settings.log_level, settings.secret_values())
    return Runtime(settings)


def _actor() -> Actor:
    """Who runs a command in this terminal, for the admin commands (trusted, see bot.admin)."""
    from bot.admin import Actor

    return Actor(CLI_PLATFORM, getpass.getuser())


def _question(text: str, thread: str, where: str | None = None) -> Question:
    """The terminal's question; ``where`` (``slack:C123``) asks it as if in that channel."""
    from bot.admin.access import parse_actor
    from bot.admin.channel import SHAPE
    from bot.types import Question

    platform, channel = CLI_PLATFORM, CLI_CHANNEL
    if where:
        place = parse_actor(where, SHAPE)
        platform, channel = place.platform, place.user_id
    return Question(
        platform=platform, channel=channel, thread=thread, user=getpass.getuser(), text=text
    )


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="What you want to know, in quotes.")],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: answer, citations, model, provider, route, timings, "
            "tokens, search_query, rewrite, confidence, abstained, might_help.",
        ),
    ] = False,
    thread: Annotated[
        str | None,
        typer.Option(
            help="Continue the conversation with this name, so follow-ups see its history."
        ),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", min=1, max=20, help="Passages to use (default: TOP_K)."),
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(
            help="Answer as if asked in this chat channel (PLATFORM:CHANNEL, e.g. slack:C0123): "
            "its sources and settings, and a private channel's own history, which is used "
            "nowhere else."
        ),
    ] = None,
) -> None:
    """Ask one question and print the answer with numbered citations."""
    from bot.core import validate_question

    runtime = runtime_of(ctx)
    if top_k is not None:
        runtime.settings = runtime.settings.model_copy(update={"top_k": top_k})
    validate_question(question, runtime.settings.max_question_chars)  # before loading the model
    asked = _question(question, thread or uuid.uuid4().hex, channel)
    if as_json:
        answer = runtime.assistant.ask(asked)
        typer.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_streamed(runtime, asked)


@app.command()
def why(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question to explain, in quotes.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what teambot would do with a question, without answering it: the passages it
    considers, each method's score and rank, the confidence, and why it would answer or say
    the docs do not cover it."""
    from bot.core import validate_question
    from bot.why import explanation_text

    runtime = runtime_of(ctx)
    validate_question(question, runtime.settings.max_question_chars)  # before loading the model
    explained = runtime.assistant.explain(_question(question, uuid.uuid4().hex))
    if as_json:
        typer.echo(json.dumps(explained.to_json(), ensure_ascii=False, indent=2))
    else:
        typer.echo(explanation_text(explained))


def _print_streamed(runtime: Runtime, question: Question, prefix: str = "") -> None:
    """Print the answer as the model writes it, then its sources; a model that fails
    mid-answer is announced on stderr and the next model's answer starts on a new line."""
    from bot import render
    from bot.types import Delta, Restart

    shown = ""
    typer.echo(prefix, nl=False)
    for event in runtime.assistant.stream(question):
        if isinstance(event, Delta):
            shown += event.text
            typer.echo(event.text, nl=False)
        elif isinstance(event, Restart):
            typer.echo("")
            err.print(f"({event.reason}; asking the next model)")
            shown = ""
            typer.echo(prefix, nl=False)
        elif shown and shown.strip() == event.text:
            typer.echo(render.sources_text(event))
        else:  # nothing streamed (extractive), or the final text was cleaned up
            typer.echo(("\n" if shown else "") + render.answer_text(event))


@app.command()
def chat(
    ctx: typer.Context,
    thread: Annotated[
        str | None, typer.Option(help="Resume the conversation with this name.")
    ] = None,
) -> None:
    """Talk to teambot in one conversation; /new starts another, /quit (or Ctrl-D) leaves."""
    from bot.errors import BotError

    runtime = runtime_of(ctx)
    thread = thread or uuid.uuid4().hex
    err.print("Ask a question about your docs. /new starts a new conversation, /quit leaves.")
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo()
            return
        if text in ("/quit", "/exit"):
            return
        if text == "/new":
            thread = uuid.uuid4().hex
            err.print("(new conversation)")
            continue
        if not text:
            continue
        try:
            _print_streamed(runtime, _question(text, thread), prefix="teambot> ")
        except BotError as exc:
            warn(str(exc))
            continue
        typer.echo()


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A folder of .md, .html, .txt or .rst files.")],
    name: Annotated[
        str | None, typer.Option(help="Name of the source (default: the folder's name).")
    ] = None,
) -> None:
    """Index a local folder; re-running it embeds only what changed."""
    from bot import render
    from knowledge.ingest.local import ingest_folder

    runtime = runtime_of(ctx)
    report = ingest_folder(
        runtime.sessions, runtime.embedder, path, name=name, progress=render.ProgressBar(err)
    )
    typer.echo(mask_urls_in(report.summary()))


@sources_app.command("add")
def sources_add(
    ctx: typer.Context,
    location: Annotated[
        str,
        typer.Argument(
            help="Start URL, sitemap URL, page URL, folder, git repository, or a Slack channel "
            "('#name' or its id)."
        ),
    ],
    name: Annotated[
        str,
        typer.Option(
            help="A short name to refer to the source by (a Slack channel's default: slack-NAME)."
        ),
    ] = "",
    kind: Annotated[
        str | None,
        typer.Option(
            help="site, sitemap, page, folder, git or slack-channel (default: guessed from "
            "LOCATION)."
        ),
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="Only URLs matching this regex (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Never URLs matching this regex (repeatable).")
    ] = None,
    max_pages: Annotated[int | None, typer.Option(help="Stop after this many pages.")] = None,
    max_depth: Annotated[int | None, typer.Option(help="Follow links this deep.")] = None,
    every: Annotated[str | None, typer.Option(help="Refresh interval, e.g. 30m, 6h, 1d.")] = None,
    cron: Annotated[str | None, typer.Option(help='Refresh schedule, e.g. "0 3 * * *".')] = None,
    allow_private: Annotated[
        bool,
        typer.Option(help="Allow private/loopback addresses (intranet docs) for this source."),
    ] = False,
    branch: Annotated[
        str | None, typer.Option(help="git: the branch to index (default: main).")
    ] = None,
    path: Annotated[
        str | None, typer.Option(help="git: only this folder of the repository, e.g. docs/.")
    ] = None,
    web_url: Annotated[
        str | None,
        typer.Option(
            help="git: where citations link, e.g. '{base}/blob/{commit}/{path}#{anchor}' "
            "(default: the file's path and heading)."
        ),
    ] = None,
) -> None:
    """Register a source; `teambot refresh NAME` (or the worker) then indexes it.

    A git repository (--kind git) is an https:// URL or a local path; it is cloned once
    into TEAMBOT_DATA_DIR and fetched on each refresh, which reads only the files that changed.
    """
    from bot.admin.commands import TERMINAL, add_source_as
    from knowledge.ingest.sources import SourceSpec

    spec = SourceSpec(
        name=name,
        location=location,
        kind=kind,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        max_pages=max_pages,
        max_depth=max_depth,
        every=every,
        cron=cron,
        allow_private=allow_private,
        branch=branch,
        path=path,
        web_url=web_url,
    )
    typer.echo(add_source_as(runtime_of(ctx), _actor(), spec, TERMINAL))


@sources_app.command("remove")
def sources_remove(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The source's name.")]
) -> None:
    """Delete a source with all its documents and chunks."""
    from bot.admin.commands import remove_source_named

    typer.echo(remove_source_named(runtime_of(ctx), name))


@app.command("refresh")
def refresh_command(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The source to refresh (default: every source).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the run's counts.")
    ] = False,
) -> None:
    """Refresh sources now: fetch what changed, embed only changed chunks, drop what is gone."""
    from sqlalchemy import select

    from bot import render
    from bot.admin.slack_sources import slack_access_of
    from knowledge.errors import KnowledgeError
    from knowledge.ingest.progress import NullProgress
    from knowledge.ingest.refresh import refresh
    from knowledge.storage.answers import TEAM_ANSWERS
    from knowledge.storage.documents import Source

    runtime = runtime_of(ctx)
    with runtime.sessions() as session:
        built_in = Source.kind == TEAM_ANSWERS  # indexed as answers are saved
        everything = select(Source.name).where(~built_in).order_by(Source.name)
        names = [name] if name else list(session.scalars(everything))
    if not names:
        fail("No sources yet. Add one with `teambot sources add URL --name NAME`.")
    progress = NullProgress() if as_json else render.ProgressBar(err)
    reports, failures = [], {}
    for each in names:  # one source failing does not stop the others
        try:
            reports.append(
                refresh(
                    runtime.sessions,
                    runtime.embedder,
                    each,
                    limits=runtime.crawl_limits,
                    progress=progress,
                    data_dir=runtime.settings.data_dir,
                    slack=slack_access_of(runtime.settings),
                )
            )
        except KnowledgeError as exc:
            if name:
                raise
            failures[each] = str(exc)
            if not as_json:
                warn(f"source {each!r}: {exc}")
    if as_json:
        summary = render.refresh_json(reports, single=bool(name))
        if not name:
            summary["failed_sources"] = failures
        typer.echo(mask_urls_in(json.dumps(summary, indent=2)))
    else:
        typer.echo(mask_urls_in("\n".join(r.summary() for r in reports)))
    if failures:
        raise typer.Exit(1)


@sources_app.command("list")
def sources_list(ctx: typer.Context) -> None:
    """Each source with its documents, chunks and last ingestion run."""
    from bot import render
    from bot.admin.commands import TERMINAL, listed_sources

    summaries = listed_sources(runtime_of(ctx))
    if not summaries:
        typer.echo(TERMINAL.no_sources)
        return
    Console().print(render.sources_table(summaries))


@app.command(
    "admin",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def admin_command(
    ctx: typer.Context,
    words: Annotated[
        list[str] | None,
        typer.Argument(help="An admin command line; `teambot admin help` lists them."),
    ] = None,
) -> None:
    """Admin commands (sources, status, channel settings, stats, forget, admins), audited."""
    from bot.admin import run_admin
    from bot.audience import OPERATOR

    result = run_admin(runtime_of(ctx), _actor(), words or [], audience=OPERATOR)
    if not result.ok:
        fail(result.text)
    typer.echo(mask_urls_in(result.text))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply every pending migration (run this before starting teambot on PostgreSQL)."""
    from knowledge.storage import schema

    engine = runtime_of(ctx).engine
    schema.upgrade(engine)
    typer.echo(f"Database at revision {schema.current_revision(engine)}.")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the database's schema revision and the one this teambot needs."""
    from knowledge.storage import schema

    engine = runtime_of(ctx).engine
    current, head = schema.current_revision(engine), schema.head_revision(engine)
    typer.echo(f"current: {current or 'empty'}  head: {head}")


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    questions: Annotated[
        Path, typer.Argument(help="JSON lines: question, page + anchor and/or linked_pages.")
    ],
    source: Annotated[
        list[str] | None, typer.Option(help="Search only this source (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Results per question.")] = 10,
    level: Annotated[
        str, typer.Option(help="section (page#anchor must match) or page.")
    ] = "section",
    exclude_prefix: Annotated[
        list[str] | None,
        typer.Option(help="Drop pages under this path from the candidates (hard mode: faq/)."),
    ] = None,
    exclude_own_page: Annotated[
        bool,
        typer.Option(
            help="Drop each question's own page from its candidates and score its "
            "linked_pages (hard mode for questions taken from the indexed pages; --level page)."
        ),
    ] = False,
    method: Annotated[str, typer.Option(help="hybrid, dense or bm25.")] = "hybrid",
    answerability: Annotated[
        bool,
        typer.Option(
            "--answerability",
            help="Score confidence and abstention instead: each line needs `answerable` "
            "(true/false); prints auroc, answer_rate, abstain_rate, n_answerable, "
            "n_unanswerable at MIN_CONFIDENCE. --exclude-prefix applies to answerable questions.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score retrieval on a question file: recall@1/5/10, MRR and nDCG@10 (or, with
    --answerability, how well teambot tells questions its docs answer from the rest)."""
    from knowledge.evaluation.run import evaluate_retrieval
    from knowledge.evaluation.scoring import load_questions
    from knowledge.retrieval.search import METHODS

    if level not in ("section", "page"):
        fail(f"--level {level!r}: use section or page.")
    if exclude_own_page and level != "page" and not answerability:
        fail("--exclude-own-page scores the linked pages, which name no section: add --level page.")
    if method not in METHODS:
        fail(f"--method {method!r}: use one of {', '.join(METHODS)}.")
    asked = load_questions(questions)  # a bad file fails before the model is loaded
    runtime = runtime_of(ctx)
    if answerability:
        _eval_answerability(runtime, asked, source, exclude_prefix, exclude_own_page, method,
                            as_json=as_json)  # fmt: skip
        return
    result = evaluate_retrieval(
        runtime.retriever,
        runtime.sessions,
        asked,
        sources=source or None,
        k=k,
        level=level,  # type: ignore[arg-type]
        exclude_prefixes=tuple(exclude_prefix or ()),
        method=method,  # type: ignore[arg-type]
        exclude_own_page=exclude_own_page,
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(result.table())


def _eval_answerability(
    runtime: Runtime,
    asked: list[EvalQuestion],
    source: list[str] | None,
    exclude_prefix: list[str] | None,
    exclude_own_page: bool,
    method: str,
    *,
    as_json: bool,
) -> None:
    """`eval --answerability`: questions judged as the bot would, at MIN_CONFIDENCE."""
    from knowledge.evaluation.answerability import evaluate_answerability

    settings = runtime.settings
    result = evaluate_answerability(
        runtime.retriever,
        runtime.sessions,
        asked,
        sources=source or None,
        k=settings.top_k,
        exclude_prefixes=tuple(exclude_prefix or ()),
        method=method,  # type: ignore[arg-type]
        threshold=settings.min_confidence,
        min_relevance=settings.min_relevance,
        exclude_own_page=exclude_own_page,
    )
    typer.echo(json.dumps(result.to_json()) if as_json else result.table(settings.min_confidence))


@app.command()
def config(ctx: typer.Context) -> None:
    """Print the effective settings (environment and .env), secrets masked."""
    for name, value in runtime_of(ctx).settings.masked().items():
        typer.echo(f"{name}={value}")


@app.command()
def demo(
    ctx: typer.Context,
    question: Annotated[str, typer.Option(help="The question to ask.")] = DEMO_QUESTION,
) -> None:
    """Index teambot's own user guide and answer a question about it."""
    if not BUNDLED_DOCS.is_dir():
        fail(
            f"The bundled guide is not at {BUNDLED_DOCS}. Install teambot from a clone "
            "with `pip install -e .` to run the demo."
        )
    ingest(ctx, BUNDLED_DOCS, name=DEMO_SOURCE)
    typer.echo(f"\nQ: {question}\n")
    ask(ctx, question, as_json=False, thread=None, top_k=None)
    typer.echo(
        '\nNext: teambot ask "your question", teambot chat, or teambot ingest PATH for your docs.'
    )


@app.command()
def worker(ctx: typer.Context) -> None:
    """Refresh each source on its schedule, and when an admin asks, until stopped.

    Several workers can share one PostgreSQL: each run goes to one of them.

    `teambot admin status` lists the running workers and each source's next run."""
    from bot.digest import post_digest
    from bot.retention import forget_expired
    from workers.scheduler import run_forever

    run_forever(runtime_of(ctx), forget_expired, post_digest)


@app.command()
def serve(
    ctx: typer.Context,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="Also refresh sources on schedule in this process (what `teambot worker` "
            "does): one process for a small team.",
        ),
    ] = False,
) -> None:
    """Run the chat adapters whose tokens are set: Slack (HTTP events or Socket Mode) and Discord,
    with /healthz and /metrics on TEAMBOT_HOST:TEAMBOT_PORT in every mode."""
    from bot.serve import serve as run_adapters

    run_adapters(runtime_of(ctx), with_worker=worker)


@app.command("discord")
def discord_command(ctx: typer.Context) -> None:
    """Run only the Discord bot (DISCORD_TOKEN), until stopped."""
    from bot.discord.app import run_discord

    run_discord(runtime_of(ctx))


def main() -> None:
    app()
