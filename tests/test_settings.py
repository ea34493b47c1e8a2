"""Settings: one class, secrets never shown or logged."""

import logging

import pytest

from bot.logs import RedactSecrets
from bot.settings import Settings, mask_url, normalize_database_url


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///teambot.db"
    assert settings.embedding_model == "all-MiniLM-L6-v2"
    assert str(settings.data_dir) == "teambot-data"


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TOP_K=7\nTEAMBOT_DATA_DIR=/srv/teambot\n")
    monkeypatch.setenv("MIN_RELEVANCE", "0.4")
    settings = Settings()
    assert (settings.top_k, settings.min_relevance, str(settings.data_dir)) == (
        7, 0.4, "/srv/teambot",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_hosting_platform_urls_use_psycopg(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_masked_settings_hide_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://bot:hunter2@db.internal:5432/teambot")
    settings = Settings()
    shown = settings.masked()
    assert shown["DATABASE_URL"] == "postgresql+psycopg://bot:***@db.internal:5432/teambot"
    assert "hunter2" not in repr(shown)
    assert settings.secret_values() == ["hunter2"]
    assert mask_url("sqlite:///teambot.db") == "sqlite:///teambot.db"


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("teambot.test")
    logger.addFilter(RedactSecrets(["hunter2", "xoxb-123"]))
    with caplog.at_level(logging.INFO, logger="teambot.test"):
        logger.info("connecting to %s with token %s", "postgresql://bot:hunter2@db", "xoxb-123")
    assert caplog.messages == ["connecting to postgresql://bot:***@db with token ***"]
