"""Modals on the fake Discord: the modal an app answers an interaction with (callback type 9),
checked as Discord checks it, and the MODAL_SUBMIT interaction (type 5) of someone who submits it.

``FakeDiscordModals`` is ``FakeDiscord`` whose interaction callback of type 9 must carry a valid
modal: ``custom_id`` 1-100 and ``title`` 1-45 characters, 1 to 5 components, each an action row
holding one text input (type 4, with its label) or a label (type 18, 1-45 characters, a
description up to 100) holding a text input (without a label of its own) or a string select
(type 3: 1 to 25 options of label and value 1-100 characters); a text input's ``max_length``
1 to 4,000. Otherwise the callback is 400 Invalid Form Body (50035), as on Discord, and the
modal never shows. Modals shown are kept by interaction (``modal_for()``).

``interaction_create_modal_submit()`` builds what Discord sends when the user submits the modal
an interaction was answered with: its ``custom_id`` and each input's value in the shape it was
sent in (rows or labels), with the message the clicked button was on.

    with FakeDiscordModals() as fake, pointed_at(fake):
        fake.dispatch("INTERACTION_CREATE", click)  # the app answers with a modal
        fake.wait_for(lambda: fake.modal_for(int(click["id"])))
        fake.dispatch("INTERACTION_CREATE",
                      fake.interaction_create_modal_submit(int(click["id"]), {"text": "why"}))
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.discord.fake import FakeDiscord
from tests.fakes.discord.rest import _Answer, _error, _field_error, _Request

MODAL, MODAL_SUBMIT = 9, 5  # the callback type, and the interaction type of a submission
ACTION_ROW, STRING_SELECT, TEXT_INPUT, LABEL = 1, 3, 4, 18
TITLE_CHARS = LABEL_CHARS = 45
CUSTOM_ID_CHARS = OPTION_CHARS = DESCRIPTION_CHARS = 100
COMPONENTS_PER_MODAL = 5
OPTIONS_PER_SELECT = 25
TEXT_INPUT_CHARS = 4000


class FakeDiscordModals(FakeDiscord):
    """``FakeDiscord`` that checks and keeps the modals interactions are answered with."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._modals: dict[int, dict[str, Any]] = {}

    def modal_for(self, interaction_id: int) -> dict[str, Any] | None:
        """The modal ``interaction_id`` was answered with (a copy), if any."""
        with self._lock:
            return copy.deepcopy(self._modals.get(interaction_id))

    def interaction_create_modal_submit(
        self, interaction_id: int, answers: dict[str, str | list[str]]
    ) -> dict[str, Any]:
        """The INTERACTION_CREATE of the user who got the modal of ``interaction_id`` submitting
        it with ``answers`` (by input custom id: a text, or a select's chosen values)."""
        with self._lock:
            modal = self._modals[interaction_id]
            clicked = self._interactions[interaction_id]
            message = (
                self._find(clicked.channel_id, clicked.message_id)
                if clicked.message_id is not None
                else None
            )
            data = {
                "custom_id": modal["custom_id"],
                "components": [_submitted(c, answers) for c in modal["components"]],
            }
            return self._interaction(MODAL_SUBMIT, data, clicked.user_id, clicked.channel_id,
                                     clicked.guild_id, None, message)  # fmt: skip

    def _interaction_callback(self, request: _Request) -> _Answer:
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("type") != MODAL:
            return super()._interaction_callback(request)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        problems = modal_problems(data)
        if problems:
            return _error(400, 50035, "Invalid Form Body",
                          {"data": {k: _field_error("BASE_TYPE_BAD_LENGTH", v)
                                    for k, v in problems.items()}})  # fmt: skip
        answer = super()._interaction_callback(request)
        if answer[0] < 300:
            self._modals[int(request.params["interaction"])] = copy.deepcopy(data)
        return answer


