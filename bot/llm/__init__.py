"""The LLM router: local or cloud models through one OpenAI-compatible client, with failover.

router = build_router(settings, sessions)
plan = router.plan(question)
for event in router.answer(plan, prompt_for):  # Delta…, maybe Restart, then Outcome
    ...
lines = model_health_lines(settings, sessions, router)  # for admin `status`
"""

from bot.llm.health import model_health_lines
from bot.llm.provider import ChatProvider, ProviderConfig, Timeouts, Usage
from bot.llm.router import ROUTES, Outcome, Plan, RetryPolicy, Router
from bot.llm.setup import build_router, provider_configs

__all__ = [
    "ROUTES",
    "ChatProvider",
    "Outcome",
    "Plan",
    "ProviderConfig",
    "RetryPolicy",
    "Router",
    "Timeouts",
    "Usage",
    "build_router",
    "model_health_lines",
    "provider_configs",
]
