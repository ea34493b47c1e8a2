"""The console's gate, through Starlette's TestClient: no route answers without a session
(walked over the app's own routes, so a new route cannot be forgotten), every
state-changing request needs the session's CSRF token, login links are signed, expire and
work once, ``next`` never leaves the console, cookies are HttpOnly/SameSite (Secure over
HTTPS), and hostile text renders escaped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from bot.console.app import console_app
from bot.console.auth import COOKIE, LINK_MINUTES, ConsoleAuth, LinkRefused, safe_next
from bot.console.guard import PUBLIC
from bot.console.secret import signing_secret
from bot.errors import SettingsError
from bot.runtime import Runtime
from knowledge.storage.console import ConsoleSession
from knowledge.storage.conversations import Conversation, Turn
from knowledge.storage.db import utcnow
from knowledge.storage.documents import Source
from tests.console_setup import BASE, console_runtime, csrf, sign_in, signed_in


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return console_runtime(tmp_path)


def every_route(runtime: Runtime) -> list[tuple[str, str]]:
    """(method, concrete path) for each route of the console app, path parameters filled."""
    app = console_app(runtime, BASE).app
    found = []
    for route in app.routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        path = route.path.replace("{source_id:int}", "1").replace("{run_id:int}", "1")
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_no_route_answers_without_a_session(runtime: Runtime) -> None:
    client = TestClient(console_app(runtime, BASE), base_url=BASE)
    routes = every_route(runtime)
    assert len(routes) >= 15  # the walk found the app's routes
    for method, path in routes:
        if path in PUBLIC:
            continue
        browser = client.request(method, path, follow_redirects=False)
        script = client.request(
            method, path, headers={"x-requested-with": "fetch"}, follow_redirects=False
        )
        assert script.status_code == 401, (method, path)
        assert "teambot console login" in script.json()["error"]
        if method == "GET":
            assert browser.status_code == 303, path
            assert browser.headers["location"].startswith("/console/login?next=%2Fconsole")
        else:
            assert browser.status_code == 401, (method, path)


def test_every_state_change_needs_the_csrf_token(runtime: Runtime) -> None:
    client = signed_in(runtime)
    posts = [
        path for method, path in every_route(runtime) if method == "POST" and path not in PUBLIC
    ]
    assert "/console/logout" in posts and "/console/sources" in posts
    for path in posts:
        for headers in ({}, {"x-csrf-token": "0" * 64}):
            refused = client.post(
                path, data={"name": "x", "location": "https://a.example/"}, headers=headers
            )
            assert refused.status_code == 403, path
            assert "CSRF" in refused.text
    assert client.get("/console/sources").status_code == 200  # still signed in
    token = csrf(client)
    assert client.post("/console/logout", data={"csrf": token}).status_code == 200


def test_a_login_link_works_once(runtime: Runtime) -> None:
    client = TestClient(console_app(runtime, BASE), base_url=BASE)
    first = sign_in(client, runtime, next_path="/console/models")
    assert first.status_code == 303 and first.headers["location"] == "/console/models"
    page = client.get("/console/models")
    assert page.status_code == 200 and "alice" in page.text
    other = TestClient(console_app(runtime, BASE), base_url=BASE)
    from bot.console.app import login_link

    link = login_link(runtime, BASE, "bob")
    token = link.split("token=")[1].split("&")[0]
    assert (
        other.post("/console/login", data={"token": token}, follow_redirects=False).status_code
        == 303
    )
    again = other.post("/console/login", data={"token": token}, follow_redirects=False)
    assert again.status_code == 403 and "already used" in again.text


class _Past(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - LINK_MINUTES * 60 - 5


def test_expired_and_tampered_links_are_refused(runtime: Runtime) -> None:
    client = TestClient(console_app(runtime, BASE), base_url=BASE)
    secret = signing_secret(runtime.settings)
    old = URLSafeTimedSerializer(secret, salt="teambot-console-login", signer=_Past)
    expired = client.post("/console/login", data={"token": old.dumps({"u": "a", "id": "x1"})})
    assert expired.status_code == 403 and "expired" in expired.text
    forged = URLSafeTimedSerializer("not-the-secret" * 4, salt="teambot-console-login")
    assert (
        "not valid"
        in client.post("/console/login", data={"token": forged.dumps({"u": "a", "id": "x2"})}).text
    )
    for token in ("", "x" * 5000, "abc.def.ghi"):
        refused = client.post("/console/login", data={"token": token}, follow_redirects=False)
        assert refused.status_code == 403
        assert COOKIE not in refused.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/console/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/console/../etc",
        "/consolex",
        "/other",
        "/console\r\nLocation: x",
        "http:/console/",
    ],
)
def test_next_never_leaves_the_console(runtime: Runtime, target: str) -> None:
    assert safe_next(target) == "/console/"
    client = TestClient(console_app(runtime, BASE), base_url=BASE)
    landed = sign_in(client, runtime, next_path=target)
    assert landed.headers["location"] == "/console/"


def test_safe_next_keeps_console_pages() -> None:
    assert safe_next("/console/sources?page=2") == "/console/sources?page=2"
    assert safe_next("/console") == "/console"


def test_cookies_are_httponly_samesite_and_secure_over_https(tmp_path: Path) -> None:
    plain = console_runtime(tmp_path)
    cookie = sign_in(TestClient(console_app(plain, BASE), base_url=BASE), plain)
    header = cookie.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" not in header
    assert "path=/console" in header
    https = TestClient(console_app(plain, "https://teambot.example"), base_url="https://t.example")
    assert "secure" in sign_in(https, plain).headers["set-cookie"].lower()
    forwarded = TestClient(
        console_app(plain, BASE), base_url=BASE, headers={"x-forwarded-proto": "https"}
    )
    assert "secure" not in sign_in(forwarded, plain).headers["set-cookie"].lower()
    trusting = console_runtime(tmp_path / "t", TEAMBOT_CONSOLE_TRUST_PROXY="true")
    behind = TestClient(
        console_app(trusting, BASE), base_url=BASE, headers={"x-forwarded-proto": "https"}
    )
    assert "secure" in sign_in(behind, trusting).headers["set-cookie"].lower()


def test_sign_out_and_expiry_end_the_session(runtime: Runtime) -> None:
    client = signed_in(runtime)
    stolen = client.cookies[COOKIE]
    client.post("/console/logout", data={"csrf": csrf(client)})
    replay = TestClient(console_app(runtime, BASE), base_url=BASE, cookies={COOKIE: stolen})
    assert replay.get("/console/sources", follow_redirects=False).status_code == 303
    again = signed_in(runtime)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow()))
    assert again.get("/console/sources", follow_redirects=False).status_code == 303
    forged = TestClient(
        console_app(runtime, BASE), base_url=BASE, cookies={COOKIE: stolen[:-3] + "abc"}
    )
    assert forged.get("/console/sources", follow_redirects=False).status_code == 303


def test_hostile_text_is_escaped(runtime: Runtime) -> None:
    script = "<script>alert('x')</script>"
    with runtime.sessions.begin() as session:
        session.add(Source(name=script, kind="page", location="https://a.example/<b>"))
        conversation = Conversation(platform="slack", channel=f"C{script}", thread="1")
        session.add(conversation)
        session.flush()
        session.add_all(
            [
                Turn(conversation_id=conversation.id, role="user", text=f"why {script}"),
                Turn(conversation_id=conversation.id, role="assistant", text=script, model=script),
            ]
        )
    client = signed_in(runtime)
    for path in ("/console/sources", "/console/questions", "/console/sources/1"):
        page = client.get(path)
        assert page.status_code == 200
        assert "&lt;script&gt;" in page.text and script not in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_signing_secret_is_made_once_and_private(tmp_path: Path) -> None:
    runtime = console_runtime(tmp_path)
    secret = signing_secret(runtime.settings)
    stored = tmp_path / "data" / "console-secret"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert signing_secret(runtime.settings) == secret and len(secret) >= 32
    short = console_runtime(tmp_path / "s", TEAMBOT_CONSOLE_SECRET="short")
    with pytest.raises(Exception, match="too short"):
        signing_secret(short.settings)


def test_links_and_sessions_on_both_databases(any_sessions: sessionmaker[Session]) -> None:
    auth = ConsoleAuth(any_sessions, "s" * 40)
    token = auth.login_link(BASE, "alice").split("token=")[1]
    assert auth.redeem(token) == "alice"
    with pytest.raises(LinkRefused, match="already used"):
        auth.redeem(token)
    cookie = auth.open_session("alice", "link")
    user = auth.user_of(cookie)
    assert user is not None and user.name == "alice" and auth.csrf_ok(user, user.csrf)
    other = user.csrf[:-1] + ("1" if user.csrf.endswith("0") else "0")
    assert not auth.csrf_ok(user, "") and not auth.csrf_ok(user, other)
    auth.close_session(user)
    assert auth.user_of(cookie) is None


def test_an_unwritable_data_folder_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    runtime = console_runtime(tmp_path, TEAMBOT_DATA_DIR=str(tmp_path / "file" / "data"))
    with pytest.raises(SettingsError, match="TEAMBOT_CONSOLE_SECRET"):
        signing_secret(runtime.settings)
