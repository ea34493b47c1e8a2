"""Errors the bot package raises: the ``BotError`` branch of the tree under ``TeambotError``.

The whole tree is drawn in knowledge/errors.py, where its root lives (knowledge/ may not
import bot/). This branch:

BotError
├── QuestionError            a question that cannot be asked as given (empty, too long)
├── SettingsError            a configuration that cannot work (says which variable to fix)
├── AdminError               an admin command that cannot run as given
├── LinkRefused              a console sign-in link that opens no session (bot/console/auth.py)
├── SlackRefused             Sign in with Slack refused this person (bot/console/slack_signin.py)
└── ProviderError            one language model failed one request; the router fails over
    ├── ProviderTimeout          timeout
    ├── ProviderBadResponse      malformed
    ├── ProviderStreamDropped    dropped
    ├── ProviderRejected         rejected (a 4xx such as a bad model name)
    │   └── ProviderAuthError    auth (401 / 403)
    └── TransientProviderError   may pass: the router retries it, honouring Retry-After
        ├── ProviderUnreachable  connection
        ├── ProviderRateLimited  rate-limited (429)
        └── ProviderServerError  server (5xx)

Each provider failure's ``kind`` (the word after it above) is the label metrics count it
under and the word routes, logs and health reports show, so it never changes with the class.
"""

from __future__ import annotations

from typing import ClassVar

from knowledge.errors import TeambotError

__all__ = [
    "AdminError",
    "BotError",
    "ProviderAuthError",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderServerError",
    "ProviderStreamDropped",
    "ProviderTimeout",
    "ProviderUnreachable",
    "QuestionError",
    "SettingsError",
    "TeambotError",
    "TransientProviderError",
    "user_message",
]


class BotError(TeambotError):
    """Base class of the bot package's errors: the message is written for the person who asked."""


class QuestionError(BotError):
    """A question that cannot be asked as given."""


class SettingsError(BotError):
    """Settings that cannot work together; the message names the variable to change."""


class AdminError(BotError):
    """An admin command that cannot run as given; its message is shown to the admin as is."""


class ProviderError(BotError):
    """A model request that failed; the subclass says how. Raised only as a subclass."""

    kind: ClassVar[str]  # the metrics label and the word shown in routes and health reports


class ProviderTimeout(ProviderError):
    """The model did not answer, or did not finish answering, within its deadline."""

    kind = "timeout"


class ProviderBadResponse(ProviderError):
    """The server answered with something that is not a usable answer (not JSON, no text)."""

    kind = "malformed"


class ProviderStreamDropped(ProviderError):
    """The answer's stream broke off, or ended without saying it was finished."""

    kind = "dropped"


class ProviderRejected(ProviderError):
    """The server refused the request as sent (a 4xx such as an unknown model): no retry helps."""

    kind = "rejected"


class ProviderAuthError(ProviderRejected):
    """The server refused the API key (401 / 403)."""

    kind = "auth"


class TransientProviderError(ProviderError):
    """A failure that may pass: worth retrying after ``retry_after`` seconds when the server
    said how long (Retry-After), else after the router's backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnreachable(TransientProviderError):
    """No connection to the model server (refused, unknown host, reset before an answer)."""

    kind = "connection"


class ProviderRateLimited(TransientProviderError):
    """HTTP 429: the server asks us to slow down."""

    kind = "rate-limited"


class ProviderServerError(TransientProviderError):
    """HTTP 5xx: the model server failed."""

    kind = "server"


def user_message(exc: Exception) -> str:
    """What a chat user is told when answering failed: our own errors (knowledge errors too)
    say what to do; anything else is named without internals."""
    if isinstance(exc, TeambotError):
        return str(exc)
    return (
        f"Sorry, I could not answer this ({type(exc).__name__}). "
        "Please try again; if it keeps failing, tell whoever runs teambot."
    )
