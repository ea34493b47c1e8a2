"""`teambot llm …`: check the configured models, or start a local vLLM server for one.

The LLM modules are imported inside the commands, so that `teambot --help` does not load
them (see bot/cli.py).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

CHECK_PROMPT = [{"role": "user", "content": "Reply with the single word OK."}]
CHECK_MAX_TOKENS = 5

llm_app = typer.Typer(
    help="Check the language models teambot is configured for, or serve one locally.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the main app's (bot.cli)
)


@llm_app.command("check")
def check(ctx: typer.Context) -> None:
    """Ask each configured model for a one-word answer; show its health and latency.

    Exits with status 1 when a configured model does not answer, so deploy
    scripts can stop on it."""
    from rich.console import Console
    from rich.table import Table

    from bot.cli import runtime_of
    from bot.errors import ProviderError
    from bot.llm.provider import ChatProvider
    from bot.llm.setup import HOW_TO_CONFIGURE, provider_configs, timeouts

    settings = runtime_of(ctx).settings
    configs = provider_configs(settings)
    private = settings.llm_private_route or "same as LLM_ROUTE"
    typer.echo(f"LLM_ROUTE={settings.llm_route}  LLM_PRIVATE_ROUTE={private}")
    if not configs:
        typer.echo(
            "No language model is configured, so answers are extractive (quoted passages). "
            + HOW_TO_CONFIGURE
        )
        return
    table = Table("provider", "model", "server", "status", "models ms", "answer ms")
    healthy = True
    for kind, config in configs.items():
        provider = ChatProvider(config, timeouts(settings))
        try:
            started = time.monotonic()
            offered = provider.list_models(timeout=settings.llm_first_token_timeout_seconds)
            models_ms = (time.monotonic() - started) * 1000
            started = time.monotonic()
            deadline = started + settings.llm_total_timeout_seconds
            provider.complete(CHECK_PROMPT, max_tokens=CHECK_MAX_TOKENS, deadline=deadline)
            answer_ms = (time.monotonic() - started) * 1000
        except ProviderError as exc:
            healthy = False
            table.add_row(kind, provider.model, config.server, f"[red]failing: {exc}[/red]", "", "")
            continue
        status = "ok" if config.is_offered(offered) else (
            f"ok, but {config.model!r} is not in the server's list {offered[:5]}"
        )  # fmt: skip
        table.add_row(
            kind, provider.model, config.server, status, f"{models_ms:.0f}", f"{answer_ms:.0f}"
        )
    Console(width=160).print(table)
    if not healthy:
        raise typer.Exit(1)


@llm_app.command("serve-local")
def serve_local_command(
    model: Annotated[str, typer.Argument(help="A Hugging Face model id or a local model folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_model_len: Annotated[int, typer.Option(help="Context window to allocate (tokens).")] = 8192,
) -> None:
    """Start a vLLM OpenAI-compatible server for MODEL (needs `pip install "teambot\\[vllm]"`).

    Then point teambot at it with LOCAL_LLM_BASE_URL=http://HOST:PORT/v1 and
    LOCAL_LLM_MODEL=MODEL."""
    from bot.llm.serve_local import serve_local

    serve_local(model, host=host, port=port, max_model_len=max_model_len)
