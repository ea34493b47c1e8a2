"""The admin commands, one implementation for the terminal, Slack and Discord.

Adapters only translate: they turn a chat message into an ``Actor`` and a
word list (``shlex.split`` of the text after the command) and post
``AdminResult.text`` back. ``run_admin`` checks permission, parses, runs and
audits; each command is a small function from parsed words to plain text.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import retention
from bot.admin import access, activity, answers, channel, gaps, slack_sources, source_edit
from bot.admin.access import Actor
from bot.admin.text import columns
from bot.audience import PUBLIC, Audience
from bot.errors import AdminError, TeambotError
from bot.llm.health import model_health_lines
from bot.llm.router import ROUTES, Router
from bot.settings import Settings
from bot.types import Question
from bot.why import explanation_text
from knowledge.crawl.crawler import CrawlLimits
from knowledge.crawl.urls import mask_url, mask_urls_in
from knowledge.embed.embedder import TextEmbedder
from knowledge.ingest.answers import remove_authored
from knowledge.ingest.refresh import refresh
from knowledge.ingest.sources import SourceSpec, add_source, guess_kind, remove_source
from knowledge.storage import coordination, store
from knowledge.storage.answers import TEAM_ANSWERS
from knowledge.storage.documents import Document, Source
from knowledge.storage.processes import Heartbeat
from knowledge.storage.slack_history import SLACK_CHANNEL, channel_states

if TYPE_CHECKING:
    from bot.core import Assistant

REFUSED = (
    "Only teambot admins can run admin commands; "
    "ask an admin to add you with `admin admins add PLATFORM:USER`."
)
HELP_WORDS = ("help", "--help", "-h")
MAX_DAYS = 90


class AdminDeps(Protocol):
    """What the commands use; ``bot.runtime.Runtime`` is one."""

    settings: Settings

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def embedder(self) -> TextEmbedder: ...

    @property
    def crawl_limits(self) -> CrawlLimits: ...

    @property
    def router(self) -> Router: ...

    @property
    def assistant(self) -> Assistant: ...


@dataclass(frozen=True)
class AdminResult:
    ok: bool
    text: str


@dataclass(frozen=True)
class ReplyTarget:
    """Where a command came from in chat, so a result that comes later (a refresh a worker
    ran) can be posted there; ``user_id`` set: only that person sees it (Slack's /teambot)."""

    platform: str
    channel: str
    thread: str | None = None
    user_id: str | None = None

    def as_notify(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Args:
    words: list[str]
    options: dict[str, str] = field(default_factory=dict)
    reply_to: ReplyTarget | None = None
    audience: Audience = PUBLIC  # who reads the result: private questions are hidden elsewhere


Handler = Callable[[AdminDeps, Actor, Args], str]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    run: Handler
    words: tuple[int, int]  # least and most positional words
    options: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # options without a value (``--json``)


def run_admin(
    deps: AdminDeps,
    actor: Actor,
    argv: list[str] | str,
    *,
    platform_admin: bool = False,
    reply_to: ReplyTarget | None = None,
    audience: Audience = PUBLIC,
) -> AdminResult:
    """Run one admin command line (words, or chat text to shlex-split) for ``actor``.

    ``platform_admin``: the platform vouches for the actor (Discord's Manage Server
    permission); ``reply_to``: where in chat it was asked; ``audience``: who reads the result
    (``bot.audience.OPERATOR`` in the terminal; by default no private question is shown).
    Every run is audited: refused, failed or done."""
    try:
        words = _words(argv)
    except ValueError as exc:  # an unclosed quote in chat text
        words, unparsable = [argv] if isinstance(argv, str) else [], str(exc)
    else:
        unparsable = ""
    command = find_command(words)
    name = command.name if command else " ".join(words[:2]) or "help"
    with deps.sessions() as session:
        configured = access.configured_admins(deps.settings.admin_entries)
        allowed = platform_admin or access.is_admin(session, actor, configured)
    if not allowed:
        result, outcome = AdminResult(False, REFUSED), "refused: not an admin"
    elif unparsable:
        result = AdminResult(False, f"Cannot read the command: {unparsable}.")
        outcome = f"error: {result.text}"
    else:
        try:
            result = _execute(deps, actor, command, words, reply_to, audience)
        except Exception as exc:  # unexpected: audited, then the caller reports it
            _audit(deps, actor, name, words, f"failed: {type(exc).__name__}: {exc}")
            raise
        outcome = "ok" if result.ok else f"error: {result.text.splitlines()[0]}"
    _audit(deps, actor, name, words, outcome)
    return replace(result, text=mask_urls_in(result.text))  # chat is no place for a URL's secret


def _audit(deps: AdminDeps, actor: Actor, name: str, words: list[str], outcome: str) -> None:
    """Record the run, with the secrets of any URL in it masked: the audit log is shown."""
    argv = [mask_urls_in(word) for word in words]
    with deps.sessions.begin() as session:
        access.audit(session, actor, name, {"argv": argv}, mask_urls_in(outcome))


def find_command(words: list[str]) -> Command | None:
    """The command the first one or two words name, or None."""
    return COMMANDS.get(" ".join(words[:2])) or COMMANDS.get(" ".join(words[:1]))


def help_text() -> str:
    return "Admin commands:\n" + "\n".join(f"  {c.usage}" for c in COMMANDS.values())


def _words(argv: list[str] | str) -> list[str]:
    """The command's words: chat text shlex-split, except a question after ``why``, taken
    as typed (its apostrophes are not quotes)."""
    if not isinstance(argv, str):
        return list(argv)
    first, _, rest = argv.strip().partition(" ")
    if first == "why" and rest.strip():
        return [first, rest.strip()]
    return shlex.split(argv)


def _execute(
    deps: AdminDeps,
    actor: Actor,
    command: Command | None,
    words: list[str],
    reply_to: ReplyTarget | None,
    audience: Audience,
) -> AdminResult:
    if command is None:
        if not words or words[0] in HELP_WORDS:
            return AdminResult(True, help_text())
        return AdminResult(False, f"Unknown admin command {' '.join(words[:2])!r}.\n{help_text()}")
    try:
        args = parse_args(command, words[len(command.name.split()) :])
        args = replace(args, reply_to=reply_to, audience=audience)
        return AdminResult(True, command.run(deps, actor, args))
    except TeambotError as exc:  # written to be read by the admin
        return AdminResult(False, str(exc))


def parse_args(command: Command, words: list[str]) -> Args:
    """Split words into positionals and ``--option VALUE`` pairs; AdminError with the usage."""
    usage = AdminError(f"Usage: admin {command.usage}")
    positional: list[str] = []
    options: dict[str, str] = {}
    rest = iter(words)
    for word in rest:
        if not word.startswith("--"):
            positional.append(word)
            continue
        key, has_value, value = word[2:].partition("=")
        if key in command.flags and not has_value:
            options[key] = "yes"
            continue
        if key not in command.options:
            raise usage
        if not has_value:
            value = next(rest, "")
        if not value:
            raise usage
        options[key] = value
    least, most = command.words
    if not least <= len(positional) <= most:
        raise usage
    return Args(positional, options)


# --- sources and status ----------------------------------------------------------------------


@dataclass(frozen=True)
class Spelling:
    """How the next step reads where the admin typed the command: the sources commands below
    serve chat (``admin sources …``) and the terminal (``teambot sources …``) alike."""

    index_hint: str  # after an add; ``{name}`` is the source's name
    no_sources: str


CHAT = Spelling(
    index_hint="Index it with `admin sources refresh {name}`.",
    no_sources="No sources yet. Add one with `admin sources add URL --name NAME`.",
)
TERMINAL = Spelling(  # `teambot sources …`; `teambot admin sources …` reads as chat does
    index_hint="Index it now with `teambot refresh {name}`.",
    no_sources="No sources yet. Add one with `teambot ingest PATH` or run `teambot demo`.",
)


class SourcesDeps(Protocol):
    """What the sources commands use: the database and the folder roots chat may add."""

    settings: Settings

    @property
    def sessions(self) -> sessionmaker[Session]: ...


def listed_sources(deps: SourcesDeps) -> list[store.SourceSummary]:
    """Each source with its size and last run, its location fit to show (secrets masked)."""
    with deps.sessions() as session:
        summaries = store.source_summaries(session)
    return [replace(s, location=mask_url(s.location)) for s in summaries]


def add_source_as(deps: SourcesDeps, actor: Actor, spec: SourceSpec, spelling: Spelling) -> str:
    """Register a source (checked by knowledge.ingest.sources). A folder only inside
    TEAMBOT_FOLDER_ROOTS unless ``actor`` is on a trusted platform (the terminal): a chat
    admin is not the server's owner. A Slack channel is checked with Slack first."""
    if (spec.kind or guess_kind(spec.location)) == SLACK_CHANNEL:
        return slack_sources.add_channel_as(deps, spec, spelling)
    trusted = actor.platform in access.TRUSTED_PLATFORMS
    roots = None if trusted else deps.settings.folder_root_paths
    with deps.sessions.begin() as session:
        source = add_source(session, spec, folder_roots=roots)
        kind, where = source.kind, mask_url(source.location)
    hint = spelling.index_hint.format(name=spec.name)
    return f"Added {kind} source {spec.name!r} at {where}. {hint}"


def remove_source_named(deps: SourcesDeps, name: str) -> str:
    """Delete a source with its documents and chunks."""
    with deps.sessions.begin() as session:
        documents = remove_source(session, name)
    return f"Removed source {name!r} and its {documents} documents."


def sources_list(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """Each source with its size and last run, so an admin sees what teambot knows."""
    summaries = listed_sources(deps)
    if not summaries:
        return CHAT.no_sources
    header = ("name", "kind", "documents", "chunks", "last run", "location")
    rows = [
        (s.name, s.kind, str(s.documents), str(s.chunks), _last_run(s.last_run), s.location)
        for s in summaries
    ]
    return "Sources:\n" + columns([header, *rows])


def _last_run(run: Any) -> str:
    if run is None:
        return "never"
    return f"{run.started_at:%Y-%m-%d %H:%M} {run.status}"


def sources_add(deps: AdminDeps, actor: Actor, args: Args) -> str:
    spec = source_edit.spec_of(actor, args)
    if not spec.name and (spec.kind or guess_kind(spec.location)) != SLACK_CHANNEL:
        raise AdminError("Give the source a name: admin sources add URL --name NAME.")
    return add_source_as(deps, actor, spec, CHAT)


def sources_remove(deps: AdminDeps, actor: Actor, args: Args) -> str:
    return remove_source_named(deps, args.words[0])


def sources_forget(deps: AdminDeps, actor: Actor, args: Args) -> str:
    return slack_sources.forget_channel_named(deps, args.words[0])


def sources_refresh(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """Hand the refresh to a running worker, which starts it within seconds; with no worker
    alive, run it here so the request is never silently parked."""
    name, reply_to = args.words[0], args.reply_to
    notify = reply_to.as_notify() if reply_to else None
    with deps.sessions.begin() as session:
        workers = coordination.live(session, coordination.WORKER)
        if workers:
            coordination.request_refresh(session, name, by=str(actor), notify=notify)
    if workers:
        then = "I will post its counts here when it is done" if reply_to else (
            "`admin status` shows it running and then its counts"
        )  # fmt: skip
        return (
            f"Queued a refresh of {name!r}: a worker ({len(workers)} running) starts it within "
            f"{coordination.HEARTBEAT_SECONDS} seconds; {then}."
        )
    report = refresh(deps.sessions, deps.embedder, name, limits=deps.crawl_limits,
                     data_dir=deps.settings.data_dir,
                     slack=slack_sources.slack_access_of(deps.settings))  # fmt: skip
    return "No worker is running, so teambot refreshed it here.\n" + report.summary()


def status(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """Index size and revision, workers, model health, then each source: its schedule, what
    is running or queued, and its last run with counts and errors."""
    with deps.sessions() as session:
        documents = session.scalar(select(func.count(Document.id))) or 0
        chunks = store.serving_chunks(session)
        revision = store.index_revision(session)
        sources = session.scalar(select(func.count(Source.id))) or 0
        summaries = store.source_summaries(session)
        channels = channel_states(session)
        forgotten = retention.last_run(session)
        workers = coordination.live(session, coordination.WORKER)
        next_runs = coordination.next_runs(session)
        kept = deps.settings.retention_days
    lines = [
        f"Index: {sources} sources, {documents} documents, {chunks} chunks, revision {revision}.",
        _workers_line(workers),
        *model_health_lines(deps.settings, deps.sessions, deps.router),
        f"Retention: {f'{kept} days' if kept else 'keep everything'}; last run: "
        + (
            f"{forgotten.created_at:%Y-%m-%d %H:%M} UTC, {forgotten.outcome}"
            if forgotten
            else "never"
        ),
    ]
    for s in summaries:
        lines.append(
            f"{s.name} ({s.kind}, {_schedule_text(s)}): {s.documents} documents, {s.chunks} chunks"
        )
        if s.name in channels:
            lines.append(f"  Slack channel {channels[s.name]}")
        if s.refreshing_by:
            lines.append(f"  refreshing now: {s.refreshing_by}")
        if s.requested_at:
            lines.append(f"  refresh queued at {s.requested_at:%H:%M:%S} UTC")
        if s.name in next_runs:
            lines.append(f"  next run: {next_runs[s.name]:%Y-%m-%d %H:%M} UTC")
        lines += _run_lines(s.last_run)
    return "\n".join(lines)


def _workers_line(workers: list[Heartbeat]) -> str:
    if not workers:
        return (
            "Workers: none running, so nothing refreshes on schedule; start `teambot worker` "
            "(the Procfile's worker)."
        )
    each = [f"{w.id} ({f'refreshing {w.running}' if w.running else 'idle'})" for w in workers]
    return f"Workers: {len(workers)} running: " + "; ".join(each)


def _schedule_text(summary: store.SourceSummary) -> str:
    if summary.kind == TEAM_ANSWERS:
        return "built in: indexed as answers are taught"
    if not summary.enabled:
        return "disabled"
    schedule = summary.schedule or ""
    if schedule.startswith("every "):
        seconds = int(schedule.removeprefix("every "))
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"every {seconds // size}{unit}"
        return f"every {seconds}s"
    return schedule or "default schedule"


def _run_lines(run: Any) -> list[str]:
    if run is None:
        return ["  last run: never"]
    c = run.counts
    counts = ", ".join(
        f"{c.get(f'pages_{k}', 0)} {k}" for k in ("seen", "new", "changed", "removed", "failed")
    )
    lines = [
        f"  last run: {_last_run(run)} — {counts}; {c.get('chunks_embedded', 0)} chunks embedded"
    ]
    lines += [f"  error: {e.get('url') or '(run)'}: {e.get('error')}" for e in run.errors[:5]]
    if len(run.errors) > 5:
        lines.append(f"  … and {len(run.errors) - 5} more errors")
    return lines


# --- channels --------------------------------------------------------------------------------


def channel_show(deps: AdminDeps, actor: Actor, args: Args) -> str:
    where = access.parse_actor(args.words[0], channel.SHAPE)
    with deps.sessions() as session:
        return channel.show(session, where)


def channel_set(deps: AdminDeps, actor: Actor, args: Args) -> str:
    where = access.parse_actor(args.words[0], channel.SHAPE)
    with deps.sessions.begin() as session:
        return "Saved.\n" + channel.update(session, where, args.words[1:], by=actor)


def why(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """What teambot would do with a question where it was asked: passages, scores, confidence
    and the reason it would answer or abstain (bot.why)."""
    from bot.core import validate_question  # the core's imports are heavy; most commands skip them

    # Checked before the assistant is touched: it loads the model and the index on first use.
    text = validate_question(args.words[0], deps.settings.max_question_chars)
    where = args.reply_to
    question = Question(platform=where.platform if where else actor.platform,
                        channel=where.channel if where else "terminal", thread="why",
                        user=actor.user_id, text=text)  # fmt: skip
    return explanation_text(deps.assistant.explain(question))


# --- people ----------------------------------------------------------------------------------


def stats(deps: AdminDeps, actor: Actor, args: Args) -> str:
    days = args.options.get("days", "7")
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        raise AdminError(f"--days {days}: use a whole number of days from 1 to {MAX_DAYS}.")
    return activity.stats_text(deps.sessions, int(days), audience=args.audience)


def forget(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """Erase a person's questions, the answers to them, their votes and the team answers
    they gave (on request)."""
    who = access.parse_actor(args.words[0])
    gone = activity.forget_user(deps.sessions, who.platform, who.user_id)
    with deps.sessions.begin() as session:
        taught = remove_authored(session, who.platform, who.user_id)
    said = f", {taught} team answers they gave" if taught else ""
    return (
        f"Forgot {who}: {gone.questions} questions, {gone.answers} answers, "
        f"{gone.votes} feedback votes, {gone.conversations} emptied conversations{said}."
    )


def gaps_list(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """The questions teambot could not answer well, grouped by topic (bot.admin.gaps)."""
    return gaps.gaps_listing(deps.sessions, deps.embedder, args.options.get("since", "7d"),
                             args.options.get("channel"), "json" in args.options,
                             args.audience)  # fmt: skip


def digest_now(deps: AdminDeps, actor: Actor, args: Args) -> str:
    return gaps.digest_now(deps.sessions, deps.embedder, deps.settings.digest_channel)


def admins_list(deps: AdminDeps, actor: Actor, args: Args) -> str:
    configured = access.configured_admins(deps.settings.admin_entries)
    rows = [(str(a), "TEAMBOT_ADMINS") for a in sorted(configured, key=str)]
    with deps.sessions() as session:
        rows += [
            (
                f"{a.platform}:{a.user_id}",
                f"added by {a.added_by or '?'} on {a.created_at:%Y-%m-%d}",
            )
            for a in access.table_admins(session)
        ]
    listed = "Admins:\n" + columns(rows) if rows else "No admins yet."
    return listed + "\nThe terminal (`teambot admin`) is always allowed."


def admins_add(deps: AdminDeps, actor: Actor, args: Args) -> str:
    who = access.parse_actor(args.words[0])
    with deps.sessions.begin() as session:
        added = access.add_admin(session, who, added_by=actor)
    return f"{who} is now an admin." if added else f"{who} is already an admin."


def admins_remove(deps: AdminDeps, actor: Actor, args: Args) -> str:
    who = access.parse_actor(args.words[0])
    with deps.sessions.begin() as session:
        removed = access.remove_admin(session, who)
    if who in access.configured_admins(deps.settings.admin_entries):
        raise AdminError(f"{who} is set in TEAMBOT_ADMINS; remove it there and restart teambot.")
    if not removed:
        raise AdminError(f"{who} is not an admin; see `admin admins list`.")
    return f"{who} is no longer an admin."


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("sources list", "sources list", sources_list, (0, 0)),
        Command(
            "sources add", "sources add URL --name NAME [--every 6h] [--cron EXPR] [--kind K]"
            " [--include RE] [--exclude RE] [--max-pages N] [--branch B --path P --web-url T]\n"
            "    sources add #channel --kind slack-channel [--name NAME] [--every 6h]",
            sources_add, (1, 1),
            source_edit.ADD_OPTIONS, ("allow-private",),
        ),
        Command(
            "sources edit", "sources edit NAME [--every 6h|default] [--cron EXPR] [--include RE]"
            " [--exclude RE] [--max-pages N]", source_edit.sources_edit, (1, 1),
            source_edit.EDIT_OPTIONS,
        ),
        Command("sources remove", "sources remove NAME", sources_remove, (1, 1)),
        Command("sources forget", "sources forget #channel  (a Slack channel's history)",
                sources_forget, (1, 1)),
        Command("sources refresh", "sources refresh NAME", sources_refresh, (1, 1)),
        Command("status", "status", status, (0, 0)),
        Command("channel show", "channel show PLATFORM:CHANNEL", channel_show, (1, 1)),
        Command(
            "channel set",
            "channel set PLATFORM:CHANNEL KEY=VALUE...\n"
            f"    KEY=VALUE: sources=NAME,NAME|all  route={'|'.join(ROUTES)}\n"
            "    persona=TEXT  follow_threads=on|off  min_confidence=0..1  teach=on|off\n"
            "    (KEY=default restores the global setting)",
            channel_set, (2, 7),
        ),
        Command("why", 'why "QUESTION"', why, (1, 1)),
        Command("stats", "stats [--days 7]", stats, (0, 0), ("days",)),
        Command("forget", "forget PLATFORM:USER", forget, (1, 1)),
        Command(
            "gaps", "gaps [--since 7d] [--channel PLATFORM:CHANNEL] [--json]", gaps_list, (0, 0),
            ("since", "channel"), ("json",),
        ),
        Command("digest now", "digest now", digest_now, (0, 0)),
        Command("answers add", 'answers add "QUESTION" "ANSWER"', answers.answers_add, (2, 2)),
        Command("answers list", "answers list", answers.answers_list, (0, 0)),
        Command("answers remove", "answers remove ID", answers.answers_remove, (1, 1)),
        Command("admins list", "admins list", admins_list, (0, 0)),
        Command("admins add", "admins add PLATFORM:USER", admins_add, (1, 1)),
        Command("admins remove", "admins remove PLATFORM:USER", admins_remove, (1, 1)),
    )
}  # fmt: skip
