"""Tests for tests/fakes/slack.py, driven by the real ``slack_sdk`` and ``slack_bolt`` clients.

They also pin down how those clients behave against it, which the bot relies on: a 429 raises
SlackApiError ``ratelimited`` unless a ``RateLimitErrorRetryHandler`` is attached (WebClient's
default retry handlers only retry connection errors); bolt's ``SocketModeHandler`` is the
builtin (stdlib) client and reaches the fake through the App's ``WebClient(base_url=...)``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qsl

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient as AiohttpSocketModeClient
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    APP_ID,
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    TEAM_ID,
    FakeSlack,
    app_mention_event,
    block_action,
    block_action_payload,
    message_event,
    sign,
    slash_command,
    slash_command_form,
)

CHANNEL = "C0GENERAL"
HUMAN = "U0ALICE"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


@pytest.fixture
def web(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url, timeout=5)


def _builtin_client(web: WebClient, received: list[SocketModeRequest]) -> SocketModeClient:
    """A builtin Socket Mode client that records what it receives and acks it."""
    client = SocketModeClient(app_token=APP_TOKEN, web_client=web, auto_reconnect_enabled=False)

    def on_request(client: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    client.socket_mode_request_listeners.append(on_request)
    return client


# -- Web API ---------------------------------------------------------------------------------


def test_api_url_is_local(fake: FakeSlack) -> None:
    assert fake.api_url.startswith("http://127.0.0.1:")
    assert fake.api_url.endswith("/api/")


def test_auth_test_names_the_bot(web: WebClient) -> None:
    answer = web.auth_test()
    assert answer["user_id"] == BOT_USER_ID
    assert answer["bot_id"] == BOT_ID
    assert answer["team_id"] == TEAM_ID


def test_post_then_update_shows_in_the_thread(fake: FakeSlack, web: WebClient) -> None:
    parent = fake.seed_message(CHANNEL, "How do I restart a node?", HUMAN)
    posted = web.chat_postMessage(channel=CHANNEL, thread_ts=parent, text="Thinking…")
    assert posted["channel"] == CHANNEL
    assert posted["message"]["thread_ts"] == parent
    assert posted["message"]["bot_id"] == BOT_ID
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Run `acme restart` [1]"}}]
    updated = web.chat_update(channel=CHANNEL, ts=posted["ts"], text="Run it", blocks=blocks)
    assert updated["ts"] == posted["ts"]

    replies = web.conversations_replies(channel=CHANNEL, ts=parent)
    assert replies["has_more"] is False
    assert [(m["user"], m["text"]) for m in replies["messages"]] == [
        (HUMAN, "How do I restart a node?"),
        (BOT_USER_ID, "Run it"),
    ]
    assert replies["messages"][1]["blocks"] == blocks
    assert replies["messages"][0]["reply_count"] == 1
    assert fake.thread(CHANNEL, parent) == replies["messages"]


def test_ts_are_unique_and_increasing(fake: FakeSlack, web: WebClient) -> None:
    seeded = fake.seed_message(CHANNEL, "first", HUMAN)
    posted = [web.chat_postMessage(channel=CHANNEL, text=str(n))["ts"] for n in range(3)]
    stamps = [seeded, *posted]
    assert seeded == "1700000000.000100"
    assert len(set(stamps)) == 4
    assert [float(ts) for ts in stamps] == sorted(float(ts) for ts in stamps)
    assert [m["ts"] for m in fake.messages(CHANNEL)] == stamps


def test_update_fails_like_slack(fake: FakeSlack, web: WebClient) -> None:
    human = fake.seed_message(CHANNEL, "mine", HUMAN)
    with pytest.raises(SlackApiError) as unknown:
        web.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    with pytest.raises(SlackApiError) as not_ours:
        web.chat_update(channel=CHANNEL, ts=human, text="x")
    assert unknown.value.response["error"] == "message_not_found"
    assert not_ours.value.response["error"] == "cant_update_message"
    assert fake.messages(CHANNEL)[0]["text"] == "mine"


@pytest.mark.parametrize(
    ("token", "method", "error"),
    [
        ("xoxb-wrong", "auth.test", "invalid_auth"),
        (APP_TOKEN, "chat.postMessage", "not_allowed_token_type"),
        (BOT_TOKEN, "apps.connections.open", "not_allowed_token_type"),
    ],
)
def test_tokens_are_checked(fake: FakeSlack, token: str, method: str, error: str) -> None:
    client = WebClient(token=token, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as raised:
        client.api_call(method, json={"channel": CHANNEL, "text": "hi"})
    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == error
    assert fake.messages(CHANNEL) == []


def test_unknown_method(web: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        web.api_call("chat.frobnicate")
    assert raised.value.response["error"] == "unknown_method"


def test_429_without_a_retry_handler_raises_ratelimited(fake: FakeSlack, web: WebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        web.chat_postMessage(channel=CHANNEL, text="hi")
    response = raised.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "7"
    assert web.chat_postMessage(channel=CHANNEL, text="hi")["ok"]  # the fault is used up


def test_429_with_a_retry_handler_succeeds_after_retry_after(
    fake: FakeSlack, web: WebClient
) -> None:
    web.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", retry_after=1)
    started = time.monotonic()
    answer = web.chat_postMessage(channel=CHANNEL, text="hi")
    assert answer["ok"]
    attempts = fake.calls_to("chat.postMessage")
    assert [call.status for call in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert time.monotonic() - started >= 1.0
    assert len(fake.messages(CHANNEL)) == 1


def test_scripted_errors_and_server_errors(fake: FakeSlack, web: WebClient) -> None:
    fake.fail_next("chat.postMessage", error="channel_not_found", times=2)
    fake.fail_next("chat.postMessage", status=500)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(web.chat_postMessage(channel=CHANNEL, text="hi").status_code)
        except SlackApiError as error:
            outcomes.append((error.response.status_code, error.response["error"]))
    assert outcomes == [
        (200, "channel_not_found"),
        (200, "channel_not_found"),
        (500, "internal_error"),
        200,
    ]


def test_calls_record_form_and_json_params(fake: FakeSlack, web: WebClient) -> None:
    blocks = [{"type": "divider"}]
    web.api_call("chat.postMessage", params={"channel": CHANNEL, "blocks": json.dumps(blocks)})
    web.chat_postMessage(channel=CHANNEL, text="json", blocks=blocks)
    form, as_json = fake.calls_to("chat.postMessage")
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert as_json.headers["content-type"].startswith("application/json")
    assert form.params["blocks"] == as_json.params["blocks"] == blocks
    assert as_json.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert as_json.response is not None
    assert as_json.response["ts"] == fake.messages(CHANNEL)[1]["ts"]


def test_ephemeral_and_reactions(fake: FakeSlack, web: WebClient) -> None:
    ts = fake.seed_message(CHANNEL, "question", HUMAN)
    assert web.chat_postEphemeral(channel=CHANNEL, user=HUMAN, text="only you")["message_ts"]
    assert fake.messages(CHANNEL)[-1]["text"] == "question"  # ephemeral: not in the channel
    web.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
    assert fake.messages(CHANNEL)[0]["reactions"] == [
        {"name": "eyes", "users": [BOT_USER_ID], "count": 1}
    ]
    with pytest.raises(SlackApiError, match="already_reacted"):
        web.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
    web.reactions_remove(channel=CHANNEL, timestamp=ts, name="eyes")
    assert fake.messages(CHANNEL)[0]["reactions"] == []
    assert [c.params["name"] for c in fake.calls_to("reactions.add")] == ["eyes", "eyes"]


def test_history_is_top_level_newest_first(fake: FakeSlack, web: WebClient) -> None:
    first = fake.seed_message(CHANNEL, "first", HUMAN)
    fake.seed_message(CHANNEL, "a reply", HUMAN, thread_ts=first)
    fake.seed_message(CHANNEL, "second", HUMAN)
    history = web.conversations_history(channel=CHANNEL, limit=1)
    assert [m["text"] for m in history["messages"]] == ["second"]
    assert history["has_more"] is True
    assert [m["text"] for m in web.conversations_history(channel=CHANNEL)["messages"]] == [
        "second",
        "first",
    ]


def test_users_info(fake: FakeSlack, web: WebClient) -> None:
    fake.add_user(HUMAN, "alice.smith", tz="Europe/Paris")
    alice = web.users_info(user=HUMAN)["user"]
    assert (alice["id"], alice["real_name"], alice["tz"], alice["is_bot"]) == (
        HUMAN,
        "Alice Smith",
        "Europe/Paris",
        False,
    )
    assert web.users_info(user=BOT_USER_ID)["user"]["is_bot"] is True
    assert web.users_info(user="U0BOB")["user"]["name"] == "u0bob"


def test_wait_for_returns_the_value_or_times_out(fake: FakeSlack, web: WebClient) -> None:
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: fake.calls_to("auth.test"), timeout=0.1)
    web.auth_test()
    assert fake.wait_for(lambda: fake.calls_to("auth.test"), timeout=1)[0].status == 200


# -- what Slack sends to an app --------------------------------------------------------------


def test_sign_is_what_slack_sdk_verifies() -> None:
    body = json.dumps(app_mention_event("<@UBOT> hi", CHANNEL, HUMAN, "1.000001")).encode()
    headers = sign(SIGNING_SECRET, body)
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b" ", headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)
    stale = sign(SIGNING_SECRET, body, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)


def test_event_builders() -> None:
    mention = app_mention_event("<@UBOT> hi", CHANNEL, HUMAN, "1.000002", thread_ts="1.000001")
    assert mention["type"] == "event_callback"
    assert mention["api_app_id"] == APP_ID
    assert mention["event"]["thread_ts"] == "1.000001"
    assert mention["event_id"] != app_mention_event("x", CHANNEL, HUMAN, "1.000002")["event_id"]
    dm = message_event("hi", "D0ALICE", HUMAN, "1.000003")
    assert dm["event"]["channel_type"] == "im"
    reply = message_event("hi", CHANNEL, BOT_USER_ID, "1.000004", thread_ts="1.1", bot_id=BOT_ID)
    assert reply["event"]["channel_type"] == "channel"
    assert (reply["event"]["thread_ts"], reply["event"]["bot_id"]) == ("1.1", BOT_ID)
    form = dict(parse_qsl(slash_command_form("/ask", "a b", CHANNEL, HUMAN, "http://x/").decode()))
    assert form["command"] == "/ask" and form["text"] == "a b" and form["channel_id"] == CHANNEL
    action = dict(parse_qsl(block_action_payload("up", "1", HUMAN, CHANNEL, "1.000005").decode()))
    assert json.loads(action["payload"])["actions"][0]["action_id"] == "up"


def test_bolt_accepts_the_signed_http_bodies(fake: FakeSlack, web: WebClient) -> None:
    """Bolt verifies each signature, parses each body and runs the matching listener."""
    app = App(client=web, signing_secret=SIGNING_SECRET)
    seen: list[str] = []

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], say: Any) -> None:
        say(text="on it", thread_ts=event["ts"])

    @app.command("/ask")
    def on_ask(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        ack()
        respond(f"answer to {command['text']}")

    @app.action("feedback_up")
    def on_feedback(ack: Any, body: dict[str, Any]) -> None:
        ack()
        seen.append(body["actions"][0]["value"])

    ts = fake.seed_message(CHANNEL, "<@UBOT> hi", HUMAN)
    response_url = fake.response_url()
    bodies = [
        json.dumps(app_mention_event("<@UBOT> hi", CHANNEL, HUMAN, ts)).encode(),
        slash_command_form("/ask", "restart?", CHANNEL, HUMAN, response_url),
        block_action_payload("feedback_up", "42", HUMAN, CHANNEL, ts),
    ]
    for body in bodies:
        request = BoltRequest(body=body.decode(), headers=sign(SIGNING_SECRET, body))
        assert app.dispatch(request).status == 200
    unsigned = BoltRequest(body=bodies[0].decode(), headers=sign("wrong", bodies[0]))
    assert app.dispatch(unsigned).status == 401

    reply = fake.wait_for(lambda: fake.calls_to("chat.postMessage"))[0]
    assert (reply.params["text"], reply.params["thread_ts"]) == ("on it", ts)
    posted = fake.wait_for(lambda: fake.calls_to("response_url"))[0]
    assert posted.path == response_url.removeprefix(fake.api_url.removesuffix("/api/"))
    assert posted.params["text"] == "answer to restart?"
    assert seen == ["42"]


# -- Socket Mode -----------------------------------------------------------------------------


def test_builtin_client_gets_hello_then_an_envelope_and_acks_it(
    fake: FakeSlack, web: WebClient
) -> None:
    raw: list[str] = []
    received: list[SocketModeRequest] = []
    client = _builtin_client(web, received)
    client.on_message_listeners.append(raw.append)
    try:
        client.connect()
        assert fake.socket_connected(timeout=5)
        event = app_mention_event("<@UBOT> hi", CHANNEL, HUMAN, "1.000001")
        envelope_id = fake.socket_send("events_api", event)
        ack = fake.wait_for_ack(envelope_id, timeout=5)
    finally:
        fake.stop()
        client.close()
    assert fake.calls_to("apps.connections.open")[0].headers["authorization"] == (
        f"Bearer {APP_TOKEN}"
    )
    assert json.loads(raw[0])["type"] == "hello"
    assert (ack.envelope_id, ack.payload) == (envelope_id, None)
    assert [(r.type, r.envelope_id, r.payload) for r in received] == [
        ("events_api", envelope_id, event)
    ]
    assert received[0].accepts_response_payload is False


def test_stop_is_prompt_with_a_client_connected(fake: FakeSlack, web: WebClient) -> None:
    client = _builtin_client(web, [])
    try:
        client.connect()
        assert fake.socket_connected(timeout=5)
        stopping = time.monotonic()
        fake.stop()
        assert time.monotonic() - stopping < 1.0
        deadline = time.monotonic() + 5
        while client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not client.is_connected()  # it got the close frame
    finally:
        client.close()


def test_disconnect_makes_the_client_reconnect(fake: FakeSlack, web: WebClient) -> None:
    client = SocketModeClient(app_token=APP_TOKEN, web_client=web)  # auto-reconnect on
    try:
        client.connect()
        assert fake.socket_connected(timeout=5)
        fake.socket_disconnect()
        fake.wait_for(lambda: len(fake.calls_to("apps.connections.open")) == 2, timeout=5)
        assert fake.socket_connected(timeout=5)
    finally:
        client.auto_reconnect_enabled = False
        fake.stop()
        client.close()


def test_connections_need_a_ticket_from_apps_connections_open(fake: FakeSlack) -> None:
    url = fake.api_url.replace("/api/", "/link/?ticket=made-up")
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "a2V5"}
    with pytest.raises(HTTPError) as raised:
        urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
    assert raised.value.code == 401
    assert not fake.socket_connected(timeout=0)


def test_bolt_socket_mode_handler_answers_a_mention(fake: FakeSlack, web: WebClient) -> None:
    app = App(client=web)

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], say: Any) -> None:
        say(text="hello back", thread_ts=event["ts"])

    handler = SocketModeHandler(app, app_token=APP_TOKEN)
    try:
        handler.connect()
        ts = fake.seed_message(CHANNEL, "<@UBOT> hi", HUMAN)
        envelope_id = fake.socket_send("events_api", app_mention_event("hi", CHANNEL, HUMAN, ts))
        assert fake.wait_for_ack(envelope_id, timeout=5).payload is None
        fake.wait_for(lambda: len(fake.thread(CHANNEL, ts)) == 2, timeout=5)
    finally:
        fake.stop()
        handler.close()
    assert [c.method for c in fake.calls] == [
        "auth.test",  # App() verifies its token
        "apps.connections.open",
        "chat.postMessage",
    ]
    assert fake.thread(CHANNEL, ts)[1]["text"] == "hello back"


def test_aiohttp_client_acks_with_a_response_payload(fake: FakeSlack) -> None:
    async def run() -> str:
        web = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
        client = AiohttpSocketModeClient(
            app_token=APP_TOKEN, web_client=web, auto_reconnect_enabled=False
        )

        async def on_request(client: Any, request: SocketModeRequest) -> None:
            answer = {"text": f"echo {request.payload['text']}"}
            response = SocketModeResponse(envelope_id=request.envelope_id, payload=answer)
            await client.send_socket_mode_response(response)

        client.socket_mode_request_listeners.append(on_request)
        try:
            await client.connect()
            command = slash_command("/ask", "ping", CHANNEL, HUMAN, fake.response_url())
            envelope_id = await asyncio.to_thread(fake.socket_send, "slash_commands", command)
            await asyncio.to_thread(fake.wait_for_ack, envelope_id, 5)
            return envelope_id
        finally:
            await client.close()

    envelope_id = asyncio.run(run())
    assert [(a.envelope_id, a.payload) for a in fake.acks] == [(envelope_id, {"text": "echo ping"})]


def test_interactive_envelopes_carry_block_actions(fake: FakeSlack, web: WebClient) -> None:
    received: list[SocketModeRequest] = []
    client = _builtin_client(web, received)
    try:
        client.connect()
        payload = block_action("feedback_up", "1", HUMAN, CHANNEL, "1.000001")
        envelope_id = fake.socket_send("interactive", payload)
        fake.wait_for_ack(envelope_id, timeout=5)
    finally:
        fake.stop()
        client.close()
    assert received[0].type == "interactive"
    assert received[0].payload["type"] == "block_actions"
