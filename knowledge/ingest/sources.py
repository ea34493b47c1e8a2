"""Registering and removing sources, with every argument checked before anything is stored."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from knowledge.crawl.netguard import AddressPolicy, resolve_checked
from knowledge.crawl.urls import UrlRules, canonicalize
from knowledge.errors import BlockedURLError, SourceError
from knowledge.ingest.git import GIT
from knowledge.ingest.git import checked_options as git_checked_options
from knowledge.storage import store
from knowledge.storage.documents import Source
from knowledge.storage.slack_history import SLACK_CHANNEL

KINDS = ("site", "sitemap", "page", "folder", GIT, SLACK_CHANNEL)
_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_EVERY_SECONDS = 60
WEB_SCHEMES = ("http", "https")
# One answer for every folder a restricted caller may not add, whether it exists or not,
# so chat cannot probe the server's disk.
FOLDER_NOT_ALLOWED = (
    "Folders on the teambot server can't be added from here. Add one on the server with "
    "`teambot sources add PATH --name NAME`, or ask the operator to list a folder above it in "
    "TEAMBOT_FOLDER_ROOTS; here, give a web address (https://…) or a path inside those folders."
)


@dataclass(frozen=True)
class SourceSpec:
    """A source as an admin describes it; ``add_source`` validates and stores it."""

    name: str
    location: str
    kind: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_pages: int | None = None
    max_depth: int | None = None
    every: str | None = None
    cron: str | None = None
    allow_private: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # --kind git only: the branch, the folder to read, the hosted view's template.
    branch: str | None = None
    path: str | None = None
    web_url: str | None = None


def parse_every(text: str) -> int:
    """``"6h"`` → 21600 seconds; units s, m, h, d."""
    match = _EVERY.match(text)
    if not match:
        raise SourceError(f"--every {text!r} is not an interval; write it like 30m, 6h or 1d.")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds < MIN_EVERY_SECONDS:
        raise SourceError(f"--every {text!r} is too often; the minimum is 1m.")
    return seconds


def schedule_of(spec: SourceSpec) -> str | None:
    """The stored schedule: ``every <seconds>``, ``cron <expression>`` or None (the default)."""
    if spec.every and spec.cron:
        raise SourceError("Give --every or --cron, not both.")
    if spec.every:
        return f"every {parse_every(spec.every)}"
    if spec.cron:
        try:
            CronTrigger.from_crontab(spec.cron)
        except ValueError as exc:
            raise SourceError(f"--cron {spec.cron!r} is not a crontab expression: {exc}") from None
        return f"cron {spec.cron.strip()}"
    return None


def guess_kind(location: str) -> str:
    """``folder`` for anything but an http(s) URL, from the text alone: never from the disk,
    so the answer (and what a chat admin is told) does not show whether a path exists."""
    if location.strip().startswith(("#", "<#")):  # a Slack channel, as typed or as sent
        return SLACK_CHANNEL
    parts = urlsplit(location.strip())
    if parts.scheme.lower() not in WEB_SCHEMES:
        return "folder"
    path = parts.path.lower()
    return "sitemap" if path.endswith((".xml", ".xml.gz")) or "sitemap" in path else "site"


def source_rules(options: dict[str, Any]) -> UrlRules:
    return UrlRules(
        include=tuple(options.get("include", ())), exclude=tuple(options.get("exclude", ()))
    )


def add_source(
    session: Session, spec: SourceSpec, *, folder_roots: Sequence[Path] | None = None
) -> Source:
    """Validate ``spec`` (name, kind, URL safety, rules, limits, schedule) and store it.

    ``folder_roots``: the folders a folder source must lie inside (a chat admin's request);
    None: any folder (the server's own command line)."""
    name = spec.name.strip()
    if not name or len(name) > 100:
        raise SourceError("A source needs a name of 1 to 100 characters (--name).")
    if session.scalar(select(Source.id).where(Source.name == name)) is not None:
        raise SourceError(
            f"A source named {name!r} already exists; remove it or pick another name."
        )
    kind = spec.kind or guess_kind(spec.location)
    if kind not in KINDS:
        raise SourceError(f"Unknown kind {kind!r}; use one of {', '.join(KINDS)}.")
    options: dict[str, Any] = {**spec.options}
    if spec.include:
        options["include"] = list(spec.include)
    if spec.exclude:
        options["exclude"] = list(spec.exclude)
    source_rules(options)  # raises on an invalid regex
    for key, value in (("max_pages", spec.max_pages), ("max_depth", spec.max_depth)):
        if value is not None:
            if value < (1 if key == "max_pages" else 0):
                raise SourceError(f"--{key.replace('_', '-')} must be positive, not {value}.")
            options[key] = value
    git_options = {"branch": spec.branch, "path": spec.path, "web_url": spec.web_url}
    if kind == GIT:
        options.update(git_checked_options(**git_options))
        location, options["local"] = _git_location(spec.location, spec.allow_private, folder_roots)
    elif any(value is not None for value in git_options.values()):
        raise SourceError("--branch, --path and --web-url are for git sources (--kind git).")
    if kind == SLACK_CHANNEL:  # checked with Slack first: knowledge.ingest.slack_channels
        location = spec.location
    elif kind == "folder":
        location = str(checked_folder(spec.location, folder_roots))
    elif kind != GIT:
        location = _checked_location(kind, spec.location, spec.allow_private)
    source = Source(
        name=name,
        kind=kind,
        location=location,
        options=options,
        schedule=schedule_of(spec),
        allow_private=spec.allow_private,
    )
    session.add(source)
    session.flush()
    return source


def checked_folder(location: str, roots: Sequence[Path] | None) -> Path:
    """The folder to store for ``location``. With ``roots``, only an absolute path that
    lies inside one of them, as written and once links are resolved (``~``, ``..``,
    ``file://`` and links out are refused alike, before the disk says whether it exists)."""
    if roots is None:
        return resolve_folder(location)
    if "\0" in location or not os.path.isabs(location):
        raise SourceError(FOLDER_NOT_ALLOWED)
    written = Path(os.path.normpath(location))
    if not any(written.is_relative_to(os.path.normpath(root)) for root in roots):
        raise SourceError(FOLDER_NOT_ALLOWED)
    real = Path(os.path.realpath(written))
    if not any(real.is_relative_to(os.path.realpath(root)) for root in roots):
        raise SourceError(FOLDER_NOT_ALLOWED)
    return resolve_folder(real)


def resolve_folder(path: str | Path) -> Path:
    """The absolute folder to ingest, or a SourceError that says what to pass instead."""
    try:
        folder = Path(path).expanduser()
        exists = folder.exists()
    except (ValueError, RuntimeError):  # a NUL in the path; ~user of nobody
        exists = False
    if not exists:
        raise SourceError(
            f"No such folder: {path}. Pass the path of a folder of documents, "
            "or a web address that starts with https://."
        )
    if not folder.is_dir():
        raise SourceError(
            f"{path} is a file; teambot ingests folders. Pass the folder that contains it."
        )
    return folder.resolve()


def _git_location(
    location: str, allow_private: bool, folder_roots: Sequence[Path] | None
) -> tuple[str, bool]:
    """A repository's URL (https; http with --allow-private; checked by the SSRF guard) or,
    like a folder, a local path; and whether it is local. Other transports are refused."""
    scheme = urlsplit(location.strip()).scheme.lower()
    if scheme in WEB_SCHEMES:
        if scheme == "http" and not allow_private:
            raise SourceError(
                f"{location!r}: teambot fetches repositories over https (http only for a "
                "private host added with --allow-private)."
            )
        return _checked_location(GIT, location, allow_private), False
    if "://" in location or "::" in location or re.match(r"^[\w.-]+@[\w.-]+:", location):
        raise SourceError(
            f"{location!r}: teambot fetches repositories over https only; give an https:// "
            "URL, or the path of a repository on the teambot server."
        )
    return str(checked_folder(location, folder_roots)), True


def _checked_location(kind: str, location: str, allow_private: bool) -> str:
    url = canonicalize(location)
    if url is None:
        raise SourceError(f"{location!r} is not an http:// or https:// URL.")
    try:
        httpx.URL(url)  # what the crawler will request: it must parse the URL too
    except httpx.InvalidURL as exc:
        raise SourceError(
            f"{location!r} cannot be fetched: {exc}. Write the host as a name or as a plain "
            "dotted address such as 127.0.0.1 (no leading zeros)."
        ) from None
    parts = urlsplit(url)
    policy = AddressPolicy(
        allow_private=allow_private, private_hosts=frozenset({parts.hostname or ""})
    )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        asyncio.run(resolve_checked(parts.hostname or "", port, policy))
    except BlockedURLError as exc:
        raise SourceError(str(exc)) from None
    except (OSError, httpx.HTTPError) as exc:
        raise SourceError(f"Cannot resolve {parts.hostname}: {exc}. Check the URL.") from None
    return url


def remove_source(session: Session, name: str) -> int:
    """Delete the source with its documents and chunks; returns how many documents went."""
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        raise SourceError(f"No source named {name!r}; see `teambot sources list`.")
    documents = len(store.known_documents(session, source.id))
    session.execute(delete(Source).where(Source.id == source.id))  # cascades to documents, chunks
    store.bump_revision(session)
    return documents
