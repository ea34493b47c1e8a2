"""Errors the bot package raises; the CLI and adapters show their message to the user.

BotError
├── QuestionError   a question that cannot be asked as given (empty, too long)
├── SettingsError   a configuration that cannot work (says which variable to fix)
└── ProviderError   one language model failed one request; the router fails over on it
"""

from __future__ import annotations


class BotError(Exception):
    """Base class: the message is written for the person who asked."""


class QuestionError(BotError):
    """A question that cannot be asked as given."""


class SettingsError(BotError):
    """Settings that cannot work together; the message names the variable to change."""


class ProviderError(BotError):
    """A model request that failed; ``kind`` says how, ``retryable`` whether trying again helps.

    Kinds: timeout, rate-limited, server, connection, malformed, dropped (the
    stream broke off), rejected (4xx such as a bad model name), auth.
    """

    def __init__(
        self, kind: str, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


def user_message(exc: Exception) -> str:
    """What a chat user is told when answering failed: our own errors say what to do; anything
    else is named without internals."""
    if isinstance(exc, BotError):
        return str(exc)
    return (
        f"Sorry, I could not answer this ({type(exc).__name__}). "
        "Please try again; if it keeps failing, tell whoever runs teambot."
    )