def modal_problems(data: dict[str, Any]) -> dict[str, str]:
    """Where Discord would refuse the modal ``data`` (field path → why); empty if valid."""
    problems: dict[str, str] = {}
    if not _text(data.get("custom_id"), CUSTOM_ID_CHARS):
        problems["custom_id"] = f"1 to {CUSTOM_ID_CHARS} characters"
    if not _text(data.get("title"), TITLE_CHARS):
        problems["title"] = f"1 to {TITLE_CHARS} characters"
    components = data.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= COMPONENTS_PER_MODAL:
        return problems | {"components": f"1 to {COMPONENTS_PER_MODAL} components"}
    for i, component in enumerate(components):
        why = _component_problem(component if isinstance(component, dict) else {})
        if why:
            problems[f"components.{i}"] = why
    return problems


def _component_problem(component: dict[str, Any]) -> str | None:
    if component.get("type") == ACTION_ROW:
        inner = component.get("components")
        if not isinstance(inner, list) or len(inner) != 1 or not isinstance(inner[0], dict):
            return "an action row holds one text input"
        if inner[0].get("type") != TEXT_INPUT or not _text(inner[0].get("label"), LABEL_CHARS):
            return "a text input in a row needs a label"
        return _input_problem(inner[0])
    if component.get("type") == LABEL:
        if not _text(component.get("label"), LABEL_CHARS):
            return f"a label is 1 to {LABEL_CHARS} characters"
        description = component.get("description")
        if description is not None and not _text(description, DESCRIPTION_CHARS):
            return f"a description is 1 to {DESCRIPTION_CHARS} characters"
        inner = component.get("component")
        if not isinstance(inner, dict) or inner.get("type") not in (TEXT_INPUT, STRING_SELECT):
            return "a label holds a text input or a select"
        if inner["type"] == TEXT_INPUT and inner.get("label") is not None:
            return "a text input in a label has no label of its own"
        return _input_problem(inner)
    return "a modal holds action rows and labels"


def _input_problem(component: dict[str, Any]) -> str | None:
    if not _text(component.get("custom_id"), CUSTOM_ID_CHARS):
        return f"custom_id: 1 to {CUSTOM_ID_CHARS} characters"
    if component["type"] == TEXT_INPUT:
        limit = component.get("max_length", TEXT_INPUT_CHARS)
        if not isinstance(limit, int) or not 1 <= limit <= TEXT_INPUT_CHARS:
            return f"max_length: 1 to {TEXT_INPUT_CHARS}"
        return None if component.get("style") in (1, 2) else "style: 1 or 2"
    options = component.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= OPTIONS_PER_SELECT:
        return f"options: 1 to {OPTIONS_PER_SELECT}"
    for option in options:
        if not isinstance(option, dict) or not all(
            _text(option.get(key), OPTION_CHARS) for key in ("label", "value")
        ):
            return f"an option's label and value: 1 to {OPTION_CHARS} characters"
    return None


def _submitted(component: dict[str, Any], answers: dict[str, str | list[str]]) -> dict:
    """A modal component as a submission carries it, with the user's answer."""
    if component["type"] == ACTION_ROW:
        inputs = [_answer(c, answers) for c in component["components"]]
        return {"type": ACTION_ROW, "components": inputs}
    return {"type": LABEL, "component": _answer(component["component"], answers)}


def _answer(component: dict[str, Any], answers: dict[str, str | list[str]]) -> dict[str, Any]:
    answer = answers.get(component["custom_id"])
    if component["type"] == STRING_SELECT:
        values = [answer] if isinstance(answer, str) else list(answer or [])
        offered = {o["value"] for o in component["options"]}
        if not set(values) <= offered:
            raise ValueError(f"{component['custom_id']}: {values} not among the options")
        return {"type": STRING_SELECT, "custom_id": component["custom_id"], "values": values}
    text = answer if isinstance(answer, str) else ""
    if len(text) > component.get("max_length", TEXT_INPUT_CHARS):
        raise ValueError(f"{component['custom_id']}: longer than its max_length")
    return {"type": TEXT_INPUT, "custom_id": component["custom_id"], "value": text}


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= limit
