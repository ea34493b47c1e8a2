"""Sign in with Slack (OpenID Connect) on the fake Slack: the authorize page, and the Web API's
``openid.connect.token`` and ``openid.connect.userInfo``, as Slack answers them.

``FakeSlackOpenID`` is ``FakeSlack`` (tests.fakes.slack) with an app's client id, secret and
redirect URL registered. Its authorize page (``authorize_url``) checks the request as Slack
does (``response_type=code``, the ``openid`` scope, the app's client id and a registered
``redirect_uri``) and, as if the person chosen with ``sign_in_as`` had clicked "Allow",
redirects straight back with a one-time code and the ``state`` it was given. The code is
exchanged once, by the app's client id and secret, for an access token and an ID token (a
JWT with the app as audience and the authorize request's nonce); ``userInfo`` takes that
access token as a bearer and names the user.

    with FakeSlackOpenID(redirect_uri="http://127.0.0.1:PORT/console/auth/slack/callback") as s:
        s.sign_in_as("UALICE")
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.fakes.slack import TEAM_ID, FakeSlack, _error, _Handler

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "fake-client-secret"
AUTHORIZE_PATH = "/openid/connect/authorize"
OPENID_METHODS = ("openid.connect.token", "openid.connect.userInfo")


class FakeSlackOpenID(FakeSlack):
    def __init__(self, *, redirect_uri: str = "", **options: Any) -> None:
        super().__init__(**options)
        self.redirect_uris = {redirect_uri} if redirect_uri else set()
        self.user: str | None = None  # who "Allow"s on the authorize page
        self._codes: dict[str, dict[str, str]] = {}  # code → user, nonce, redirect_uri
        self._tokens: dict[str, str] = {}  # access token → user
        self.authorize_requests: list[dict[str, str]] = []
        # What a hostile or broken token endpoint puts in the ID token instead (tests set it).
        self.id_token_claims: dict[str, Any] = {}
        self.id_token: str | None = None  # a raw ID token sent as is

    @property
    def authorize_url(self) -> str:
        return self._origin() + AUTHORIZE_PATH

    def sign_in_as(self, user: str) -> None:
        self.user = user

    def _new_server(self) -> Any:
        server = super()._new_server()
        server.RequestHandlerClass = type("_OpenIDHandler", (_AuthorizeHandler,), {"fake": self})
        return server

    def _authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """(status, Location or error text) for a browser at the authorize page."""
        with self._lock:
            self.authorize_requests.append(query)
            redirect = query.get("redirect_uri", "")
            if query.get("client_id") != CLIENT_ID or redirect not in self.redirect_uris:
                return 400, "invalid_client_id or redirect_uri"
            if query.get("response_type") != "code" or "openid" not in query.get("scope", ""):
                return 400, "invalid_scope or response_type"
            if self.user is None:
                return 403, "access_denied"
            code = secrets.token_urlsafe(12)
            self._codes[code] = {"user": self.user, "nonce": query.get("nonce", ""),
                                 "redirect_uri": redirect}  # fmt: skip
        back = {"code": code, "state": query.get("state", "")}
        return 302, f"{redirect}?{urlencode(back)}"

    def _call(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method not in OPENID_METHODS:
            return super()._call(method, params, token)
        with self._lock:
            if method == "openid.connect.token":
                return 200, self._token(params), {}
            user = self._tokens.get(token or "")
        if user is None:
            return 200, _error("invalid_auth"), {}
        return 200, {"ok": True, "sub": user, "https://slack.com/user_id": user,
                     "https://slack.com/team_id": TEAM_ID, "name": user.lower()}, {}  # fmt: skip

    def _token(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("client_id") != CLIENT_ID or params.get("client_secret") != CLIENT_SECRET:
            return _error("invalid_client_id")
        grant = self._codes.pop(str(params.get("code", "")), None)  # a code works once
        if grant is None:
            return _error("invalid_code")
        if params.get("redirect_uri") != grant["redirect_uri"]:
            return _error("bad_redirect_uri")
        access = "xoxp-" + secrets.token_hex(8)
        self._tokens[access] = grant["user"]
        claims = {"iss": "https://slack.com", "sub": grant["user"], "aud": CLIENT_ID,
                  "nonce": grant["nonce"], "https://slack.com/user_id": grant["user"],
                  "https://slack.com/team_id": TEAM_ID} | self.id_token_claims  # fmt: skip
        id_token = self.id_token if self.id_token is not None else _jwt(claims)
        return {"ok": True, "access_token": access, "token_type": "Bearer",
                "id_token": id_token}  # fmt: skip


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class _AuthorizeHandler(_Handler):
    fake: FakeSlackOpenID

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        if target.path != AUTHORIZE_PATH:
            super().do_GET()
            return
        status, where = self.fake._authorize(dict(parse_qsl(target.query)))
        if status == 302:
            self.send_response(302)
            self.send_header("Location", where)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(status, where.encode(), "text/plain; charset=utf-8")
