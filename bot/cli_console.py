"""`teambot console …`: serve the web console alone, or print a one-time sign-in link.

The console's modules are imported inside the commands, so that `teambot --help` does not
load them (see bot/cli.py).
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

console_cli = typer.Typer(
    help="The web console for admins: ask, sources, questions, usage, models and audit.\n\n"
    "`teambot console` serves only the console (with /healthz and /metrics) on "
    "TEAMBOT_HOST:TEAMBOT_PORT, until stopped; `teambot serve` serves it under /console too. "
    "`teambot console login` prints a one-time link to sign in with.",
    invoke_without_command=True,
    rich_markup_mode=None,  # plain help, as the main app's (bot.cli)
)


@console_cli.callback()
def console_only(ctx: typer.Context) -> None:
    """Serve only the web console (and /healthz, /metrics) on TEAMBOT_HOST:TEAMBOT_PORT, for
    a team that uses teambot without a chat platform; stop it with Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.cli import runtime_of
    from bot.serve import serve_console

    serve_console(runtime_of(ctx))


@console_cli.command("login")
def login(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option(help="Who signs in, as the console and the audit log show it (default: you)."),
    ] = None,
    next_page: Annotated[
        str | None,
        typer.Option("--next", help="The console page to land on, e.g. /console/sources."),
    ] = None,
) -> None:
    """Print a one-time link that signs an admin in to the console: it works once, within
    10 minutes. Whoever can run this holds the database, so the link is an admin's."""
    from bot.cli import fail, runtime_of
    from bot.console.app import login_link, public_url
    from bot.console.auth import LINK_MINUTES

    runtime = runtime_of(ctx)
    name = (user or getpass.getuser()).strip()
    try:
        link = login_link(runtime, public_url(runtime.settings), name, next_page)
    except ValueError as exc:
        fail(f"--user {name!r}: {exc}.")
    typer.echo(link)
    typer.echo(f"Open it within {LINK_MINUTES} minutes; it works once. "
               "`teambot serve` (or `teambot console`) must be running.", err=True)  # fmt: skip
