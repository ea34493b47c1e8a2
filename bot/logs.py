"""Logging to stderr with every known secret redacted, whatever the message or argument.

Two filters rewrite each record's final text (message and traceback) before any handler
formats it: one removes the secret values this configuration holds, the other masks the
passwords and secret parameters of every URL in it, including URLs teambot never saw
configured (httpx and openai log each request's URL at DEBUG and INFO).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from knowledge.crawl.urls import mask_urls_in

REDACTED = "***"
# Libraries whose routine chatter is kept at WARNING unless teambot itself is quieter.
NOISY_LOGGERS = (
    "httpx", "httpx2", "openai", "sentence_transformers", "transformers", "filelock",
    "alembic", "bm25s", "faiss",
)  # fmt: skip
# Libraries whose loggers chatter below WARNING however their level is set: bm25s resets its
# level when imported, and faiss's loader says which CPU build it picked at INFO.
IMPORT_CHATTER = ("bm25s", "faiss")


def _rewrite(record: logging.LogRecord, change: Callable[[str], str]) -> None:
    """Apply ``change`` to the record's formatted message and to its traceback text."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit the format: still no leak
        message = f"{record.msg} (arguments: {record.args!r})"
    record.msg, record.args = change(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = change(record.exc_text)


class RedactSecrets(logging.Filter):
    """Replaces each secret value that appears in a formatted record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            _rewrite(record, self._redact)
        return True

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class MaskUrls(logging.Filter):
    """Masks the userinfo password and secret query parameters of each URL in a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        _rewrite(record, mask_urls_in)
        return True


def configure_logging(level: str, secrets: list[str]) -> None:
    """Send logs to stderr (stdout stays clean for --json) through the redacting filters."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(MaskUrls())
    handler.addFilter(QuietLibraries())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class QuietLibraries(logging.Filter):
    """Drops IMPORT_CHATTER below WARNING at the handler: a library imported after logging is
    set up can undo its logger's level."""

    def filter(self, record: logging.LogRecord) -> bool:
        package = record.name.partition(".")[0]
        return record.levelno >= logging.WARNING or package not in IMPORT_CHATTER
