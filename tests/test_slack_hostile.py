"""The Slack edge under hostile and unusual input (issue #16, items 7, 9 and 12): garbage
before the signature check, Slack's own message formatting, other bots, other workspaces,
events lacking fields, and `teambot serve` started with a bad token or no Slack to reach.

The real bolt app is served by uvicorn on 127.0.0.1 against the fake Slack, as in
test_slack.py; start-up failures run the real `teambot serve` in a subprocess."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.serve import MAX_BODY_BYTES
from bot.settings import Settings
from bot.slack.text import plain_text
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage.documents import Source
from knowledge.storage.processes import ProcessedEvent
from tests.conftest import sqlite_url
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    message_event,
    sign,
    slash_command,
    slash_command_form,
)
from tests.fakes.slack_events import (
    OTHER_APP_ID,
    OTHER_TEAM_ID,
    for_workspace,
    posted_by_bot,
    without,
)
from tests.processes import TEAMBOT, free_port
from tests.test_serve_modes import Served
from tests.test_slack import Bot, final_answers, make_runtime, mention, wait_for_answers

MARKER = "BODY-MARKER-7f3a"  # in every hostile body: it must never reach a log
QUIET_SECONDS = 0.5  # time for a wrong answer to show up


@pytest.fixture
def bot(
    tmp_path: Path, docs: Path, embedder: Embedder, slack: FakeSlack, model: FakeOpenAI
) -> Iterator[Bot]:
    url = sqlite_url(tmp_path)
    runtime = Runtime(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    ingest_folder(runtime.sessions, embedder, docs, name="zephyr")
    runtime.close()
    served = Bot(make_runtime(url, tmp_path / "data", embedder, slack, model,
                              teambot_admins="slack:UADMIN"))  # fmt: skip
    yield served
    served.stop()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at INFO or above, uvicorn's too (its loggers do not propagate to root)."""
    caplog.set_level(logging.INFO)
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    yield caplog
    uvicorn_logger.removeHandler(caplog.handler)


def post(bot: Bot, body: bytes, content_type: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{bot.port}/slack/events", content=body,
                      headers={"content-type": content_type, **headers}, timeout=10)  # fmt: skip


# --- item 7: before authentication --------------------------------------------------------

JSON, FORM = "application/json", "application/x-www-form-urlencoded"
GOOD_JSON = json.dumps({"type": "event_callback", "marker": MARKER}).encode()
NOT_UTF8 = b'{"text": "\xff\xfe' + MARKER.encode() + b'"}'
UNSIGNED = {
    "invalid UTF-8": (NOT_UTF8, JSON),
    "malformed JSON": (b'{"text": "' + MARKER.encode(), JSON),
    "a JSON array": (json.dumps([MARKER]).encode(), JSON),
    "a bad payload= form": (b"payload=%7B" + MARKER.encode(), FORM),
    "a JSON array in payload=": (urlencode({"payload": json.dumps([MARKER])}).encode(), FORM),
}


def forged(body: bytes) -> dict[str, str]:
    return sign("not-the-signing-secret", body)


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        *[(body, kind, forged(body)) for body, kind in UNSIGNED.values()],
        (GOOD_JSON, JSON, {}),
        (GOOD_JSON, JSON, {"X-Slack-Signature": forged(GOOD_JSON)["X-Slack-Signature"]}),
        (GOOD_JSON, JSON, {**forged(GOOD_JSON), "X-Slack-Request-Timestamp": "soon"}),
        (GOOD_JSON, JSON, {**forged(GOOD_JSON), "X-Slack-Request-Timestamp": "1e9"}),
        (GOOD_JSON, JSON, forged(GOOD_JSON)),
    ],
    ids=[*(f"forged, {name}" for name in UNSIGNED), "no signature", "no timestamp",
         "a timestamp that is a word", "a timestamp in exponent form", "a forged signature"],
)  # fmt: skip
def test_unsigned_garbage_is_401_in_one_log_line_without_the_body(
    bot: Bot, logs: pytest.LogCaptureFixture, body: bytes, content_type: str,
    headers: dict[str, str],
) -> None:  # fmt: skip
    logs.clear()
    response = post(bot, body, content_type, headers)

    assert response.status_code == 401
    assert_one_short_line(logs)


@pytest.mark.parametrize(("body", "content_type"), UNSIGNED.values(), ids=list(UNSIGNED))
def test_signed_garbage_is_refused_in_one_log_line_without_the_body(
    bot: Bot, logs: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    logs.clear()
    response = post(bot, body, content_type, sign(SIGNING_SECRET, body))

    # Slack signs UTF-8 text: other bytes cannot carry its signature, whatever the header says.
    assert response.status_code == (401 if body == NOT_UTF8 else 400)
    assert_one_short_line(logs)


def test_a_body_over_the_cap_is_413_before_its_signature_is_read(
    bot: Bot, logs: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"type": "event_callback", "text": MARKER * 100_000}).encode()
    assert len(body) > MAX_BODY_BYTES
    logs.clear()
    response = post(bot, body, JSON, sign(SIGNING_SECRET, body))

    assert response.status_code == 413
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]
    assert MARKER not in logs.text


