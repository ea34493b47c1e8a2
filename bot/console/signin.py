"""Signing in with a one-time link, and out.

Opening a link shows a "Sign in" button rather than signing in at once, so a chat app or
mail scanner that previews the link cannot spend it; the button posts the token.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.console.auth import COOKIE, PREFIX, SESSION_HOURS, ConsoleAuth, LinkRefused, safe_next
from bot.console.web import ConsoleDeps, render, user_of

NO_LINK = (
    "Sign in with a link from `teambot console login` (run it where teambot runs); "
    "each link works once, for a few minutes."
)


def is_https(request: Request, trust_proxy: bool) -> bool:
    """Served over HTTPS: the request's own scheme, or a trusted proxy's X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return trust_proxy and forwarded == "https"


def signed_in(request: Request, deps: ConsoleDeps, auth: ConsoleAuth, user: str, via: str,
              next_path: str | None) -> Response:  # fmt: skip
    """Open a session for ``user`` and send the browser on with its cookie."""
    cookie = auth.open_session(user, via)
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        COOKIE, cookie, max_age=SESSION_HOURS * 3600, path=PREFIX, httponly=True,
        samesite="lax", secure=is_https(request, deps.settings.console_trust_proxy),
    )  # fmt: skip
    return response


def routes(deps: ConsoleDeps, auth: ConsoleAuth, slack_enabled: bool) -> list:
    from starlette.routing import Route

    async def login_page(request: Request) -> Response:
        token = request.query_params.get("token", "")
        return render(request, "login.html", title="Sign in", token=token,
                      next=safe_next(request.query_params.get("next")),
                      message="" if token else NO_LINK, slack=slack_enabled)  # fmt: skip

    async def login(request: Request) -> Response:
        form = await request.form(max_fields=10)
        token, next_path = str(form.get("token", "")), str(form.get("next", ""))
        try:
            user = await asyncio.to_thread(auth.redeem, token)
        except LinkRefused as exc:
            return render(request, "login.html", status=403, title="Sign in", token="",
                          next=safe_next(next_path), message=f"{exc} {NO_LINK}",
                          error=True, slack=slack_enabled)  # fmt: skip
        return await asyncio.to_thread(signed_in, request, deps, auth, user, "link", next_path)

    async def logout(request: Request) -> Response:
        await asyncio.to_thread(auth.close_session, user_of(request))
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    return [
        Route(f"{PREFIX}/login", login_page, methods=["GET"]),
        Route(f"{PREFIX}/login", login, methods=["POST"]),
        Route(f"{PREFIX}/logout", logout, methods=["POST"]),
    ]
