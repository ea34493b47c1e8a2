"""Sign in with Slack (OpenID Connect), when SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set:
only people teambot counts as admins (bot.admin.access) get in.

The browser goes to Slack's authorize page with a random ``state`` and ``nonce``, kept in a
signed cookie for LOGIN_MINUTES; Slack sends it back with a code, which is exchanged at
``openid.connect.token`` (server to server, over TLS, so the ID token's signature need not be
checked: OpenID Connect Core §3.1.3.7) — its audience and nonce are checked — and
``openid.connect.userInfo`` names the Slack user. Every Slack answer is read with a size cap
and a total deadline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.admin import Actor
from bot.admin.access import configured_admins, is_admin
from bot.console.auth import PREFIX, ConsoleAuth, safe_next
from bot.console.signin import is_https, signed_in
from bot.console.web import ConsoleDeps, refused
from bot.errors import BotError

LOGIN_MINUTES = 10
STATE_COOKIE = "teambot_console_slack"
DEADLINE_SECONDS = 10.0
MAX_ANSWER_BYTES = 64_000
SCOPES = "openid profile"
CALLBACK = f"{PREFIX}/auth/slack/callback"


class SlackRefused(BotError):
    """Sign in with Slack did not let this person in; the message says why."""


class SlackSignIn:
    def __init__(self, deps: ConsoleDeps, auth: ConsoleAuth, base_url: str, secret: str) -> None:
        self._deps = deps
        self._auth = auth
        self._redirect = base_url.rstrip("/") + CALLBACK
        self._client_id = deps.settings.slack_client_id
        self._client_secret = deps.settings.slack_client_secret.get_secret_value()
        self._states = URLSafeTimedSerializer(secret, salt="teambot-console-slack")

    @classmethod
    def configured(cls, deps: ConsoleDeps, auth: ConsoleAuth, base_url: str) -> SlackSignIn | None:
        settings = deps.settings
        if not (settings.slack_client_id and settings.slack_client_secret.get_secret_value()):
            return None
        return cls(deps, auth, base_url, auth.secret)

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/auth/slack", self.start, methods=["GET"]),
            Route(CALLBACK, self.callback, methods=["GET"]),
        ]

    async def start(self, request: Request) -> Response:
        state, nonce = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        query = urlencode({
            "response_type": "code", "scope": SCOPES, "client_id": self._client_id,
            "state": state, "nonce": nonce, "redirect_uri": self._redirect,
        })  # fmt: skip
        response = RedirectResponse(f"{self._deps.settings.slack_openid_url}?{query}", 303)
        landing = safe_next(request.query_params.get("next"))
        kept = self._states.dumps({"state": state, "nonce": nonce, "next": landing})
        response.set_cookie(
            STATE_COOKIE, kept, max_age=LOGIN_MINUTES * 60, path=PREFIX, httponly=True,
            samesite="lax", secure=is_https(request, self._deps.settings.console_trust_proxy),
        )  # fmt: skip
        return response

    async def callback(self, request: Request) -> Response:
        try:
            kept = self._states.loads(request.cookies.get(STATE_COOKIE, ""),
                                      max_age=LOGIN_MINUTES * 60)  # fmt: skip
        except BadSignature:
            return refused(request, 403, "Sign in with Slack took too long or was not started "
                           "here. Start again from the sign-in page.")  # fmt: skip
        state, code = request.query_params.get("state", ""), request.query_params.get("code", "")
        if not code or not secrets.compare_digest(state, str(kept.get("state", ""))):
            return refused(request, 403, "Slack's answer does not match this sign-in (state). "
                           "Start again from the sign-in page.")  # fmt: skip
        try:
            user = await asyncio.to_thread(self._slack_user, code, str(kept.get("nonce", "")))
            name = f"slack:{user}"
            if not await asyncio.to_thread(self._is_admin, user):
                raise SlackRefused(
                    f"{name} is not a teambot admin. An admin can add you with "
                    f"`admin admins add {name}`."
                )
        except SlackRefused as exc:
            return refused(request, 403, str(exc))
        response = await asyncio.to_thread(signed_in, request, self._deps, self._auth, name,
                                           "slack", kept.get("next"))  # fmt: skip
        response.delete_cookie(STATE_COOKIE, path=PREFIX)
        return response

    def _is_admin(self, user_id: str) -> bool:
        with self._deps.sessions() as session:
            configured = configured_admins(self._deps.settings.admin_entries)
            return is_admin(session, Actor("slack", user_id), configured)

    def _slack_user(self, code: str, nonce: str) -> str:
        """The Slack user id the code stands for, once Slack's tokens check out."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        api = self._deps.settings.slack_api_url
        tokens = _call(urljoin(api, "openid.connect.token"), deadline, data={
            "client_id": self._client_id, "client_secret": self._client_secret,
            "code": code, "redirect_uri": self._redirect, "grant_type": "authorization_code",
        })  # fmt: skip
        claims = _id_token_claims(str(tokens.get("id_token", "")))
        audience = claims.get("aud")  # one string, or a list of them (never a substring)
        audiences = audience if isinstance(audience, list) else [audience]
        if self._client_id not in audiences:
            raise SlackRefused("Slack's ID token is for another app (audience).")
        if not nonce or not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SlackRefused("Slack's ID token does not match this sign-in (nonce).")
        bearer = {"authorization": f"Bearer {tokens.get('access_token', '')}"}
        info = _call(urljoin(api, "openid.connect.userInfo"), deadline, headers=bearer)
        user = info.get("https://slack.com/user_id") or claims.get("https://slack.com/user_id")
        if not isinstance(user, str) or not user.isalnum() or len(user) > 40:
            raise SlackRefused("Slack did not say who you are; try again.")
        return user


def _call(url: str, deadline: float, **request: Any) -> dict[str, Any]:
    """POST to Slack's Web API and return its JSON if ``ok``; SlackRefused otherwise."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise SlackRefused("Slack did not answer in time; try again.")
    try:
        with httpx.Client(timeout=left) as client, client.stream("POST", url, **request) as reply:
            body = b""
            for chunk in reply.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES or time.monotonic() > deadline:
                    raise SlackRefused("Slack's answer was too large or too slow; try again.")
        answer = json.loads(body)
    except (httpx.HTTPError, ValueError):
        raise SlackRefused("Could not reach Slack to sign you in; try again.") from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise SlackRefused(f"Slack refused the sign-in ({str(error)[:80]}); try again.")
    return answer


def _id_token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT received straight from Slack's token endpoint."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_ANSWER_BYTES:
        raise SlackRefused("Slack sent no usable ID token; try again.")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        raise SlackRefused("Slack sent no usable ID token; try again.") from None
    if not isinstance(claims, dict):
        raise SlackRefused("Slack sent no usable ID token; try again.")
    return claims
