"""Slack's side of the Events API: signed event deliveries to an app, with Slack's retries.

Slack POSTs each event to the app's request URL and wants a 2xx within 3 seconds;
otherwise it delivers it again (``X-Slack-Retry-Num`` 1 to 3 and
``X-Slack-Retry-Reason``) after about 0 s, 1 min and 5 min, compressed here by
``retry_delays``. Behind a load balancer each delivery may reach another replica:
``targets`` take deliveries in turn. ``duplicate_share`` of the events are
delivered a second time although the first was acknowledged, as Slack does when
it judged an ack too slow.

It also builds what Slack sends that teambot must acknowledge but not answer: messages
posted by other bots, deliveries for another workspace or app, events lacking a field.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.slack import APP_ID, TEAM_ID, sign

ACK_TIMEOUT = 3.0  # Slack's limit for an acknowledgement


@dataclass
class Attempt:
    target: str
    retry_num: int
    outcome: str  # an HTTP status as text, or why the delivery failed
    ms: float
    duplicate: bool = False  # sent again although an earlier delivery was acknowledged


@dataclass
class Delivery:
    """Everything Slack did to deliver one event."""

    envelope: dict[str, Any]
    first_sent: float = 0.0  # time.monotonic()
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return str(self.envelope["event_id"])

    @property
    def acked(self) -> bool:
        return any(a.outcome.startswith("2") for a in self.attempts)

    @property
    def first_ack_ms(self) -> float | None:
        """How long the first successful delivery took to be acknowledged."""
        return next((a.ms for a in self.attempts if a.outcome.startswith("2")), None)


class EventSender:
    """Delivers envelopes at a steady rate, retrying as Slack does."""

    def __init__(
        self,
        targets: Sequence[str],
        signing_secret: str,
        *,
        retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        duplicate_share: float = 0.0,
        down_seconds: float = 5.0,
        seed: int = 7,
    ) -> None:
        self._targets = list(targets)
        self._secret = signing_secret
        self._retry_delays = list(retry_delays)
        self._duplicate_share = duplicate_share
        self._random = random.Random(seed)
        self._turn = 0
        self._down_seconds = down_seconds
        self._down_until: dict[str, float] = {}

    def deliver(
        self,
        envelopes: Sequence[dict[str, Any]],
        rate: float,
        before_each: Callable[[int], None] | None = None,
    ) -> list[Delivery]:
        """Send every envelope (``rate`` per second) and wait for all retries to finish.
        ``before_each(i)`` runs before the i-th first delivery: inject faults there."""
        return asyncio.run(self._deliver(envelopes, rate, before_each or (lambda i: None)))

    async def _deliver(
        self,
        envelopes: Sequence[dict[str, Any]],
        rate: float,
        before_each: Callable[[int], None],
    ) -> list[Delivery]:
        deliveries = [Delivery(envelope) for envelope in envelopes]
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=ACK_TIMEOUT, limits=limits) as client:
            tasks = []
            start = time.monotonic()
            for i, delivery in enumerate(deliveries):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                before_each(i)
                duplicate = self._random.random() < self._duplicate_share
                tasks.append(asyncio.create_task(self._one(client, delivery, duplicate)))
            await asyncio.gather(*tasks)
        return deliveries

    async def _one(self, client: httpx.AsyncClient, delivery: Delivery, duplicate: bool) -> None:
        body = json.dumps(delivery.envelope).encode()
        delivery.first_sent = time.monotonic()
        for retry_num in range(len(self._retry_delays) + 1):
            if retry_num:
                await asyncio.sleep(self._retry_delays[retry_num - 1])
            if await self._post(client, delivery, body, retry_num):
                break
        if duplicate:  # Slack thought the ack was late: the same event once more
            await asyncio.sleep(self._random.uniform(0.0, 2.0))
            await self._post(client, delivery, body, 1, reason="http_timeout")

    async def _post(
        self,
        client: httpx.AsyncClient,
        delivery: Delivery,
        body: bytes,
        retry_num: int,
        reason: str | None = None,
    ) -> bool:
        target = self._next_target()
        headers = {"content-type": "application/json", **sign(self._secret, body)}
        if retry_num:
            last = delivery.attempts[-1].outcome if delivery.attempts else ""
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = reason or _retry_reason(last)
        started = time.monotonic()
        try:
            response = await client.post(target, content=body, headers=headers)
            outcome = str(response.status_code)
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.TransportError as exc:
            outcome = f"connection failed: {type(exc).__name__}"
            if isinstance(exc, httpx.ConnectError):
                self._down_until[target] = time.monotonic() + self._down_seconds
        delivery.attempts.append(
            Attempt(target, retry_num, outcome, (time.monotonic() - started) * 1000,
                    duplicate=delivery.acked)
        )  # fmt: skip
        return outcome.startswith("2")

    def _next_target(self) -> str:
        """The next target in turn that is not marked down (any, if all are)."""
        now = time.monotonic()
        for _ in range(len(self._targets)):
            target = self._targets[self._turn % len(self._targets)]
            self._turn += 1
            if self._down_until.get(target, 0.0) <= now:
                return target
        return target


def _retry_reason(last_outcome: str) -> str:
    if last_outcome == "timeout":
        return "http_timeout"
    if last_outcome.startswith("connection"):
        return "connection_failed"
    return "http_error"


# -- what Slack sends in the cases teambot must not answer ------------------------------------

OTHER_TEAM_ID = "T0ELSEWHERE"
OTHER_APP_ID = "A0SOMEOTHER"
OTHER_BOT_ID = "B0OTHERBOT"
OTHER_BOT_USER_ID = "U0OTHERBOT"


def posted_by_bot(
    envelope: dict[str, Any], bot_id: str = OTHER_BOT_ID, *, integration: bool = False
) -> dict[str, Any]:
    """``envelope`` as Slack sends it when an app posted the message (``bot_id``, ``app_id``
    and ``bot_profile`` beside the bot's own user), or with ``integration`` a legacy
    integration's post: subtype ``bot_message``, a ``username`` and no ``user``."""
    event = dict(envelope["event"])
    profile = {"id": bot_id, "app_id": OTHER_APP_ID, "name": "otherbot", "team_id": TEAM_ID}
    if integration:
        event.pop("user", None)
        event |= {"subtype": "bot_message", "bot_id": bot_id, "username": "otherbot"}
    else:
        event |= {"user": OTHER_BOT_USER_ID, "bot_id": bot_id, "app_id": OTHER_APP_ID,
                  "bot_profile": profile}  # fmt: skip
    return {**envelope, "event": event}


def for_workspace(
    payload: dict[str, Any], team_id: str = TEAM_ID, app_id: str = APP_ID
) -> dict[str, Any]:
    """An event envelope or slash command (``slash_command()``) as delivered for ``team_id``
    and ``app_id``: every field that names the workspace or the app says so."""
    changed = {**payload, "team_id": team_id, "api_app_id": app_id}
    if "authorizations" in payload:
        changed["authorizations"] = [{**a, "team_id": team_id} for a in payload["authorizations"]]
    if isinstance(payload.get("event"), dict):
        changed["event"] = {**payload["event"], "team": team_id}
    return changed


def without(envelope: dict[str, Any], *fields: str) -> dict[str, Any]:
    """``envelope`` whose event lacks ``fields`` (Slack's schema promises them; a bug or a
    replay may not)."""
    event = {k: v for k, v in envelope["event"].items() if k not in fields}
    return {**envelope, "event": event}
