"""Team answers from chat and the terminal: ``admin answers add|list|remove`` and "Teach
teambot", the message shortcut (Slack) and context-menu command (Discord).

Admins may teach anywhere; anyone else only in channels where an admin allowed it with
``admin channel set PLATFORM:CHANNEL teach=on``. Every attempt is audited, refused or done.
Storing and indexing is knowledge.ingest.answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.admin import access
from bot.admin.access import Actor
from bot.admin.text import columns
from bot.audience import PRIVATE_TEXT
from bot.errors import AdminError, TeambotError
from knowledge.ingest.answers import AnswerSpec, list_answers, remove_answer, save_answer
from knowledge.storage.conversations import ChannelSetting
from knowledge.storage.db import as_utc

if TYPE_CHECKING:
    from bot.admin.commands import AdminDeps, Args

SHOWN_CHARS = 80
NOT_ALLOWED = (
    "Only teambot admins can teach it in this channel. An admin can allow everyone here with "
    "`admin channel set {where} teach=on`."
)


@dataclass(frozen=True)
class Taught:
    ok: bool
    text: str
    answer_id: int | None = None


def may_teach(
    deps: AdminDeps, actor: Actor, platform: str, channel: str, platform_admin: bool = False
) -> bool:
    """Admins may teach anywhere; others where the channel's ``teach`` is on."""
    with deps.sessions() as session:
        if platform_admin or access.is_admin(
            session, actor, access.configured_admins(deps.settings.admin_entries)
        ):
            return True
        allowed = session.scalar(
            select(ChannelSetting.teach).where(
                ChannelSetting.platform == platform, ChannelSetting.channel == channel
            )
        )
    return bool(allowed)


def teach(
    deps: AdminDeps, actor: Actor, spec: AnswerSpec, *, platform_admin: bool = False
) -> Taught:
    """Save ``spec`` as a team answer if ``actor`` may teach in its channel. Audited: saved,
    refused or failed (an unexpected failure is audited, then raised)."""
    where = f"{spec.platform}:{spec.channel}"
    details = {"channel": where, "message": spec.message_ref, "question": spec.question[:200]}
    try:
        taught, outcome = _teach(deps, actor, spec, platform_admin, where)
    except Exception as exc:
        _audit(deps, actor, details, f"failed: {type(exc).__name__}: {exc}")
        raise
    _audit(deps, actor, details, outcome)
    return taught


def _teach(
    deps: AdminDeps, actor: Actor, spec: AnswerSpec, platform_admin: bool, where: str
) -> tuple[Taught, str]:
    if not may_teach(deps, actor, spec.platform, spec.channel, platform_admin):
        return Taught(False, NOT_ALLOWED.format(where=where)), "refused: teaching is off here"
    try:
        answer_id = save_answer(deps.sessions, deps.embedder, spec)
    except TeambotError as exc:  # written to be read by the person teaching
        return Taught(False, str(exc)), f"error: {exc}"
    text = (
        f"Saved as team answer {answer_id} to “{_cut(spec.question)}”. "
        "teambot will use it from now on."
    )
    return Taught(True, text, answer_id), f"ok: answer {answer_id}"


def _audit(deps: AdminDeps, actor: Actor, details: dict[str, Any], outcome: str) -> None:
    with deps.sessions.begin() as session:
        access.audit(session, actor, "teach", details, outcome)


def answers_add(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """An answer typed by an admin, credited to them, usable in every channel."""
    question, text = args.words
    where = args.reply_to
    platform, channel = (where.platform, where.channel) if where else (actor.platform, "terminal")
    spec = AnswerSpec(question=question, answer=text, author=actor.user_id, platform=platform,
                      channel=channel, saved_by=str(actor))  # fmt: skip
    answer_id = save_answer(deps.sessions, deps.embedder, spec)
    return f"Saved team answer {answer_id}. teambot uses it from now on, in every channel."


def answers_list(deps: AdminDeps, actor: Actor, args: Args) -> str:
    """Every team answer; one taught in private shows its question only where it was taught."""
    seen = args.audience
    with deps.sessions() as session:
        rows = [
            (str(a.id), f"{as_utc(a.created_at):%Y-%m-%d}",
             seen.place(a.platform, a.channel, a.is_private)
             + (" (private)" if a.is_private else ""), a.author_name or a.author,
             _cut(a.question) if seen.may_read(a.platform, a.channel, a.is_private)
             else PRIVATE_TEXT)
            for a in list_answers(session)
        ]  # fmt: skip
    if not rows:
        return (
            'No team answers yet. Save one with "Teach teambot" on a message, or '
            '`admin answers add "QUESTION" "ANSWER"`.'
        )
    header = ("id", "saved", "channel", "by", "question")
    return f"Team answers ({len(rows)}):\n" + columns([header, *rows])


def answers_remove(deps: AdminDeps, actor: Actor, args: Args) -> str:
    word = args.words[0]
    if not word.isdigit():
        raise AdminError(f"{word!r} is not an answer id; see `admin answers list`.")
    with deps.sessions.begin() as session:
        removed = remove_answer(session, int(word))
        if removed is None:
            raise AdminError(f"No team answer {word}; see `admin answers list`.")
        question = removed.question
    return f"Removed team answer {word} (“{_cut(question)}”)."


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
