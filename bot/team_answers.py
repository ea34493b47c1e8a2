"""Team answers as the core sees them: where each may be used, and how it is cited.

An answer saved in a private channel or a DM is used only there: searches elsewhere drop it,
as they drop the indexed history of a private Slack channel (knowledge.storage.slack_history).
Every channel searches team answers, whatever sources an admin chose for it. A citation
names the question and credits the person: "answered by @user in #channel, DATE", linked
to the original message.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session, sessionmaker

from bot.types import Citation
from knowledge.retrieval.prefilter import Scope
from knowledge.storage.answers import TEAM_ANSWERS, hidden_urls
from knowledge.storage.slack_history import hidden_sources
from knowledge.types import ScoredChunk


def scope_here(
    sessions: sessionmaker[Session], platform: str, channel: str, chosen: Collection[str] | None
) -> Scope | None:
    """What a search in this channel may rank: the channel's sources (None: all of them) with
    the team answers added, less the private answers saved in other channels and the history
    of private channels other than this one (None: everything)."""
    with sessions() as session:
        hidden = hidden_urls(session, platform, channel)
        private = hidden_sources(session, platform, channel)
    sources = None if chosen is None else [*chosen, TEAM_ANSWERS]
    return Scope.of(sources, skip_sources=private,
                    skip_pages=[(TEAM_ANSWERS, url) for url in hidden])  # fmt: skip


def is_team_answer(passage: ScoredChunk) -> bool:
    return passage.source_kind == TEAM_ANSWERS


def team_citation(n: int, passage: ScoredChunk) -> Citation:
    """The question as the title, the credit as the heading, the message as the link."""
    question = passage.heading_path[0] if passage.heading_path else passage.document_title
    credit = passage.heading_path[-1] if len(passage.heading_path) > 1 else ""
    url = passage.document_url
    is_link = url.startswith(("http://", "https://"))
    return Citation(n=n, title=question, url=url, path=None if is_link else url, anchor="",
                    heading=credit, source=passage.source_name)  # fmt: skip
