"""Tables of the web console's sign-in: the login links already used, and open sessions.

A login link is single use: its id is written here when it is redeemed, and a unique key
refuses the second redemption. A session row is what a console cookie points at; deleting
it (sign out, expiry) ends the session on every replica at once. Only a hash of the session
id is stored, so a copy of the database opens no session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.storage.db import Base, utcnow


class ConsoleLoginLink(Base):
    __tablename__ = "console_login_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the link's random id
    user_name: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the session id
    user_name: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(20))  # "link" or "slack"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
