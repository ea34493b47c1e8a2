"""The console's pages through Starlette's TestClient, against the real core: an answer
streamed as server-sent events from the fake model with its citations, a vote stored;
sources added (SSRF-guarded), edited, refreshed from the fake doc site and removed, each
audited as the console user; questions and the audit log filtered and paged; the console
mounted by `teambot serve`'s ASGI app; `teambot console login`; Sign in with Slack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.console.app import console_app
from bot.runtime import Runtime
from bot.serve import asgi_app, web_console
from knowledge.embed.embedder import Embedder
from knowledge.storage.conversations import Admin, AuditEntry, Feedback
from knowledge.storage.documents import Source
from tests.conftest import sqlite_url
from tests.console_setup import BASE, console_runtime, corpus_runtime, csrf, signed_in
from tests.corpus import ANSWER
from tests.fakes.docsite import DocSite
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack_openid import CLIENT_ID, CLIENT_SECRET, FakeSlackOpenID
from tests.processes import TEAMBOT, free_port
from tests.test_cli import run
from tests.test_serve_modes import NO_PLATFORMS, START_SECONDS


@pytest.fixture
def runtime(tmp_path: Path, embedder: Embedder, model: FakeOpenAI) -> Iterator[Runtime]:
    runtime = corpus_runtime(tmp_path, embedder, model.base_url)
    yield runtime
    runtime.close()


def events(body: str) -> list[tuple[str, dict]]:
    found = re.findall(r"event: (\w+)\ndata: (.*)\n\n", body)
    return [(kind, json.loads(data)) for kind, data in found]


def test_ask_streams_the_answer_with_citations_and_keeps_the_conversation(
    runtime: Runtime, model: FakeOpenAI
) -> None:
    model.always(Reply(ANSWER, token_delay=0.01))
    client = signed_in(runtime)
    token = csrf(client)
    asked = client.post(
        "/console/ask/stream",
        headers={"x-csrf-token": token},
        json={"question": "Which port does Zephyr listen on?", "thread": "t1"},
    )
    assert asked.headers["content-type"].startswith("text/event-stream")
    streamed = events(asked.text)
    deltas = [data["text"] for kind, data in streamed if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == ANSWER
    kind, answer = streamed[-1]
    assert kind == "answer" and "8731" in answer["text"] and answer["model"] == "local-model"
    assert answer["citations"][0]["location"].endswith("network.md#listening-port")
    assert answer["note"].startswith("Confidence")
    page = client.get("/console/ask?t=t1")
    assert "Which port does Zephyr listen on?" in page.text and "network.md" in page.text
    voted = client.post(
        "/console/ask/vote",
        headers={"x-csrf-token": token},
        json={"turn": answer["turn"], "value": -1},
    )
    assert voted.json()["stored"] is True
    with runtime.sessions() as session:
        vote = session.scalar(select(Feedback))
        assert (vote.turn_id, vote.user_id, vote.value) == (answer["turn"], "alice", -1)
    follow_up = client.post(
        "/console/ask/stream",
        headers={"x-csrf-token": token},
        json={"question": "x" * 5000, "thread": "t1"},
    )
    assert events(follow_up.text)[-1][0] == "error"
    assert "characters long" in events(follow_up.text)[-1][1]["message"]
    bad = client.post(
        "/console/ask/vote", headers={"x-csrf-token": token}, json={"turn": 999999, "value": 1}
    )
    assert bad.status_code == 404


def audited(runtime: Runtime) -> list[tuple[str, str, str]]:
    with runtime.sessions() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(f"{e.platform}:{e.user_id}", e.command, e.outcome) for e in rows]


def test_sources_are_added_edited_refreshed_and_removed_through_admin(runtime: Runtime) -> None:
    client = signed_in(runtime)
    token = csrf(client)
    with DocSite.with_default_site() as site:
        blocked = client.post(
            "/console/sources",
            data={"csrf": token, "location": site.url("/docs/index.html"), "name": "acme"},
        )
        assert blocked.status_code == 400 and "private" in blocked.text.lower()
        added = client.post(
            "/console/sources",
            follow_redirects=False,
            data={
                "csrf": token,
                "location": site.url("/docs/index.html"),
                "name": "acme",
                "every": "6h",
                "exclude": "faq\n/static/",
                "allow_private": "yes",
            },
        )
        assert added.status_code == 303
        detail = client.get(added.headers["location"])
        assert "every 6h" in detail.text and "faq\n/static/" in detail.text
        with runtime.sessions() as session:
            source_id = session.scalar(select(Source.id).where(Source.name == "acme"))
        bad = client.post(
            f"/console/sources/{source_id}/edit",
            data={"csrf": token, "include": "([unclosed", "every": "1d"},
        )
        assert bad.status_code == 400
        saved = client.post(
            f"/console/sources/{source_id}/edit",
            data={"csrf": token, "include": "/docs/", "cron": "0 3 * * *"},
        )
        assert saved.status_code == 200 and "Saved source" in saved.text
        with runtime.sessions() as session:
            source = session.get(Source, source_id)
            assert source.schedule == "cron 0 3 * * *"
            assert source.options == {"include": ["/docs/"]}
        started = client.post(
            f"/console/sources/{source_id}/refresh", headers={"x-csrf-token": token}
        )
        assert started.status_code == 202
        deadline = time.monotonic() + 60
        status = {}
        while time.monotonic() < deadline:
            status = client.get(f"/console/sources/{source_id}/status").json()
            if status["state"] == "idle" and status["outcome"]:
                break
            time.sleep(0.1)
        assert status["ok"] is True and "refreshed it here" in status["outcome"]
        assert status["run"]["status"] in ("ok", "partial")
        assert status["run"]["counts"]["pages_new"] > 3
        run_page = client.get(f"/console/runs/{status['run']['id']}")
        assert "pages new" in run_page.text and "fetch" in run_page.text
    confirm = client.get(f"/console/sources/{source_id}/remove")
    assert "cannot be undone" in confirm.text
    removed = client.post(f"/console/sources/{source_id}/remove", data={"csrf": token})
    assert "Removed source" in removed.text
    trail = audited(runtime)
    assert [c for _, c, _ in trail] == [
        "sources add",
        "sources add",
        "sources edit",
        "sources edit",
        "sources refresh",
        "sources remove",
    ]
    assert {who for who, _, _ in trail} == {"console:alice"}
    assert trail[0][2].startswith("error:") and trail[1][2] == "ok"


def test_chat_may_not_open_private_addresses(runtime: Runtime) -> None:
    from bot.admin import Actor, run_admin

    chat = run_admin(
        runtime,
        Actor("slack", "U1"),
        ["sources", "add", "http://127.0.0.1:9/", "--name", "x", "--allow-private"],
        platform_admin=True,
    )
    assert not chat.ok and "terminal and the web console" in chat.text


def test_questions_and_audit_are_filtered_and_paged(runtime: Runtime) -> None:
    client = signed_in(runtime)
    for n in range(30):
        runtime.assistant.ask(
            _question(
                f"Which port does Zephyr listen on, take {n}?", "slack" if n % 2 else "discord"
            )
        )
    page = client.get("/console/questions?platform=slack")
    assert page.text.count("take ") == 15 and "Page 1" not in page.text
    everything = client.get("/console/questions")
    assert "Page 1 of 2 (30 in all)" in everything.text
    second = client.get("/console/questions?page=2")
    assert second.text.count("take ") == 5 and "take 0?" in second.text
    assert client.get("/console/questions?page=-3").status_code == 200
    with runtime.sessions() as session:
        zephyr = session.scalar(select(Source.id).where(Source.name == "zephyr"))
    edited = client.post(
        f"/console/sources/{zephyr}/edit", data={"csrf": csrf(client), "every": "1d"}
    )
    assert "Saved source" in edited.text
    with runtime.sessions.begin() as session:
        session.add(
            AuditEntry(platform="slack", user_id="UBOB", command="status", args={}, outcome="ok")
        )
    models = client.get("/console/models?who=slack")
    assert "<td>slack:UBOB</td>" in models.text and "<td>console:alice</td>" not in models.text
    assert "<td>console:alice</td>" in client.get("/console/models?command=sources").text
    assert "local-model" in models.text and "circuit closed" in models.text


def _question(text: str, platform: str):
    from bot.types import Question

    return Question(platform=platform, channel="C1", thread=text, user="U1", text=text)


def test_serve_mounts_the_console_beside_health(runtime: Runtime) -> None:
    app = asgi_app(None, lambda: (True, {"ok": True}), console=web_console(runtime))
    client = TestClient(app, base_url="http://127.0.0.1:3000")
    assert client.get("/healthz").json() == {"ok": True}
    assert (
        client.get("/console/ask", follow_redirects=False)
        .headers["location"]
        .startswith("/console/login")
    )
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/consoles").status_code == 404


def test_console_login_prints_a_working_link(tmp_path: Path) -> None:
    db_url = sqlite_url(tmp_path)
    env = {"TEAMBOT_DATA_DIR": str(tmp_path / "data"), "TEAMBOT_CONSOLE_URL": BASE}
    printed = run(
        "console",
        "login",
        "--user",
        "ops",
        "--next",
        "/console/usage",
        db_url=db_url,
        cwd=tmp_path,
        env=env,
    )
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert link.startswith(f"{BASE}/console/login?token=") and "next=%2Fconsole%2Fusage" in link
    assert "works once" in printed.stderr
    runtime = console_runtime(tmp_path)
    client = TestClient(console_app(runtime, BASE), base_url=BASE)
    token = link.split("token=")[1].split("&")[0]
    landed = client.post(
        "/console/login", data={"token": token, "next": "/console/usage"}, follow_redirects=False
    )
    assert landed.headers["location"] == "/console/usage"
    refused = run("console", "login", "--user", " ", db_url=db_url, cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "Error:" in refused.stderr


def test_sign_in_with_slack_lets_admins_in_only(tmp_path: Path) -> None:
    callback = f"{BASE}/console/auth/slack/callback"
    with FakeSlackOpenID(redirect_uri=callback) as slack:
        runtime = console_runtime(
            tmp_path,
            SLACK_CLIENT_ID=CLIENT_ID,
            SLACK_CLIENT_SECRET=CLIENT_SECRET,
            TEAMBOT_ADMINS="slack:UALICE",
            SLACK_API_URL=slack.api_url,
            SLACK_OPENID_URL=slack.authorize_url,
        )
        client = TestClient(console_app(runtime, BASE), base_url=BASE)
        assert "Sign in with Slack" in client.get("/console/login").text

        def through_slack(user: str, next_path: str = "/console/models"):
            slack.sign_in_as(user)
            start = client.get(f"/console/auth/slack?next={next_path}", follow_redirects=False)
            import httpx

            back = httpx.get(start.headers["location"], follow_redirects=False)
            return client.get(back.headers["location"].removeprefix(BASE), follow_redirects=False)

        landed = through_slack("UALICE")
        assert landed.status_code == 303 and landed.headers["location"] == "/console/models"
        assert "slack:UALICE" in client.get("/console/models").text
        [asked] = slack.authorize_requests[:1]
        assert asked["nonce"] and asked["state"] and asked["scope"] == "openid profile"
        client.cookies.clear()
        bob = through_slack("UBOB")
        assert bob.status_code == 403 and "admin admins add slack:UBOB" in bob.text
        forged = client.get("/console/auth/slack/callback?code=x&state=wrong")
        assert forged.status_code == 403
        # A token endpoint that answers for another app, another sign-in, or with junk.
        for claims, token, says in (
            ({"aud": f"evil-{CLIENT_ID}-app"}, None, "audience"),
            ({"aud": ["evil-app"]}, None, "audience"),
            ({"nonce": "someone-elses"}, None, "nonce"),
            ({}, "not.a-jwt", "no usable ID token"),
            ({}, "a.b", "no usable ID token"),
        ):
            slack.id_token_claims, slack.id_token = claims, token
            client.cookies.clear()
            hostile = through_slack("UALICE")
            assert hostile.status_code == 403 and says in hostile.text, (claims, token)
            assert client.get("/console/sources", follow_redirects=False).status_code == 303
        slack.id_token_claims, slack.id_token = {"aud": ["other-app", CLIENT_ID]}, None
        client.cookies.clear()
        assert through_slack("UALICE").status_code == 303  # a list naming the app is fine
        with runtime.sessions.begin() as session:
            session.add(Admin(platform="slack", user_id="UCAROL", added_by="cli:ops"))
        client.cookies.clear()
        assert through_slack("UCAROL").status_code == 303
        assert client.get("/console/sources").status_code == 200
        with runtime.sessions.begin() as session:
            session.delete(session.scalar(select(Admin).where(Admin.user_id == "UCAROL")))
        assert client.get("/console/sources", follow_redirects=False).status_code == 303


def test_teambot_console_serves_the_console_and_health_alone(tmp_path: Path) -> None:
    port = free_port()
    env = (
        os.environ
        | NO_PLATFORMS
        | {
            "DATABASE_URL": sqlite_url(tmp_path),
            "TEAMBOT_HOST": "127.0.0.1",
            "TEAMBOT_PORT": str(port),
            "TEAMBOT_DATA_DIR": str(tmp_path / "data"),
        }
    )
    log = (tmp_path / "console.log").open("wb")
    served = subprocess.Popen([TEAMBOT, "console"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert served.poll() is None, (tmp_path / "console.log").read_text()
            assert time.monotonic() < deadline, "teambot console did not start"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health.status_code == 200
        page = httpx.get(f"http://127.0.0.1:{port}/console/sources", follow_redirects=True)
        assert page.status_code == 200 and "teambot console login" in page.text  # sign-in page
        assert httpx.post(f"http://127.0.0.1:{port}/slack/events").status_code == 404
    finally:
        served.terminate()
        served.wait(timeout=10)
        log.close()


def test_a_refresh_goes_to_a_live_worker(runtime: Runtime) -> None:
    from knowledge.storage import coordination

    with runtime.sessions.begin() as session:
        coordination.beat(session, "host:1:w", coordination.WORKER, set())
        zephyr = session.scalar(select(Source.id).where(Source.name == "zephyr"))
    client = signed_in(runtime)
    started = client.post(
        f"/console/sources/{zephyr}/refresh", headers={"x-csrf-token": csrf(client)}
    )
    assert started.status_code == 202
    deadline = time.monotonic() + 10
    while client.get(f"/console/sources/{zephyr}/status").json()[
        "state"
    ] != "queued" or not audited(runtime):
        assert time.monotonic() < deadline, "the refresh was not queued"
        time.sleep(0.05)
    with runtime.sessions() as session:
        source = session.get(Source, zephyr)
        assert source.refresh_requested_by == "console:alice"
    assert audited(runtime)[-1] == ("console:alice", "sources refresh", "ok")
