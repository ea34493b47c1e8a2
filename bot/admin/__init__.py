"""Admin commands, the same on every platform: ``run_admin(deps, actor, argv)``.

The terminal calls it with its argv; chat adapters with the message text.
"""

from bot.admin.access import Actor
from bot.admin.commands import (
    COMMANDS,
    AdminDeps,
    AdminResult,
    ReplyTarget,
    help_text,
    run_admin,
)
from bot.errors import AdminError

__all__ = [
    "COMMANDS",
    "Actor",
    "AdminDeps",
    "AdminError",
    "AdminResult",
    "ReplyTarget",
    "help_text",
    "run_admin",
]
