"""What every console page shares: the templates (autoescaped), the signed-in user, the
actor changes are audited as, paging, and what the pages need of the process."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.admin import Actor, AdminDeps
from bot.console.auth import ConsoleUser

HERE = Path(__file__).resolve().parent
PLATFORM = "console"  # conversations, votes and audit entries made in the console
PAGE_SIZE = 25
MAX_PAGE = 10_000
NAV = (
    ("ask", "Ask"),
    ("sources", "Sources"),
    ("questions", "Questions"),
    ("usage", "Usage"),
    ("models", "Models and audit"),
)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class ConsoleDeps(AdminDeps, Protocol):
    """What the console uses of the process: ``bot.runtime.Runtime`` is one."""


def user_of(request: Request) -> ConsoleUser:
    """The signed-in user (bot.console.guard lets no request through without one)."""
    return request.state.user


def actor_of(request: Request) -> Actor:
    """Who changes are audited as: the console user."""
    return Actor(PLATFORM, user_of(request).name)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    html = templates.get_template(template).render(
        request=request, user=user, csrf=user.csrf if user else "", nav=NAV, **context
    )
    return HTMLResponse(html, status_code=status)


def refused(request: Request, status: int, message: str) -> HTMLResponse:
    """A plain page that says what went wrong and what to do next."""
    return render(request, "message.html", status=status, title="Not done", message=message)


@dataclass(frozen=True)
class Page:
    """Which slice of a long list a page shows (1-based ``number``)."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))


def page_number(request: Request) -> int:
    """``?page=N`` as a number from 1 to MAX_PAGE (anything else is page 1)."""
    raw = request.query_params.get("page", "1")
    return min(int(raw), MAX_PAGE) if raw.isdigit() and int(raw) >= 1 else 1


def query_text(request: Request, name: str, limit: int = 200) -> str:
    """A text filter from the query string, trimmed and capped."""
    return request.query_params.get(name, "").strip()[:limit]
