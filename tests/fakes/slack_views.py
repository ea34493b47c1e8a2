"""Modals on the fake Slack: ``views.open``, and the ``view_submission`` payloads Slack sends
when someone submits one.

``FakeSlackViews`` is ``FakeSlack`` (tests.fakes.slack) that also answers ``views.open`` as
Slack does: it wants a ``trigger_id`` no older than 3 seconds (``expired_trigger_id`` after,
``invalid_trigger_id`` for one Slack never issued) and a modal within Slack's limits (a
title, submit and close of at most 24 characters, at most 100 blocks, ``callback_id`` up to
255 and ``private_metadata`` up to 3,000 characters; input blocks with a label and a known
element; select options of at most 75 characters of text and 150 of value), else
``invalid_arguments`` with the reasons in ``response_metadata.messages``. An opened modal is
kept (``opened_views``) with the id, hash and empty state Slack adds.

``view_submission()`` builds what Slack sends when a person submits an opened modal: every
input block's value in ``view.state.values`` (blank ones too, as ``None``), as a Socket Mode
``interactive`` payload; ``view_submission_form()`` is the form body Slack POSTs over HTTP.

    with FakeSlackViews() as slack:
        ...  # a click's trigger_id reaches the app, which calls views.open
        [view] = slack.wait_for(lambda: slack.opened_views)
        body = view_submission_form(view, "U1", {"kind": "outdated", "text": "port moved"})
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

from tests.fakes.slack import (
    APP_ID,
    BOT_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    VERIFICATION_TOKEN,
    FakeSlack,
    _error,
    _trigger_id,
)

TRIGGER_SECONDS = 3  # how long Slack honours a trigger_id
TITLE_CHARS = 24
BLOCKS_PER_VIEW = 100
CALLBACK_ID_CHARS = 255
METADATA_CHARS = 3000
OPTION_TEXT_CHARS = 75
OPTION_VALUE_CHARS = 150
TEXT_INPUT_CHARS = 3000  # the most a plain_text_input's max_length may be
INPUT_ELEMENTS = frozenset({
    "plain_text_input", "static_select", "multi_static_select", "checkboxes", "radio_buttons",
    "datepicker", "timepicker", "users_select", "conversations_select", "number_input",
    "email_text_input", "url_text_input", "rich_text_input",
})  # fmt: skip
VIEW_METHODS = frozenset({"views.open"})


class FakeSlackViews(FakeSlack):
    """``FakeSlack`` that also answers ``views.open``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._views: list[dict[str, Any]] = []
        self._view_serial = itertools.count(1)

    @property
    def opened_views(self) -> list[dict[str, Any]]:
        """Every modal opened so far, as ``views.open`` answered it (copies)."""
        with self._lock:
            return copy.deepcopy(self._views)

    def _call(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method not in VIEW_METHODS:
            return super()._call(method, params, token)
        with self._lock:  # faults and auth as FakeSlack checks them for its own methods
            faults = self._faults.get(method)
            fault = faults.popleft() if faults else None
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return fault.status, _error(fault.error), headers
        error = self._auth_error(method, token)
        if error is not None:
            return 200, _error(error), {}
        with self._lock:
            return 200, self._views_open(params), {}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger_error = _trigger_error(params.get("trigger_id"))
        if trigger_error is not None:
            return _error(trigger_error)
        view = params.get("view")
        if isinstance(view, str):  # a form body carries it as JSON text
            try:
                view = json.loads(view)
            except ValueError:
                view = None
        problems = modal_problems(view)
        if problems:
            return {**_error("invalid_arguments"), "response_metadata": {"messages": problems}}
        assert isinstance(view, dict)
        view_id = f"V{next(self._view_serial):010d}"
        opened = {
            "id": view_id, "team_id": TEAM_ID, "type": "modal",
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}}, "hash": f"{int(time.time())}.{view_id.lower()}",
            "title": view["title"], "clear_on_close": False, "notify_on_close": False,
            "close": view.get("close"), "submit": view.get("submit"),
            "previous_view_id": None, "root_view_id": view_id, "app_id": APP_ID,
            "external_id": "", "app_installed_team_id": TEAM_ID, "bot_id": BOT_ID,
        }  # fmt: skip
        self._views.append(opened)
        return {"ok": True, "view": copy.deepcopy(opened)}


