"""Settings: one class, secrets never shown or logged."""

import logging

import pytest

from bot.logs import RedactSecrets
from bot.settings import Settings, mask_url, normalize_database_url
from knowledge.retrieval.confidence import THRESHOLD


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


def test_masked_settings_name_a_field_by_its_first_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8080")  # what a hosting platform sets
    shown = Settings(_env_file=None).masked()  # type: ignore[call-arg]
    assert shown["TEAMBOT_PORT"] == 8080
    assert not [name for name in shown if "(" in name or name == "PORT"]


def test_every_url_setting_is_masked_and_its_password_redacted_from_logs() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        local_llm_base_url="http://bot:llm-pw@gpu.internal:8000/v1",
        openai_base_url="https://proxy.example.com/v1?api_key=k3y",
        discord_gateway_url="wss://gw:gw-pw@gateway.example.com/",
    )
    shown = settings.masked()
    assert shown["LOCAL_LLM_BASE_URL"] == "http://bot:***@gpu.internal:8000/v1"
    assert shown["OPENAI_BASE_URL"] == "https://proxy.example.com/v1?api_key=***"
    assert shown["DISCORD_GATEWAY_URL"] == "wss://gw:***@gateway.example.com/"
    assert {"llm-pw", "gw-pw"} <= set(settings.secret_values())


def test_min_confidence_defaults_to_the_fitted_threshold() -> None:
    """Settings cannot import the model (every command would pay for it), so the fitted
    threshold is written twice; this keeps the two the same."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.min_confidence == THRESHOLD
