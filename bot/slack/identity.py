"""Who teambot is in Slack, asked once at start: the workspace its bot token belongs to and
its own app. Slack sends both with every event (``team_id``, ``api_app_id``), so bot.slack.gates
answers only what is meant for us; and a rejected token or an unreachable Slack is said here in
one line (a SettingsError) instead of slack_sdk's retries and tracebacks."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web import SlackResponse

from bot.errors import SettingsError
from bot.settings import Settings
from knowledge.crawl.urls import mask_url

_START_UP_LOG = logging.getLogger(f"{__name__}.start_up")  # what slack_sdk says, said better
_START_UP_LOG.propagate = False
_START_UP_LOG.addHandler(logging.NullHandler())

RATE_LIMIT_RETRIES = 3
_SLACK_ERROR = re.compile(r"[a-z_]+")  # invalid_auth, missing_scope: how Slack names errors
TOKEN_HELP = "copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions page"


@dataclass(frozen=True)
class Workspace:
    """Whose events teambot answers: the workspace its bot token belongs to and its own app."""

    team_id: str
    app_id: str


def start_up_client(settings: Settings) -> WebClient:
    """A client for the calls teambot starts with. Their failure is said once, as a
    SettingsError: not also logged by slack_sdk, retried and logged again."""
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        logger=_START_UP_LOG,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
    )


def identify(client: WebClient) -> Workspace:
    """Who SLACK_BOT_TOKEN is (auth.test) and which app its bot belongs to (bots.info)."""
    auth = _start_up_call(client, "auth.test")
    if not auth.get("bot_id"):  # a user token (xoxp-…) passes auth.test too
        raise SettingsError(f"SLACK_BOT_TOKEN is not a bot's token: {TOKEN_HELP}.")
    bot = _start_up_call(client, "bots.info", bot=auth["bot_id"]).get("bot") or {}
    if not bot.get("app_id"):  # a legacy bot integration, not a Slack app
        raise SettingsError(f"SLACK_BOT_TOKEN does not belong to a Slack app: {TOKEN_HELP}.")
    return Workspace(team_id=str(auth["team_id"]), app_id=str(bot["app_id"]))


def _start_up_call(client: WebClient, method: str, **params: Any) -> SlackResponse:
    """A Web API call teambot cannot start without; its failure said in one line."""
    try:
        return client.api_call(method, params=params)
    except SlackApiError as exc:
        status, error = exc.response.status_code, str(exc.response.get("error") or "")
        if status != 200:  # Slack says its errors in HTTP 200
            raise _unreachable(client, f"HTTP {status}") from None
        if not _SLACK_ERROR.fullmatch(error):  # an HTML page, say
            raise _unreachable(client, "HTTP 200, but not Slack's Web API") from None
        if error == "missing_scope":
            raise SettingsError(
                f"Slack refused {method}: SLACK_BOT_TOKEN lacks the "
                f"{exc.response.get('needed')} scope. Add it under OAuth & Permissions → Scopes "
                "(slack-manifest.yml lists them all) and reinstall the app."
            ) from None
        raise SettingsError(f"Slack rejected SLACK_BOT_TOKEN ({error}): {TOKEN_HELP}.") from None
    except (OSError, SlackClientError) as exc:  # refused, unknown host, timed out
        raise _unreachable(client, str(getattr(exc, "reason", exc)) or type(exc).__name__) from None


def _unreachable(client: WebClient, reason: str) -> SettingsError:
    return SettingsError(
        f"Cannot reach Slack at {mask_url(client.base_url)} ({reason}): check SLACK_API_URL "
        "and that this machine can reach it (network, proxy, firewall)."
    )
