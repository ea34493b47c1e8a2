"""Every setting teambot reads, in one class, from the environment or a .env file.

Secrets are held as ``SecretStr`` (or masked on the way out, for URLs with a
password) so that printing or logging settings never shows them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from knowledge.crawl.urls import MASK, mask_url

# The routing policies of bot.llm.router (kept here so settings import nothing heavy).
Route = Literal["local-first", "cloud-first", "local-only", "cloud-only", "extractive"]


def normalize_database_url(url: str) -> str:
    """Accept the ``postgres://`` URLs hosting platforms hand out; use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/teambot`` (``~/.cache/teambot``): model exports outlive one project."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "teambot"


def split_platform_id(entry: str) -> tuple[str, str]:
    """``" slack:U123 "`` → ``("slack", "U123")``: admins, users and channels are named so."""
    platform, _, user = entry.strip().partition(":")
    if not platform or not user:
        raise ValueError(f"{entry.strip()!r} is not PLATFORM:USER_ID, e.g. slack:U123,cli:alice")
    return platform.lower(), user


class Settings(BaseSettings):
    """teambot's configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="sqlite:///teambot.db",
        description="SQLAlchemy URL of the database (SQLite file or PostgreSQL).",
    )
    data_dir: Path = Field(
        default=Path("teambot-data"),
        validation_alias="TEAMBOT_DATA_DIR",
        description="Folder for files that are not in the database (index snapshots).",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model name or local folder; loaded offline.",
    )
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description="How to run the model: ONNX Runtime int8 (fastest; exported once from the "
        "installed weights), onnx (fp32) or torch.",
    )
    embedding_cache_dir: Path = Field(
        default_factory=lambda: default_cache_dir(),
        description="Where ONNX exports of the embedding model are kept (shared by projects).",
    )
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)
    retrieval_method: Literal["hybrid", "dense", "bm25"] = Field(
        default="hybrid", description="dense (FAISS), bm25, or both fused."
    )
    top_k: int = Field(default=4, ge=1, le=20, description="Passages used per answer.")
    min_relevance: float = Field(
        default=0.25, description="Cosine similarity below which a passage is not used."
    )
    min_confidence: float = Field(
        # knowledge.retrieval.confidence.THRESHOLD, fitted on held-apart questions (a test
        # keeps the two equal; importing the model here would slow every command's start).
        default=0.14,
        ge=0,
        le=1,
        description="Below this confidence teambot says the docs do not cover a question "
        "instead of answering; `admin channel set … min_confidence=` overrides it per channel.",
    )
    max_question_chars: int = Field(default=4000, ge=1)
    retention_days: int | None = Field(
        default=None,
        ge=1,
        validation_alias="TEAMBOT_RETENTION_DAYS",
        description="Forget conversations idle and feedback older than this; unset: keep.",
    )
    digest_channel: str = Field(
        default="",
        validation_alias="TEAMBOT_DIGEST_CHANNEL",
        description="Where the worker posts the gaps digest: slack:CHANNEL_ID or "
        "discord:CHANNEL_ID; empty: no digest.",
    )
    digest_schedule: str = Field(
        default="0 9 * * mon",
        validation_alias="TEAMBOT_DIGEST_SCHEDULE",
        description="When the gaps digest is posted: a crontab line, in UTC (Monday 09:00).",
    )
    refresh_interval_minutes: int = Field(
        default=360, ge=1, description="How often the worker re-ingests each source."
    )
    refresh_lease_seconds: int = Field(
        default=120,
        ge=5,
        description="A refresh holds its source this long between renewals; a worker that "
        "dies mid-run frees the source for another after at most this long.",
    )
    crawl_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Per read of a response, not the whole request."
    )
    crawl_deadline_seconds: float = Field(
        default=60.0, gt=0, description="A whole request, however slowly its bytes arrive."
    )
    crawl_max_page_mb: float = Field(default=10.0, gt=0, description="Larger pages are refused.")
    crawl_max_sitemap_mb: float = Field(
        default=50.0, gt=0, description="Uncompressed; a larger sitemap fails the run."
    )
    crawl_max_robots_kb: float = Field(
        default=500.0, gt=0, description="KiB of robots.txt parsed (RFC 9309); the rest ignored."
    )
    crawl_max_redirects: int = Field(default=5, ge=0)
    crawl_per_host: int = Field(default=4, ge=1, le=32, description="Requests at once per host.")
    log_level: str = Field(default="INFO")

    # Language models: any OpenAI-compatible API. Unset base URL/key means "not configured".
    openai_api_key: SecretStr = Field(
        default=SecretStr(""), description="Key for the cloud model; empty: no cloud model."
    )
    openai_base_url: str = Field(default="", description="Cloud API URL (default: OpenAI's).")
    openai_model: str = Field(default="gpt-4o-mini")
    openai_context_tokens: int = Field(default=128_000, ge=1024)
    openai_daily_tokens: int = Field(
        default=0, ge=0, description="Daily token budget for the cloud model; 0: no limit."
    )
    local_llm_base_url: str = Field(
        default="", description="e.g. a vLLM server's http://127.0.0.1:8000/v1; empty: none."
    )
    local_llm_model: str = Field(
        default="", description="Model name on the local server (default: the first it lists)."
    )
    local_llm_api_key: SecretStr = Field(default=SecretStr(""))
    local_llm_context_tokens: int = Field(default=4096, ge=512)
    local_llm_daily_tokens: int = Field(default=0, ge=0, description="0: no limit.")
    local_llm_streaming: bool = Field(
        default=True, description="false for servers that cannot stream answers."
    )
    llm_route: Route = Field(
        default="local-first",
        description="local-first, cloud-first, local-only, cloud-only or extractive.",
    )
    llm_private_route: Route | None = Field(
        default=None,
        description="Route for DMs and private channels (local-only keeps them on your network).",
    )
    llm_max_output_tokens: int = Field(default=600, ge=16)
    llm_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    llm_first_token_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Longest wait for the first (or next) piece of text."
    )
    llm_total_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Per model, retries included; then the next model."
    )
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_breaker_failures: int = Field(
        default=3, ge=1, description="Failures in a row that take a model out of rotation."
    )
    llm_breaker_reset_seconds: float = Field(
        default=5.0, gt=0, description="How long it stays out before one probe request."
    )
    llm_breaker_max_reset_seconds: float = Field(
        default=60.0, gt=0, description="Each failed probe doubles the wait, up to this."
    )
    rate_limit_user_per_minute: int = Field(
        default=10, ge=0, description="Questions a person may send to models a minute; 0: any."
    )
    rate_limit_channel_per_minute: int = Field(default=60, ge=0, description="0: any.")

    # Chat platforms. `teambot serve` runs the adapters whose tokens are set.
    host: str = Field(
        default="127.0.0.1", validation_alias="TEAMBOT_HOST", description="Address to serve on."
    )
    port: int = Field(
        default=3000,
        validation_alias=AliasChoices("TEAMBOT_PORT", "PORT"),  # PORT: what a PaaS sets
        ge=1,
        le=65535,
    )
    slack_bot_token: SecretStr = Field(default=SecretStr(""), description="xoxb-… token.")
    slack_signing_secret: SecretStr = Field(
        default=SecretStr(""), description="Checks that HTTP events come from Slack."
    )
    slack_app_token: SecretStr = Field(
        default=SecretStr(""), description="xapp-… token: set it to use Socket Mode."
    )
    slack_api_url: str = Field(default="https://slack.com/api/")
    slack_follow_threads: bool = Field(
        default=True, description="Answer replies in threads teambot answered, without a mention."
    )
    slack_ask_visibility: Literal["channel", "ephemeral"] = Field(
        default="channel", description="Whether /ask answers are posted for all or only the asker."
    )
    slack_update_seconds: float = Field(
        default=1.0, gt=0, description="Least time between two edits of a streaming answer."
    )
    discord_token: SecretStr = Field(
        default=SecretStr(""), description="The bot's token; set it to run the Discord bot."
    )
    discord_guild_ids: str = Field(
        default="", description="Comma-separated guild ids to sync /ask to at once (optional)."
    )
    discord_admin_role: str = Field(
        default="",
        description="A role (name or id) whose members may run /admin, like Manage Server.",
    )
    discord_api_url: str = Field(default="https://discord.com/api/v10")
    discord_gateway_url: str = Field(default="wss://gateway.discord.gg/")
    discord_update_seconds: float = Field(
        default=1.2, gt=0, description="Least time between two edits of a streaming answer."
    )
    answer_workers: int = Field(
        default=32, ge=1, description="Questions a process answers at once."
    )
    teambot_admins: str = Field(
        default="",
        validation_alias="TEAMBOT_ADMINS",
        description="Comma-separated PLATFORM:USER_ID entries allowed to run admin commands, "
        "e.g. slack:U123,discord:456 (more can be added with `admin admins add`).",
    )
    console_secret: SecretStr = Field(
        default=SecretStr(""),
        validation_alias="TEAMBOT_CONSOLE_SECRET",
        description="Signs console login links and cookies; empty: one is generated into "
        "TEAMBOT_DATA_DIR (readable by its owner only) on first use.",
    )
    console_url: str = Field(
        default="",
        validation_alias="TEAMBOT_CONSOLE_URL",
        description="The console's public address, e.g. https://teambot.example.com (login "
        "links and Sign in with Slack use it); empty: http://TEAMBOT_HOST:TEAMBOT_PORT.",
    )
    console_trust_proxy: bool = Field(
        default=False,
        validation_alias="TEAMBOT_CONSOLE_TRUST_PROXY",
        description="Believe X-Forwarded-Proto from a reverse proxy (for Secure cookies).",
    )
    slack_client_id: str = Field(
        default="", description="With SLACK_CLIENT_SECRET: Sign in with Slack on the console."
    )
    slack_client_secret: SecretStr = Field(default=SecretStr(""))
    slack_openid_url: str = Field(
        default="https://slack.com/openid/connect/authorize",
        description="Where Sign in with Slack sends the browser.",
    )
    folder_roots: str = Field(
        default="",
        validation_alias="TEAMBOT_FOLDER_ROOTS",
        description="Absolute folders, separated by ':' like PATH, inside which chat admins "
        "may add folder sources; empty: folders are added with `teambot sources add` only.",
    )

    @field_validator("llm_private_route", "retention_days", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _normalize_url(cls, value: str) -> str:
        return normalize_database_url(value.strip())

    @property
    def discord_guild_id_list(self) -> list[int]:
        return [int(part) for part in self.discord_guild_ids.replace(" ", "").split(",") if part]

    @field_validator("discord_guild_ids")
    @classmethod
    def _guild_ids_are_numbers(cls, value: str) -> str:
        parts = [p for p in value.replace(" ", "").split(",") if p]
        if not all(p.isdigit() for p in parts):
            raise ValueError("use comma-separated numeric guild ids, e.g. 123,456")
        return value

    @field_validator("digest_channel")
    @classmethod
    def _digest_channel_is_platform_channel(cls, value: str) -> str:
        platform, _, channel = value.strip().partition(":")
        if value.strip() and (platform.lower() not in ("slack", "discord") or not channel):
            raise ValueError("use slack:CHANNEL_ID or discord:CHANNEL_ID, or leave it empty")
        if platform.lower() == "discord" and not channel.isdigit():
            raise ValueError("a Discord channel id is a number, e.g. discord:123456789012345678")
        return value.strip()

    @field_validator("digest_schedule")
    @classmethod
    def _digest_schedule_is_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value.strip())
        except ValueError as exc:
            raise ValueError(
                f"use a crontab line (minute hour day month weekday), e.g. '0 9 * * mon': {exc}"
            ) from None
        return value.strip()

    @property
    def admin_entries(self) -> list[tuple[str, str]]:
        """TEAMBOT_ADMINS as (platform, user_id) pairs."""
        return [split_platform_id(part) for part in self.teambot_admins.split(",") if part.strip()]

    @field_validator("teambot_admins")
    @classmethod
    def _admins_aresplit_platform_ids(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                split_platform_id(part)
        return value

    @property
    def folder_root_paths(self) -> list[Path]:
        """TEAMBOT_FOLDER_ROOTS as paths."""
        parts = (part.strip() for part in self.folder_roots.split(os.pathsep))
        return [Path(part) for part in parts if part]

    @field_validator("folder_roots")
    @classmethod
    def _folder_roots_are_absolute(cls, value: str) -> str:
        for part in value.split(os.pathsep):
            if part.strip() and not os.path.isabs(part.strip()):
                raise ValueError(f"{part!r} is not an absolute path; write it like /srv/docs")
        return value

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (keys, tokens, the passwords inside URL
        settings), so logs can redact them wherever they appear, in a URL or not."""
        secrets: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                secrets.append(value.get_secret_value())
            elif _is_url_setting(name) and (password := _url_password(value)):
                secrets.append(password)
        return secrets

    def masked(self) -> dict[str, Any]:
        """The effective settings as environment names and printable values."""
        shown: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = MASK if value.get_secret_value() else ""
            elif _is_url_setting(name):
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[_env_name(name, field)] = value
        return shown


def _is_url_setting(name: str) -> bool:
    """DATABASE_URL, LOCAL_LLM_BASE_URL, SLACK_API_URL…: every URL a setting holds."""
    return name.endswith("_url")


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _env_name(name: str, field: FieldInfo) -> str:
    """The variable a user sets: the alias, or the first of several (TEAMBOT_PORT, not PORT)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    return str(alias or name).upper()
