"""The options of `admin sources add` beyond a name and an interval, and `admin sources edit`:
a source's filters and schedule changed in place (checked as when it was added).

Several regexes go in one ``--include`` or ``--exclude`` value, one per line (the console's
text boxes send them so); ``--allow-private`` only from the terminal and the web console,
whose admins hold the server: a chat message may not open the intranet to the crawler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.admin.access import Actor
from bot.errors import AdminError
from knowledge.ingest.sources import SourceSpec, schedule_of, source_rules
from knowledge.storage.answers import TEAM_ANSWERS
from knowledge.storage.documents import Source

if TYPE_CHECKING:
    from bot.admin.commands import AdminDeps, Args

ADD_OPTIONS = ("name", "every", "cron", "kind", "include", "exclude", "max-pages", "branch", "path",
               "web-url")  # fmt: skip
EDIT_OPTIONS = ("every", "cron", "include", "exclude", "max-pages")
PRIVATE_PLATFORMS = frozenset({"cli", "console"})
NONE = "none"  # --include none: no include filter
DEFAULT = "default"  # --every default: the schedule REFRESH_INTERVAL_MINUTES sets


def patterns(value: str | None) -> tuple[str, ...]:
    """One regex per non-empty line; ``none`` is no regex (how an edit clears a filter)."""
    if (value or "").strip() == NONE:
        return ()
    return tuple(line.strip() for line in (value or "").splitlines() if line.strip())


def max_pages(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise AdminError(f"--max-pages {value}: give a whole number of pages.")
    return int(value)


def spec_of(actor: Actor, args: Args) -> SourceSpec:
    """The source `admin sources add URL --name NAME [options]` describes."""
    options = args.options
    allow_private = "allow-private" in options
    if allow_private and actor.platform not in PRIVATE_PLATFORMS:
        raise AdminError("--allow-private is for the terminal and the web console only.")
    return SourceSpec(
        name=options.get("name", ""), location=args.words[0], kind=options.get("kind"),
        include=patterns(options.get("include")), exclude=patterns(options.get("exclude")),
        max_pages=max_pages(options.get("max-pages")), every=options.get("every"),
        cron=options.get("cron"), allow_private=allow_private, branch=options.get("branch"),
        path=options.get("path"), web_url=options.get("web-url"),
    )  # fmt: skip


def sources_edit(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """Change a source's filters, page limit or schedule; what is not given stays.
    ``--include none`` (or ``--exclude none``) clears that filter; ``--every default``
    restores the default schedule. Takes effect at its next refresh."""
    name, options = args.words[0], args.options
    with deps.sessions.begin() as session:
        source = session.scalar(select(Source).where(Source.name == name))
        if source is None:
            raise AdminError(f"No source named {name!r}; see `admin sources list`.")
        if source.kind == TEAM_ANSWERS:
            raise AdminError(f"{name!r} is built in; it has no filters or schedule.")
        changed: dict[str, Any] = dict(source.options or {})
        for key in ("include", "exclude"):
            if key in options:
                changed.pop(key, None)
                if patterns(options[key]):
                    changed[key] = list(patterns(options[key]))
        if "max-pages" in options:
            changed.pop("max_pages", None)
            if (limit := max_pages(options["max-pages"])) is not None:
                changed["max_pages"] = limit
        source_rules(changed)  # raises on an invalid regex, before anything is stored
        if options.get("every") == DEFAULT:
            source.schedule = None
        elif "every" in options or "cron" in options:
            spec = SourceSpec(name, source.location, every=options.get("every"),
                              cron=options.get("cron"))  # fmt: skip
            source.schedule = schedule_of(spec)
        source.options = changed
        schedule = source.schedule or "the default schedule"
    return f"Saved source {name!r}: filters {_filters(changed)}; schedule: {schedule}."


def _filters(options: dict[str, Any]) -> str:
    keys = [key for key in ("include", "exclude") if options.get(key)]
    parts = [f"{key} {', '.join(options[key])}" for key in keys]
    if options.get("max_pages"):
        parts.append(f"at most {options['max_pages']} pages")
    return "; ".join(parts) or "none"
