"""What a chat adapter uses of the process it runs in: ``bot.runtime.Runtime`` is one.

Adapters sit above the core and must not see the composition root (tests/test_layers.py);
they name the few things they use here instead: the settings and database, the claims of
exactly-once delivery, the assistant, and what the admin commands need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from bot.admin.commands import AdminDeps

if TYPE_CHECKING:
    from bot.core import Assistant
    from bot.delivery.inbox import Inbox


class ChatDeps(AdminDeps, Protocol):
    @property
    def inbox(self) -> Inbox: ...

    @property
    def assistant(self) -> Assistant: ...
