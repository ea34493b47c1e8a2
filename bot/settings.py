"""Every setting teambot reads, in one class, from the environment or a .env file.

Secrets are held as ``SecretStr`` (or masked on the way out, for URLs with a
password) so that printing or logging settings never shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

MASK = "***"


def normalize_database_url(url: str) -> str:
    """Accept the ``postgres://`` URLs hosting platforms hand out; use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced by a mask, for display."""
    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL is shown as nothing rather than leaked
        return MASK
    return parsed.render_as_string(hide_password=True)


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
        default="torch",
        description="How to run the model: torch, or ONNX Runtime (fp32 or int8, exported once).",
    )
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)
    retrieval_method: Literal["hybrid", "dense", "bm25"] = Field(
        default="hybrid", description="dense (FAISS), bm25, or both fused."
    )
    top_k: int = Field(default=4, ge=1, le=20, description="Passages used per answer.")
    min_relevance: float = Field(
        default=0.25, description="Cosine similarity below which a passage is not used."
    )
    max_question_chars: int = Field(default=4000, ge=1)
    refresh_interval_minutes: int = Field(
        default=360, ge=1, description="How often the worker re-ingests each source."
    )
    crawl_timeout_seconds: float = Field(default=20.0, gt=0, description="Per request.")
    crawl_max_page_mb: float = Field(default=10.0, gt=0, description="Larger pages are refused.")
    crawl_max_redirects: int = Field(default=5, ge=0)
    crawl_per_host: int = Field(default=4, ge=1, le=32, description="Requests at once per host.")
    log_level: str = Field(default="INFO")

    @field_validator("database_url")
    @classmethod
    def _normalize_url(cls, value: str) -> str:
        return normalize_database_url(value.strip())

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, so logs can redact them."""
        secrets: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                secrets.append(value.get_secret_value())
        password = make_url(self.database_url).password if "://" in self.database_url else None
        if password:
            secrets.append(str(password))
        return secrets

    def masked(self) -> dict[str, Any]:
        """The effective settings as environment names and printable values."""
        shown: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            env_name = str(field.validation_alias or name).upper()
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = MASK if value.get_secret_value() else ""
            elif name == "database_url":
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[env_name] = value
        return shown
