"""The console's Starlette app: every page's routes, the static files shipped in the package,
and the gate (bot.console.guard) in front of them all."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bot.admin import Actor
from bot.admin.access import configured_admins, is_admin
from bot.console import ask, models_audit, questions, signin, slack_signin, sources, usage_page
from bot.console.auth import PREFIX, ConsoleAuth
from bot.console.guard import Guard
from bot.console.refreshes import Refreshes
from bot.console.secret import signing_secret
from bot.console.web import HERE, ConsoleDeps, refused
from bot.settings import Settings


def console_app(deps: ConsoleDeps, base_url: str) -> Any:
    """The console for ``deps``'s database, at ``base_url`` (its public address, for
    Sign in with Slack's redirect)."""
    configured = configured_admins(deps.settings.admin_entries)

    def still_allowed(session: Session, user: str, via: str) -> bool:
        """A Slack sign-in lasts while that person is a teambot admin."""
        if via != "slack":
            return True
        platform, _, user_id = user.partition(":")
        return is_admin(session, Actor(platform, user_id), configured)

    auth = ConsoleAuth(deps.sessions, signing_secret(deps.settings), still_allowed)
    slack = slack_signin.SlackSignIn.configured(deps, auth, base_url)
    routes = [
        *signin.routes(deps, auth, slack is not None),
        *(slack.routes() if slack else []),
        *ask.routes(deps),
        *sources.routes(deps, Refreshes(deps)),
        *questions.routes(deps),
        *usage_page.routes(deps),
        *models_audit.routes(deps),
        Mount(f"{PREFIX}/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Any:
        return refused(request, 404, "There is no such console page. Start again from Ask.")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    return Guard(app, auth, refused)


def login_link(deps: ConsoleDeps, base_url: str, user: str, next_path: str | None = None) -> str:
    """A one-time sign-in link for ``user`` (`teambot console login`)."""
    return ConsoleAuth(deps.sessions, signing_secret(deps.settings)).login_link(
        base_url, user, next_path
    )


def public_url(settings: Settings) -> str:
    """Where browsers reach the console: TEAMBOT_CONSOLE_URL, else the address served on."""
    return settings.console_url.rstrip("/") or f"http://{settings.host}:{settings.port}"
