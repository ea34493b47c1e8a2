"""Secrets inside URLs never reach a screen, a chat or a log: one test per place they could.

Each output is produced the way a user meets it (the real `teambot` command, the real
Slack app answering `admin status`, a real httpx request logged through teambot's
logging) with a password in a URL's userinfo or a key in its query string.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.logs import configure_logging
from bot.settings import Settings
from knowledge.crawl.urls import SECRET_PARAMS, mask_url, mask_urls_in
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack import FakeSlack
from tests.test_cli import db_url, run
from tests.test_slack import mention, sqlite_db, start_bot

__all__ = ["db_url", "sqlite_db", "start_bot"]  # fixtures used here (docs, model, slack: conftest)

PASSWORD = "S3cr3tPass"
QUERY_KEY = "Qk3y-0123"


def with_password(url: str) -> str:
    """``url`` with ``bot:PASSWORD@`` as its userinfo."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://bot:{PASSWORD}@{rest}"


@pytest.fixture
def local() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("local-model",)) as fake:
        yield fake


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:PASS@host/v1", "http://user:***@host/v1"),
        ("https://TOKEN@github.com/org/docs", "https://***@github.com/org/docs"),
        ("postgresql+psycopg://bot:p@ss@db:5432/teambot", "postgresql+psycopg://bot:***@db:5432/teambot"),
        ("https://h/docs/?api_key=k&page=2&X-Amz-Signature=s", "https://h/docs/?api_key=***&page=2&X-Amz-Signature=***"),
        ("https://h/cb#access_token=t&state=1", "https://h/cb#access_token=***&state=1"),
        ("https://h/?q=token&client_secret=s&TOKEN=t", "https://h/?q=token&client_secret=***&TOKEN=***"),
        ("sqlite:///teambot.db", "sqlite:///teambot.db"),
        ("wss://gateway.discord.gg/", "wss://gateway.discord.gg/"),
        ("http://[::1/", "***"),
    ],
)  # fmt: skip
def test_mask_url_hides_userinfo_and_secret_parameters(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_every_documented_parameter_name_is_masked() -> None:
    listed = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    for name in SECRET_PARAMS:
        assert f"`{name}`" in listed.read_text(encoding="utf-8"), name
        assert mask_url(f"https://h/?{name}=v&x=1") == f"https://h/?{name}=***&x=1"


def test_urls_in_text_are_masked_where_they_stand() -> None:
    text = "GET <https://h/?token=abc|docs> failed (see http://u:pw@h/x?sig=1)."
    assert (
        mask_urls_in(text)
        == "GET <https://h/?token=***|docs> failed (see http://u:***@h/x?sig=***)."
    )


def test_config_masks_every_url_setting(tmp_path: Path, db_url: str) -> None:
    urls = {
        "LOCAL_LLM_BASE_URL": with_password("http://127.0.0.1:8000/v1"),
        "OPENAI_BASE_URL": f"https://llm.example.com/v1?api_key={QUERY_KEY}",
        "SLACK_API_URL": with_password("https://slack.example.com/api/"),
        "DISCORD_API_URL": f"https://discord.example.com/api?token={QUERY_KEY}",
        "DISCORD_GATEWAY_URL": with_password("wss://gateway.example.com/"),
        "DATABASE_URL": with_password(f"sqlite:///{tmp_path}/t.db"),
    }
    shown = run("config", db_url=db_url, cwd=tmp_path, env=urls)

    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split("=", 1) for line in shown.stdout.splitlines())
    assert lines["LOCAL_LLM_BASE_URL"] == "http://bot:***@127.0.0.1:8000/v1"
    assert lines["OPENAI_BASE_URL"] == "https://llm.example.com/v1?api_key=***"
    assert lines["SLACK_API_URL"] == "https://bot:***@slack.example.com/api/"
    assert lines["DISCORD_API_URL"] == "https://discord.example.com/api?token=***"
    assert lines["DISCORD_GATEWAY_URL"] == "wss://bot:***@gateway.example.com/"
    assert PASSWORD not in shown.stdout + shown.stderr
    assert QUERY_KEY not in shown.stdout + shown.stderr


def test_config_names_the_port_by_its_variable(tmp_path: Path, db_url: str) -> None:
    shown = run("config", db_url=db_url, cwd=tmp_path, env={"TEAMBOT_PORT": "3100"})

    assert "\nTEAMBOT_PORT=3100\n" in shown.stdout
    assert "ALIASCHOICES" not in shown.stdout


def test_llm_check_masks_the_server_url(tmp_path: Path, db_url: str, local: FakeOpenAI) -> None:
    env = {"LOCAL_LLM_BASE_URL": with_password(local.base_url), "LOCAL_LLM_MODEL": "local-model",
           "OPENAI_API_KEY": ""}  # fmt: skip
    checked = run("llm", "check", db_url=db_url, cwd=tmp_path, env=env)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert with_password(local.base_url).replace(PASSWORD, "***") in checked.stdout
    assert PASSWORD not in checked.stdout + checked.stderr