def modal_problems(view: Any) -> list[str]:
    """What Slack would refuse in ``view`` (empty when it would open it)."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["[ERROR] must provide a modal view [json-pointer:/view/type]"]
    problems = [
        f"[ERROR] {name} must be plain_text of at most {TITLE_CHARS} characters "
        f"[json-pointer:/view/{name}]"
        for name in ("title", "submit", "close")
        if (name == "title" or name in view) and not _plain_text(view.get(name), TITLE_CHARS)
    ]
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > BLOCKS_PER_VIEW:
        problems.append(f"[ERROR] blocks: a list of at most {BLOCKS_PER_VIEW}")
        blocks = []
    if len(str(view.get("callback_id", ""))) > CALLBACK_ID_CHARS:
        problems.append(f"[ERROR] callback_id: at most {CALLBACK_ID_CHARS} characters")
    if len(str(view.get("private_metadata", ""))) > METADATA_CHARS:
        problems.append(f"[ERROR] private_metadata: at most {METADATA_CHARS} characters")
    inputs = [b for b in blocks if isinstance(b, dict) and b.get("type") == "input"]
    if inputs and "submit" not in view:
        problems.append("[ERROR] a view with input blocks needs submit [json-pointer:/view]")
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and block.get("type") == "input":
            problems += [f"[ERROR] {p} [json-pointer:/view/blocks/{i}]" for p in _input(block)]
    return problems


def _input(block: dict[str, Any]) -> list[str]:
    problems = [] if _plain_text(block.get("label"), 2000) else ["label: plain_text required"]
    element = block.get("element")
    if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENTS:
        return [*problems, "element: an input element required"]
    if element["type"] == "plain_text_input":
        limit = element.get("max_length", TEXT_INPUT_CHARS)
        if not isinstance(limit, int) or not 1 <= limit <= TEXT_INPUT_CHARS:
            problems.append(f"max_length: 1 to {TEXT_INPUT_CHARS}")
    if element["type"] == "static_select":
        options = element.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 100:
            return [*problems, "options: 1 to 100 required"]
        for option in options:
            value = option.get("value") if isinstance(option, dict) else None
            if not _plain_text(option.get("text") if isinstance(option, dict) else None,
                               OPTION_TEXT_CHARS):  # fmt: skip
                problems.append(f"option text: plain_text of at most {OPTION_TEXT_CHARS}")
            if not isinstance(value, str) or len(value) > OPTION_VALUE_CHARS:
                problems.append(f"option value: at most {OPTION_VALUE_CHARS} characters")
    return problems


def _plain_text(text: Any, limit: int) -> bool:
    return (
        isinstance(text, dict)
        and text.get("type") == "plain_text"
        and isinstance(text.get("text"), str)
        and 0 < len(text["text"]) <= limit
    )


def _trigger_error(trigger: Any) -> str | None:
    """Slack's triggers (tests.fakes.slack issues them) start with the second they were made."""
    head = trigger.split(".", 1)[0] if isinstance(trigger, str) else ""
    if not head.isdigit():
        return "invalid_trigger_id"
    if time.time() >= int(head) + 1 + TRIGGER_SECONDS:  # the whole second it was made, then 3 s
        return "expired_trigger_id"
    return None


def view_submission(view: dict[str, Any], user: str, answers: dict[str, str | None]) -> dict:
    """A ``view_submission`` of the opened ``view`` by ``user``: each input's value from
    ``answers`` (by action_id; a select's option by its value; missing ones blank). A value
    the modal could not have sent (no such option, longer than max_length) is a ValueError."""
    values: dict[str, dict[str, Any]] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        action, answer = element["action_id"], answers.get(element["action_id"])
        values[block["block_id"]] = {action: _state(element, answer)}
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": {**copy.deepcopy(view), "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_form(view: dict[str, Any], user: str, answers: dict[str, str | None]) -> bytes:
    """The form body Slack POSTs for a submission: ``payload=<the JSON of view_submission()>``."""
    payload = view_submission(view, user, answers)
    return urlencode({"payload": json.dumps(payload)}).encode()


def _state(element: dict[str, Any], answer: str | None) -> dict[str, Any]:
    kind = element["type"]
    if kind == "static_select":
        chosen = [o for o in element["options"] if o["value"] == answer]
        if answer is not None and not chosen:
            raise ValueError(f"no option {answer!r} in {element['action_id']}")
        return {"type": kind, "selected_option": chosen[0] if chosen else None}
    if kind == "plain_text_input":
        if answer is not None and len(answer) > element.get("max_length", TEXT_INPUT_CHARS):
            raise ValueError(f"{element['action_id']}: longer than its max_length")
        return {"type": kind, "value": answer or None}
    raise ValueError(f"view_submission() does not fill {kind} elements")
