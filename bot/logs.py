"""Logging to stderr with every known secret redacted, whatever the message or argument."""

from __future__ import annotations

import logging
import sys

REDACTED = "***"


class RedactSecrets(logging.Filter):
    """Replaces each secret value that appears in a formatted record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


def configure_logging(level: str, secrets: list[str]) -> None:
    """Send logs to stderr (stdout stays clean for --json) through the redacting filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "httpx", "httpx2", "openai", "sentence_transformers", "transformers", "filelock",
        "alembic", "bm25s",
    ):  # fmt: skip
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
