"""Build the router from settings: which models are configured, with what limits."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from bot.llm.breaker import CircuitBreaker
from bot.llm.limits import RateLimits, UsageLedger
from bot.llm.provider import ChatProvider, ProviderConfig, Timeouts
from bot.llm.router import RetryPolicy, Router
from bot.settings import Settings

# What to tell someone whose teambot has no model, wherever they look (CLI, admin status).
HOW_TO_CONFIGURE = (
    "Set LOCAL_LLM_BASE_URL (a vLLM, llama.cpp or Ollama server) or OPENAI_API_KEY; "
    "see docs/llm.md."
)


def provider_configs(settings: Settings) -> dict[str, ProviderConfig]:
    """The configured models by kind: cloud when OPENAI_API_KEY is set, local when
    LOCAL_LLM_BASE_URL is."""
    configs: dict[str, ProviderConfig] = {}
    if settings.local_llm_base_url:
        configs["local"] = ProviderConfig(
            kind="local",
            model=settings.local_llm_model,
            base_url=settings.local_llm_base_url,
            api_key=settings.local_llm_api_key.get_secret_value(),
            context_tokens=settings.local_llm_context_tokens,
            daily_tokens=settings.local_llm_daily_tokens,
            streaming=settings.local_llm_streaming,
        )
    if settings.openai_api_key.get_secret_value():
        configs["cloud"] = ProviderConfig(
            kind="cloud",
            model=settings.openai_model,
            base_url=settings.openai_base_url or None,
            api_key=settings.openai_api_key.get_secret_value(),
            context_tokens=settings.openai_context_tokens,
            daily_tokens=settings.openai_daily_tokens,
        )
    return configs


def timeouts(settings: Settings) -> Timeouts:
    return Timeouts(
        connect=settings.llm_connect_timeout_seconds,
        first_token=settings.llm_first_token_timeout_seconds,
        total=settings.llm_total_timeout_seconds,
    )


def build_router(
    settings: Settings,
    sessions: sessionmaker[Session],
    on_error: Callable[[str, str], None] | None = None,
) -> Router:
    limits = RateLimits(
        per_user=settings.rate_limit_user_per_minute,
        per_channel=settings.rate_limit_channel_per_minute,
    )
    providers = {
        kind: ChatProvider(config, timeouts(settings))
        for kind, config in provider_configs(settings).items()
    }
    return Router(
        providers,
        route=settings.llm_route,
        private_route=settings.llm_private_route,
        ledger=UsageLedger(sessions, limits),
        max_output_tokens=settings.llm_max_output_tokens,
        retry=RetryPolicy(max_retries=settings.llm_max_retries),
        breakers={
            kind: CircuitBreaker(
                settings.llm_breaker_failures,
                settings.llm_breaker_reset_seconds,
                settings.llm_breaker_max_reset_seconds,
            )
            for kind in providers
        },
        on_error=on_error,
    )