def test_admin_status_posted_in_slack_masks_the_model_url(
    start_bot: Any, slack: FakeSlack, model: FakeOpenAI
) -> None:
    bot = start_bot(teambot_admins="slack:UADMIN", local_llm_base_url=with_password(model.base_url))

    bot.event(mention("admin status", user="UADMIN"))

    [posted] = slack.wait_for(lambda: [m for m in slack.messages("C1") if "Models" in m["text"]])
    assert with_password(model.base_url).replace(PASSWORD, "***") in posted["text"]
    assert PASSWORD not in json.dumps(slack.messages("C1"))


@pytest.fixture
def teambot_logging() -> Iterator[None]:
    """Leave the root logger and httpx's as they were: configure_logging replaces them."""
    root, client = logging.getLogger(), logging.getLogger("httpx")
    saved = root.handlers[:], root.level, client.level
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    client.setLevel(saved[2])


def test_httpx_request_logged_at_debug_is_masked(
    teambot_logging: None, local: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(_env_file=None, local_llm_base_url=with_password(local.base_url))  # type: ignore[call-arg]
    configure_logging("DEBUG", settings.secret_values())
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # as OPENAI_LOG=debug does
    url = with_password(local.base_url.replace("127.0.0.1", "localhost"))

    httpx.get(f"{url}/models?token={QUERY_KEY}&limit=5")

    logged = capsys.readouterr().err
    assert "HTTP Request: GET http://bot:***@localhost:" in logged
    assert "/v1/models?token=***&limit=5" in logged
    assert PASSWORD not in logged and QUERY_KEY not in logged


def test_a_logged_traceback_is_masked(
    teambot_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", [])
    try:
        raise ValueError(f"cannot reach https://h/docs?access_token={QUERY_KEY}")
    except ValueError:
        logging.getLogger("tests.secrets").exception("fetch failed")

    logged = capsys.readouterr().err
    assert "ValueError: cannot reach https://h/docs?access_token=***" in logged
    assert QUERY_KEY not in logged


def test_a_log_call_with_arguments_that_do_not_fit_is_masked_not_raised(
    teambot_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", [])

    logging.getLogger("tests.secrets").info("fetched %d pages", f"https://h/?key={QUERY_KEY}")

    logged = capsys.readouterr().err
    assert "fetched %d pages (arguments: ('https://h/?key=***',))" in logged
    assert QUERY_KEY not in logged


def test_an_error_message_masks_the_url_it_names(tmp_path: Path, db_url: str) -> None:
    location = with_password(f"ftp://docs.example.com/x?token={QUERY_KEY}")

    failed = run("sources", "add", location, "--name", "docs", db_url=db_url, cwd=tmp_path)

    assert failed.returncode == 1
    assert "Error: No such folder: ftp://bot:***@docs.example.com/x?token=***." in failed.stderr
    assert PASSWORD not in failed.stderr and QUERY_KEY not in failed.stderr


def test_source_urls_printed_by_the_cli_are_masked(tmp_path: Path, db_url: str) -> None:
    location = f"http://127.0.0.1:1/docs/?token={QUERY_KEY}"
    added = run("sources", "add", location, "--name", "intranet", "--allow-private",
                db_url=db_url, cwd=tmp_path)  # fmt: skip
    refreshed = run("refresh", "intranet", db_url=db_url, cwd=tmp_path)
    as_json = run("refresh", "intranet", "--json", db_url=db_url, cwd=tmp_path)
    status = run("admin", "status", db_url=db_url, cwd=tmp_path)

    assert "at http://127.0.0.1:1/docs/?token=***." in added.stdout
    assert "http://127.0.0.1:1/docs/?token=***: robots.txt" in refreshed.stdout
    assert json.loads(as_json.stdout)["errors"][0]["url"] == "http://127.0.0.1:1/docs/?token=***"
    assert "error: http://127.0.0.1:1/docs/?token=***: robots.txt" in status.stdout
    for result in (added, refreshed, as_json, status):
        assert QUERY_KEY not in result.stdout + result.stderr


def test_libraries_that_reset_their_log_level_stay_quiet(
    teambot_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", [])
    logging.getLogger("bm25s").setLevel(logging.DEBUG)  # as importing bm25s does

    logging.getLogger("bm25s").debug("Building index from IDs objects")
    logging.getLogger("faiss.loader").info("Loading faiss with AVX512 support.")
    logging.getLogger("faiss.loader").warning("no faiss build for this CPU")

    logged = capsys.readouterr().err
    assert "Building index" not in logged and "AVX512" not in logged
    assert "no faiss build for this CPU" in logged
