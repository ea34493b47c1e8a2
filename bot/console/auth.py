"""Who may use the console: one-time login links, sessions and the CSRF token bound to them.

- A login link carries a signed, timestamped token (itsdangerous) naming the user and a
  random link id; it is good for LINK_MINUTES and redeemed once (the id is stored, and a
  unique key refuses it a second time).
- Redeeming it opens a session: a random id, kept in the database as its sha256, sent to the
  browser signed in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS) that ends with the
  session, after SESSION_HOURS at most. Signing out deletes the row.
- Every state-changing request carries the session's CSRF token: an HMAC of the session id,
  so it needs no storage and dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import BotError
from knowledge.storage.console import ConsoleLoginLink, ConsoleSession
from knowledge.storage.db import as_utc, utcnow

LINK_MINUTES = 10
SESSION_HOURS = 12
COOKIE = "teambot_console"
PREFIX = "/console"
MAX_USER_CHARS = 100
MAX_TOKEN_CHARS = 1000  # a real token is ~150 characters; anything longer is not read


class LinkRefused(BotError):
    """A login link that does not open a session; the message says what to do instead."""


@dataclass(frozen=True)
class ConsoleUser:
    """The person behind a request: their name, how they signed in, their CSRF token."""

    name: str
    via: str
    session_key: str  # sha256 of the session id: the row's key
    csrf: str


def safe_next(target: str | None) -> str:
    """``target`` if it is a path of the console (no scheme, host or ``//``), else its home:
    a login link's ``next`` must never send anyone off the site."""
    home = f"{PREFIX}/"
    if not target or len(target) > 500 or "\\" in target or any(ord(c) < 32 for c in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return home
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return home
    if "/../" in parts.path + "/" or "/./" in parts.path:
        return home
    return target


class ConsoleAuth:
    """Issues and redeems login links and opens, finds and closes sessions."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secret: str,
        still_allowed: Callable[[Session, str, str], bool] | None = None,
    ) -> None:
        """``still_allowed(session, user, via)``: checked on every request, so a Slack admin
        removed from teambot's admins is signed out at once."""
        self._sessions = sessions
        self._still_allowed = still_allowed
        self.secret = secret
        self._secret = secret.encode()
        self._links = URLSafeTimedSerializer(secret, salt="teambot-console-login")
        self._cookies = TimestampSigner(secret, salt="teambot-console-session")

    # --- login links ---------------------------------------------------------------------

    def login_link(self, base_url: str, user: str, next_path: str | None = None) -> str:
        """A link that signs ``user`` in once within LINK_MINUTES, landing on ``next_path``."""
        user = user.strip()
        if not user or len(user) > MAX_USER_CHARS:
            raise ValueError(f"a console user name has 1 to {MAX_USER_CHARS} characters")
        token = self._links.dumps({"u": user, "id": secrets.token_urlsafe(18)})
        query = {"token": token}
        if next_path:
            query["next"] = safe_next(next_path)
        return f"{base_url.rstrip('/')}{PREFIX}/login?{urlencode(query)}"

    def redeem(self, token: str) -> str:
        """The user a link names, once: the link is marked used. LinkRefused otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise LinkRefused("This sign-in link is not valid.")
        try:
            claims = self._links.loads(token, max_age=LINK_MINUTES * 60)
        except SignatureExpired:
            raise LinkRefused(
                f"This sign-in link has expired (links last {LINK_MINUTES} minutes)."
            ) from None
        except BadSignature:
            raise LinkRefused("This sign-in link is not valid.") from None
        if not isinstance(claims, dict) or not all(
            isinstance(claims.get(k), str) for k in ("u", "id")
        ):
            raise LinkRefused("This sign-in link is not valid.")
        try:
            with self._sessions.begin() as session:
                session.add(ConsoleLoginLink(id=claims["id"][:64], user_name=claims["u"]))
        except IntegrityError:
            raise LinkRefused("This sign-in link was already used; each link works once.") from None
        return claims["u"]

    # --- sessions ------------------------------------------------------------------------

    def open_session(self, user: str, via: str) -> str:
        """A new session for ``user``; returns the signed cookie value."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        with self._sessions.begin() as session:
            session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            spent = now - timedelta(minutes=2 * LINK_MINUTES)  # their signatures expired too
            session.execute(delete(ConsoleLoginLink).where(ConsoleLoginLink.used_at < spent))
            session.add(
                ConsoleSession(
                    id=_digest(session_id), user_name=user[:200], via=via, created_at=now,
                    expires_at=now + timedelta(hours=SESSION_HOURS),
                )
            )  # fmt: skip
        return self._cookies.sign(session_id).decode()

    def user_of(self, cookie: str | None) -> ConsoleUser | None:
        """The signed-in user a cookie names, or None (unsigned, ended or expired)."""
        if not cookie or len(cookie) > MAX_TOKEN_CHARS:
            return None
        try:
            session_id = self._cookies.unsign(cookie, max_age=SESSION_HOURS * 3600).decode()
        except BadSignature:
            return None
        key = _digest(session_id)
        with self._sessions() as session:
            row = session.get(ConsoleSession, key)
            if row is None or as_utc(row.expires_at) <= utcnow():
                return None
            if self._still_allowed and not self._still_allowed(session, row.user_name, row.via):
                return None
            return ConsoleUser(row.user_name, row.via, key, self._csrf(session_id))

    def close_session(self, user: ConsoleUser) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(ConsoleSession).where(ConsoleSession.id == user.session_key))

    def csrf_ok(self, user: ConsoleUser, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(user.csrf, token or "")

    def _csrf(self, session_id: str) -> str:
        return hmac.new(self._secret, b"csrf:" + session_id.encode(), "sha256").hexdigest()


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
