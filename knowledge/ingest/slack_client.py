"""The Slack Web API as channel history reads it: slack_sdk's ``WebClient`` on a bounded
transport, with Slack's rate limits waited out within bounds.

slack_sdk reads a whole response with urllib and no size limit, and its timeout is per socket
operation, so a server that drips bytes keeps a call alive for ever. ``BoundedWebClient`` keeps
slack_sdk's API (methods, errors, ``SlackResponse``) and replaces only the transport, the one
method every request goes through (``_perform_urllib_http_request_internal``; pyproject.toml
pins the slack-sdk versions it was tested on): httpx, an identity body counted as it arrives
and cut at ``max_response_bytes``, and a total deadline per request.

``SlackReader.call`` answers HTTP 429 by waiting ``Retry-After`` (at most ``max_wait_seconds``
at a time, at most ``max_retries`` times in a row); past that it raises ``RateLimited`` and the
run stops where it is, to resume at the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.request import Request

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from knowledge.crawl.urls import mask_url
from knowledge.errors import KnowledgeError

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 16 * 2**20  # a page of 200 messages of Slack's 40,000 characters fits
REQUEST_TIMEOUT_SECONDS = 20.0  # per socket operation
REQUEST_DEADLINE_SECONDS = 30.0  # per request, all of it
MAX_WAIT_SECONDS = 60  # the longest Retry-After waited out; longer ends the run
MAX_RETRIES = 3  # 429s in a row for one call before the run ends


class SlackHistoryError(KnowledgeError):
    """Slack refused or could not answer a call; the message says what to do, ``code`` is
    Slack's error name when it gave one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RateLimited(SlackHistoryError):
    """Slack kept answering 429 past the bounds: the run stops and resumes next time."""


@dataclass(frozen=True)
class SlackAccess:
    """How to reach Slack's Web API; the token is never shown (``repr`` leaves it out)."""

    token: str = field(repr=False)
    api_url: str = "https://slack.com/api/"
    timeout: float = REQUEST_TIMEOUT_SECONDS
    deadline: float = REQUEST_DEADLINE_SECONDS
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_wait_seconds: int = MAX_WAIT_SECONDS
    max_retries: int = MAX_RETRIES


def slack_access(token: str, api_url: str) -> SlackAccess | None:
    """The access for a bot token and API address; None without a token."""
    return SlackAccess(token=token, api_url=api_url) if token.strip() else None


class BoundedWebClient(WebClient):
    """slack_sdk's WebClient whose HTTP requests are capped in size and time (httpx)."""

    def __init__(self, access: SlackAccess) -> None:
        super().__init__(token=access.token, base_url=access.api_url, timeout=int(access.timeout),
                         retry_handlers=[])  # fmt: skip
        self._access = access
        self._http = httpx.Client(follow_redirects=False)

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        access = self._access
        ends = time.monotonic() + access.deadline
        headers = {**dict(req.header_items()), "Accept-Encoding": "identity"}
        timeout = httpx.Timeout(min(access.timeout, access.deadline))
        try:
            with self._http.stream("POST", url, content=req.data, headers=headers,
                                   timeout=timeout) as response:  # fmt: skip
                if response.headers.get("content-encoding", "identity") != "identity":
                    raise SlackHistoryError("Slack sent an encoded body it was not asked for.")
                body = bytearray()
                for piece in response.iter_raw():
                    body += piece
                    if len(body) > access.max_response_bytes:
                        raise SlackHistoryError(
                            f"Slack's answer to {req.full_url.rsplit('/', 1)[-1]} was larger "
                            f"than {access.max_response_bytes // 2**20} MB; it was not read."
                        )
                    if time.monotonic() > ends:
                        raise httpx.ReadTimeout("the request's deadline passed")
        except httpx.HTTPError as exc:
            raise SlackHistoryError(
                f"Cannot reach Slack at {mask_url(access.api_url)} ({type(exc).__name__}: {exc}); "
                "check SLACK_API_URL and the network, then refresh again."
            ) from None
        return {"status": response.status_code, "headers": dict(response.headers),
                "body": body.decode("utf-8", errors="replace")}  # fmt: skip

    def close(self) -> None:
        self._http.close()


# Slack's errors that an admin can fix, and how.
_HOW_TO_FIX = {
    "not_in_channel": "invite teambot to the channel (type `/invite @teambot` there)",
    "channel_not_found": "check the channel; for a private one, invite teambot to it first",
    "missing_scope": "add the channels:history, groups:history, channels:read and "
    "groups:read scopes to the Slack app (slack-manifest.yml) and reinstall it",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "set SLACK_BOT_TOKEN",
    "account_inactive": "check SLACK_BOT_TOKEN: its app was removed from the workspace",
}


@dataclass
class SlackReader:
    """Web API calls for one run: 429s waited out within bounds, the waiting counted."""

    client: WebClient
    access: SlackAccess
    sleep: Callable[[float], None] = time.sleep
    calls: int = 0
    waited_seconds: float = 0.0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The answer's data; RateLimited past the bounds, SlackHistoryError on a refusal."""
        for attempt in range(self.access.max_retries + 1):
            self.calls += 1
            try:
                return dict(self.client.api_call(method, params=params).data)  # type: ignore[arg-type]
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise _refusal(method, exc) from None
                wait = _retry_after(exc.response.headers)
                if attempt == self.access.max_retries or wait > self.access.max_wait_seconds:
                    raise RateLimited(
                        f"Slack rate-limited {method} (Retry-After {wait} s, {attempt + 1} "
                        "times in a row); the run stopped here and resumes at the next refresh."
                    ) from None
                log.info("%s rate-limited: waiting %s s (Retry-After)", method, wait)
                self.sleep(wait)
                self.waited_seconds += wait
            except (SlackClientError, ValueError) as exc:  # not JSON, a closed client…
                raise SlackHistoryError(f"Slack's answer to {method} was unusable: {exc}") from None
        raise AssertionError("the loop returns or raises")

    def close(self) -> None:
        if isinstance(self.client, BoundedWebClient):
            self.client.close()


def open_reader(access: SlackAccess) -> SlackReader:
    return SlackReader(BoundedWebClient(access), access)


def _retry_after(headers: Any) -> int:
    """Slack's Retry-After in whole seconds (1 when absent or unreadable)."""
    lowered = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    value = lowered.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 1


def _refusal(method: str, exc: SlackApiError) -> SlackHistoryError:
    status = exc.response.status_code
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    error = str(data.get("error") or f"HTTP {status}")[:100]
    how = _HOW_TO_FIX.get(error, "try again later" if status >= 500 else "see Slack's docs")
    return SlackHistoryError(f"Slack refused {method} ({error}): {how}.", error)