def test_a_query_string_that_is_not_ascii_is_400_in_one_log_line(
    bot: Bot, logs: pytest.LogCaptureFixture
) -> None:
    """bolt's ASGI handler decodes the query as UTF-8: such bytes must never reach it (uvicorn
    refuses the request line) nor be a 500."""
    logs.clear()
    headers = "".join(f"{k}: {v}\r\n" for k, v in sign(SIGNING_SECRET, GOOD_JSON).items())
    request = (b"POST /slack/events?x=\xff" + MARKER.encode() + b" HTTP/1.1\r\n"
               + f"Host: 127.0.0.1\r\nContent-Type: {JSON}\r\nContent-Length: {len(GOOD_JSON)}\r\n"
               f"{headers}Connection: close\r\n\r\n".encode() + GOOD_JSON)  # fmt: skip
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as raw:
        raw.sendall(request)
        status_line = raw.makefile("rb").readline()

    assert status_line.split()[1] == b"400"
    assert_one_short_line(logs)


def assert_one_short_line(logs: pytest.LogCaptureFixture) -> None:
    time.sleep(0.1)  # anything logged after the response (bolt's threads) shows up too
    records = [r for r in logs.records if r.levelno >= logging.INFO and r.name != "httpx"]
    assert len(records) == 1, [r.getMessage() for r in records]
    [record] = records
    assert record.exc_info is None and "Traceback" not in logs.text
    assert MARKER not in logs.text and "v0=" not in logs.text  # no body, no signature
    assert len(record.getMessage()) < 200


# --- item 9: Slack's formatting, bots, other workspaces, missing fields -------------------


@pytest.mark.parametrize(
    ("sent", "meant"),
    [
        ("<@UBOT> admin sources add <https://docs.example.com/>",
         "admin sources add https://docs.example.com/"),
        ("see <https://x.io/a?b=1&amp;c=2|the guide>", "see https://x.io/a?b=1&c=2"),
        ("ask <@U2|ann> or <@U3> in <#C1|ops>, <#C2|> or <#C3>",
         "ask @ann or @U3 in #ops, #C2 or #C3"),
        ("<!here> <!channel> <!everyone> <!subteam^S1|@infra> <!subteam^S2>",
         "@here @channel @everyone @infra @S2"),
        ("a &lt;b&gt; &amp;amp; c", "a <b> &amp; c"),
        ("mail <mailto:ops@example.com|ops@example.com>", "mail ops@example.com"),
        ("  plain text stays  ", "plain text stays"),
    ],
)  # fmt: skip
def test_slack_formatting_is_decoded_to_what_was_typed(sent: str, meant: str) -> None:
    assert plain_text(sent, BOT_USER_ID) == meant


@pytest.mark.parametrize("link", ["<https://1.1.1.1/docs/>", "<https://1.1.1.1/docs/|docs>"])
def test_an_admin_adds_a_source_with_the_link_real_slack_sends(
    bot: Bot, slack: FakeSlack, link: str
) -> None:
    # A public address written as such: nothing to resolve on a machine with no DNS.
    asked = mention(f"admin sources add {link} --name example", user="UADMIN")
    bot.event(asked)

    [reply] = slack.wait_for(lambda: slack.thread("C1", asked["event"]["ts"]))
    assert "https://1.1.1.1/docs/" in reply["text"], reply["text"]
    with bot.runtime.sessions() as session:
        location = session.scalar(select(Source.location).where(Source.name == "example"))
    assert location == "https://1.1.1.1/docs/"


def test_a_question_reaches_the_model_as_it_was_typed(
    bot: Bot, slack: FakeSlack, model: FakeOpenAI
) -> None:
    bot.event(mention("Which port does Zephyr listen on, as <https://docs.example.com/net?a=1&amp;b=2"
                      "|the guide> says? &lt;port&gt; for <@U2|ann> in <#C9|ops>"))  # fmt: skip

    wait_for_answers(slack, "C1")
    question = model.chat_requests()[-1]["messages"][-1]["content"]
    assert ("Which port does Zephyr listen on, as https://docs.example.com/net?a=1&b=2 says? "
            "<port> for @ann in #ops") in question  # fmt: skip
    assert "<@" not in question and "&amp;" not in question and "&lt;" not in question


def test_ask_decodes_the_question_and_echoes_it_escaped(
    bot: Bot, slack: FakeSlack, model: FakeOpenAI
) -> None:
    text = "Which port does Zephyr listen on &lt;!channel&gt; <https://docs.example.com/a|docs>?"
    bot.form(slash_command_form("/ask", text, "C5", "U3", slack.response_url()))

    wait_for_answers(slack, "C5")
    question = model.chat_requests()[-1]["messages"][-1]["content"]
    assert "Which port does Zephyr listen on <!channel> https://docs.example.com/a?" in question
    echo = slack.messages("C5")[0]["text"]  # shown as typed, never a ping of the channel
    assert echo == (
        "<@U3> asked: Which port does Zephyr listen on &lt;!channel&gt; https://docs.example.com/a?"
    )


