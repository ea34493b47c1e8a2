"""`teambot serve` serves GET /healthz and GET /metrics in every mode, not only with Slack's HTTP
events: the real command in a subprocess, against the fake Slack (Socket Mode) and the fake
Discord (gateway), on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import sqlite_url
from tests.fakes.discord import BOT_TOKEN as DISCORD_TOKEN
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, message_event
from tests.processes import TEAMBOT, free_port

START_SECONDS = 30  # importing the CLI and connecting take ~2 s; a slow CI runner gets slack
STOP_SECONDS = 10
NO_PLATFORMS = dict.fromkeys(
    ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"], ""
)


class Served:
    """`teambot serve` in a subprocess on a free 127.0.0.1 port, its logs in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *options: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp_path / "serve.log"
        served_at = {"TEAMBOT_HOST": "127.0.0.1", "TEAMBOT_PORT": str(port)}
        environment = os.environ | NO_PLATFORMS | env | served_at
        environment["DATABASE_URL"] = sqlite_url(tmp_path)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [TEAMBOT, "serve", *options], cwd=tmp_path, env=environment, stdout=log, stderr=log
            )

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.process.poll() is None, f"teambot serve exited:\n{self.logs()}"
            assert time.monotonic() < deadline, f"no HTTP server:\n{self.logs()}"
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and return the exit code (negative: ended by that signal)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def socket_mode(tmp_path: Path, slack: FakeSlack) -> Iterator[Served]:
    served = Served(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
                               "SLACK_API_URL": slack.api_url})  # fmt: skip
    served.wait_until_serving()
    yield served
    served.stop()


def discord_env(fake: FakeDiscord) -> dict[str, str]:
    return {"DISCORD_TOKEN": DISCORD_TOKEN, "DISCORD_API_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url}  # fmt: skip


@pytest.fixture
def discord_only(tmp_path: Path, discord: FakeDiscord) -> Iterator[Served]:
    served = Served(tmp_path, discord_env(discord))
    served.wait_until_serving()
    yield served
    served.stop()


def assert_health_and_metrics(served: Served) -> None:
    health = httpx.get(f"{served.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"ok": True, "database": "ok", "chunks": 0}

    metrics = httpx.get(f"{served.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'teambot_knowledge_base{kind="chunks"} 0.0' in metrics.text.splitlines()
    assert f"Health at {served.url}/healthz, metrics at {served.url}/metrics" in served.logs()


def test_socket_mode_serves_health_and_metrics_but_no_slack_endpoint(
    socket_mode: Served, slack: FakeSlack
) -> None:
    assert slack.socket_connected()
    assert_health_and_metrics(socket_mode)
    events = httpx.post(f"{socket_mode.url}/slack/events", content=b"{}", timeout=10)
    assert events.status_code == 404

    ignored = message_event("from another bot", "C1", "U2", f"{time.time():.6f}", bot_id="B2")
    slack.wait_for_ack(slack.socket_send("events_api", ignored))  # Slack still reaches bolt


def test_discord_only_serves_health_and_metrics(discord_only: Served, discord: FakeDiscord) -> None:
    assert discord.connected()
    assert_health_and_metrics(discord_only)
    events = httpx.post(f"{discord_only.url}/slack/events", content=b"{}", timeout=10)
    assert events.status_code == 404


def test_http_events_mode_serves_the_slack_endpoint_as_well(
    tmp_path: Path, slack: FakeSlack
) -> None:
    served = Served(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                               "SLACK_API_URL": slack.api_url})  # fmt: skip
    try:
        served.wait_until_serving()
        assert_health_and_metrics(served)
        unsigned = httpx.post(f"{served.url}/slack/events", content=b"{}", timeout=10)
        assert unsigned.status_code == 401  # bolt's signature check: the endpoint is there
    finally:
        served.stop()


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, -signal.SIGTERM),
                                                   (signal.SIGINT, 130)])  # fmt: skip
def test_a_signal_closes_both_adapters_and_ends_the_process(
    tmp_path: Path, slack: FakeSlack, discord: FakeDiscord, signum: int, exit_code: int
) -> None:
    served = Served(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
                               "SLACK_API_URL": slack.api_url, **discord_env(discord)})  # fmt: skip
    served.wait_until_serving()
    assert slack.socket_connected() and discord.connected()
    assert_health_and_metrics(served)

    assert served.stop(signum) == exit_code  # uvicorn re-raises the signal once it has stopped
    logs = served.logs()
    assert "The connection has been closed" in logs  # Socket Mode closed before the exit
    assert "Traceback" not in logs


def test_a_discord_client_that_cannot_log_in_ends_the_process(
    tmp_path: Path, discord: FakeDiscord
) -> None:
    served = Served(tmp_path, discord_env(discord) | {"DISCORD_TOKEN": "not-the-token"})

    assert served.process.wait(timeout=START_SECONDS) == 1  # not a healthy-looking HTTP server
    assert "LoginFailure" in served.logs()


def test_serve_with_worker_also_refreshes_sources_in_the_same_process(
    tmp_path: Path, slack: FakeSlack, corpus: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": sqlite_url(tmp_path)}
    added = subprocess.run([TEAMBOT, "sources", "add", str(corpus), "--name", "zephyr"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert added.returncode == 0, added.stderr
    served = Served(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
                               "SLACK_API_URL": slack.api_url}, "--worker")  # fmt: skip
    try:
        served.wait_until_serving()
        deadline = time.monotonic() + 120
        while "refreshed zephyr" not in served.logs():
            assert time.monotonic() < deadline, served.logs()
            time.sleep(0.2)
        health = httpx.get(f"{served.url}/healthz", timeout=10).json()
    finally:
        served.stop()
    assert health["ok"] and health["chunks"] > 0  # what the worker thread stored is searchable
    assert "Traceback" not in served.logs()
