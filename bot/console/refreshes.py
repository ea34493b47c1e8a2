"""Refreshes the console started: each runs `admin sources refresh` on a thread of its own,
so the page answers at once while the refresh (queued to a worker when one is alive, else run
here) goes on; the page then polls ``status``. One at a time per source."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bot.admin import Actor, run_admin
from bot.console.web import ConsoleDeps


@dataclass
class Started:
    """A refresh the console asked for: running until ``outcome`` is set."""

    by: str
    outcome: str | None = None
    ok: bool | None = None
    queued: bool = False  # handed to a worker: the run's record tells how it ended


class Refreshes:
    def __init__(self, deps: ConsoleDeps) -> None:
        self._deps = deps
        self._lock = threading.Lock()
        self._started: dict[str, Started] = {}

    def start(self, actor: Actor, name: str) -> bool:
        """Ask for a refresh of ``name``; False when this console is already refreshing it."""
        with self._lock:
            running = self._started.get(name)
            if running is not None and running.outcome is None:
                return False
            started = self._started[name] = Started(by=str(actor))
        threading.Thread(target=self._run, args=(actor, name, started), daemon=True,
                         name=f"console-refresh-{name[:20]}").start()  # fmt: skip
        return True

    def state(self, name: str) -> Started | None:
        with self._lock:
            return self._started.get(name)

    def _run(self, actor: Actor, name: str, started: Started) -> None:
        try:
            result = run_admin(self._deps, actor, ["sources", "refresh", name],
                               platform_admin=True)  # fmt: skip
            started.queued = result.ok and result.text.startswith("Queued")
            started.ok, started.outcome = result.ok, result.text
        except Exception as exc:  # audited by run_admin; the page shows it
            started.ok, started.outcome = False, f"The refresh failed: {type(exc).__name__}: {exc}"