@pytest.mark.parametrize("integration", [False, True], ids=["an app", "an integration"])
def test_mentions_and_messages_from_other_bots_are_never_answered_nor_claimed(
    bot: Bot, slack: FakeSlack, integration: bool
) -> None:
    now = f"{time.time():.6f}"
    deliveries = [
        posted_by_bot(mention(), integration=integration),
        posted_by_bot(message_event("Which port?", "D42", "U9", now), integration=integration),
    ]

    assert [bot.event(envelope).status_code for envelope in deliveries] == [200, 200]
    time.sleep(QUIET_SECONDS)
    assert slack.calls_to("chat.postMessage") == [] and slack.calls_to("reactions.add") == []
    with bot.runtime.sessions() as session:
        assert session.scalars(select(ProcessedEvent)).all() == []


def test_deliveries_for_another_workspace_or_app_are_acknowledged_and_ignored(
    bot: Bot, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    other_team = for_workspace(mention(), team_id=OTHER_TEAM_ID)
    other_app = for_workspace(mention(channel="C2"), app_id=OTHER_APP_ID)
    command = for_workspace(slash_command("/ask", "Which port?", "C3", "U3",
                                          slack.response_url()), team_id=OTHER_TEAM_ID)  # fmt: skip

    responses = [bot.event(other_team), bot.event(other_app), bot.form(urlencode(command).encode())]

    assert [r.status_code for r in responses] == [200, 200, 200]  # so Slack does not retry
    time.sleep(QUIET_SECONDS)
    assert slack.calls_to("chat.postMessage") == [] and slack.calls_to("response_url") == []
    ignored = [r.getMessage() for r in logs.records if r.getMessage().startswith("ignored")]
    assert len(ignored) == 3 and OTHER_TEAM_ID in ignored[0] and OTHER_APP_ID in ignored[1]
    bot.event(mention(channel="C4"))  # its own workspace is still answered
    wait_for_answers(slack, "C4")


@pytest.mark.parametrize("field", ["ts", "channel"])
def test_a_signed_mention_lacking_a_field_is_ignored_in_one_log_line(
    bot: Bot, slack: FakeSlack, logs: pytest.LogCaptureFixture, field: str
) -> None:
    logs.clear()
    response = bot.event(without(mention(), field))

    assert response.status_code == 200
    time.sleep(QUIET_SECONDS)
    assert slack.calls_to("chat.postMessage") == []
    assert [r.getMessage() for r in logs.records if r.name.startswith("bot.")] == [
        f"ignored a Slack app_mention event without event.{field}"
    ]
    assert "Traceback" not in logs.text


def test_socket_mode_ignores_other_workspaces_and_answers_its_own(
    bot: Bot, slack: FakeSlack
) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(bot.app, "xapp-test")
    handler.connect()
    try:
        foreign = slack.socket_send("events_api", for_workspace(mention(), team_id=OTHER_TEAM_ID))
        ours = slack.socket_send("events_api", mention(channel="C6"))
        slack.wait_for_ack(foreign)
        slack.wait_for_ack(ours)
        wait_for_answers(slack, "C6")
        time.sleep(QUIET_SECONDS)
        assert final_answers(slack, "C1") == [] and len(final_answers(slack, "C6")) == 1
    finally:
        slack.stop()
        handler.close()


# --- item 12: `teambot serve` that cannot reach or use Slack ------------------------------


def serve_once(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {
        "DATABASE_URL": sqlite_url(tmp_path),
        "TEAMBOT_HOST": "127.0.0.1",
        "TEAMBOT_PORT": str(free_port()),
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": "",
        "DISCORD_TOKEN": "",
        **env,
    }
    return subprocess.run([TEAMBOT, "serve"], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_serve_with_a_token_slack_rejects_says_what_to_fix_in_one_line(
    tmp_path: Path, slack: FakeSlack
) -> None:
    served = serve_once(tmp_path, SLACK_BOT_TOKEN="xoxb-revoked", SLACK_API_URL=slack.api_url)

    assert served.returncode == 1
    assert served.stderr.splitlines() == [
        "Error: Slack rejected SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token "
        "(xoxb-…) from your Slack app's OAuth & Permissions page."
    ]


def test_serve_that_cannot_reach_slack_says_so_in_one_line(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    served = serve_once(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=nowhere)

    assert served.returncode == 1
    [line] = served.stderr.splitlines()
    assert line.startswith(f"Error: Cannot reach Slack at {nowhere} (")
    assert "Connection refused" in line and line.endswith("check SLACK_API_URL and that this "
                                                          "machine can reach it (network, proxy, "
                                                          "firewall).")  # fmt: skip


def test_serve_starts_without_bolts_unused_token_warning(tmp_path: Path, slack: FakeSlack) -> None:
    served = Served(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                               "SLACK_API_URL": slack.api_url})  # fmt: skip
    try:
        served.wait_until_serving()
    finally:
        served.stop()
    assert "will be unused" not in served.logs() and "WARNING" not in served.logs()
