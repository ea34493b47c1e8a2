"""The Ask page: a chat playground that answers as Slack does — the same core path
(``Assistant.stream``), streamed to the browser as server-sent events — with citations
linked, confidence shown, 👍/👎 stored like a chat vote, and the conversation kept
(platform ``console``, channel = the console user, thread = the page's conversation id)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from bot import feedback, render
from bot.console.answer_html import answer_html
from bot.console.auth import PREFIX
from bot.console.web import PLATFORM, ConsoleDeps, user_of
from bot.console.web import render as render_page
from bot.errors import QuestionError
from bot.types import Answer, Citation, Delta, Question, Restart
from knowledge.storage.conversations import Conversation, Feedback, Turn

log = logging.getLogger(__name__)

THREAD = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
MAX_BODY_CHARS = 20_000  # a question's JSON; the core refuses questions over MAX_QUESTION_CHARS
SHOWN_TURNS = 100
FAILED = "Something went wrong while answering; the server log has the details. Try again."


def answer_view(answer: Answer) -> dict[str, Any]:
    """What the page shows of an answer, the same fields streamed or reloaded: ``html`` is
    its Markdown made safe, each ``[n]`` linked to the listed page's ``anchor``."""
    heading, listed = render.listed_pages(answer)
    key = str(answer.turn_id) if answer.turn_id else secrets.token_hex(4)
    anchors = {c.n: f"cite-{key}-{c.n}" for c in listed}
    return {
        "text": answer.text,
        "html": answer_html(answer.text, anchors),
        "heading": heading,
        "citations": [
            {
                "n": c.n,
                "label": c.label,
                "url": render.citation_url(c),
                "location": c.location,
                "anchor": anchors[c.n],
            }
            for c in listed
        ],
        "note": render.confidence_note(answer),
        "confidence": answer.confidence,
        "abstained": answer.abstained,
        "model": answer.model,
        "turn": answer.turn_id,
    }


def stored_answer(turn: Turn) -> Answer:
    """A stored answer turn as the Answer it was."""
    return Answer(
        text=turn.text, citations=[Citation(**c) for c in turn.citations or []],
        model=turn.model or "", timings=turn.timings or {}, conversation_id=turn.conversation_id,
        turn_id=turn.id, confidence=turn.confidence, abstained=bool(turn.abstained),
    )  # fmt: skip


def conversation_turns(deps: ConsoleDeps, user: str, thread: str) -> list[dict[str, Any]]:
    """The conversation so far, oldest first: questions and answers, with this user's votes."""
    with deps.sessions() as session:
        conversation = session.scalar(
            select(Conversation.id).where(Conversation.platform == PLATFORM,
                                          Conversation.channel == user,
                                          Conversation.thread == thread)
        )  # fmt: skip
        if conversation is None:
            return []
        turns = list(session.scalars(select(Turn).where(Turn.conversation_id == conversation)
                                     .order_by(Turn.id.desc()).limit(SHOWN_TURNS)))  # fmt: skip
        votes = dict(session.execute(
            select(Feedback.turn_id, Feedback.value)
            .where(Feedback.turn_id.in_([t.id for t in turns]), Feedback.user_id == user)
        ).all())  # fmt: skip
        shown = []
        for turn in reversed(turns):
            if turn.role == "user":
                shown.append({"role": "user", "text": turn.text})
            else:
                view = answer_view(stored_answer(turn))
                shown.append({"role": "assistant", **view, "vote": votes.get(turn.id, 0)})
        return shown


def answer_events(deps: ConsoleDeps, question: Question) -> Iterator[str]:
    """The answer as server-sent events: ``delta`` pieces, ``restart``, then ``answer`` (or
    ``error`` with what to do)."""
    try:
        for event in deps.assistant.stream(question):
            if isinstance(event, Delta):
                yield _event("delta", {"text": event.text})
            elif isinstance(event, Restart):
                yield _event("restart", {"reason": event.reason})
            else:
                yield _event("answer", answer_view(event))
    except QuestionError as exc:
        yield _event("error", {"message": str(exc)})
    except Exception:
        log.exception("the console could not answer a question")
        yield _event("error", {"message": FAILED})


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _json_body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if len(raw) > MAX_BODY_CHARS:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def routes(deps: ConsoleDeps) -> list[Route]:
    async def home(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/ask", status_code=303)

    async def page(request: Request) -> Response:
        thread = request.query_params.get("t", "")
        if not THREAD.match(thread):
            return RedirectResponse(f"{PREFIX}/ask?t={secrets.token_urlsafe(9)}", status_code=303)
        from starlette.concurrency import run_in_threadpool

        turns = await run_in_threadpool(conversation_turns, deps, user_of(request).name, thread)
        return render_page(request, "ask.html", title="Ask", here="ask", thread=thread,
                           turns=turns, new_thread=secrets.token_urlsafe(9))  # fmt: skip

    async def stream(request: Request) -> Response:
        body = await _json_body(request)
        text, thread = (body or {}).get("question"), (body or {}).get("thread")
        if not isinstance(text, str) or not isinstance(thread, str) or not THREAD.match(thread):
            return JSONResponse({"error": "Send {question, thread} as JSON."}, status_code=400)
        user = user_of(request).name
        question = Question(platform=PLATFORM, channel=user, thread=thread, user=user, text=text)
        return StreamingResponse(
            answer_events(deps, question), media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )  # fmt: skip

    async def vote(request: Request) -> Response:
        body = await _json_body(request) or {}
        turn, value = body.get("turn"), body.get("value")
        if not isinstance(turn, int) or isinstance(turn, bool) or value not in (1, -1):
            return JSONResponse({"error": "Send {turn, value: 1 or -1} as JSON."}, status_code=400)
        from starlette.concurrency import run_in_threadpool

        stored = await run_in_threadpool(
            feedback.record_feedback, deps.sessions, turn, user_of(request).name, value
        )
        return JSONResponse({"stored": stored, "message": feedback.feedback_reply(stored)},
                            status_code=200 if stored else 404)  # fmt: skip

    return [
        Route(f"{PREFIX}/", home, methods=["GET"]),
        Route(f"{PREFIX}/ask", page, methods=["GET"]),
        Route(f"{PREFIX}/ask/stream", stream, methods=["POST"]),
        Route(f"{PREFIX}/ask/vote", vote, methods=["POST"]),
    ]
